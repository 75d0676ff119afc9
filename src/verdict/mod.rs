//! The verdict: matches in, cuts out. Every hashed frame is matched against the lists; each
//! match is an event; when a stream's counted matches reach the policy, the stream is cut and
//! its key blocked (or, in shadow mode, only the event is raised).

pub mod policy;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Instant;

use crate::events::{EventKind, Events};
use crate::inspect::pool::{FrameSink, LogSink};
use crate::inspect::stream::{InspectStats, SampledFrame};
use crate::matcher::list::Action;
use crate::matcher::Matcher;
use crate::metrics::metrics;
use crate::relay::{Relay, StreamInfo};
use policy::{counts_for_cut, MatchWindow, OverloadAction, PolicySettings, VerdictMode};

struct StreamState {
    /// Whether the stream is in overload (an event was raised; re-armed below half the limit).
    overloaded: bool,
    window: MatchWindow,
    /// Arrival of the first counted frame of the current window, for the cut latency.
    first_counted: Option<Instant>,
    /// The counted frames of the current window, for evidence.
    frames: Vec<(i64, crate::hash::pdq::LumaImage)>,
    cut: bool,
}

impl StreamState {
    fn new(policy: &PolicySettings) -> StreamState {
        StreamState {
            overloaded: false,
            window: MatchWindow::new(policy.clone()),
            first_counted: None,
            frames: Vec::new(),
            cut: false,
        }
    }
}

/// The frame sink that decides. Attach the relay with [`Verdict::attach`] once it exists.
pub struct Verdict {
    matcher: Arc<Matcher>,
    policy: PolicySettings,
    events: Arc<Events>,
    relay: OnceLock<Weak<Relay>>,
    streams: Mutex<HashMap<String, StreamState>>,
    flood: Mutex<FloodGuard>,
}

/// Which streams each cutting entry matched lately, and the entries that tripped the guard.
#[derive(Default)]
struct FloodGuard {
    seen: HashMap<String, Vec<(Instant, String)>>,
    flooded: HashMap<String, Instant>,
}

impl FloodGuard {
    /// Records that `source` matched `stream`; the stream count when this tips it over `limit`.
    fn record(
        &mut self,
        source: &str,
        stream: &str,
        limit: usize,
        window: std::time::Duration,
    ) -> Option<usize> {
        let now = Instant::now();
        self.flooded
            .retain(|_, since| now.duration_since(*since) < window);
        if self.flooded.contains_key(source) {
            return None;
        }
        let seen = self.seen.entry(source.to_owned()).or_default();
        seen.retain(|(at, _)| now.duration_since(*at) < window);
        if !seen.iter().any(|(_, s)| s == stream) {
            seen.push((now, stream.to_owned()));
        }
        if seen.len() > limit {
            let streams = seen.len();
            self.seen.remove(source);
            self.flooded.insert(source.to_owned(), now);
            return Some(streams);
        }
        None
    }

    fn is_flooded(&self, source: &str) -> bool {
        self.flooded.contains_key(source)
    }
}

impl Verdict {
    /// A verdict over `matcher` with `policy`, recording to `events`.
    pub fn new(matcher: Arc<Matcher>, policy: PolicySettings, events: Arc<Events>) -> Verdict {
        Verdict {
            matcher,
            policy,
            events,
            relay: OnceLock::new(),
            streams: Mutex::new(HashMap::new()),
            flood: Mutex::new(FloodGuard::default()),
        }
    }

    /// Gives the verdict the relay whose streams it cuts.
    pub fn attach(&self, relay: &Arc<Relay>) {
        let _ = self.relay.set(Arc::downgrade(relay));
    }
}

impl Verdict {
    /// Counts the streams each cutting entry matches; an entry over the limit is demoted to
    /// alert for the flood window, with a `flood` event.
    fn guard_against_floods(&self, stream: &StreamInfo, result: &mut crate::matcher::FrameMatches) {
        let Ok(mut flood) = self.flood.lock() else {
            return;
        };
        for m in result
            .matches
            .iter_mut()
            .filter(|m| m.action == Action::Cut)
        {
            let tipped = flood.record(
                &m.source,
                &stream.stream_key,
                self.policy.flood_streams,
                self.policy.flood_window,
            );
            if let Some(streams) = tipped {
                tracing::warn!(entry = %m.label, source = %m.source, streams, "flood guard: entry matches too many streams, now alert only");
                self.events.emit(
                    &stream.stream_key,
                    stream.peer,
                    EventKind::Flood {
                        list: m.list.to_string(),
                        entry: m.label.clone(),
                        source: m.source.clone(),
                        streams,
                    },
                );
            }
            if flood.is_flooded(&m.source) {
                m.action = Action::Alert;
            }
        }
    }
}

impl FrameSink for Verdict {
    fn frame(&self, stream: &StreamInfo, frame: SampledFrame) {
        stream.stats.hashed_now();
        let mut result = self.matcher.match_frame(&frame.hashes, &frame.luma);
        if result.allowed.is_some() || result.matches.is_empty() {
            return;
        }
        stream
            .stats
            .matches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.guard_against_floods(stream, &mut result);
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
                },
            );
        }
        if !counts_for_cut(&result) {
            return;
        }
        let Ok(mut streams) = self.streams.lock() else {
            return;
        };
        let state = streams
            .entry(stream.stream_key.clone())
            .or_insert_with(|| StreamState::new(&self.policy));
        let first = *state.first_counted.get_or_insert(frame.arrived);
        if state.cut {
            return;
        }
        // Keep the counted frames of the window (bounded) for evidence.
        let window_ms = self.policy.window.as_millis() as i64;
        state
            .frames
            .retain(|(t, _)| frame.stream_time_ms - t <= window_ms);
        if state.frames.len() >= self.policy.min_matches.max(1) + 2 {
            state.frames.remove(0);
        }
        state.frames.push((frame.stream_time_ms, frame.luma));
        if !state.window.record(frame.stream_time_ms) {
            return;
        }
        let Some(best) = result.matches.iter().find(|m| m.action == Action::Cut) else {
            return;
        };
        let latency = first.elapsed();
        let latency_ms = latency.as_millis() as u64;
        if self.policy.mode == VerdictMode::Shadow {
            tracing::warn!(key = %stream.stream_key, entry = %best.label, "shadow mode: would cut");
            state.first_counted = None;
            return;
        }
        state.cut = true;
        let evidence = std::mem::take(&mut state.frames);
        drop(streams);
        metrics().cuts.inc(&["match"]);
        metrics().cut_latency.observe(latency);
        let reason = format!("matched known content ({} / {})", best.list, best.label);
        let relay = self.relay.get().and_then(Weak::upgrade);
        let was_live =
            relay.is_some_and(|r| r.cut(&stream.stream_key, &reason, self.policy.cooldown));
        tracing::warn!(key = %stream.stream_key, entry = %best.label, latency_ms, was_live, "cut");
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
            },
        );
        if let Some(line) = line {
            self.events
                .save_evidence(&stream.stream_key, line, evidence);
        }
    }

    fn lag(&self, stream: &StreamInfo, lag: std::time::Duration) {
        let Ok(mut streams) = self.streams.lock() else {
            return;
        };
        let state = streams
            .entry(stream.stream_key.clone())
            .or_insert_with(|| StreamState::new(&self.policy));
        if state.overloaded {
            state.overloaded = lag > self.policy.max_lag / 2;
            return;
        }
        if lag <= self.policy.max_lag {
            return;
        }
        state.overloaded = true;
        let cut = self.policy.on_overload == OverloadAction::Cut
            && self.policy.mode == VerdictMode::Enforce;
        if cut {
            state.cut = true;
        }
        drop(streams);
        let lag_ms = lag.as_millis() as u64;
        tracing::warn!(key = %stream.stream_key, lag_ms, cut, "inspection overloaded");
        let action = if cut { "cut" } else { "alert" };
        self.events.emit(
            &stream.stream_key,
            stream.peer,
            EventKind::Overload {
                lag_ms,
                action: action.into(),
            },
        );
        if cut {
            metrics().cuts.inc(&["overload"]);
            if let Some(relay) = self.relay.get().and_then(Weak::upgrade) {
                relay.cut(
                    &stream.stream_key,
                    "inspection overloaded",
                    std::time::Duration::ZERO,
                );
            }
        }
    }

    fn stream_ended(&self, stream: &StreamInfo, stats: &InspectStats) {
        if let Ok(mut streams) = self.streams.lock() {
            streams.remove(&stream.stream_key);
        }
        LogSink.stream_ended(stream, stats);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matcher::list::ListSettings;
    use std::time::Duration;

    fn verdict(on_overload: OverloadAction, log: &std::path::Path) -> Verdict {
        let list = log.with_file_name("empty.txt");
        std::fs::write(&list, "").expect("list");
        let matcher = Arc::new(Matcher::load(vec![ListSettings::for_path(&list)]).expect("lists"));
        let events = Arc::new(
            Events::open(&crate::events::EventsConfig {
                log: log.to_owned(),
                ..crate::events::EventsConfig::default()
            })
            .expect("events"),
        );
        let policy = PolicySettings {
            max_lag: Duration::from_secs(5),
            on_overload,
            ..PolicySettings::default()
        };
        Verdict::new(matcher, policy, events)
    }

    fn lines(log: &std::path::Path, n: usize) -> Vec<serde_json::Value> {
        for _ in 0..200 {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            if text.lines().count() >= n {
                return text
                    .lines()
                    .map(|l| serde_json::from_str(l).expect("json"))
                    .collect();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("fewer than {n} events in {}", log.display());
    }

    #[test]
    fn overload_raises_one_event_per_episode() {
        let dir = tempfile::tempdir().expect("tmp");
        let log = dir.path().join("events.jsonl");
        let v = verdict(OverloadAction::Alert, &log);
        let stream = StreamInfo::new("busy", "live", "127.0.0.1:1".parse().expect("addr"));
        for lag in [1, 6, 7, 8, 2, 6] {
            v.lag(&stream, Duration::from_secs(lag));
        }
        let events = lines(&log, 2);
        assert_eq!(
            events.len(),
            2,
            "one event per episode, re-armed below half the limit"
        );
        assert!(events
            .iter()
            .all(|e| e["event"] == "overload" && e["action"] == "alert"));
        assert_eq!(events[0]["lag_ms"], 6000);
    }
}
