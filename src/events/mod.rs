//! Events: one JSON line per event in `[events] log`, and the same through `tracing`; `match`,
//! `cut` and `uninspectable` also go to the webhook when one is set. Writing and delivery happen on their own
//! threads, so a slow disk or endpoint never delays a stream or a cut.

pub mod evidence;
pub mod webhook;

use crate::locks::Locked;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// `[events]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    /// JSON-lines event log (appended to).
    #[serde(default = "default_log")]
    pub log: PathBuf,
    /// Write the SHA-256 of stream keys instead of the keys (they are credentials).
    #[serde(default)]
    pub redact_keys: bool,
    /// `http://` endpoint that gets each `match`, `cut` and `uninspectable` event as a JSON POST.
    pub webhook: Option<String>,
    /// HMAC-SHA256 key for the `X-Hashgate-Signature` header (or env HASHGATE_WEBHOOK_SECRET).
    pub webhook_secret: Option<String>,
    /// Deadline of one webhook attempt.
    #[serde(
        default = "default_webhook_timeout",
        deserialize_with = "crate::units::duration_value"
    )]
    pub webhook_timeout: std::time::Duration,
    /// Attempts after the first, with exponential backoff from 0.5 s.
    #[serde(default = "default_webhook_retries")]
    pub webhook_retries: u32,
    /// Folder for each cut's deciding frames (JPEG) and event (JSON); unset = no evidence.
    pub evidence_dir: Option<PathBuf>,
    /// Most cut folders kept.
    #[serde(default = "default_evidence_keep")]
    pub evidence_keep: usize,
    /// Cut folders older than this are removed.
    #[serde(
        default = "default_evidence_max_age",
        deserialize_with = "crate::units::duration_value"
    )]
    pub evidence_max_age: std::time::Duration,
}

fn default_evidence_keep() -> usize {
    1000
}

fn default_evidence_max_age() -> std::time::Duration {
    std::time::Duration::from_secs(30 * 24 * 3600)
}

fn default_webhook_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(2)
}

fn default_webhook_retries() -> u32 {
    3
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            log: default_log(),
            redact_keys: false,
            webhook: None,
            webhook_secret: None,
            webhook_timeout: default_webhook_timeout(),
            webhook_retries: default_webhook_retries(),
            evidence_dir: None,
            evidence_keep: default_evidence_keep(),
            evidence_max_age: default_evidence_max_age(),
        }
    }
}

fn default_log() -> PathBuf {
    PathBuf::from("events.jsonl")
}

/// What happened.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// A broadcaster started publishing.
    Publish {
        /// Application.
        app: String,
    },
    /// A stream ended.
    Unpublish {
        /// Why: `"broadcaster"`, `"cut"`, `"upstream"`, `"error"`, `"shutdown"`.
        reason: String,
    },
    /// A sampled frame matched a list entry.
    Match {
        /// List name.
        list: String,
        /// Entry label.
        entry: String,
        /// `file:line` of the entry.
        source: String,
        /// Hamming distance.
        distance: u32,
        /// Stream time of the frame, in milliseconds.
        stream_ms: i64,
        /// `"cut"` or `"alert"`.
        action: String,
        /// Which picture of the frame matched: `"frame"`, `"content"` (inside bars),
        /// `"inset"`, `"window"` (a half, quadrant or the centre), `"seams"`, `"colour"`,
        /// `"bank"` (a media bank's clip, by local features).
        view: String,
        /// Whether the picture's negative matched.
        negative: bool,
        /// A media bank's match (view `"bank"`): feature pairs one mapping explains.
        #[serde(skip_serializing_if = "Option::is_none")]
        inliers: Option<u32>,
    },
    /// A stream was cut for matching known content.
    Cut {
        /// List name of the deciding match.
        list: String,
        /// Entry label.
        entry: String,
        /// `file:line` of the entry.
        source: String,
        /// Hamming distance.
        distance: u32,
        /// Stream time of the deciding frame, in milliseconds.
        stream_ms: i64,
        /// From the arrival at the relay of the oldest match the cut counted to the cut.
        latency_ms: u64,
        /// Whether the key was on probation (cut lately), so one match sufficed.
        probation: bool,
        /// A media bank's match decided: feature pairs one mapping explains.
        #[serde(skip_serializing_if = "Option::is_none")]
        inliers: Option<u32>,
    },
    /// A window of the stream's audio lined up with a clip of an audio list (`"event":
    /// "match"`, `"signal": "audio"`).
    #[serde(rename = "match")]
    AudioMatch {
        /// Always `"audio"`.
        signal: &'static str,
        /// List name.
        list: String,
        /// Clip label.
        entry: String,
        /// `file:line` of the clip.
        source: String,
        /// Bit error rate of the aligned window.
        ber: f64,
        /// Seconds into the clip where the window starts (negative: before it).
        clip_offset_s: f64,
        /// Speed of the reference that lined up (1: as published; 1.08: the stream plays the
        /// clip 8 % fast).
        speed: f64,
        /// Seconds of audio the aligned window rests on.
        window_s: f64,
        /// Stream time of the newest audio in the window, in milliseconds.
        stream_ms: i64,
        /// `"cut"` or `"alert"`.
        action: String,
    },
    /// A stream was cut for its audio (`"event": "cut"`, `"signal": "audio"`).
    #[serde(rename = "cut")]
    AudioCut {
        /// Always `"audio"`.
        signal: &'static str,
        /// List name.
        list: String,
        /// Clip label.
        entry: String,
        /// `file:line` of the clip.
        source: String,
        /// Bit error rate of the aligned window.
        ber: f64,
        /// Seconds into the clip where the window starts.
        clip_offset_s: f64,
        /// Speed of the reference that lined up.
        speed: f64,
        /// Seconds of audio the aligned window rests on.
        window_s: f64,
        /// Stream time of the newest audio in the window, in milliseconds.
        stream_ms: i64,
        /// From the arrival at the relay of the window's newest audio to the cut.
        latency_ms: u64,
        /// Whether the key was on probation.
        probation: bool,
    },
    /// A list entry matched too many streams: it no longer cuts (alert only).
    Flood {
        /// List name.
        list: String,
        /// Entry label.
        entry: String,
        /// `file:line` of the entry.
        source: String,
        /// Distinct streams it matched within the flood window.
        streams: usize,
    },
    /// The inspection pool changed its sampling level to keep up (0 = as configured, 1 =
    /// keyframes only, 2 = fewer keyframes). Not about one stream: `stream` is `"-"`.
    Overload {
        /// The new level.
        level: u8,
        /// Streams live at the time.
        streams: usize,
    },
    /// Inspection cannot cover the stream: it never passes silently.
    Uninspectable {
        /// What stops inspection (an unsupported codec, a picture over `max_pixels`, video
        /// with no hashed frame for longer than the coverage bound, and why).
        cause: String,
        /// `"cut"` or `"alert"`.
        action: String,
    },
    /// The stream is inspectable but behaves the way evasion does (sequence header churn).
    Anomaly {
        /// What was seen.
        cause: String,
    },
    /// An operator acted through the admin API.
    Operator {
        /// `"cut"` or `"unblock"`.
        action: String,
        /// The reason given (for a cut).
        reason: String,
    },
    /// A publish was refused because the key is blocked.
    Blocked {
        /// Seconds until the block lifts.
        remaining_s: u64,
    },
    /// A publish was refused because inspection has no room for another stream (the
    /// broadcaster retries; a balancer sends it where there is room).
    AtCapacity {
        /// How full inspection is.
        reason: String,
    },
}

/// One event as written.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// RFC 3339 time.
    pub at: String,
    /// Stream key, or its SHA-256 when keys are redacted.
    pub stream: String,
    /// Broadcaster's address.
    pub peer: String,
    /// The event and its fields.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What the writer thread is asked to do.
enum Writer {
    Line(String),
    /// Answer once every line before this one is written.
    Flush(mpsc::Sender<()>),
}

/// The event log. Cheap to call from any thread.
pub struct Events {
    tx: Option<mpsc::SyncSender<Writer>>,
    evidence: Option<evidence::EvidenceSettings>,
    webhook: Option<webhook::Webhook>,
    redact: bool,
    order: Mutex<()>,
    dropped: AtomicU64,
    /// The fleet's feed (a Redis Stream), when `[cluster] events_stream` is set.
    mirror: std::sync::OnceLock<tokio::sync::mpsc::Sender<String>>,
}

/// Events queued for the writer before new ones are dropped (and counted).
const QUEUE: usize = 10_000;

impl Events {
    /// Opens (appends to) the log file and starts its writer thread.
    pub fn open(config: &EventsConfig) -> std::io::Result<Events> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&config.log)?;
        let (tx, rx) = mpsc::sync_channel::<Writer>(QUEUE);
        let path = config.log.display().to_string();
        std::thread::Builder::new()
            .name("events".into())
            .spawn(move || {
                for write in rx {
                    match write {
                        Writer::Line(line) => {
                            if let Err(e) = writeln!(file, "{line}").and_then(|_| file.flush()) {
                                tracing::error!("cannot write event log {path}: {e}");
                            }
                        }
                        Writer::Flush(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            })?;
        let webhook = match &config.webhook {
            Some(url) => {
                let endpoint = webhook::Endpoint::parse(url)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
                let secret = config
                    .webhook_secret
                    .clone()
                    .or_else(|| std::env::var("HASHGATE_WEBHOOK_SECRET").ok());
                Some(webhook::Webhook::start(webhook::WebhookSettings {
                    endpoint,
                    secret,
                    timeout: config.webhook_timeout,
                    retries: config.webhook_retries,
                })?)
            }
            None => None,
        };
        let evidence = config
            .evidence_dir
            .clone()
            .map(|dir| evidence::EvidenceSettings {
                dir,
                keep: config.evidence_keep.max(1),
                max_age: config.evidence_max_age,
            });
        Ok(Events {
            tx: Some(tx),
            evidence,
            webhook,
            redact: config.redact_keys,
            dropped: AtomicU64::new(0),
            order: Mutex::new(()),
            mirror: std::sync::OnceLock::new(),
        })
    }

    /// Events that go to the tracing log only (tests, `scan`).
    pub fn disabled() -> Events {
        Events {
            tx: None,
            evidence: None,
            webhook: None,
            redact: false,
            dropped: AtomicU64::new(0),
            order: Mutex::new(()),
            mirror: std::sync::OnceLock::new(),
        }
    }

    /// Also sends every later event line to `feed`, in order, never waiting (a full queue
    /// drops the line from the feed, counted; the JSONL file still gets it).
    pub fn mirror_to(&self, feed: tokio::sync::mpsc::Sender<String>) {
        let _ = self.mirror.set(feed);
    }

    /// Records an event about `stream` from `peer`; returns its JSON line.
    pub fn emit(&self, stream: &str, peer: SocketAddr, kind: EventKind) -> Option<String> {
        // Stamped and queued under one lock: the file's order is the order of the `at` times,
        // and an event emitted before another (a cut before its stream's unpublish) comes first.
        let _order = self.order.locked();
        let event = Event {
            at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            stream: if self.redact {
                hex_sha256(stream)
            } else {
                stream.to_owned()
            },
            peer: peer.to_string(),
            kind,
        };
        let Ok(line) = serde_json::to_string(&event) else {
            return None;
        };
        tracing::info!(target: "hashgate::events", "{line}");
        let for_webhook = matches!(
            &event.kind,
            EventKind::Match { .. }
                | EventKind::Cut { .. }
                | EventKind::AudioMatch { .. }
                | EventKind::AudioCut { .. }
                | EventKind::Uninspectable { .. }
        );
        if let (Some(hook), true) = (&self.webhook, for_webhook) {
            hook.post(line.clone());
        }
        if let Some(feed) = self.mirror.get() {
            if feed.try_send(line.clone()).is_err() {
                crate::metrics::metrics().cluster_dropped.inc();
            }
        }
        if let Some(tx) = &self.tx {
            if tx.try_send(Writer::Line(line.clone())).is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        Some(line)
    }

    /// Saves a cut's deciding frames and event under the evidence folder, when one is set.
    pub fn save_evidence(
        &self,
        stream: &str,
        event_json: String,
        frames: Vec<(i64, crate::hash::pdq::LumaImage)>,
    ) {
        if let Some(settings) = &self.evidence {
            let name = evidence::folder_name(&if self.redact {
                hex_sha256(stream)
            } else {
                stream.to_owned()
            });
            evidence::save(settings.clone(), name, event_json, frames, None);
        }
    }

    /// Saves an audio cut's event and the stream's audio it was judged on (a WAV file).
    pub fn save_audio_evidence(&self, stream: &str, event_json: String, pcm: Vec<i16>) {
        if let Some(settings) = &self.evidence {
            let name = evidence::folder_name(&if self.redact {
                hex_sha256(stream)
            } else {
                stream.to_owned()
            });
            evidence::save(settings.clone(), name, event_json, Vec::new(), Some(pcm));
        }
    }

    /// Waits, up to `within`, until every event emitted so far is in the log file. Returns
    /// whether it got there (always true without a log file).
    pub fn flush(&self, within: std::time::Duration) -> bool {
        let Some(tx) = &self.tx else {
            return true;
        };
        let (done, written) = mpsc::channel();
        tx.send(Writer::Flush(done)).is_ok() && written.recv_timeout(within).is_ok()
    }

    /// Events lost because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

pub use crate::registry::key::hex_sha256;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_json_lines_with_redaction() {
        let dir = tempfile::tempdir().expect("tmp");
        let log = dir.path().join("events.jsonl");
        let events = Events::open(&EventsConfig {
            log: log.clone(),
            redact_keys: true,
            ..EventsConfig::default()
        })
        .expect("open");
        let peer: SocketAddr = "127.0.0.1:5000".parse().expect("addr");
        events.emit(
            "secret-key",
            peer,
            EventKind::Publish { app: "live".into() },
        );
        events.emit("secret-key", peer, EventKind::Blocked { remaining_s: 60 });
        drop(events);
        let mut text = String::new();
        for _ in 0..100 {
            text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.lines().count() == 2 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        assert_eq!(lines[0]["event"], "publish");
        assert_eq!(lines[0]["app"], "live");
        assert_eq!(lines[1]["event"], "blocked");
        assert_eq!(lines[0]["stream"], hex_sha256("secret-key"));
        assert!(!text.contains("secret-key"));
        assert!(lines[0]["at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') && t.contains('T')));
        assert_eq!(lines[0]["peer"], "127.0.0.1:5000");
    }
}
