//! Which frames of a video file to hash: a rate in stream time (from timestamps), taking the
//! first frame at or after the start of each interval, so lists made with `hashgate hash --fps`
//! are reproducible and `hashgate scan` samples a file as lists are made. Live streams are
//! sampled by `inspect::onscreen` (the frame on screen at a random point of each interval,
//! with the wall clock as backstop); the constants they share live here.

use std::time::Duration;

/// Picks frames at `fps` per second of stream time; `fps <= 0` picks every frame.
#[derive(Debug, Clone)]
pub struct Sampler {
    interval_ms: Option<f64>,
    /// Start of the interval the next sample falls in.
    window_start_ms: Option<f64>,
    last_seen_ms: Option<f64>,
    /// Stream time of the last frame taken.
    last_taken_ms: Option<f64>,
}

/// How much denser sampling is for a while after a match: a clip that matches only now and
/// then (cropped, damaged) is confirmed or cleared within a fraction of a second.
pub const BOOST: f64 = 4.0;

/// A timestamp this far behind the last one is a discontinuity (a new sequence, a wrapped
/// clock), not B-frame reordering.
pub(crate) const JUMP_BACK_MS: f64 = 1000.0;

/// The wall clock takes a frame after this many sampling intervals without one. Above 2: two
/// sample points can lie up to two intervals apart, and the frame on screen at a point a frame
/// gap before it.
pub const WALL_SLACK: f64 = 2.2;

/// The shortest coverage bound (`verdict.max_blind`) the config accepts for sampling at
/// `fps`: [`WALL_SLACK`] intervals between two hashed frames, and 400 ms for pictures held for
/// reordering (three B-frames of a 10 fps stream) and arrival jitter. The default, 1.5 s at
/// 2 fps, is this bound.
pub fn min_blind_bound(fps: f64) -> Option<Duration> {
    (fps > 0.0 && fps.is_finite()).then(|| {
        let ms = (WALL_SLACK * 1000.0 / fps).ceil() + 400.0;
        Duration::from_millis(ms as u64)
    })
}

impl Sampler {
    /// A sampler at `fps` frames per second of stream time, taking the first frame of each
    /// interval.
    pub fn new(fps: f64) -> Sampler {
        Sampler {
            interval_ms: (fps > 0.0 && fps.is_finite()).then(|| 1000.0 / fps),
            window_start_ms: None,
            last_seen_ms: None,
            last_taken_ms: None,
        }
    }

    /// Whether the frame at `pts_ms` is due in stream time.
    pub fn take_in_stream_time(&mut self, pts_ms: i64) -> bool {
        let take = match self.interval_ms {
            Some(interval) => self.stream_due(pts_ms, interval),
            None => true,
        };
        if take {
            self.last_taken_ms = Some(pts_ms as f64);
        }
        take
    }

    /// Whether a keyframe that is not due is taken all the same (`scan` in hybrid mode): when
    /// no frame was taken within half an interval of it, in stream time.
    pub fn extra_keyframe(&mut self, pts_ms: i64) -> bool {
        let Some(interval) = self.interval_ms else {
            return true;
        };
        let t = pts_ms as f64;
        let spaced = self
            .last_taken_ms
            .is_none_or(|last| (t - last).abs() >= interval / 2.0);
        if spaced {
            self.last_taken_ms = Some(t);
        }
        spaced
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
            self.window_start_ms = None;
        }
        let Some(start) = self.window_start_ms else {
            // The first frame (or the first after a jump) is taken at once.
            self.window_start_ms = Some(t + interval);
            return true;
        };
        if t + 0.5 < start {
            return false;
        }
        // Skip whole intervals after a gap so one late frame does not cause a burst.
        let passed = ((t + 0.5 - start) / interval).floor().max(0.0);
        self.window_start_ms = Some(start + (passed + 1.0) * interval);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(fps: f64, frames: impl Iterator<Item = i64>) -> Vec<i64> {
        let mut s = Sampler::new(fps);
        frames.filter(|&t| s.take_in_stream_time(t)).collect()
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
        assert_eq!(taken(1.0, frames.into_iter()), vec![0, 5000, 0]);
    }

    #[test]
    fn keyframes_add_samples_but_not_too_many() {
        let mut s = Sampler::new(2.0);
        assert!(s.take_in_stream_time(0));
        assert!(!s.extra_keyframe(100));
        assert!(s.extra_keyframe(300));
    }

    #[test]
    fn the_coverage_floor_follows_the_rate() {
        assert_eq!(min_blind_bound(2.0), Some(Duration::from_millis(1500)));
        assert_eq!(min_blind_bound(1.0), Some(Duration::from_millis(2600)));
        assert_eq!(min_blind_bound(0.0), None);
    }
}
