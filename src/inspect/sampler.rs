//! Which frames to hash: a rate in stream time (from timestamps), so a stream replayed faster or
//! slower is sampled at the same points of its content, *and* the same rate in wall-clock time
//! (arrival at the relay), so no timestamp pattern can starve sampling: a frame is taken when
//! either clock says one is due. Timestamps the publisher squeezes together still get a hashed
//! frame per interval of wall time; timestamps stretched apart get every frame hashed.

use std::time::{Duration, Instant};

/// Picks frames at `fps` per second of stream time; `fps <= 0` picks every frame.
#[derive(Debug, Clone)]
pub struct Sampler {
    interval_ms: Option<f64>,
    next_due_ms: Option<f64>,
    last_seen_ms: Option<f64>,
    last_taken_at: Option<Instant>,
}

/// A timestamp this far behind the last one is a discontinuity (a new sequence, a wrapped
/// clock), not B-frame reordering.
const JUMP_BACK_MS: f64 = 1000.0;

/// The wall clock takes a frame after this many sampling intervals without one.
const WALL_SLACK: f64 = 1.5;

impl Sampler {
    /// A sampler at `fps` frames per second of stream time.
    pub fn new(fps: f64) -> Sampler {
        Sampler {
            interval_ms: (fps > 0.0 && fps.is_finite()).then(|| 1000.0 / fps),
            next_due_ms: None,
            last_seen_ms: None,
            last_taken_at: None,
        }
    }

    /// Whether the frame presented at `pts_ms`, whose message arrived at `arrived`, is to be
    /// hashed.
    pub fn take(&mut self, pts_ms: i64, arrived: Instant) -> bool {
        let Some(interval) = self.interval_ms else {
            return true;
        };
        // The wall clock is the backstop: it takes a frame only once stream time has fallen
        // half an interval behind it, so ordinary arrival jitter never adds a frame.
        let wall_due = self.last_taken_at.is_none_or(|last| {
            arrived.saturating_duration_since(last)
                >= Duration::from_secs_f64(interval * WALL_SLACK / 1000.0)
        });
        let take = if self.stream_due(pts_ms, interval) {
            true
        } else if wall_due {
            // Restart the stream-time schedule from here, so the two never take a pair.
            self.next_due_ms = Some(pts_ms as f64 + interval);
            true
        } else {
            false
        };
        if take {
            self.last_taken_at = Some(arrived);
        }
        take
    }

    /// For files, which have no wall clock: whether the frame at `pts_ms` is due in stream time.
    pub fn take_in_stream_time(&mut self, pts_ms: i64) -> bool {
        match self.interval_ms {
            Some(interval) => self.stream_due(pts_ms, interval),
            None => true,
        }
    }

    /// The stream-time schedule: whether `pts_ms` is due, advancing the schedule when it is.
    fn stream_due(&mut self, pts_ms: i64, interval: f64) -> bool {
        let t = pts_ms as f64;
        let jumped_back = self
            .last_seen_ms
            .is_some_and(|last| t < last - JUMP_BACK_MS);
        self.last_seen_ms = Some(t);
        if jumped_back {
            // Restart the schedule instead of starving it until the old time comes back.
            self.next_due_ms = None;
        }
        match self.next_due_ms {
            Some(due) if t + 0.5 < due => false,
            Some(due) => {
                // Skip whole intervals after a gap so one late frame does not cause a burst.
                let behind = ((t - due) / interval).floor().max(0.0);
                self.next_due_ms = Some(due + (behind + 1.0) * interval);
                true
            }
            None => {
                self.next_due_ms = Some(t + interval);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames arriving in real time (arrival = stream time).
    fn taken(fps: f64, frames: impl Iterator<Item = i64>) -> Vec<i64> {
        let t0 = Instant::now();
        let mut s = Sampler::new(fps);
        frames
            .filter(|&t| s.take(t, t0 + Duration::from_millis(t.max(0) as u64)))
            .collect()
    }

    #[test]
    fn samples_at_the_rate_in_stream_time() {
        // 30 fps for 3 s, sampled at 2 fps: 6 frames, 500 ms apart (to the frame).
        let frames = (0..90).map(|i| i * 1000 / 30);
        assert_eq!(
            taken(2.0, frames.clone()),
            vec![0, 500, 1000, 1500, 2000, 2500]
        );
        assert_eq!(taken(0.0, frames.clone()).len(), 90);
        assert_eq!(taken(0.5, frames).len(), 2);
    }

    #[test]
    fn gaps_and_jumps_do_not_burst_or_stall() {
        let mut frames: Vec<i64> = (0..30).map(|i| i * 33).collect();
        frames.extend((0..30).map(|i| 5000 + i * 33)); // 4 s gap
        frames.extend((0..30).map(|i| i * 33)); // timestamps restart
        let t0 = Instant::now();
        let mut s = Sampler::new(1.0);
        // Arrival in real time throughout (the restart is a timestamp jump, not a pause).
        let got: Vec<i64> = frames
            .iter()
            .enumerate()
            .filter(|(i, &t)| {
                let wall = if *i < 60 { t } else { 5990 + t };
                s.take(t, t0 + Duration::from_millis(wall as u64))
            })
            .map(|(_, &t)| t)
            .collect();
        assert_eq!(got, vec![0, 5000, 0]);
    }

    #[test]
    fn no_timestamp_pattern_starves_sampling() {
        let t0 = Instant::now();
        let wall = |i: u64| t0 + Duration::from_millis(i * 33);
        // Every frame stamped 0: still one hashed frame per 750 ms of wall time.
        let mut s = Sampler::new(2.0);
        let n = (0..90u64).filter(|&i| s.take(0, wall(i))).count();
        assert!((4..=5).contains(&n), "{n} frames of 90 stamped 0");
        // Timestamps crawling at 1/200 of real time: the same.
        let mut s = Sampler::new(2.0);
        let n = (0..90u64)
            .filter(|&i| s.take((i * 33 / 200) as i64, wall(i)))
            .count();
        assert!((4..=5).contains(&n), "{n} frames of 90 at 1/200 speed");
        // Real-time frames whose arrival jitters by up to 200 ms take no extra frame.
        let mut s = Sampler::new(2.0);
        let jitter = |i: u64| wall(i) + Duration::from_millis((i * 7919) % 200);
        let n = (0..90u64)
            .filter(|&i| s.take((i * 33) as i64, jitter(i)))
            .count();
        assert_eq!(n, 6);
        // Stretched 200 times: every frame is 6.6 s of stream time, so every frame is hashed.
        let mut s = Sampler::new(2.0);
        let n = (0..90u64)
            .filter(|&i| s.take((i * 33 * 200) as i64, wall(i)))
            .count();
        assert_eq!(n, 90);
    }
}
