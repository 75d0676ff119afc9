//! How far forwarding to the platform has fallen behind live, and how much of that the
//! platform caused.
//!
//! The relay forwards with backpressure: while a write to the platform waits, the broadcaster
//! is not read, so a platform that reads a trickle holds the broadcaster too, with every write
//! still making progress. Lag is measured on the media clock of what was forwarded: wall time
//! since an anchor minus the media time forwarded since it. A live source makes media at wall
//! speed, so the difference is how far behind live the platform's copy is. The anchor moves
//! when timestamps run backwards or ahead of the wall clock (a reset, a jump after a pause), so
//! only lag that builds up counts. A broadcaster whose own uplink is slow also lags; the
//! stream is ended only when most of the lag was spent waiting on the platform.

use std::time::{Duration, Instant};

/// The lag of one stream's forwarding.
#[derive(Debug)]
pub struct LiveLag {
    max: Duration,
    anchor: Option<Anchor>,
    /// Media time forwarded since the anchor, in ms.
    media_ms: u64,
    last_ts: u32,
}

#[derive(Debug, Clone, Copy)]
struct Anchor {
    at: Instant,
    /// Time spent waiting on writes to the platform since `at`.
    blocked: Duration,
}

/// Why the stream is ended: it fell too far behind, waiting on the platform.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Behind {
    /// How far behind live the forwarded stream is.
    pub lag: Duration,
    /// How much of it was spent waiting for the platform to read.
    pub blocked: Duration,
}

impl LiveLag {
    /// Tracks lag against the bound `max` (`limits.max_upstream_lag`).
    pub fn new(max: Duration) -> LiveLag {
        LiveLag {
            max,
            anchor: None,
            media_ms: 0,
            last_ts: 0,
        }
    }

    /// An audio or video message with timestamp `ts_ms` was queued for the platform at `now`.
    pub fn forwarded(&mut self, ts_ms: u32, now: Instant) {
        let Some(anchor) = self.anchor else {
            self.reanchor(ts_ms, now);
            return;
        };
        // RTMP timestamps are 32-bit milliseconds: a signed difference survives the wrap.
        let step = ts_ms.wrapping_sub(self.last_ts) as i32;
        if step < 0 {
            self.reanchor(ts_ms, now);
            return;
        }
        self.last_ts = ts_ms;
        self.media_ms += step as u64;
        let wall = now.saturating_duration_since(anchor.at);
        if Duration::from_millis(self.media_ms) > wall {
            // Media ahead of the wall clock (a burst, a jump): only lag from here on counts.
            self.reanchor(ts_ms, now);
        }
    }

    fn reanchor(&mut self, ts_ms: u32, now: Instant) {
        self.anchor = Some(Anchor {
            at: now,
            blocked: Duration::ZERO,
        });
        self.media_ms = 0;
        self.last_ts = ts_ms;
    }

    /// A write to the platform waited `waited`.
    pub fn waited(&mut self, waited: Duration) {
        if let Some(anchor) = self.anchor.as_mut() {
            anchor.blocked += waited;
        }
    }

    /// How far behind live forwarding is at `now`.
    pub fn lag(&self, now: Instant) -> Duration {
        self.anchor.map_or(Duration::ZERO, |a| {
            now.saturating_duration_since(a.at)
                .saturating_sub(Duration::from_millis(self.media_ms))
        })
    }

    /// Time left at `now` before the lag reaches the bound (zero when it has).
    pub fn allowance(&self, now: Instant) -> Duration {
        self.max.saturating_sub(self.lag(now))
    }

    /// `Some` when, counting a write that has waited `waiting` so far, the stream is past the
    /// bound and at least half of its lag was spent waiting on the platform.
    pub fn over(&self, now: Instant, waiting: Duration) -> Option<Behind> {
        let anchor = self.anchor?;
        let lag = self.lag(now);
        let blocked = anchor.blocked + waiting;
        (lag >= self.max && blocked * 2 >= lag).then_some(Behind { lag, blocked })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Duration = Duration::from_secs(10);

    fn feed(lag: &mut LiveLag, start: Instant, seconds: u64, media_per_s: u64, wall_per_s: u64) {
        for i in 1..=seconds {
            lag.forwarded(
                (i * media_per_s) as u32,
                start + Duration::from_millis(i * wall_per_s),
            );
        }
    }

    #[test]
    fn a_platform_that_reads_half_speed_is_caught_once_the_lag_passes_the_bound() {
        let start = Instant::now();
        let mut lag = LiveLag::new(MAX);
        lag.forwarded(0, start);
        // Each second of media takes two seconds to get out, one of them waiting on writes.
        for i in 1..=19u64 {
            lag.forwarded((i * 1000) as u32, start + Duration::from_secs(2 * i));
            lag.waited(Duration::from_secs(1));
        }
        let now = start + Duration::from_secs(38);
        assert_eq!(lag.lag(now), Duration::from_secs(19));
        let behind = lag.over(now, Duration::ZERO).expect("past the bound");
        assert_eq!(behind.blocked, Duration::from_secs(19));
    }

    #[test]
    fn a_slow_broadcaster_lags_without_being_blamed_on_the_platform() {
        let start = Instant::now();
        let mut lag = LiveLag::new(MAX);
        lag.forwarded(0, start);
        feed(&mut lag, start, 30, 1000, 2000);
        let now = start + Duration::from_secs(60);
        assert!(lag.lag(now) >= MAX);
        assert_eq!(
            lag.over(now, Duration::ZERO),
            None,
            "never waited on the platform"
        );
    }

    #[test]
    fn live_speed_resets_and_jumps_do_not_count_as_lag() {
        let start = Instant::now();
        let mut lag = LiveLag::new(MAX);
        lag.forwarded(50_000, start);
        feed(&mut lag, start, 5, 1000, 1000);
        assert_eq!(lag.lag(start + Duration::from_secs(5)), Duration::ZERO);
        // The encoder restarts its clock at 0, then jumps an hour ahead.
        lag.forwarded(0, start + Duration::from_secs(6));
        lag.forwarded(3_600_000, start + Duration::from_secs(7));
        assert_eq!(lag.lag(start + Duration::from_secs(7)), Duration::ZERO);
        // Across the 32-bit wrap.
        let mut wrap = LiveLag::new(MAX);
        wrap.forwarded(u32::MAX - 500, start);
        wrap.forwarded(499, start + Duration::from_secs(1));
        assert_eq!(wrap.lag(start + Duration::from_secs(1)), Duration::ZERO);
    }
}
