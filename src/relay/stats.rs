//! Live counters of one stream, shared by the relay (bytes, frames) and inspection (hashes,
//! lag, matches), read by the admin API's `GET /streams`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// One stream's counters. Every field is an atomic: writers never wait.
#[derive(Debug)]
pub struct StreamStats {
    /// When the publish was accepted.
    pub since: SystemTime,
    started: Instant,
    /// Media payload bytes received from the broadcaster.
    pub bytes_in: AtomicU64,
    /// Video messages received.
    pub video_messages: AtomicU64,
    /// Unix time in milliseconds of the last hashed frame (0: none yet).
    pub last_hash_unix_ms: AtomicU64,
    /// How far inspection is behind the live edge, in milliseconds.
    pub inspection_lag_ms: AtomicU64,
    /// Hashed frames that matched a block list.
    pub matches: AtomicU64,
}

impl Default for StreamStats {
    fn default() -> StreamStats {
        StreamStats {
            since: SystemTime::now(),
            started: Instant::now(),
            bytes_in: AtomicU64::new(0),
            video_messages: AtomicU64::new(0),
            last_hash_unix_ms: AtomicU64::new(0),
            inspection_lag_ms: AtomicU64::new(0),
            matches: AtomicU64::new(0),
        }
    }
}

impl StreamStats {
    /// Seconds since the publish.
    pub fn age(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Average received bitrate since the publish, in bits per second.
    pub fn bitrate(&self) -> f64 {
        self.bytes_in.load(Ordering::Relaxed) as f64 * 8.0 / self.age().max(1e-3)
    }

    /// Average video messages (frames) per second since the publish.
    pub fn fps(&self) -> f64 {
        self.video_messages.load(Ordering::Relaxed) as f64 / self.age().max(1e-3)
    }

    /// Records that a frame was hashed now.
    pub fn hashed_now(&self) {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.last_hash_unix_ms.store(ms, Ordering::Relaxed);
    }
}
