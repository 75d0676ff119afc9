//! Which frames of a live stream are hashed: the frame on screen at each sample point.
//!
//! Each interval of stream time (1 / fps) gets one sample point, drawn at random within it (a
//! CSPRNG per stream), and the frame sampled for it is the one a viewer sees at that instant:
//! the frame with the latest presentation time at or before the point. A frame's chance of
//! being sampled is therefore how long it stays on screen, whatever the timestamps do: frames
//! shown for a blink between others are sampled for a blink's worth.
//!
//! The choice is made from the coded frames' timestamps as they arrive, before anything is
//! decoded, so every decoding mode and shortcut samples the same frames (a sampled frame is
//! always decoded whole). A frame waits here until its fate is known: it is not on screen at
//! any point once a frame presented after it but before its next point has arrived; it is the
//! one on screen at a point once a frame *decoded* after the point has arrived (composition
//! times are never negative past the relay, so nothing presented at or before the point can
//! come later). Frames come out in arrival order, each with its [`Pick`].
//!
//! Timestamps a publisher controls cannot stall this: the wall clock takes the newest frame
//! when no frame was taken for [`WALL_SLACK`] intervals of arrival time (and settles what
//! waits), a restart of the timestamps starts the schedule again, gaps skip whole intervals,
//! a frame presented inside a stretch already decided is taken as well (timestamps out of
//! order), and at most [`MAX_HELD`] frames wait.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::sampler::{BOOST, JUMP_BACK_MS, WALL_SLACK};

/// A coded frame's timing, known before it is decoded.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Decode timestamp, milliseconds.
    pub dts: i64,
    /// Presentation timestamp, milliseconds.
    pub pts: i64,
    /// When its message reached the relay.
    pub arrived: Instant,
}

/// Why a frame is, or is not, hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// Not hashed.
    Pass,
    /// On screen at a sample point.
    OnScreen,
    /// The first frame of the stream, or after its timestamps restarted.
    Start,
    /// The wall clock's backstop: nothing was taken for too long.
    Backstop,
    /// Presented inside a stretch already decided, after the frame picked for it.
    Late,
    /// A keyframe hashed besides the samples (hybrid mode; a probed GOP's keyframe).
    Extra,
    /// A frame between keyframes at a random point (keyframes mode's probes).
    Probe,
}

impl Pick {
    /// Whether the frame is hashed.
    pub fn hashed(self) -> bool {
        self != Pick::Pass
    }
}

/// Most items waiting for their fate; past it the earliest point is decided with what is known.
pub const MAX_HELD: usize = 128;
/// Arrivals whose presentation times are remembered.
const RECENT: usize = 64;
/// Decided points remembered, for frames that arrive after their point was decided: more than
/// a second of them at the boosted rate (timestamps stepping back further restart the schedule).
const DECIDED: usize = 16;
/// Frames taken late for one decided point at most (a tie shown after the pick, a frame
/// presented inside the stretch after it); past it the stream is reported as steering.
const LATE_PER_POINT: u8 = 2;
/// Whole intervals with no frame are skipped (one point kept) only past this many: a gap that
/// short is drawn point by point, so a frame sent into it later still meets a point.
const SKIP_AFTER: f64 = 64.0;

struct Entry<T> {
    /// `None`: not a frame (it only keeps its place in the order).
    timing: Option<Timing>,
    item: T,
    pick: Option<Pick>,
}

/// A live stream's sample points and the frames waiting for their fate.
pub struct OnScreen<T> {
    interval_ms: Option<f64>,
    boost_until: Option<Instant>,
    rng: StdRng,
    /// Start of the interval the next point is drawn in; `None`: no schedule yet (the next
    /// frame is taken at once).
    next_start: Option<f64>,
    /// Drawn and not yet decided, ascending.
    points: VecDeque<f64>,
    held: VecDeque<Entry<T>>,
    /// Presentation times of the latest arrivals.
    recent: VecDeque<i64>,
    /// Points decided lately: the point, the presentation time of the frame picked for it, and
    /// how many frames were taken late for it.
    decided: VecDeque<(f64, i64, u8)>,
    /// Frames arrived inside decided stretches past [`LATE_PER_POINT`]: timestamps steering.
    late_overflow: bool,
    newest_pts: Option<i64>,
    newest_dts: Option<i64>,
    /// Arrival of the latest frame (sampling is denser while it is boosted).
    latest_arrival: Option<Instant>,
    last_taken_at: Option<Instant>,
    last_taken_pts: Option<i64>,
    last_extra_at: Option<Instant>,
    /// Every point decided, with its pick's presentation time (tests check the picks).
    #[cfg(test)]
    history: Vec<(f64, i64)>,
}

impl<T> OnScreen<T> {
    /// Sample points at `fps` per second of stream time (`fps <= 0`: every frame), drawn with a
    /// generator seeded from the system's entropy.
    pub fn live(fps: f64) -> OnScreen<T> {
        OnScreen::with_rng(fps, StdRng::from_entropy())
    }

    fn with_rng(fps: f64, rng: StdRng) -> OnScreen<T> {
        OnScreen {
            interval_ms: (fps > 0.0 && fps.is_finite()).then(|| 1000.0 / fps),
            boost_until: None,
            rng,
            next_start: None,
            points: VecDeque::new(),
            held: VecDeque::new(),
            recent: VecDeque::with_capacity(RECENT),
            decided: VecDeque::with_capacity(DECIDED),
            late_overflow: false,
            newest_pts: None,
            newest_dts: None,
            latest_arrival: None,
            last_taken_at: None,
            last_taken_pts: None,
            last_extra_at: None,
            #[cfg(test)]
            history: Vec::new(),
        }
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// What waits, oldest first.
    pub fn waiting(&self) -> impl Iterator<Item = &T> + '_ {
        self.held.iter().map(|e| &e.item)
    }

    /// Samples [`BOOST`] times as often for frames arriving before `until`: the points not yet
    /// reached are drawn again at the denser rate.
    pub fn boost(&mut self, until: Instant) {
        self.boost_until = Some(until);
        if let Some(newest) = self.newest_pts {
            let newest = newest as f64;
            self.points.retain(|&p| p <= newest);
            if self.next_start.is_some() {
                self.next_start = Some(newest + 1.0);
            }
        }
    }

    /// Something that is not a frame, kept in its place among the frames.
    pub fn push_other(&mut self, item: T) {
        self.held.push_back(Entry {
            timing: None,
            item,
            pick: Some(Pick::Pass),
        });
        self.bound_held();
    }

    /// Whether frames arrived inside stretches already decided past what is taken for them
    /// (reported once: the timestamps steer).
    pub fn take_late_overflow(&mut self) -> bool {
        std::mem::take(&mut self.late_overflow)
    }

    /// At most [`MAX_HELD`] items wait: past it the earliest point is decided with what is
    /// known, or the oldest frame passes.
    fn bound_held(&mut self) {
        while self.held.len() > MAX_HELD {
            if self.points.is_empty() {
                if !self.pass_head() {
                    return;
                }
            } else {
                self.decide_point();
                self.decide_passes();
            }
        }
    }

    /// A coded frame as it arrives.
    pub fn push_frame(&mut self, timing: Timing, item: T) {
        self.latest_arrival = Some(timing.arrived);
        let Some(interval) = self.interval_at(timing.arrived) else {
            return self.push_decided(timing, item, Pick::OnScreen);
        };
        let pts = timing.pts;
        if let Some(slot) = self
            .decided
            .iter_mut()
            .find(|(p, picked, _)| *picked <= pts && pts as f64 <= *p)
        {
            // Presented at a point after (or with) the frame picked for it: a player may show
            // this one there instead.
            let late = slot.2 < LATE_PER_POINT;
            if late {
                slot.1 = pts;
                slot.2 += 1;
            }
            self.late_overflow |= !late;
            self.note_arrival(timing);
            let pick = if late { Pick::Late } else { Pick::Pass };
            return self.push_decided(timing, item, pick);
        }
        let jumped_back = self
            .newest_pts
            .is_some_and(|newest| (pts as f64) < newest as f64 - JUMP_BACK_MS);
        if self.next_start.is_none() || jumped_back {
            // What waits is decided with what is known; the schedule starts again here.
            self.decide_all(false);
            self.recent.clear();
            self.decided.clear();
            self.newest_pts = None;
            self.newest_dts = None;
            self.note_arrival(timing);
            self.push_decided(timing, item, Pick::Start);
            self.next_start = Some(pts as f64 + interval);
            return;
        }
        self.note_arrival(timing);
        self.held.push_back(Entry {
            timing: Some(timing),
            item,
            pick: None,
        });
        self.draw_points();
        while let Some(&p) = self.points.front() {
            if self.newest_dts.is_none_or(|dts| dts as f64 <= p) {
                break;
            }
            self.decide_point();
        }
        if self.wall_due(timing.arrived) {
            self.backstop(timing, interval);
        }
        self.decide_passes();
        self.bound_held();
    }

    /// Nothing was taken for too long: the newest frame is, what waits is decided with what is
    /// known, and the schedule starts again after it.
    fn backstop(&mut self, timing: Timing, interval: f64) {
        if let Some(newest) = self.held.back_mut().filter(|e| e.pick.is_none()) {
            newest.pick = Some(Pick::Backstop);
        }
        self.note_taken(timing.pts, timing.arrived);
        self.decide_all(false);
        self.next_start = Some(timing.pts as f64 + interval);
    }

    /// The next item whose fate is known, in arrival order, with its pick (`None` for what is
    /// not a frame).
    pub fn pop(&mut self) -> Option<(T, Option<Pick>)> {
        let pick = self.held.front()?.pick?;
        let entry = self.held.pop_front()?;
        Some((entry.item, entry.timing.map(|_| pick)))
    }

    /// Decides everything that waits now, as if no more video were coming: the newest frame is
    /// on screen at the next point. (The video paused, or ended.)
    pub fn settle(&mut self) {
        self.draw_points();
        self.decide_all(true);
    }

    /// Forgets the frames that wait and the schedule (inspection skipped video): the next
    /// frame is taken at once. What is not a frame stays, in order.
    pub fn reset(&mut self) {
        self.held.retain(|e| e.timing.is_none());
        self.points.clear();
        self.decided.clear();
        self.recent.clear();
        self.next_start = None;
        self.newest_pts = None;
        self.newest_dts = None;
    }

    /// Keyframes mode, judged as each decoded keyframe comes out: the first at or after each
    /// point is taken (a keyframe is rarely on screen at a point), and the wall clock's
    /// backstop as above.
    pub fn take_at_or_after(&mut self, pts: i64, arrived: Instant) -> bool {
        self.latest_arrival = Some(arrived);
        let Some(interval) = self.interval_at(arrived) else {
            return true;
        };
        let restart = self.next_start.is_none()
            || self
                .newest_pts
                .is_some_and(|newest| (pts as f64) < newest as f64 - JUMP_BACK_MS);
        self.newest_pts = Some(self.newest_pts.map_or(pts, |n| n.max(pts)));
        let take = if restart || self.wall_due(arrived) {
            self.points.clear();
            self.next_start = Some(pts as f64 + interval);
            true
        } else {
            self.draw_points();
            let due = self.points.front().is_some_and(|&p| p <= pts as f64);
            self.points.retain(|&p| p > pts as f64);
            due
        };
        if take {
            self.note_taken(pts, arrived);
        }
        take
    }

    /// Hybrid mode: whether a keyframe not picked is hashed all the same, as an extra sample.
    /// Extras move neither the schedule nor the backstop (keyframes the publisher places
    /// cannot stand in for samples), and are spaced half an interval from what was taken, in
    /// stream time and in arrival time, so keyframes at most triple the hashing.
    pub fn extra_keyframe(&mut self, pts: i64, arrived: Instant) -> bool {
        let Some(interval) = self.interval_ms else {
            return true;
        };
        let half = interval / 2.0;
        let wall_spaced = self.last_extra_at.is_none_or(|last| {
            arrived.saturating_duration_since(last) >= Duration::from_secs_f64(half / 1000.0)
        });
        let spaced = self
            .last_taken_pts
            .is_none_or(|last| ((pts - last) as f64).abs() >= half);
        let extra = wall_spaced && spaced;
        if extra {
            self.last_extra_at = Some(arrived);
            self.last_taken_pts = Some(pts);
        }
        extra
    }

    /// The sampling interval for a frame arriving at `arrived` (denser while boosted); `None`
    /// when every frame is taken.
    fn interval_at(&self, arrived: Instant) -> Option<f64> {
        let base = self.interval_ms?;
        let boosted = self.boost_until.is_some_and(|until| arrived < until);
        Some(if boosted { base / BOOST } else { base })
    }

    /// The backstop takes a frame once arrival time has run [`WALL_SLACK`] intervals (at the
    /// configured rate) past the last frame taken: two points can lie up to two intervals
    /// apart, and ordinary arrival jitter never adds a frame.
    fn wall_due(&self, arrived: Instant) -> bool {
        let Some(interval) = self.interval_ms else {
            return false;
        };
        self.last_taken_at.is_some_and(|last| {
            arrived.saturating_duration_since(last)
                >= Duration::from_secs_f64(interval * WALL_SLACK / 1000.0)
        })
    }

    fn note_arrival(&mut self, timing: Timing) {
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(timing.pts);
        self.newest_pts = Some(self.newest_pts.map_or(timing.pts, |n| n.max(timing.pts)));
        self.newest_dts = Some(self.newest_dts.map_or(timing.dts, |n| n.max(timing.dts)));
    }

    fn note_taken(&mut self, pts: i64, arrived: Instant) {
        self.last_taken_at = Some(self.last_taken_at.map_or(arrived, |t| t.max(arrived)));
        self.last_taken_pts = Some(pts);
    }

    fn push_decided(&mut self, timing: Timing, item: T, pick: Pick) {
        if pick.hashed() {
            self.note_taken(timing.pts, timing.arrived);
        }
        self.held.push_back(Entry {
            timing: Some(timing),
            item,
            pick: Some(pick),
        });
    }

    /// Draws points until one lies at or after the newest presentation time, one per
    /// interval; past [`SKIP_AFTER`] intervals with no frame, the rest of the gap is skipped
    /// after its first point (the frame shown over a jump is sampled once, however long).
    fn draw_points(&mut self) {
        let Some(newest) = self.newest_pts.map(|n| n as f64) else {
            return;
        };
        while self.points.back().is_none_or(|&p| p < newest) {
            let interval = self.latest_arrival.and_then(|at| self.interval_at(at));
            let (Some(start), Some(interval)) = (self.next_start, interval) else {
                return;
            };
            self.points
                .push_back(start + self.rng.gen_range(0.0..interval));
            let mut next = start + interval;
            let whole = ((newest - next) / interval).floor();
            if whole > SKIP_AFTER {
                next += whole * interval;
            }
            self.next_start = Some(next);
        }
    }

    /// Decides the earliest point: the frames presented last at or before it are picked.
    fn decide_point(&mut self) {
        let Some(p) = self.points.pop_front() else {
            return;
        };
        let Some(on_screen) = self.known_pts().filter(|&t| t as f64 <= p).max() else {
            return;
        };
        if self.decided.len() == DECIDED {
            self.decided.pop_front();
        }
        self.decided.push_back((p, on_screen, 0));
        #[cfg(test)]
        self.history.push((p, on_screen));
        self.pick_ties(on_screen);
    }

    /// Takes the waiting frames presented at `pts`: the first and the last to arrive (a
    /// player shows one of them; which depends on the player).
    fn pick_ties(&mut self, pts: i64) {
        let ties: Vec<usize> = (0..self.held.len())
            .filter(|&i| {
                let e = &self.held[i];
                e.pick.is_none() && e.timing.is_some_and(|t| t.pts == pts)
            })
            .collect();
        for i in [ties.first(), ties.last()].into_iter().flatten().copied() {
            let entry = &mut self.held[i];
            entry.pick = Some(Pick::OnScreen);
            // The backstop counts from when the take was decided, not from when the frame
            // arrived (a frame presented late in a reordered GOP arrived early).
            if let Some(t) = entry.timing {
                self.note_taken(t.pts, self.latest_arrival.unwrap_or(t.arrived));
            }
        }
    }

    /// Decides what waits with what is known: the points up to the newest presentation time
    /// as usual; then, `pausing`, the frames presented last are on screen now and are taken
    /// (the points after stay, for the video that may come), else the points after are
    /// dropped. Whatever still waits passes.
    fn decide_all(&mut self, pausing: bool) {
        let newest = self.newest_pts.map_or(f64::NEG_INFINITY, |n| n as f64);
        while self.points.front().is_some_and(|&p| p <= newest) {
            self.decide_point();
        }
        if pausing {
            self.take_latest_presented();
        } else {
            self.points.clear();
        }
        for entry in self.held.iter_mut().filter(|e| e.pick.is_none()) {
            entry.pick = Some(Pick::Pass);
        }
    }

    /// The waiting frames presented last (the first and the last of them to arrive) are taken.
    fn take_latest_presented(&mut self) {
        let Some(latest) = self
            .held
            .iter()
            .filter(|e| e.pick.is_none())
            .filter_map(|e| e.timing.map(|t| t.pts))
            .max()
        else {
            return;
        };
        self.pick_ties(latest);
    }

    /// Frames that can no longer be on screen at any point pass: a frame presented after
    /// them has arrived and is presented at or before their next point.
    fn decide_passes(&mut self) {
        self.draw_points();
        let passing: Vec<usize> = (0..self.held.len())
            .filter(|&i| {
                let entry = &self.held[i];
                let Some(t) = entry.timing.map(|t| t.pts).filter(|_| entry.pick.is_none()) else {
                    return false;
                };
                let Some(&next) = self.points.iter().find(|&&p| p >= t as f64) else {
                    return false;
                };
                self.known_pts().any(|h| h > t && h as f64 <= next)
            })
            .collect();
        for i in passing {
            self.held[i].pick = Some(Pick::Pass);
        }
    }

    /// Presentation times of the frames that arrived lately and of every frame waiting.
    fn known_pts(&self) -> impl Iterator<Item = i64> + '_ {
        self.recent
            .iter()
            .copied()
            .chain(self.held.iter().filter_map(|e| e.timing.map(|t| t.pts)))
    }

    /// The oldest waiting frame passes (more wait than allowed and no point to decide);
    /// `false` when nothing waits undecided.
    fn pass_head(&mut self) -> bool {
        let Some(entry) = self.held.iter_mut().find(|e| e.pick.is_none()) else {
            return false;
        };
        entry.pick = Some(Pick::Pass);
        true
    }
}

#[cfg(test)]
mod tests;
