//! The cut policy: a stream is cut when `min_matches` sampled frames match entries of `cut`
//! lists within `window` of stream time. One matching frame can be a fluke (a hash collision, a
//! similar scene); several within seconds are the known clip playing.

use std::collections::VecDeque;
use std::time::Duration;

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
        deserialize_with = "crate::config::duration_value"
    )]
    pub window: Duration,
    /// `enforce` cuts; `shadow` only raises events (for trying lists and thresholds live).
    #[serde(default)]
    pub mode: VerdictMode,
    /// How long a cut stream's key is refused at publish time (0 = not at all).
    #[serde(
        default = "default_cooldown",
        deserialize_with = "crate::config::duration_value"
    )]
    pub cooldown: Duration,
    /// Media is held this long before it goes to the platform, so a cut discards it unseen.
    #[serde(
        default = "default_delay",
        deserialize_with = "crate::config::duration_value"
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
        deserialize_with = "crate::config::duration_value"
    )]
    pub flood_window: Duration,
    /// Inspection more than this far behind the live edge is an overload.
    #[serde(
        default = "default_max_lag",
        deserialize_with = "crate::config::duration_value"
    )]
    pub max_lag: Duration,
    /// On overload: `alert` keeps forwarding and raises an event; `cut` fails closed.
    #[serde(default)]
    pub on_overload: OverloadAction,
}

/// What an inspection overload does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OverloadAction {
    /// Keep forwarding, raise an `overload` event.
    #[default]
    Alert,
    /// Cut the stream (no key block: the broadcaster did nothing wrong).
    Cut,
}

fn default_max_lag() -> Duration {
    Duration::from_secs(5)
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
            max_lag: default_max_lag(),
            on_overload: OverloadAction::Alert,
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

/// The sliding window of one stream's counted frames.
#[derive(Debug, Clone)]
pub struct MatchWindow {
    settings: PolicySettings,
    recent: VecDeque<i64>,
}

impl MatchWindow {
    /// An empty window.
    pub fn new(settings: PolicySettings) -> MatchWindow {
        MatchWindow {
            settings,
            recent: VecDeque::new(),
        }
    }

    /// Records a counted frame at `stream_ms`; true when the policy now says cut.
    pub fn record(&mut self, stream_ms: i64) -> bool {
        let window_ms = self.settings.window.as_millis() as i64;
        self.recent.push_back(stream_ms);
        while self
            .recent
            .front()
            .is_some_and(|&t| stream_ms - t > window_ms)
        {
            self.recent.pop_front();
        }
        self.recent.len() >= self.settings.min_matches.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_enough_matches_within_the_window() {
        let mut w = MatchWindow::new(PolicySettings::default());
        assert!(!w.record(0));
        assert!(
            !w.record(6000),
            "the first match fell out of the 5 s window"
        );
        assert!(w.record(10_500));
        let mut one = MatchWindow::new(PolicySettings {
            min_matches: 1,
            window: Duration::from_secs(1),
            ..PolicySettings::default()
        });
        assert!(one.record(42));
    }
}
