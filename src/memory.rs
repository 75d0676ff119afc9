//! Giving freed memory back to the system when streams end.
//!
//! glibc's allocator keeps what the inspection threads free (decoded pictures, FFmpeg's
//! buffers, per-stream queues) in per-thread arenas for reuse, and returns only the top of the
//! main heap by itself. After a wave of streams ends, the process would stay at its peak
//! resident size for good. `malloc_trim` hands every arena's free pages back; it is asked for
//! after streams end, at most once a second, on a thread of its own (it walks the arenas and
//! may take milliseconds).

use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::OnceLock;
use std::time::Duration;

/// Shortest time between two trims.
const TRIM_EVERY: Duration = Duration::from_secs(1);

/// Asks for freed memory to be returned to the system soon. Cheap; never blocks.
pub fn release_soon() {
    static TRIMMER: OnceLock<Option<SyncSender<()>>> = OnceLock::new();
    let trimmer = TRIMMER.get_or_init(|| {
        let (tx, rx) = sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("memory-trim".into())
            .spawn(move || {
                while rx.recv().is_ok() {
                    // Streams often end together: one trim for the lot.
                    std::thread::sleep(TRIM_EVERY);
                    while rx.try_recv().is_ok() {}
                    release_now();
                }
            })
            .ok()
            .map(|_| tx)
    });
    if let Some(tx) = trimmer {
        let _ = tx.try_send(());
    }
}

/// Returns freed memory to the system now (glibc); elsewhere the allocator decides.
pub fn release_now() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
