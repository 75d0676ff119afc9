//! Locks that fail loudly. A mutex is poisoned when a thread panicked while holding it; the
//! state behind every lock in hashgate stays valid between statements (single inserts,
//! removals, counters), so the guard is recovered, but never silently: the panic is logged
//! again where the state is next used and counted in `hashgate_lock_poisoned_total`. Skipping
//! the state instead would fail open (a verdict that forgets a stream, a pool that stops
//! feeding a worker, a registry that lets a blocked key publish).

use std::sync::{Mutex, MutexGuard};

/// [`Mutex::lock`] that recovers a poisoned lock with an error log line.
pub trait Locked<T> {
    /// The guard, poisoned or not.
    fn locked(&self) -> MutexGuard<'_, T>;
}

impl<T> Locked<T> for Mutex<T> {
    #[track_caller]
    fn locked(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(|poisoned| {
            let at = std::panic::Location::caller();
            tracing::error!(
                at = %format!("{}:{}", at.file(), at.line()),
                "a lock was poisoned by a panic on another thread; its state is used as it was left"
            );
            crate::metrics::metrics().locks_poisoned.inc();
            poisoned.into_inner()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_is_recovered_with_its_state() {
        let m = std::sync::Arc::new(Mutex::new(vec![1]));
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let mut g = m2.lock().expect("first lock");
            g.push(2);
            panic!("poison it");
        })
        .join();
        assert!(m.is_poisoned());
        assert_eq!(*m.locked(), vec![1, 2]);
    }
}
