//! Frames shown for a blink: timestamps that steer sampling.
//!
//! A sample is the first frame at or after a random point, so a frame's chance of being hashed
//! is the time the frame before it is shown. A publisher who shows each frame of a clip for most
//! of the frame spacing and a benign frame for a blink after it puts most samples on the benign
//! frames (see the sampler's module doc). Real encoders space frames evenly, give or take
//! jitter; this watch reports a stream where many frames are shown for under half the usual
//! spacing, so the trick does not pass silently. Below that share the trick loses its edge: a
//! clip shown two thirds of the time still gets a third of the samples.

use std::collections::VecDeque;

/// Frames held to put presentation times in order: deeper than any B-frame pyramid.
const REORDER: usize = 16;
/// Display durations judged at once.
const WINDOW: usize = 32;
/// Frames of the window shown for under half the median duration before the stream is
/// reported.
const SHORT_SHARE: usize = WINDOW / 4;
/// Below this median spacing (ms) durations say nothing (timestamps are whole milliseconds).
const MIN_MEDIAN_MS: i64 = 8;

/// Watches one stream's presentation times as its coded frames arrive.
#[derive(Debug, Default)]
pub struct FlickerWatch {
    /// Presentation times not settled yet, in order.
    pending: Vec<i64>,
    /// How long each of the last settled frames was shown.
    durations: VecDeque<i64>,
}

impl FlickerWatch {
    /// Notes a coded frame's presentation time; `true` when the frames of the last window
    /// show the pattern (each call after that while it lasts).
    pub fn observe(&mut self, pts_ms: i64) -> bool {
        let at = self.pending.partition_point(|&p| p <= pts_ms);
        self.pending.insert(at, pts_ms);
        if self.pending.len() <= REORDER {
            return false;
        }
        let settled = self.pending.remove(0);
        let Some(&next) = self.pending.first() else {
            return false;
        };
        if self.durations.len() == WINDOW {
            self.durations.pop_front();
        }
        self.durations.push_back(next - settled);
        self.flickering()
    }

    fn flickering(&self) -> bool {
        if self.durations.len() < WINDOW {
            return false;
        }
        let mut sorted: Vec<i64> = self.durations.iter().copied().collect();
        sorted.sort_unstable();
        let median = sorted[WINDOW / 2];
        median >= MIN_MEDIAN_MS && sorted.iter().filter(|&&d| d * 2 < median).count() >= SHORT_SHARE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reported(pts: impl Iterator<Item = i64>) -> bool {
        let mut watch = FlickerWatch::default();
        pts.fold(false, |any, p| watch.observe(p) | any)
    }

    #[test]
    fn clip_frames_with_blinks_between_are_reported() {
        // 65 ms of clip, 1 ms of benign frame, over and over.
        assert!(reported((0..200).map(|i| i / 2 * 66 + i % 2 * 65)));
        // Benign frames shown a third of the clip frame's time: still a blink.
        assert!(reported((0..200).map(|i| i / 2 * 60 + i % 2 * 45)));
    }

    #[test]
    fn ordinary_streams_are_not() {
        // 30 fps with millisecond rounding, 29.97 fps, arrival jitter of ±10 ms on 33 ms.
        assert!(!reported((0..600).map(|i| i * 1000 / 30)));
        assert!(!reported(
            (0..600).map(|i| (i as f64 * 1001.0 / 30.0) as i64)
        ));
        assert!(!reported((0..600).map(|i| i * 33 + (i * 7919 % 21) - 10)));
        // B-frames: presentation times arrive out of order (I P B B P B B ...).
        let ibbp = (0..600).map(|k: i64| match k % 3 {
            0 => k + 2,
            _ => k - 1,
        });
        assert!(!reported(ibbp.map(|i| i.max(0) * 33)));
        // Variable frame rate: dropped frames lengthen some durations, shorten none.
        assert!(!reported((0..600).map(|i| i * 33 + (i / 7) * 33)));
        // Every frame stamped 0 (the sampler's backstop deals with it): no spacing to judge.
        assert!(!reported((0..600).map(|_| 0)));
    }

    #[test]
    fn a_few_short_frames_are_not() {
        // A frame every second a few milliseconds after the one before (a splice): 1 in 30.
        assert!(!reported(
            (0..600).map(|i| i * 33 - (i % 30 == 1) as i64 * 30)
        ));
    }
}
