//! Frames shown for a blink: timestamps that try to steer sampling.
//!
//! Live samples are the frame on screen at a random point (`inspect::onscreen`), so a frame's
//! share of the samples is its share of screen time, whatever the timestamps do. When samples
//! were the first frame at or after the point, a publisher who showed each clip frame for most
//! of the frame spacing and a benign frame for a blink after it put most samples on the benign
//! frames; this watch stays as a second line against that family (it reports the intent, and
//! any sampling that does not follow screen time). It measures, over the last frames, the share
//! of samples a first-at-or-after rule would put on other frames than the ones on screen when
//! their points fall (total variation distance: half the sum of |time a frame collects samples
//! for - time it is shown| over the time), and reports a stream where that is most of them.
//! Evenly spaced frames score 0; frames an encoder drops score a little. Streams that send
//! frames only when the picture changes (some screen captures) score high too.

use std::collections::VecDeque;

/// Frames held to put presentation times in order: deeper than any B-frame pyramid.
const REORDER: usize = 16;
/// Frames judged at once.
const WINDOW: usize = 60;
/// Reported at this distance or more.
const DISTANCE: f64 = 0.6;
/// A step back in presentation time this long is a restart (a new sequence, a wrap): the
/// sampler's own threshold.
const JUMP_BACK_MS: i64 = super::sampler::JUMP_BACK_MS as i64;
/// A frame shown longer counts as shown this long (a pause; longer holds are the wall-clock
/// backstop's business).
const LONGEST_SHOWN_MS: i64 = 1000;

/// Watches one stream's presentation times as its coded frames arrive.
#[derive(Debug, Default)]
pub struct FlickerWatch {
    /// Presentation times not settled yet, in order.
    pending: Vec<i64>,
    /// The last frame settled: its time and how long the frame before it was shown.
    last_settled: Option<(i64, Option<i64>)>,
    /// For each of the last settled frames: the time it collects samples for (the frame before
    /// it was shown) and the time it is shown.
    window: VecDeque<(i64, i64)>,
    reported: bool,
}

impl FlickerWatch {
    /// Notes a coded frame's presentation time; `true` the first time the last window of
    /// frames shows the pattern (once per stream).
    pub fn observe(&mut self, pts_ms: i64) -> bool {
        let newest = self
            .pending
            .last()
            .copied()
            .or(self.last_settled.map(|(t, _)| t));
        if newest.is_some_and(|newest| pts_ms < newest - JUMP_BACK_MS) {
            self.restart();
        } else if self.last_settled.is_some_and(|(t, _)| pts_ms <= t) {
            // Reordered deeper than the buffer, or a late duplicate: too late to place.
            return false;
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
        let shown = (pts_ms - before).min(LONGEST_SHOWN_MS);
        // How long the frame before was shown is known now; how long this one is, when the
        // next frame settles.
        self.last_settled = Some((pts_ms, Some(shown)));
        if let Some(collects) = before_shown {
            if self.window.len() == WINDOW {
                self.window.pop_front();
            }
            self.window.push_back((collects, shown));
        }
        if self.reported || self.window.len() < WINDOW {
            return false;
        }
        let total: i64 = self.window.iter().map(|(c, _)| c).sum();
        let moved: i64 = self.window.iter().map(|(c, s)| (c - s).abs()).sum();
        self.reported = total > 0 && moved as f64 / 2.0 >= DISTANCE * total as f64;
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
        // 65 ms of clip, 1 ms of benign frame; two blinks; a chain of ever shorter frames;
        // a benign frame shown under a quarter of the clip frame's time; pairs of duplicate
        // timestamps.
        for pattern in [
            &[65, 1][..],
            &[65, 1, 1],
            &[64, 16, 4, 1],
            &[27, 9, 3, 1],
            &[45, 10],
            &[33, 0],
        ] {
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
                "60 fps, bursts of 3 dropped",
                (0..1800)
                    .filter(|i| i % 10 < 7)
                    .map(|i| i * 1000 / 60)
                    .collect(),
            ),
            (
                "a 1 s stall at 60 fps",
                (0..600).map(|i| i * 1000 / 60 + (i >= 300) as i64 * 1000).collect(),
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
