//! The cut policy: a stream is cut when `min_matches` sampled frames match entries of `cut`
//! lists within `window` of stream time. One matching frame can be a fluke (a hash collision, a
//! similar scene); several within seconds are the known clip playing.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::matcher::list::Action;
use crate::matcher::FrameMatches;

/// `[verdict]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySettings {
    /// Matching frames needed within the window.
    #[serde(default = "default_min_matches")]
    pub min_matches: usize,
    /// The window, in stream time.
    #[serde(
        default = "default_window",
        deserialize_with = "crate::units::duration_value"
    )]
    pub window: Duration,
    /// `enforce` cuts; `shadow` only raises events (for trying lists and thresholds live).
    #[serde(default)]
    pub mode: VerdictMode,
    /// How long a cut stream's key is refused at publish time (0 = not at all).
    #[serde(
        default = "default_cooldown",
        deserialize_with = "crate::units::duration_value"
    )]
    pub cooldown: Duration,
    /// Media is held this long before it goes to the platform, so a cut discards it unseen.
    #[serde(
        default = "default_delay",
        deserialize_with = "crate::units::duration_value"
    )]
    pub delay: Duration,
    /// Flood guard: an entry that matches more than this many distinct streams within
    /// `flood_window` stops cutting (it becomes alert-only and a `flood` event is raised): a bad
    /// hash (a logo, a black frame) must not take down every stream on the platform.
    #[serde(default = "default_flood_streams")]
    pub flood_streams: usize,
    /// The flood guard's window, in wall time.
    #[serde(
        default = "default_flood_window",
        deserialize_with = "crate::units::duration_value"
    )]
    pub flood_window: Duration,
    /// A key cut for content within this long is on probation: its next streams are cut on
    /// their first match.
    #[serde(
        default = "default_probation",
        deserialize_with = "crate::units::duration_value"
    )]
    pub probation: Duration,
    /// Coverage: the longest stretch of a stream's video, in wall-clock time or in stream time,
    /// allowed without a hashed frame. Longer, and the stream is `uninspectable`.
    #[serde(
        default = "default_max_blind",
        deserialize_with = "crate::units::duration_value"
    )]
    pub max_blind: Duration,
    /// The coverage bound while the inspection pool sheds load (sampling keyframes only): a
    /// hashed frame every few seconds rather than none.
    #[serde(
        default = "default_max_blind_degraded",
        deserialize_with = "crate::units::duration_value"
    )]
    pub max_blind_degraded: Duration,
    /// What an uninspectable stream meets: `cut` (no key block) or `alert`.
    #[serde(default)]
    pub on_uninspectable: UninspectableAction,
    /// Whether an audio match cuts on its own (`alone`) or only with a frame match of a cut
    /// list within `window` (`with_frames`).
    #[serde(default)]
    pub audio: AudioPolicy,
    /// What a stream whose audio cannot be inspected meets (its video still is): `alert` or
    /// `cut`.
    #[serde(default = "default_on_audio_uninspectable")]
    pub on_audio_uninspectable: UninspectableAction,
    /// What a message held in the delay buffer waits for once its delay is over: `video`
    /// (inspection has processed the video up to it; always, the list must hold it) and
    /// `audio` (audio inspection has judged the audio that arrived up to 250 ms before its
    /// release, so that an audio match decided within the delay cuts before the message airs).
    /// Only what is inspected is waited for; past `max_blind_degraded` a message goes out
    /// anyway.
    #[serde(default = "default_delay_waits_for")]
    pub delay_waits_for: Vec<DelaySignal>,
}

/// A signal the delay buffer can wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DelaySignal {
    /// Video inspection.
    Video,
    /// Audio inspection (with an audio list).
    Audio,
}

fn default_delay_waits_for() -> Vec<DelaySignal> {
    vec![DelaySignal::Video]
}

/// How audio matches count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AudioPolicy {
    /// A window of `min_seconds` under the threshold is enough to cut.
    #[default]
    Alone,
    /// An audio match cuts only together with a frame match within `window`.
    WithFrames,
}

fn default_on_audio_uninspectable() -> UninspectableAction {
    UninspectableAction::Alert
}

/// What a stream inspection cannot see meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UninspectableAction {
    /// Cut the stream (its key is not blocked: the broadcaster may only have a broken encoder).
    #[default]
    Cut,
    /// Keep forwarding and raise the event.
    Alert,
}

impl UninspectableAction {
    /// The name used in events.
    pub fn name(self) -> &'static str {
        match self {
            UninspectableAction::Cut => "cut",
            UninspectableAction::Alert => "alert",
        }
    }
}

fn default_probation() -> Duration {
    Duration::from_secs(24 * 3600)
}

fn default_max_blind() -> Duration {
    Duration::from_millis(1500)
}

fn default_max_blind_degraded() -> Duration {
    Duration::from_secs(4)
}

fn default_flood_streams() -> usize {
    5
}

fn default_flood_window() -> Duration {
    Duration::from_secs(600)
}

fn default_delay() -> Duration {
    Duration::from_secs(2)
}

/// Whether the verdict acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerdictMode {
    /// Cut streams that reach the policy.
    #[default]
    Enforce,
    /// Raise events only.
    Shadow,
}

fn default_cooldown() -> Duration {
    Duration::from_secs(600)
}

impl Default for PolicySettings {
    fn default() -> Self {
        PolicySettings {
            min_matches: default_min_matches(),
            window: default_window(),
            mode: VerdictMode::Enforce,
            cooldown: default_cooldown(),
            delay: default_delay(),
            flood_streams: default_flood_streams(),
            flood_window: default_flood_window(),
            probation: default_probation(),
            max_blind: default_max_blind(),
            max_blind_degraded: default_max_blind_degraded(),
            on_uninspectable: UninspectableAction::Cut,
            audio: AudioPolicy::Alone,
            on_audio_uninspectable: default_on_audio_uninspectable(),
            delay_waits_for: default_delay_waits_for(),
        }
    }
}

fn default_min_matches() -> usize {
    2
}

fn default_window() -> Duration {
    Duration::from_secs(5)
}

/// Whether a frame's matches count towards a cut: a block-list match with action `cut`, and
/// no allow-list match.
pub fn counts_for_cut(matches: &FrameMatches) -> bool {
    matches.allowed.is_none() && matches.matches.iter().any(|m| m.action == Action::Cut)
}

/// The sliding window of one stream's counted frames. A frame stays in the window while it is
/// within `window` of the newest one in stream time *or* in wall-clock time (arrival at the
/// relay): stream time is the publisher's clock, and a publisher who stretches timestamps to
/// spread matches apart still shows them seconds apart on the wall clock.
#[derive(Debug, Clone)]
pub struct MatchWindow {
    window: Duration,
    recent: VecDeque<(i64, Instant)>,
}

impl MatchWindow {
    /// An empty window of `window`.
    pub fn new(window: Duration) -> MatchWindow {
        MatchWindow {
            window,
            recent: VecDeque::new(),
        }
    }

    /// Records a counted frame at `stream_ms` that arrived at `arrived`. When `min_matches`
    /// frames are now in the window, returns the arrival of the oldest of them (the cut's
    /// latency runs from there).
    pub fn record(
        &mut self,
        stream_ms: i64,
        arrived: Instant,
        min_matches: usize,
    ) -> Option<Instant> {
        let window_ms = self.window.as_millis() as i64;
        self.recent.push_back((stream_ms, arrived));
        let window = self.window;
        self.recent.retain(|&(t, at)| {
            let in_stream_time = (stream_ms - t).abs() <= window_ms;
            let in_wall_time = arrived.saturating_duration_since(at) <= window
                && at.saturating_duration_since(arrived) <= window;
            in_stream_time || in_wall_time
        });
        (self.recent.len() >= min_matches.max(1))
            .then(|| self.recent.iter().map(|&(_, at)| at).min())
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_enough_matches_within_the_window() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut w = MatchWindow::new(Duration::from_secs(5));
        assert!(w.record(0, at(0), 2).is_none());
        assert!(
            w.record(6000, at(6000), 2).is_none(),
            "the first match fell out of the 5 s window"
        );
        assert_eq!(
            w.record(10_500, at(10_500), 2),
            Some(at(6000)),
            "latency runs from the oldest match of the deciding set, not the first ever"
        );
        let mut one = MatchWindow::new(Duration::from_secs(1));
        assert_eq!(one.record(42, at(0), 1), Some(at(0)));
    }

    #[test]
    fn stretched_timestamps_do_not_spread_matches_out_of_the_window() {
        let t0 = Instant::now();
        let mut w = MatchWindow::new(Duration::from_secs(5));
        // Timestamps x200: 6.6 s of stream time between frames 33 ms apart on the wall clock.
        assert!(w.record(0, t0, 2).is_none());
        assert!(w
            .record(100_000, t0 + Duration::from_millis(500), 2)
            .is_some());
        // One hour of stream time per frame, and timestamps that go backwards.
        let mut w = MatchWindow::new(Duration::from_secs(5));
        assert!(w.record(7_200_000, t0, 2).is_none());
        assert!(w
            .record(3_600_000, t0 + Duration::from_secs(1), 2)
            .is_some());
        // Matches far apart on both clocks do not add up.
        let mut w = MatchWindow::new(Duration::from_secs(5));
        assert!(w.record(0, t0, 2).is_none());
        assert!(w.record(60_000, t0 + Duration::from_secs(60), 2).is_none());
    }
}
