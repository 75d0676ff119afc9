//! Audio matches in the verdict: a window of the stream's soundtrack that lines up with a clip
//! of an audio list is a `match` event (`"signal": "audio"`), and cuts the stream on its own
//! (`audio = "alone"`, a window of `min_seconds` already being many aligned samples) or together
//! with a frame match within `window` (`audio = "with_frames"`). A key on probation is cut on its
//! first audio match either way. The flood guard covers audio entries too
//! (`guard_audio_floods`).

use crate::locks::Locked;
use std::sync::atomic::Ordering;

use super::{AudioPolicy, StreamState, Verdict, VerdictMode};
use crate::events::EventKind;
use crate::hash::chromaprint::{ITEM_SECONDS, REACH_SECONDS};
use crate::inspect::audio::AudioWindow;
use crate::matcher::list::{Action, AudioMatch};
use crate::metrics::metrics;
use crate::relay::StreamInfo;

/// A window with fewer distinct sub-fingerprints than this share of its length is silence, a
/// held tone or hum: it says nothing about which clip plays, and is not matched (a reference
/// clip's silent stretch would otherwise match every silent stream).
const MIN_DISTINCT_SHARE: f64 = 0.25;

/// Whether a window carries enough sound to be matched.
pub fn informative(items: &[u32]) -> bool {
    let mut distinct: Vec<u32> = items.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    distinct.len() as f64 >= items.len() as f64 * MIN_DISTINCT_SHARE
}

impl Verdict {
    /// Matches one audio window and cuts when the policy says so.
    pub(super) fn hear(&self, stream: &StreamInfo, window: AudioWindow) {
        // Audio still queued when the relay ended the stream: it can cut nothing, and a state
        // made for it now would outlive the stream.
        if stream.stats.ended.load(Ordering::Acquire) {
            return;
        }
        if !informative(&window.items) {
            tracing::debug!(
                stream_ms = window.stream_ms,
                "audio window: silence or a held tone"
            );
            return;
        }
        let mut matches = self.matcher.match_audio(&window.items);
        tracing::debug!(
            stream_ms = window.stream_ms,
            items = window.items.len(),
            matches = matches.len(),
            "audio window"
        );
        if matches.is_empty() {
            return;
        }
        stream.stats.matches.fetch_add(1, Ordering::Relaxed);
        self.guard_audio_floods(stream, &mut matches);
        for m in &matches {
            self.events.emit(
                &stream.stream_key,
                stream.peer,
                EventKind::AudioMatch {
                    signal: "audio",
                    list: m.list.to_string(),
                    entry: m.label.clone(),
                    source: m.source.clone(),
                    ber: round3(m.hit.ber),
                    clip_offset_s: round3(m.clip_offset_s),
                    speed: m.speed,
                    window_s: round3(audio_seconds(m.hit.compared)),
                    stream_ms: window.stream_ms,
                    action: match m.action {
                        Action::Cut => "cut".into(),
                        Action::Alert => "alert".into(),
                    },
                },
            );
        }
        let Some(best) = matches.iter().find(|m| m.action == Action::Cut) else {
            return;
        };
        let probation = self.registry.on_probation(&stream.stream_key);
        {
            let mut streams = self.streams.locked();
            let state = streams
                .entry(stream.id)
                .or_insert_with(|| StreamState::new(&self.policy));
            if state.cut {
                return;
            }
            if self.policy.audio == AudioPolicy::WithFrames && !probation {
                state.last_audio_match = Some(window.arrived);
                let seen = state.last_frame_match.is_some_and(|at| {
                    window.arrived.saturating_duration_since(at) <= self.policy.window
                });
                if !seen {
                    return;
                }
            }
            if self.policy.mode == VerdictMode::Shadow {
                tracing::warn!(key = %crate::registry::key::shown(&stream.stream_key), entry = %best.label, "shadow mode: would cut (audio)");
                return;
            }
            state.cut = true;
        }
        let latency = window.arrived.elapsed();
        let latency_ms = latency.as_millis() as u64;
        metrics().cuts.inc(&["audio"]);
        metrics().cut_latency.observe(latency);
        let reason = format!("matched known audio ({} / {})", best.list, best.label);
        let line = self.events.emit(
            &stream.stream_key,
            stream.peer,
            EventKind::AudioCut {
                signal: "audio",
                list: best.list.to_string(),
                entry: best.label.clone(),
                source: best.source.clone(),
                ber: round3(best.hit.ber),
                clip_offset_s: round3(best.clip_offset_s),
                speed: best.speed,
                window_s: round3(audio_seconds(best.hit.compared)),
                stream_ms: window.stream_ms,
                latency_ms,
                probation,
            },
        );
        tracing::warn!(key = %crate::registry::key::shown(&stream.stream_key), entry = %best.label, ber = best.hit.ber, latency_ms, probation, "cut (audio)");
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
                .save_audio_evidence(&stream.stream_key, line, window.pcm);
        }
    }
}

impl Verdict {
    /// The flood guard for audio: a cutting audio match that does not show the clip playing
    /// on counts toward its entry, by distinct stream, with frame matches' counts; past
    /// `flood_streams` the entry only alerts for the flood window, here and in the fleet. A
    /// stream whose frames or soundtrack show a clip leaves every count.
    /// A stream whose audio matched two places of a clip a window apart (`AudioTimeline`)
    /// shows the clip: its matches always count, and it leaves the counts.
    fn guard_audio_floods(&self, stream: &StreamInfo, matches: &mut [AudioMatch]) {
        let shows_clip = {
            let mut streams = self.streams.locked();
            let state = streams
                .entry(stream.id)
                .or_insert_with(|| StreamState::new(&self.policy));
            matches
                .iter()
                .filter(|m| m.action == Action::Cut)
                .fold(false, |shows, m| {
                    let window_s = audio_seconds(m.hit.compared);
                    let on = state
                        .audio_timeline
                        .shows_clip(&m.source, m.clip_offset_s, window_s);
                    shows || on
                })
        };
        let mut flood = self.flood.locked();
        if shows_clip {
            self.forget_in_flood(&mut flood, stream);
            return;
        }
        for m in matches.iter_mut().filter(|m| m.action == Action::Cut) {
            if self.count_toward_flood(&mut flood, stream, &m.source, &m.label, &m.list) {
                m.action = Action::Alert;
            }
        }
    }
}

/// Seconds of audio `items` sub-fingerprints rest on.
fn audio_seconds(items: usize) -> f64 {
    items.saturating_sub(1) as f64 * ITEM_SECONDS + REACH_SECONDS
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_and_held_tones_are_not_matched() {
        assert!(!informative(&[0; 40]));
        let hum: Vec<u32> = (0..40).map(|i| 0xABCD_0000 | (i % 3)).collect();
        assert!(!informative(&hum));
        let speech: Vec<u32> = (0..40).map(|i| i * 7919).collect();
        assert!(informative(&speech));
    }
}
