//! The verdict: matches in, cuts out. Every hashed frame is matched against the lists; each
//! match is an event; when a stream's counted matches reach the policy, the stream is cut and
//! its key blocked and put on probation (or, in shadow mode, only the event is raised).
//!
//! `policy` holds the settings and the match window (stream time or wall time); `flood` tells a
//! clip's timeline from a bad entry; `coverage` watches what inspection could not see. A stream
//! inspection cannot cover is never let through silently: it raises `uninspectable` and meets
//! `on_uninspectable`.

mod audio;
mod learn;
pub use audio::informative as audio_window_informative;
pub mod coverage;
pub mod flood;
pub mod policy;

use crate::locks::Locked;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::bank::live::Banks;
use crate::events::{EventKind, Events};
use crate::hash::pdq::LumaImage;
use crate::hash::View;
use crate::inspect::audio::AudioWindow;
use crate::inspect::pool::{FrameSink, LogSink};
use crate::inspect::stream::{InspectStats, SampledFrame};
use crate::matcher::list::{Action, ClipPosition, ListKind, Match};
use crate::matcher::Matcher;
use crate::metrics::metrics;
use crate::registry::{Change, StreamRegistry};
use crate::relay::StreamInfo;
use flood::{AudioTimeline, FloodGuard, Timeline};
use policy::{
    counts_for_cut, AudioPolicy, MatchWindow, PolicySettings, UninspectableAction, VerdictMode,
};

/// A frame that matched but did not count (its entry was flooded), kept in case the stream's
/// next match shows it was the start of a clip's timeline.
struct Uncounted {
    stream_ms: i64,
    arrived: Instant,
    luma: LumaImage,
}

struct StreamState {
    window: MatchWindow,
    timeline: Timeline,
    audio_timeline: AudioTimeline,
    uncounted: Option<Uncounted>,
    /// The counted frames of the current window, for evidence.
    frames: Vec<learn::Counted>,
    cut: bool,
    /// A blind-coverage episode was reported (re-armed once coverage recovers).
    blind_reported: bool,
    /// An episode the pool's load explained was reported (re-armed likewise).
    excused_reported: bool,
    /// When the coverage watch first found the stream gone from the relay.
    gone_since: Option<Instant>,
    /// The last frame match that counted towards a cut (arrival), for `audio = "with_frames"`.
    last_frame_match: Option<Instant>,
    /// The last audio match of a cut list (arrival), for `audio = "with_frames"`.
    last_audio_match: Option<Instant>,
    /// Causes of audio uninspectable already reported (a few).
    audio_reported: Vec<String>,
    /// When video skipped for others' load was last reported (at most every [`UNSEEN_EVERY`]).
    unseen_reported: Option<Instant>,
    /// When a frame of the stream was last checked against the media banks.
    bank_checked: Option<Instant>,
}

/// How often video a stream loses to others' load is reported, at most.
const UNSEEN_EVERY: Duration = Duration::from_secs(10);

impl StreamState {
    fn new(policy: &PolicySettings) -> StreamState {
        StreamState {
            window: MatchWindow::new(policy.window),
            timeline: Timeline::default(),
            audio_timeline: AudioTimeline::default(),
            uncounted: None,
            frames: Vec::new(),
            cut: false,
            blind_reported: false,
            excused_reported: false,
            gone_since: None,
            last_frame_match: None,
            last_audio_match: None,
            unseen_reported: None,
            audio_reported: Vec::new(),
            bank_checked: None,
        }
    }
}

/// The frame sink that decides: it cuts through the stream registry it is given.
pub struct Verdict {
    matcher: Arc<Matcher>,
    policy: PolicySettings,
    events: Arc<Events>,
    registry: Arc<StreamRegistry>,
    /// Per stream, by [`StreamInfo::id`].
    streams: Mutex<HashMap<u64, StreamState>>,
    flood: Mutex<FloodGuard>,
    /// The media banks, when `[media_bank]` names any.
    banks: Option<Arc<Banks>>,
}

impl Verdict {
    /// A verdict over `matcher` with `policy`, recording to `events`.
    pub fn new(
        matcher: Arc<Matcher>,
        policy: PolicySettings,
        events: Arc<Events>,
        registry: Arc<StreamRegistry>,
    ) -> Verdict {
        Verdict {
            matcher,
            policy,
            events,
            registry,
            streams: Mutex::new(HashMap::new()),
            flood: Mutex::new(FloodGuard::default()),
            banks: None,
        }
    }

    /// The verdict with media banks: frames are also checked against them, at most
    /// `checks_per_second` per stream.
    pub fn with_banks(mut self, banks: Arc<Banks>) -> Verdict {
        self.banks = Some(banks);
        self
    }

    /// The frame's match in the media banks, when a check is due for the stream (one per
    /// interval of wall-clock time: a publisher's timestamps cannot make checks more frequent;
    /// after a match, the next sample at once, so the second match a cut needs is not held
    /// back by the rate) and one is found. The check runs without the streams lock held.
    fn bank_match(&self, stream: &StreamInfo, frame: &SampledFrame) -> Option<Match> {
        let banks = self.banks.as_ref()?;
        let settings = banks.settings();
        let now = Instant::now();
        let last = {
            let mut streams = self.streams.locked();
            let state = streams
                .entry(stream.id)
                .or_insert_with(|| StreamState::new(&self.policy));
            if state.cut {
                return None;
            }
            state.bank_checked
        };
        // PDQ's grey zone is only looked for when the plain rate would not check the frame and
        // the grey rate would.
        let due = |grey: bool| {
            bank_check_due(
                last,
                now,
                settings.interval(),
                grey.then(|| settings.grey_interval()),
            )
        };
        let check =
            due(false) || (due(true) && self.matcher.near_miss(&frame.hashes, settings.grey_zone));
        if !check {
            return None;
        }
        {
            let mut streams = self.streams.locked();
            match streams.get_mut(&stream.id) {
                // Another sample of the stream took the check meanwhile.
                Some(state) if state.bank_checked == last && !state.cut => {
                    state.bank_checked = Some(now)
                }
                _ => return None,
            }
        }
        let found = banks.check(&frame.luma)?;
        metrics().matches.inc(&[&found.bank]);
        // A match that can cut makes the next sample due at once (the second match a cut
        // needs); one that cannot (alert, shadow mode, a flooded reference) keeps the rate.
        let can_cut = found.action == Action::Cut
            && self.policy.mode != VerdictMode::Shadow
            && !self.flooded(&found.source);
        if can_cut {
            if let Some(state) = self.streams.locked().get_mut(&stream.id) {
                state.bank_checked = None;
            }
        }
        Some(Match {
            list: found.bank.clone(),
            label: found.clip.clone(),
            source: found.source,
            distance: 0,
            action: found.action,
            kind: ListKind::Block,
            position: Some(ClipPosition {
                clip: found.clip.as_str().into(),
                seconds: f64::from(found.at_ms) / 1000.0,
            }),
            view: View::Bank,
            negative: false,
            sure_bits: None,
            inliers: Some(found.inliers as u32),
        })
    }

    /// Starts watching the coverage of the registry's live streams (until the verdict drops).
    pub fn watch_coverage(self: &Arc<Self>) {
        coverage::watch(Arc::downgrade(self));
    }

    /// The registry whose streams the verdict cuts.
    pub fn registry(&self) -> &Arc<StreamRegistry> {
        &self.registry
    }

    /// Cuts `stream` as uninspectable (or only raises the event, per `on_uninspectable`).
    /// `kind` is the metric label: `codec`, `picture_size`, `blind` or `overload`.
    fn uninspectable_now(&self, stream: &StreamInfo, kind: &str, cause: &str) {
        self.uninspectable_with(stream, kind, cause, self.policy.on_uninspectable);
    }

    fn uninspectable_with(
        &self,
        stream: &StreamInfo,
        kind: &str,
        cause: &str,
        configured: UninspectableAction,
    ) {
        let enforce = self.policy.mode == VerdictMode::Enforce;
        let action = match configured {
            UninspectableAction::Cut if enforce => UninspectableAction::Cut,
            _ => UninspectableAction::Alert,
        };
        {
            let mut streams = self.streams.locked();
            let state = streams
                .entry(stream.id)
                .or_insert_with(|| StreamState::new(&self.policy));
            if state.cut {
                return;
            }
            state.cut = action == UninspectableAction::Cut;
        }
        metrics().uninspectable.inc(&[kind]);
        tracing::warn!(
            key = %crate::registry::key::shown(&stream.stream_key),
            cause,
            action = action.name(),
            "uninspectable"
        );
        self.events.emit(
            &stream.stream_key,
            stream.peer,
            EventKind::Uninspectable {
                cause: cause.to_owned(),
                action: action.name().into(),
            },
        );
        if action == UninspectableAction::Cut {
            metrics().cuts.inc(&["uninspectable"]);
            // No block and no probation: the broadcaster may only have a broken encoder.
            self.registry.cut(
                &stream.stream_key,
                &format!("stream cannot be inspected: {cause}"),
                Duration::ZERO,
                Duration::ZERO,
            );
        }
    }

    /// Cutting matches of a stream that shows no more than one frame of a clip are counted per
    /// entry; an entry over the limit is demoted to alert for the flood window, with a `flood`
    /// event. Matches that show the clip (`shows_clip`) clear the stream from the count.
    fn guard_against_floods(
        &self,
        stream: &StreamInfo,
        shows_clip: bool,
        result: &mut crate::matcher::FrameMatches,
    ) {
        let mut flood = self.flood.locked();
        if shows_clip {
            self.forget_in_flood(&mut flood, stream);
            return;
        }
        for m in result
            .matches
            .iter_mut()
            .filter(|m| m.action == Action::Cut)
        {
            if self.count_toward_flood(&mut flood, stream, &m.source, &m.label, &m.list) {
                m.action = Action::Alert;
            }
        }
    }

    /// A stream shown to play a clip is no evidence against any entry: it leaves every count,
    /// here and in the fleet.
    pub(super) fn forget_in_flood(&self, flood: &mut FloodGuard, stream: &StreamInfo) {
        let forgotten = flood.forget(&stream.stream_key, self.policy.flood_streams);
        for source in &forgotten.lifted {
            tracing::info!(source = %source, "flood guard lifted: the streams that tripped it are re-streams of a clip");
        }
        if !forgotten.counted_in.is_empty() {
            self.registry.tell_fleet(Change::FloodForget {
                stream: stream.stream_key.clone(),
                entries: forgotten.counted_in,
            });
        }
    }

    /// Counts a cutting match of entry `source` (`label` in `list`) that shows no clip's
    /// timeline in `stream`, here and in the fleet; true when the entry is flooded (the match
    /// must only alert).
    pub(super) fn count_toward_flood(
        &self,
        flood: &mut FloodGuard,
        stream: &StreamInfo,
        source: &str,
        label: &str,
        list: &str,
    ) -> bool {
        let recorded = flood.record(
            source,
            &stream.stream_key,
            self.policy.flood_streams,
            self.policy.flood_window,
        );
        if recorded.new_stream {
            self.registry.tell_fleet(Change::FloodSeen {
                entry: source.to_owned(),
                label: label.to_owned(),
                list: list.to_owned(),
                stream: stream.stream_key.clone(),
            });
        }
        if let Some(streams) = recorded.tipped {
            tracing::warn!(entry = %label, source = %source, streams, "flood guard: entry matches too many streams off any clip timeline, now alert only");
            self.events.emit(
                &stream.stream_key,
                stream.peer,
                EventKind::Flood {
                    list: list.to_owned(),
                    entry: label.to_owned(),
                    source: source.to_owned(),
                    streams,
                },
            );
        }
        flood.is_flooded(source) || self.registry.fleet_flooded(source)
    }
}

impl Verdict {
    /// Audio of `stream` that was not heard, for `cause`: reported once per cause (a few
    /// causes at most), meeting `action`.
    fn audio_not_heard(&self, stream: &StreamInfo, cause: &str, action: UninspectableAction) {
        if stream
            .stats
            .ended
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return;
        }
        {
            let mut streams = self.streams.locked();
            let state = streams
                .entry(stream.id)
                .or_insert_with(|| StreamState::new(&self.policy));
            // Each cause once (a harmless first one must not hide a later one), a few at most.
            if state.cut
                || state.audio_reported.len() >= 8
                || state.audio_reported.iter().any(|c| c == cause)
            {
                return;
            }
            state.audio_reported.push(cause.to_owned());
        }
        self.uninspectable_with(stream, "audio", &format!("audio: {cause}"), action);
    }

    /// Audio inspection dropped some of `stream`'s audio (its inbox was full): reported once,
    /// as an alert whatever `on_audio_uninspectable` says. Falling behind is a capacity
    /// problem, not a verdict on the broadcaster.
    pub(super) fn audio_fell_behind(&self, stream: &StreamInfo) {
        self.audio_not_heard(
            stream,
            "audio inspection fell behind and dropped some of it",
            UninspectableAction::Alert,
        );
    }

    /// Whether the flood guard (here or in the fleet) holds an entry to alerts.
    fn flooded(&self, source: &str) -> bool {
        self.flood.locked().is_flooded(source) || self.registry.fleet_flooded(source)
    }
}

/// Whether a stream's frame (of a stream not cut) is checked against the media banks: when it
/// never was or the last check is `interval` old, or `grey` old for a frame PDQ cannot decide
/// (a match clears the last check, so the sample after a match is checked at once).
fn bank_check_due(
    last: Option<Instant>,
    now: Instant,
    interval: Duration,
    grey: Option<Duration>,
) -> bool {
    let Some(at) = last else {
        return true;
    };
    let since = now.saturating_duration_since(at);
    since >= interval || grey.is_some_and(|g| since >= g)
}

impl FrameSink for Verdict {
    fn frame(&self, stream: &StreamInfo, frame: SampledFrame) {
        let mut result = self.matcher.match_frame(&frame.hashes, &frame.luma);
        // The banks look unless a list match already counts towards a cut: not an alert-only
        // entry, nor one the flood guard has made alert-only (an attacker who floods an entry
        // on throwaway keys and shows it beside the clip must not blind them). An allowed
        // picture does not excuse a bank's clip found inside the frame: the allow entry
        // matched the whole picture, the bank a part of it.
        let counting = |m: &Match| m.action == Action::Cut && !self.flooded(&m.source);
        if !result.matches.iter().any(counting) {
            if let Some(m) = self.bank_match(stream, &frame) {
                result.allowed = None;
                result.matches.push(m);
            }
        }
        if result.allowed.is_some() || result.matches.is_empty() {
            return;
        }
        stream
            .stats
            .matches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let positions: Vec<ClipPosition> = result
            .matches
            .iter()
            .filter(|m| m.action == Action::Cut)
            .filter_map(|m| m.position.clone())
            .collect();
        let mut streams = self.streams.locked();
        let state = streams
            .entry(stream.id)
            .or_insert_with(|| StreamState::new(&self.policy));
        let sighted = state
            .timeline
            .observe(positions, frame.stream_time_ms, frame.arrived);
        // The clip playing, or more of it than one frame: counts whatever the flood guard says.
        let shows_clip = sighted.on_timeline || sighted.another_position;
        self.guard_against_floods(stream, shows_clip, &mut result);
        for m in &result.matches {
            self.events.emit(
                &stream.stream_key,
                stream.peer,
                EventKind::Match {
                    list: m.list.to_string(),
                    entry: m.label.clone(),
                    source: m.source.clone(),
                    distance: m.distance,
                    stream_ms: frame.stream_time_ms,
                    action: match m.action {
                        Action::Cut => "cut".into(),
                        Action::Alert => "alert".into(),
                    },
                    view: m.view.name().into(),
                    negative: m.negative,
                    inliers: m.inliers,
                },
            );
        }
        if state.cut {
            return;
        }
        let has_cut_entry = result.matches.iter().any(|m| m.action == Action::Cut);
        if !counts_for_cut(&result) {
            if !has_cut_entry && result.matches.iter().any(|m| m.position.is_some()) {
                state.uncounted = Some(Uncounted {
                    stream_ms: frame.stream_time_ms,
                    arrived: frame.arrived,
                    luma: frame.luma,
                });
            }
            return;
        }
        let window_ms = self.policy.window.as_millis() as i64;
        let probation = self.registry.on_probation(&stream.stream_key);
        let min_matches = if probation {
            1
        } else {
            self.policy.min_matches.max(1)
        };
        if let Some(earlier) = state.uncounted.take().filter(|_| shows_clip) {
            // The frame before was this clip's start: it counts after all.
            state
                .window
                .record(earlier.stream_ms, earlier.arrived, usize::MAX);
            state.frames.push(learn::Counted {
                stream_ms: earlier.stream_ms,
                luma: earlier.luma,
                taught_by: None,
            });
        }
        // Keep the counted frames of the window (bounded) for evidence.
        state
            .frames
            .retain(|c| (frame.stream_time_ms - c.stream_ms).abs() <= window_ms);
        if state.frames.len() >= min_matches + 2 {
            state.frames.remove(0);
        }
        state.frames.push(learn::Counted {
            stream_ms: frame.stream_time_ms,
            luma: frame.luma,
            taught_by: learn::taught_by(&result.matches),
        });
        state.last_frame_match = Some(frame.arrived);
        let heard = self.policy.audio == AudioPolicy::WithFrames
            && state.last_audio_match.is_some_and(|at| {
                frame.arrived.saturating_duration_since(at) <= self.policy.window
            });
        let recorded = state
            .window
            .record(frame.stream_time_ms, frame.arrived, min_matches);
        // With `audio = "with_frames"`, a frame match and a recent audio match are enough.
        let Some(first) = recorded.or_else(|| heard.then_some(frame.arrived)) else {
            return;
        };
        let Some(best) = result.matches.iter().find(|m| m.action == Action::Cut) else {
            return;
        };
        let latency = first.elapsed();
        let latency_ms = latency.as_millis() as u64;
        if self.policy.mode == VerdictMode::Shadow {
            tracing::warn!(key = %crate::registry::key::shown(&stream.stream_key), entry = %best.label, "shadow mode: would cut");
            state.window = MatchWindow::new(self.policy.window);
            return;
        }
        state.cut = true;
        let counted = std::mem::take(&mut state.frames);
        drop(streams);
        if let Some(banks) = &self.banks {
            let taught = learn::to_learn(best, &counted, min_matches, probation);
            learn::learn_from_cut(banks, &stream.stream_key, best, taught);
        }
        let evidence = counted.into_iter().map(|c| (c.stream_ms, c.luma)).collect();
        metrics().cuts.inc(&["match"]);
        metrics().cut_latency.observe(latency);
        let reason = format!("matched known content ({} / {})", best.list, best.label);
        // The event first: the relay's unpublish event follows the cut, never precedes it.
        let line = self.events.emit(
            &stream.stream_key,
            stream.peer,
            EventKind::Cut {
                list: best.list.to_string(),
                entry: best.label.clone(),
                source: best.source.clone(),
                distance: best.distance,
                stream_ms: frame.stream_time_ms,
                latency_ms,
                probation,
                inliers: best.inliers,
            },
        );
        tracing::warn!(key = %crate::registry::key::shown(&stream.stream_key), entry = %best.label, latency_ms, probation, "cut");
        let was_live = self.registry.cut(
            &stream.stream_key,
            &reason,
            self.policy.cooldown,
            self.policy.probation,
        );
        if !was_live {
            tracing::info!(key = %crate::registry::key::shown(&stream.stream_key), "the stream had already ended when it was cut");
        }
        if let Some(line) = line {
            self.events
                .save_evidence(&stream.stream_key, line, evidence);
        }
    }

    fn uninspectable(&self, stream: &StreamInfo, cause: &str) {
        let kind = if cause.contains("max_pixels") {
            "picture_size"
        } else if cause.contains("failed") {
            "failure"
        } else if cause.contains("overloaded") {
            "overload"
        } else if cause.contains("skipped") {
            "blind"
        } else {
            "codec"
        };
        self.uninspectable_now(stream, kind, cause);
    }

    fn anomaly(&self, stream: &StreamInfo, cause: &str) {
        self.events.emit(
            &stream.stream_key,
            stream.peer,
            EventKind::Anomaly {
                cause: cause.to_owned(),
            },
        );
    }

    fn unseen(&self, stream: &StreamInfo, cause: &str) {
        {
            let mut streams = self.streams.locked();
            let state = streams
                .entry(stream.id)
                .or_insert_with(|| StreamState::new(&self.policy));
            let now = Instant::now();
            if state
                .unseen_reported
                .is_some_and(|at| now.duration_since(at) < UNSEEN_EVERY)
            {
                return;
            }
            state.unseen_reported = Some(now);
        }
        self.uninspectable_with(stream, "overload", cause, UninspectableAction::Alert);
    }

    fn overload(&self, level: u8, streams: usize) {
        let nobody = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
        self.events
            .emit("-", nobody, EventKind::Overload { level, streams });
    }

    fn audio(&self, stream: &StreamInfo, window: AudioWindow) {
        self.hear(stream, window);
    }

    fn audio_uninspectable(&self, stream: &StreamInfo, cause: &str) {
        self.audio_not_heard(stream, cause, self.policy.on_audio_uninspectable);
    }

    fn stream_ended(&self, stream: &StreamInfo, stats: &InspectStats) {
        {
            let mut streams = self.streams.locked();
            streams.remove(&stream.id);
        }
        LogSink.stream_ended(stream, stats);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bank_check_is_due_once_per_interval_and_sooner_in_the_grey_zone() {
        let t0 = Instant::now();
        let second = Duration::from_secs(1);
        assert!(bank_check_due(None, t0, second, None));
        assert!(!bank_check_due(Some(t0), t0 + second / 2, second, None));
        assert!(bank_check_due(Some(t0), t0 + second, second, None));
        // A clock that steps back does not make a check due early, nor panic.
        assert!(!bank_check_due(Some(t0 + second), t0, second, None));
        // A frame in PDQ's grey zone is due at the grey rate, no sooner.
        let grey = Some(second / 2);
        assert!(bank_check_due(Some(t0), t0 + second / 2, second, grey));
        assert!(!bank_check_due(Some(t0), t0 + second / 4, second, grey));
    }
}
