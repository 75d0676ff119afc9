//! Which frames to hash: a rate in stream time (from timestamps), so a stream replayed faster or
//! slower is sampled at the same density of its content, with the wall clock (arrival at the
//! relay) as backstop, so no timestamp pattern can starve sampling. Timestamps the publisher
//! squeezes together still get a hashed frame every couple of intervals of wall time;
//! timestamps stretched apart get every frame hashed.
//!
//! Live, the point sampled within each interval is drawn at random (a CSPRNG, per stream): a
//! publisher who knows the rate cannot put benign frames exactly where the samples fall and the
//! clip everywhere else. Files are sampled at the start of each interval, so lists made with
//! `hashgate hash --fps` are reproducible.
//!
//! A sample is the first frame at or after its point, so a frame's chance grows with how long
//! the frame before it is shown: timestamps that show each frame of a clip for most of a frame
//! interval, and a benign frame for a millisecond after it, put most samples on the benign
//! frames. Not handled yet (hashing the frame on screen at the point instead changes which
//! frames the decoding shortcuts may skip); `inspect::flicker` reports such streams.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Picks frames at `fps` per second of stream time; `fps <= 0` picks every frame.
#[derive(Debug, Clone)]
pub struct Sampler {
    interval_ms: Option<f64>,
    /// Start of the interval the next sample falls in.
    window_start_ms: Option<f64>,
    next_due_ms: f64,
    last_seen_ms: Option<f64>,
    /// Spacing of the coded frames as they arrive: live sample points are drawn about this
    /// much earlier, so each falls on a frame inside its own interval.
    frame_gap: FrameGap,
    /// End of the stretch the last live point was drawn from: the next interval's stretch
    /// starts there, so no stream time falls between two (the gap may have changed).
    drawn_until_ms: Option<f64>,
    last_taken_at: Option<Instant>,
    /// Stream time of the last frame taken.
    last_taken_ms: Option<f64>,
    /// Arrival of the last keyframe taken as an extra sample (hybrid mode).
    last_extra_at: Option<Instant>,
    /// Draws the sample point within each interval (live sampling only).
    jitter: Option<StdRng>,
    /// Until then (arrival time), sample [`BOOST`] times as often: a match was just seen.
    boost_until: Option<Instant>,
}

/// How much denser sampling is for a while after a match: a clip that matches only now and
/// then (cropped, damaged) is confirmed or cleared within a fraction of a second.
pub const BOOST: f64 = 4.0;

/// A timestamp this far behind the last one is a discontinuity (a new sequence, a wrapped
/// clock), not B-frame reordering.
pub(crate) const JUMP_BACK_MS: f64 = 1000.0;

/// The wall clock takes a frame after this many sampling intervals without one. Above 2: with
/// random sample points two samples can lie up to two intervals and a frame gap apart (the
/// gap counted at most `WALL_SLACK - 2` intervals).
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

/// The median step between the decode timestamps of the last few coded frames: the stream's
/// frame spacing, read from what arrives rather than from the pictures sampled (shortcuts skip
/// some of those). A publisher who makes it wrong moves a sample point by at most
/// `WALL_SLACK - 2` intervals, not out of its interval's randomness.
#[derive(Debug, Clone, Default)]
struct FrameGap {
    last_dts: Option<i64>,
    steps: [u32; 8],
    count: usize,
}

impl FrameGap {
    fn observe(&mut self, dts_ms: i64) {
        if let Some(step) = self
            .last_dts
            .and_then(|last| u32::try_from(dts_ms.checked_sub(last)?).ok())
            .filter(|step| *step > 0)
        {
            self.steps[self.count % self.steps.len()] = step;
            self.count += 1;
        }
        self.last_dts = Some(dts_ms);
    }

    fn median_ms(&self) -> Option<f64> {
        let n = self.count.min(self.steps.len());
        if n == 0 {
            return None;
        }
        let mut steps = self.steps;
        let steps = &mut steps[..n];
        steps.sort_unstable();
        Some(f64::from(steps[n / 2]))
    }
}

impl Sampler {
    /// A sampler at `fps` frames per second of stream time, taking the first frame of each
    /// interval (for files).
    pub fn new(fps: f64) -> Sampler {
        Sampler {
            interval_ms: (fps > 0.0 && fps.is_finite()).then(|| 1000.0 / fps),
            window_start_ms: None,
            next_due_ms: 0.0,
            last_seen_ms: None,
            frame_gap: FrameGap::default(),
            drawn_until_ms: None,
            last_taken_at: None,
            last_taken_ms: None,
            last_extra_at: None,
            jitter: None,
            boost_until: None,
        }
    }

    /// Samples [`BOOST`] times as often for frames arriving before `until`, starting with the
    /// next interval of the denser rate.
    pub fn boost(&mut self, until: Instant) {
        self.boost_until = Some(until);
        if let (Some(last), Some(interval)) = (self.last_seen_ms, self.interval_ms) {
            self.open_window(last + 1.0, interval / BOOST);
        }
    }

    /// A sampler for a live stream: the point sampled in each interval is drawn at random.
    pub fn live(fps: f64) -> Sampler {
        Sampler {
            jitter: Some(StdRng::from_entropy()),
            ..Sampler::new(fps)
        }
    }

    /// Opens the interval starting at `start`: its sample point is its start, or a random
    /// point within it when live.
    ///
    /// A sample is the first frame at or after the point, so a point drawn after the
    /// interval's last frame would take the next interval's first frame, and that interval
    /// would go without a sample of its own (a 2 fps sampler of a 30 fps stream hashed 1.87
    /// frames a second). Live points are therefore drawn one frame gap early, so that at a
    /// steady frame rate each frame of the interval is as likely to be the sample and the
    /// sample stays inside it. Consecutive intervals' stretches join up whatever the gap did
    /// in between (a publisher who shrinks it leaves no stretch no point can fall in). A point
    /// never falls on or before a frame already seen: the schedule only moves forward (see
    /// [`Sampler::may_take`]).
    fn open_window(&mut self, start: f64, interval: f64) {
        self.window_start_ms = Some(start);
        let Some(rng) = self.jitter.as_mut() else {
            self.next_due_ms = start;
            return;
        };
        let slack = interval * (WALL_SLACK - 2.0);
        // A millisecond more: timestamps are whole milliseconds, so steps differ by one.
        let early = self
            .frame_gap
            .median_ms()
            .map_or(0.0, |gap| (gap + 1.0).min(slack));
        let from = match self.drawn_until_ms {
            // The interval right after the last one drawn (not after skipped intervals, a
            // restart or a boost): start where that stretch ended.
            Some(until) if (start - slack..=start).contains(&until) => until.min(start - early),
            _ => start - early,
        };
        let to = start + interval - early;
        let point = rng.gen_range(from..to);
        self.drawn_until_ms = Some(to);
        self.next_due_ms = self
            .last_seen_ms
            .map_or(point, |seen| point.max(seen + 1.0));
    }

    /// Notes a coded frame's decode timestamp as it arrives, before decoding: the frame
    /// spacing live sample points are drawn with.
    pub fn note_coded_frame(&mut self, dts_ms: i64) {
        self.frame_gap.observe(dts_ms);
    }

    /// Whether the frame presented at `pts_ms`, whose message arrived at `arrived`, is to be
    /// hashed.
    pub fn take(&mut self, pts_ms: i64, arrived: Instant) -> bool {
        let Some(interval) = self.interval_at(arrived) else {
            return true;
        };
        let wall_due = self.wall_due(arrived, interval);
        let take = if self.stream_due(pts_ms, interval) {
            true
        } else if wall_due {
            // Restart the stream-time schedule after this frame, so the two never take a pair.
            self.open_window(pts_ms as f64 + interval, interval);
            true
        } else {
            false
        };
        if take {
            self.last_taken_at = Some(arrived);
            self.last_taken_ms = Some(pts_ms as f64);
        }
        take
    }

    /// [`Sampler::take`] for a keyframe in hybrid mode: a keyframe is also taken when it is not
    /// due, as an extra sample. Extras are purely additive: they move neither the schedule nor
    /// the wall-clock backstop (keyframes the publisher places cannot stand in for samples),
    /// and they are spaced half an interval apart in stream time and in arrival time, so a
    /// stream of keyframes at most triples the hashing.
    pub fn take_keyframe(&mut self, pts_ms: i64, arrived: Instant) -> bool {
        if self.take(pts_ms, arrived) {
            return true;
        }
        let Some(interval) = self.interval_ms else {
            return true;
        };
        let wall_spaced = self.last_extra_at.is_none_or(|last| {
            arrived.saturating_duration_since(last) >= Duration::from_secs_f64(interval / 2000.0)
        });
        let extra = wall_spaced && self.extra_keyframe(pts_ms);
        if extra {
            self.last_extra_at = Some(arrived);
        }
        extra
    }

    /// Whether a keyframe that is not due is taken all the same (hybrid mode): when no frame
    /// was taken within half an interval of it, in stream time.
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

    /// Whether the frame presented at `pts_ms` (arriving at `arrived`) could be picked when its
    /// picture comes out of the decoder, judged before it is decoded and without changing the
    /// schedule. Pictures come out in presentation order, and each one taken before this
    /// frame's moves the next sample point later, so in a stream with ordered timestamps this is
    /// never `false` for a frame [`Sampler::take`] would pick. Where it is wrong (a boost, a
    /// backstop sample or a jump back between this frame and its picture, timestamps out of
    /// order) the sample shifts to the next picture decoded, a frame or two later: coverage is
    /// unchanged.
    pub fn may_take(&self, pts_ms: i64, arrived: Instant) -> bool {
        let Some(interval) = self.interval_at(arrived) else {
            return true;
        };
        let t = pts_ms as f64;
        let jumped_back = self
            .last_seen_ms
            .is_some_and(|last| t < last - JUMP_BACK_MS);
        self.wall_due(arrived, interval)
            || jumped_back
            || self.window_start_ms.is_none()
            || t + 0.5 >= self.next_due_ms
    }

    /// The sampling interval for a frame arriving at `arrived` (denser while boosted); `None`
    /// when every frame is taken.
    fn interval_at(&self, arrived: Instant) -> Option<f64> {
        let base = self.interval_ms?;
        let boosted = self.boost_until.is_some_and(|until| arrived < until);
        Some(if boosted { base / BOOST } else { base })
    }

    /// The wall clock is the backstop: it takes a frame only once stream time has fallen
    /// behind it by [`WALL_SLACK`] intervals, so ordinary arrival jitter never adds a frame.
    fn wall_due(&self, arrived: Instant, interval: f64) -> bool {
        self.last_taken_at.is_none_or(|last| {
            arrived.saturating_duration_since(last)
                >= Duration::from_secs_f64(interval * WALL_SLACK / 1000.0)
        })
    }

    /// For files, which have no wall clock: whether the frame at `pts_ms` is due in stream time.
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
            self.open_window(t + interval, interval);
            return true;
        };
        if t + 0.5 < self.next_due_ms {
            return false;
        }
        // Skip whole intervals after a gap so one late frame does not cause a burst.
        let passed = ((t + 0.5 - start) / interval).floor().max(0.0);
        self.open_window(start + (passed + 1.0) * interval, interval);
        true
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

    /// A live sampler with a fixed seed: tests are the same every run.
    fn live(seed: u64) -> Sampler {
        Sampler {
            jitter: Some(StdRng::seed_from_u64(seed)),
            ..Sampler::new(2.0)
        }
    }

    #[test]
    fn a_match_makes_sampling_denser_for_a_while() {
        for seed in 0..20 {
            denser_after_a_match(seed);
        }
    }

    fn denser_after_a_match(seed: u64) {
        let t0 = Instant::now();
        let at = |t: i64| t0 + Duration::from_millis(t as u64);
        let mut s = live(seed);
        let frames: Vec<i64> = (0..120).map(|i| i * 1000 / 30).collect();
        let mut taken = Vec::new();
        for &t in &frames {
            s.note_coded_frame(t);
            if t == 1000 {
                s.boost(at(2000));
            }
            if s.take(t, at(t)) {
                taken.push(t);
            }
        }
        let before = taken.iter().filter(|&&t| t < 1000).count();
        let during = taken.iter().filter(|&&t| (1000..2000).contains(&t)).count();
        let after = taken.iter().filter(|&&t| t >= 2200).count();
        assert!((1..=3).contains(&before), "{taken:?}");
        assert!(
            (5..=9).contains(&during),
            "4x denser for a second: {taken:?}"
        );
        assert!((3..=4).contains(&after), "back to 2 fps: {taken:?}");
    }

    #[test]
    fn live_sample_points_cannot_be_predicted() {
        // 30 fps for 60 s; a publisher puts benign frames at every 500 ms of stream time (where
        // fixed-rate samples fall) and the clip in the 14 frames of 15 between them.
        let t0 = Instant::now();
        let frames: Vec<i64> = (0..1800).map(|i| i * 1000 / 30).collect();
        let benign = |t: i64| t % 500 == 0;
        let mut fixed = Sampler::new(2.0);
        let fixed_takes: Vec<i64> = frames
            .iter()
            .copied()
            .filter(|&t| fixed.take(t, t0 + Duration::from_millis(t as u64)))
            .collect();
        assert!(
            fixed_takes.iter().all(|&t| benign(t)),
            "the weakness this fixes"
        );
        // Seeded, so the test is the same every run; over many seeds.
        for seed in 0..20 {
            let mut live = Sampler {
                jitter: Some(StdRng::seed_from_u64(seed)),
                ..Sampler::new(2.0)
            };
            check_live_takes(&live_run(&mut live, &frames), benign);
        }
    }

    /// A live sampler (seeded) that has seen coded frames at these decode times.
    fn noted(seed: u64, dts: impl Iterator<Item = i64>) -> Sampler {
        let mut s = live(seed);
        dts.for_each(|t| s.note_coded_frame(t));
        s
    }

    /// A live stream in real time without reordering: each coded frame arrives (and its
    /// timestamp is noted) two frames before its picture comes out, as from a decoder with a
    /// little delay. The frames taken.
    fn live_run(s: &mut Sampler, frames: &[i64]) -> Vec<i64> {
        live_run_paced(s, frames, 1.0)
    }

    /// [`live_run`] with `pace` milliseconds of arrival per millisecond of stream time.
    fn live_run_paced(s: &mut Sampler, frames: &[i64], pace: f64) -> Vec<i64> {
        let t0 = Instant::now();
        for &t in frames.iter().take(2) {
            s.note_coded_frame(t);
        }
        let mut takes = Vec::new();
        for (i, &t) in frames.iter().enumerate() {
            if let Some(&ahead) = frames.get(i + 2) {
                s.note_coded_frame(ahead);
            }
            if s.take(
                t,
                t0 + Duration::from_secs_f64(t.max(0) as f64 * pace / 1000.0),
            ) {
                takes.push(t);
            }
        }
        takes
    }

    #[test]
    fn live_sampling_keeps_the_configured_rate() {
        // Each interval gets its own sample, whatever the frame rate and however the interval
        // lines up with the frames (a point past an interval's last frame used to take the next
        // interval's first frame and leave that interval without a sample).
        for (stream_fps, fps) in [
            (30.0_f64, 2.0),
            (29.97, 2.0),
            (15.0, 2.0),
            (30.0, 4.0),
            (25.0, 1.0),
        ] {
            for seed in 0..20 {
                let mut s = Sampler {
                    jitter: Some(StdRng::seed_from_u64(seed)),
                    ..Sampler::new(fps)
                };
                // 30 s and a frame: the last interval's point always has a frame after it.
                let frames: Vec<i64> = (0..=(stream_fps * 30.0).ceil() as i64)
                    .map(|i| (i as f64 * 1000.0 / stream_fps).round() as i64)
                    .collect();
                let (interval, early) = (1000.0 / fps, (1000.0 / stream_fps).ceil() + 1.0);
                let takes = live_run(&mut s, &frames);
                // Sample k lies in the k-th interval after the first frame, or on the frame
                // just before it (the point is drawn a frame gap early).
                let intervals = (30.0 * fps) as usize;
                assert!(
                    takes.len() >= intervals,
                    "{stream_fps} fps at {fps}: {takes:?}"
                );
                for (k, &t) in takes.iter().take(intervals).enumerate() {
                    let start = k as f64 * interval;
                    assert!(
                        (start - early..start + interval).contains(&(t as f64)),
                        "{stream_fps} fps at {fps}, seed {seed}: sample {k} at {t}: {takes:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn timestamp_steps_do_not_stretch_the_schedule() {
        // A publisher who varies the frame spacing (to mislead the gap the points are drawn
        // early by) gets samples no further apart than the backstop's slack allows, plus the
        // step that led to the sample, in stream time alone: arrival runs at half speed, so the
        // wall-clock backstop never comes into it. Random steps, and steps that swing the
        // median between large and tiny (filler messages a millisecond apart).
        let swinging = |i: usize| {
            if (i / 12) % 2 == 0 {
                200
            } else {
                1 + (i % 4 == 0) as i64 * 60
            }
        };
        for seed in 0..20 {
            let mut steps = StdRng::seed_from_u64(seed + 100);
            let random = |_: usize| [1i64, 1, 33, 33, 33, 200, 250][steps.gen_range(0..7)];
            for (name, step) in [
                ("random", Box::new(random) as Box<dyn FnMut(usize) -> i64>),
                ("swinging", Box::new(swinging)),
            ] {
                let mut step = step;
                let mut t = 0;
                let frames: Vec<i64> = (0..2000)
                    .map(|i| {
                        t += step(i);
                        t
                    })
                    .collect();
                let mut s = live(seed);
                let takes = live_run_paced(&mut s, &frames, 0.5);
                for pair in takes.windows(2) {
                    // The step that led to the later sample: the point was before it.
                    let j = frames.binary_search(&pair[1]).expect("a frame");
                    let step = frames[j] - frames[j.saturating_sub(1)];
                    assert!(
                        pair[1] - pair[0] <= (WALL_SLACK * 500.0) as i64 + step,
                        "{name} seed {seed}: samples {pair:?}"
                    );
                }
                let seconds = (frames[frames.len() - 1] - frames[0]) as f64 / 1000.0;
                assert!(
                    takes.len() as f64 >= seconds * 2.0 * 0.8,
                    "{name} seed {seed}: {} samples in {seconds} s",
                    takes.len()
                );
            }
        }
    }

    #[test]
    fn a_huge_gap_moves_points_by_the_slack_at_most() {
        // Frames 10 s apart: points are drawn at most 0.2 intervals early (the backstop's
        // slack), or two samples could lie further apart than the coverage bound allows.
        let mut s = noted(3, (0..=80_000).step_by(10_000));
        for draw in 0..200 {
            s.drawn_until_ms = None;
            s.open_window(100_000.0, 500.0);
            assert!(
                (99_900.0..100_400.0).contains(&s.next_due_ms),
                "draw {draw}: {}",
                s.next_due_ms
            );
        }
    }

    #[test]
    fn a_shrinking_gap_leaves_no_stretch_unreachable() {
        // Interval k's points drawn 100 ms early, then the gap shrinks to 1 ms: interval k+1's
        // points must still reach the 98 ms between the two stretches.
        let mut reached = 0;
        for seed in 0..200 {
            let mut s = noted(seed, (0..=800).step_by(100));
            s.open_window(500.0, 500.0);
            for dts in 801..=810 {
                s.note_coded_frame(dts);
            }
            s.open_window(1000.0, 500.0);
            assert!(
                (900.0..1498.0).contains(&s.next_due_ms),
                "{}",
                s.next_due_ms
            );
            reached += (900.0..998.0).contains(&s.next_due_ms) as usize;
        }
        assert!(reached > 10, "{reached} of 200 points in the stretch");
    }

    fn check_live_takes(takes: &[i64], benign: impl Fn(i64) -> bool) {
        let clip = takes.iter().filter(|&&t| !benign(t)).count();
        // One sample in each 500 ms interval (or on the frame just before it), the last one
        // but rarely: its point may fall after the stream's last frame.
        assert!(
            (119..=120).contains(&takes.len()),
            "samples in 60 s: {takes:?}"
        );
        for (k, &t) in takes.iter().enumerate() {
            let start = k as i64 * 500;
            assert!(
                (start - 35..start + 500).contains(&t),
                "sample {k} at {t} ms"
            );
        }
        assert!(
            clip * 10 > takes.len() * 8,
            "only {clip} of {} samples saw the clip",
            takes.len()
        );
        // One sample per 500 ms interval, never two intervals without one.
        for pair in takes.windows(2) {
            assert!(pair[1] - pair[0] <= 1000, "gap {pair:?}");
        }
    }

    #[test]
    fn no_timestamp_pattern_starves_sampling() {
        let t0 = Instant::now();
        let wall = |i: u64| t0 + Duration::from_millis(i * 33);
        // Every frame stamped 0: still one hashed frame per 1.1 s of wall time.
        let mut s = live(1);
        let n = (0..90u64).filter(|&i| s.take(0, wall(i))).count();
        assert!((3..=4).contains(&n), "{n} frames of 90 stamped 0");
        // Timestamps crawling at 1/200 of real time: the same.
        let mut s = live(1);
        let n = (0..90u64)
            .filter(|&i| s.take((i * 33 / 200) as i64, wall(i)))
            .count();
        assert!((3..=4).contains(&n), "{n} frames of 90 at 1/200 speed");
        // Real-time frames whose arrival jitters by up to 200 ms: about one per interval.
        let mut s = live(1);
        let jitter = |i: u64| wall(i) + Duration::from_millis((i * 7919) % 200);
        let n = (0..90u64)
            .filter(|&i| s.take((i * 33) as i64, jitter(i)))
            .count();
        assert!((5..=7).contains(&n), "{n} frames of 3 s");
        // Stretched 200 times: every frame is 6.6 s of stream time, so every frame is hashed.
        let mut s = live(1);
        let n = (0..90u64)
            .filter(|&i| s.take((i * 33 * 200) as i64, wall(i)))
            .count();
        assert_eq!(n, 90);
    }

    /// Decode order of an IBBP stream (GOP of 12 at 30 fps): presentation index of each packet.
    fn ibbp_decode_order(frames: usize) -> Vec<usize> {
        let mut order = Vec::new();
        let mut i = 0;
        while i < frames {
            if i % 12 == 0 {
                order.push(i);
                i += 1;
                continue;
            }
            // P at i+2, then the two B-frames before it.
            let p = (i + 2).min(frames - 1);
            order.push(p);
            for b in i..p {
                order.push(b);
            }
            i = p + 1;
        }
        order
    }

    #[test]
    fn may_take_is_never_false_for_a_frame_take_picks() {
        for (seed, crawl) in [(1, false), (2, false), (3, true), (4, true)] {
            let t0 = Instant::now();
            let mut s = live(seed);
            let order = ibbp_decode_order(900);
            let pts = |i: usize| (i * 1000 / 30) as i64;
            // Arrival in decode order at 30 fps; crawling timestamps arrive 3x slower (the
            // wall clock then takes frames the stream schedule would not).
            let arrival =
                |k: usize| t0 + Duration::from_millis((k as u64 * 33) * if crawl { 3 } else { 1 });
            let mut peeked = std::collections::HashMap::new();
            let mut reorder: Vec<(usize, Instant)> = Vec::new();
            let mut taken = 0;
            for (k, &i) in order.iter().enumerate() {
                s.note_coded_frame((k * 1000 / 30) as i64);
                peeked.insert(i, s.may_take(pts(i), arrival(k)));
                reorder.push((i, arrival(k)));
                // Pictures come out in presentation order, two packets late.
                while reorder.len() > 2 || (k + 1 == order.len() && !reorder.is_empty()) {
                    reorder.sort_by_key(|(i, _)| *i);
                    let (i, at) = reorder.remove(0);
                    if s.take(pts(i), at) {
                        taken += 1;
                        assert!(
                            peeked[&i],
                            "seed {seed}: frame {i} taken but judged not wanted"
                        );
                    }
                }
            }
            assert!(
                taken >= 59,
                "seed {seed}: {taken} frames taken over 30 s at 2 fps"
            );
            let skipped = peeked.values().filter(|w| !**w).count();
            assert!(
                skipped > 600,
                "seed {seed}: only {skipped} of 900 frames could be skipped"
            );
        }
    }

    #[test]
    fn a_frame_judged_unwanted_is_never_hashed() {
        // A publisher whose presentation timestamps wobble out of order, with a frame spacing
        // that keeps changing (so each point is drawn early by a different amount): a picture
        // judged unwanted before decoding (decoded without deblocking, or skipped) is still
        // never the one hashed. Arrival in real time: the wall-clock backstop stays out of it.
        for seed in 0..20 {
            let t0 = Instant::now();
            let mut rng = StdRng::seed_from_u64(seed + 200);
            let mut s = live(seed);
            let mut pts = 0i64;
            let frames: Vec<(i64, i64)> = (0..900)
                .map(|k| {
                    pts += [20, 33, 80][rng.gen_range(0..3)];
                    (k * 33, pts + rng.gen_range(-60..=60))
                })
                .collect();
            let mut peeked = Vec::new();
            let mut taken = 0;
            for (k, &(dts, p)) in frames.iter().enumerate() {
                s.note_coded_frame(dts);
                let at = t0 + Duration::from_millis(dts as u64);
                peeked.push(s.may_take(p, at));
                // Pictures come out in arrival order, two packets late.
                if k >= 2 {
                    let (dts, p) = frames[k - 2];
                    if s.take(p, t0 + Duration::from_millis(dts as u64)) {
                        taken += 1;
                        assert!(peeked[k - 2], "seed {seed}: frame {} taken unwanted", k - 2);
                    }
                }
            }
            assert!(taken >= 40, "seed {seed}: {taken} samples in 30 s");
        }
    }

    #[test]
    fn a_point_is_never_drawn_on_a_frame_already_seen() {
        // What keeps `may_take` right: drawn a frame gap early, an interval opening right after
        // the frame just seen would put some points before it.
        let mut s = noted(7, (0..=1000).step_by(100));
        for draw in 0..200 {
            s.last_seen_ms = Some(1000.0);
            s.drawn_until_ms = None;
            s.open_window(1001.0, 500.0);
            assert!(s.next_due_ms > 1000.0, "draw {draw}: {}", s.next_due_ms);
        }
    }

    #[test]
    fn keyframes_add_samples_but_not_too_many() {
        // Hybrid mode: a keyframe every frame (an all-intra stream) hashes at most three times
        // the rate; a keyframe right after a sample is not hashed again.
        let mut s = Sampler::new(2.0);
        let t0 = Instant::now();
        let taken = (0..300)
            .map(|i| i * 1000 / 30)
            .filter(|&t| s.take_keyframe(t, t0 + Duration::from_millis(t as u64)))
            .count();
        assert!((20..=60).contains(&taken), "{taken} of 10 s at fps 2");
        let mut s = Sampler::new(2.0);
        assert!(s.take_keyframe(0, t0));
        assert!(!s.take_keyframe(100, t0 + Duration::from_millis(100)));
        assert!(s.take_keyframe(300, t0 + Duration::from_millis(300)));
    }

    #[test]
    fn keyframes_do_not_stand_in_for_the_wall_clock_backstop() {
        // Every timestamp held within the first half second (the stream schedule never comes
        // due again), keyframes once a second alternating between two times: the backstop
        // still takes a frame every 1.1 s of arrival, whatever the keyframes do.
        let t0 = Instant::now();
        let mut s = Sampler::new(2.0);
        let mut backstop = 0;
        for i in 0..300u64 {
            let arrived = t0 + Duration::from_millis(i * 33);
            let keyframe = i % 30 == 0;
            let pts = if keyframe {
                ((i / 30) % 2 * 300) as i64
            } else {
                100
            };
            if keyframe {
                s.take_keyframe(pts, arrived);
            } else if s.take(pts, arrived) {
                backstop += 1;
            }
        }
        assert!(backstop >= 8, "{backstop} backstop samples in 10 s");
    }
}
