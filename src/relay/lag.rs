//! How far behind live forwarding has fallen because the platform reads too slowly.
//!
//! The relay forwards with backpressure: while a write to the platform waits, the broadcaster
//! is not read, so a platform that reads a trickle holds the broadcaster too, with every write
//! still making progress. The lag the platform causes is kept as a debt: time spent waiting on
//! writes adds to it, and time between writes pays it back. Between writes the relay reads the
//! broadcaster as fast as it sends; while a backlog remains that takes next to no time, and once
//! the relay is caught up it waits for the broadcaster, which pays the debt off. A platform
//! slower than the stream keeps the relay waiting on writes nearly all the time, so the debt
//! grows at close to a second per second until it passes the bound. Timestamps are not used:
//! a source with a slow clock, a paused or a lying one builds no debt.

use std::time::{Duration, Instant};

/// The platform-caused lag of one stream's forwarding.
#[derive(Debug)]
pub struct LiveLag {
    max: Duration,
    debt: Duration,
    /// When the last write to the platform finished.
    last_write: Option<Instant>,
}

impl LiveLag {
    /// Tracks lag against the bound `max` (`limits.max_upstream_lag`).
    pub fn new(max: Duration) -> LiveLag {
        LiveLag {
            max,
            debt: Duration::ZERO,
            last_write: None,
        }
    }

    /// A write starts at `now`: the time since the last one pays the debt back.
    pub fn write_started(&mut self, now: Instant) {
        if let Some(last) = self.last_write {
            self.debt = self
                .debt
                .saturating_sub(now.saturating_duration_since(last));
        }
    }

    /// A write that waited `waited` finished at `now`.
    pub fn write_finished(&mut self, now: Instant, waited: Duration) {
        self.debt += waited;
        self.last_write = Some(now);
    }

    /// The lag the platform has caused, counting a write that has waited `waiting` so far.
    pub fn lag(&self, waiting: Duration) -> Duration {
        self.debt + waiting
    }

    /// Time a write may still wait before the bound is reached.
    pub fn allowance(&self, waiting: Duration) -> Duration {
        self.max.saturating_sub(self.lag(waiting))
    }

    /// `Some(lag)` once a write that has waited `waiting` takes the lag to the bound.
    pub fn over(&self, waiting: Duration) -> Option<Duration> {
        let lag = self.lag(waiting);
        (lag >= self.max).then_some(lag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Duration = Duration::from_secs(10);

    /// Writes each taking `wait`, separated by `gap`, for `count` writes; the lag after.
    fn run(lag: &mut LiveLag, start: &mut Instant, count: u64, wait: Duration, gap: Duration) {
        for _ in 0..count {
            lag.write_started(*start);
            *start += wait;
            lag.write_finished(*start, wait);
            *start += gap;
        }
    }

    #[test]
    fn a_platform_slower_than_the_stream_is_caught_once_the_lag_passes_the_bound() {
        let mut now = Instant::now();
        let mut lag = LiveLag::new(MAX);
        // Backlogged: every message is read at once, then its write waits 100 ms.
        run(
            &mut lag,
            &mut now,
            99,
            Duration::from_millis(100),
            Duration::from_micros(50),
        );
        assert_eq!(lag.over(Duration::ZERO), None);
        run(
            &mut lag,
            &mut now,
            2,
            Duration::from_millis(100),
            Duration::from_micros(50),
        );
        assert!(lag.over(Duration::ZERO).is_some());
    }

    #[test]
    fn short_waits_absorbed_before_the_next_frame_never_add_up() {
        let mut now = Instant::now();
        let mut lag = LiveLag::new(MAX);
        // A day at 30 fps; each keyframe's write waits 20 ms of its 33 ms.
        for _ in 0..(86_400 / 2) {
            run(
                &mut lag,
                &mut now,
                1,
                Duration::from_millis(20),
                Duration::from_millis(13),
            );
            run(
                &mut lag,
                &mut now,
                59,
                Duration::from_micros(20),
                Duration::from_millis(33),
            );
        }
        assert!(lag.lag(Duration::ZERO) < Duration::from_millis(21));
    }

    #[test]
    fn a_stall_is_paid_back_once_the_relay_has_caught_up() {
        let mut now = Instant::now();
        let mut lag = LiveLag::new(MAX);
        run(
            &mut lag,
            &mut now,
            1,
            Duration::from_secs(8),
            Duration::ZERO,
        );
        // The backlog drains at once, then the relay waits for the broadcaster again.
        run(
            &mut lag,
            &mut now,
            240,
            Duration::from_micros(30),
            Duration::from_micros(100),
        );
        run(
            &mut lag,
            &mut now,
            300,
            Duration::from_micros(30),
            Duration::from_millis(33),
        );
        assert_eq!(lag.lag(Duration::ZERO), Duration::from_micros(30));
        // A second stall of the same length is judged on its own.
        run(
            &mut lag,
            &mut now,
            1,
            Duration::from_secs(8),
            Duration::ZERO,
        );
        assert_eq!(lag.over(Duration::ZERO), None);
    }
}
