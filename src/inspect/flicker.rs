//! Frames shown for a blink: timestamps that steer sampling.
//!
//! A sample is the first frame at or after a random point, so each frame takes the samples
//! whose points fall while the frame *before* it is shown. A publisher who shows each frame of
//! a clip for most of the frame spacing and a benign frame for a blink after it puts most
//! samples on the benign frames (see the sampler's module doc). This watch measures the share
//! of stream time whose samples go to a frame shown for under a quarter of the time of the
//! frame before it, and reports a stream where that is most of the time, so the trick does not
//! pass silently. Evenly spaced frames score 0; dropped frames (an encoder falling behind) raise
//! the share a little, since a frame after a long one is then short only against a gap.

use std::collections::VecDeque;

/// Frames held to put presentation times in order: deeper than any B-frame pyramid.
const REORDER: usize = 16;
/// Frames judged at once.
const WINDOW: usize = 60;
/// A frame shown for under `1 / SHORT` of the frame before it takes that frame's samples.
const SHORT: i64 = 4;
/// Reported when frames that short take this share of the window's stream time or more.
const SHARE: f64 = 0.5;
/// A step in presentation time this long, either way, is a discontinuity (a restart, a wrap, a
/// pause): what came before is not compared with what comes after. Frames held longer are the
/// wall-clock backstop's business.
const JUMP_MS: i64 = 1000;

/// Watches one stream's presentation times as its coded frames arrive.
#[derive(Debug, Default)]
pub struct FlickerWatch {
    /// Presentation times not settled yet, in order.
    pending: Vec<i64>,
    /// The last frame settled: its time and how long the frame before it was shown.
    last_settled: Option<(i64, Option<i64>)>,
    /// For each of the last settled frames: how long the frame before it was shown, and
    /// whether it was shown for a blink against that.
    window: VecDeque<(i64, bool)>,
    reported: bool,
}

impl FlickerWatch {
    /// Notes a coded frame's presentation time; `true` the first time the last window of
    /// frames shows the pattern.
    pub fn observe(&mut self, pts_ms: i64) -> bool {
        if let Some((settled, _)) = self.last_settled {
            if pts_ms < settled - JUMP_MS {
                self.restart();
            } else if pts_ms < settled {
                // Reordered deeper than the buffer: too late to place.
                return false;
            }
        }
        let at = self.pending.partition_point(|&p| p <= pts_ms);
        self.pending.insert(at, pts_ms);
        if self.pending.len() <= REORDER {
            return false;
        }
        let settled = self.pending.remove(0);
        self.settle(settled)
    }

    fn settle(&mut self, pts_ms: i64) -> bool {
        let previous = self.last_settled.replace((pts_ms, None));
        let Some((before, before_shown)) = previous else {
            return false;
        };
        let shown = pts_ms - before;
        if shown > JUMP_MS {
            self.window.clear();
            return false;
        }
        // How long the frame before was shown is known now; whether this one was a blink
        // against it is known when the next frame settles.
        self.last_settled = Some((pts_ms, Some(shown)));
        if let Some(before_shown) = before_shown {
            if self.window.len() == WINDOW {
                self.window.pop_front();
            }
            self.window
                .push_back((before_shown, shown * SHORT < before_shown));
        }
        if self.reported || self.window.len() < WINDOW {
            return false;
        }
        let total: i64 = self.window.iter().map(|(d, _)| d).sum();
        let stolen: i64 = self.window.iter().filter(|(_, b)| *b).map(|(d, _)| d).sum();
        self.reported = total > 0 && stolen as f64 >= SHARE * total as f64;
        self.reported
    }

    fn restart(&mut self) {
        self.pending.clear();
        self.last_settled = None;
        self.window.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn reports(pts: impl Iterator<Item = i64>) -> usize {
        let mut watch = FlickerWatch::default();
        pts.filter(|&p| watch.observe(p)).count()
    }

    /// A repeating pattern of display durations.
    fn shown(pattern: &[i64], frames: usize) -> impl Iterator<Item = i64> + '_ {
        let mut t = 0;
        (0..frames).map(move |i| {
            let at = t;
            t += pattern[i % pattern.len()];
            at
        })
    }

    #[test]
    fn clip_frames_with_blinks_after_them_are_reported_once() {
        // 65 ms of clip, 1 ms of benign frame; two blinks; a benign frame shown a sixth of the
        // clip frame's time; frozen clip frames between blinks of zero.
        for pattern in [&[65, 1][..], &[65, 1, 1], &[50, 9, 9], &[60, 10], &[33, 0]] {
            assert_eq!(reports(shown(pattern, 600)), 1, "{pattern:?}");
        }
    }

    #[test]
    fn ordinary_timing_is_not() {
        let mut rng = StdRng::seed_from_u64(1);
        let cases: Vec<(&str, Vec<i64>)> = vec![
            ("30 fps", (0..900).map(|i| i * 1000 / 30).collect()),
            ("29.97", (0..900).map(|i| i * 1001 / 30).collect()),
            ("59.94", (0..900).map(|i| i * 1001 / 60).collect()),
            ("23.976", (0..900).map(|i| i * 1001 / 24).collect()),
            (
                "jitter ±10 ms",
                (0..900).map(|i| i * 33 + rng.gen_range(-10..=10)).collect(),
            ),
            (
                "B-frame order",
                (0..900)
                    .map(|k: i64| match k % 3 {
                        0 => k + 2,
                        _ => k - 1,
                    } * 33)
                    .collect(),
            ),
            (
                "60 fps, 40 % dropped",
                (0..1800)
                    .filter(|_| rng.gen_range(0..10) >= 4)
                    .map(|i| i * 1000 / 60)
                    .collect(),
            ),
            (
                "restarts at 0",
                (0..900).map(|i| (i % 300) * 33).collect(),
            ),
            (
                "pauses of 5 s",
                (0..900).map(|i| i * 33 + (i / 100) * 5000).collect(),
            ),
            ("frozen at 0", vec![0; 900]),
        ];
        for (name, pts) in cases {
            assert_eq!(reports(pts.into_iter()), 0, "{name}");
        }
    }
}
