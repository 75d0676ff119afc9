//! The relay: accepts broadcasters, and for each published stream opens one publish to the
//! platform and forwards audio, video and data unchanged, in order, as shared `Bytes`.
//!
//! `listener` accepts and enforces connection limits; `stream` runs one broadcaster and its
//! upstream leg in one task; `queue` holds the first GOP, bounded in bytes, while the upstream
//! publish is set up; `tap` branches video towards inspection without ever blocking.

pub mod delay;
mod listener;
pub mod queue;
pub mod stats;
mod stream;
pub mod tap;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::events::Events;
use crate::rtmp::chunk::DecoderLimits;
use crate::rtmp::tls::{self, TlsClient};
use crate::rtmp::RtmpError;

pub use listener::bind;
pub use stats::StreamStats;
pub use tap::{StreamInfo, TapProvider, TappedVideo, VideoTap};

/// Why a connection or the relay stopped.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The broadcaster's side of the protocol failed.
    #[error(transparent)]
    Rtmp(#[from] RtmpError),
    /// A configured limit was hit.
    #[error("limit {limit} hit: {detail}")]
    Limit {
        /// Config key of the limit.
        limit: &'static str,
        /// What happened.
        detail: String,
    },
    /// The platform refused or dropped the stream.
    #[error("upstream {url}: {source}")]
    Upstream {
        /// Upstream URL.
        url: String,
        /// What went wrong there.
        source: RtmpError,
    },
    /// Setup failed (TLS files, bind).
    #[error("{0}")]
    Setup(String),
    /// The verdict cut the stream.
    #[error("cut: {0}")]
    Cut(String),
    /// The stream key is blocked after a cut.
    #[error("publish refused: stream key blocked for {0} more seconds")]
    Blocked(u64),
}

impl RelayError {
    /// The `result` label of `hashgate_connections_total` for a connection that ended so.
    pub fn result_label(&self) -> &'static str {
        match self {
            RelayError::Rtmp(e) if e.is_disconnect() => "disconnected",
            RelayError::Rtmp(_) => "protocol_error",
            RelayError::Limit { .. } => "limit",
            RelayError::Upstream { .. } => "upstream_error",
            RelayError::Setup(_) => "error",
            RelayError::Cut(_) => "cut",
            RelayError::Blocked(_) => "blocked",
        }
    }
}

/// A stream being published: how to cut it, and what it is.
struct LiveStream {
    cut: tokio::sync::mpsc::UnboundedSender<String>,
    info: StreamInfo,
}

/// Shared state of a running relay.
pub struct Relay {
    config: Arc<Config>,
    tls_client: Option<TlsClient>,
    acceptor: Option<TlsAcceptor>,
    /// Streams being published, by key: the sender that cuts each.
    live: Mutex<HashMap<String, LiveStream>>,
    blocks: Mutex<HashMap<String, Instant>>,
    connections: AtomicUsize,
    taps: Option<Arc<dyn TapProvider>>,
    events: Arc<Events>,
    shutdown: CancellationToken,
}

impl Relay {
    /// Prepares a relay: loads TLS material named in the config.
    pub fn new(config: Config) -> Result<Relay, RelayError> {
        let any_rtmps = std::iter::once(config.upstream.url.as_str())
            .chain(config.routes.iter().filter_map(|r| r.url.as_deref()))
            .any(|url| url.starts_with("rtmps://"));
        let tls_client = if any_rtmps {
            let client = TlsClient::new(config.upstream.ca_file.as_deref())
                .map_err(|e| RelayError::Setup(format!("upstream TLS: {e}")))?;
            Some(client)
        } else {
            None
        };
        let acceptor = match (&config.server.tls_cert, &config.server.tls_key) {
            (Some(cert), Some(key)) => Some(
                tls::acceptor(cert, key)
                    .map_err(|e| RelayError::Setup(format!("server TLS: {e}")))?,
            ),
            _ => None,
        };
        Ok(Relay {
            config: Arc::new(config),
            tls_client,
            acceptor,
            live: Mutex::new(HashMap::new()),
            blocks: Mutex::new(HashMap::new()),
            connections: AtomicUsize::new(0),
            taps: None,
            events: Arc::new(Events::disabled()),
            shutdown: CancellationToken::new(),
        })
    }

    /// Sends every stream's video to taps from `provider`.
    pub fn with_taps(mut self, provider: Arc<dyn TapProvider>) -> Relay {
        self.taps = Some(provider);
        self
    }

    /// Records publish, unpublish and blocked events in `events`.
    pub fn with_events(mut self, events: Arc<Events>) -> Relay {
        self.events = events;
        self
    }

    /// Cuts the stream published under `key`: the broadcaster gets `NetStream.Publish.Rejected`
    /// with `reason` and is closed, the platform gets FCUnpublish and deleteStream, nothing more
    /// is forwarded. With a non-zero `block_for`, the key is refused at publish time until then.
    /// Returns whether such a stream was live.
    pub fn cut(&self, key: &str, reason: &str, block_for: Duration) -> bool {
        if !block_for.is_zero() {
            if let Ok(mut blocks) = self.blocks.lock() {
                blocks.insert(key.to_owned(), Instant::now() + block_for);
            }
        }
        let live = self.live.lock().ok();
        live.and_then(|l| {
            l.get(key)
                .map(|stream| stream.cut.send(reason.to_owned()).is_ok())
        })
        .unwrap_or(false)
    }

    /// How long `key` stays blocked, if it is.
    pub fn blocked_for(&self, key: &str) -> Option<Duration> {
        let mut blocks = self.blocks.lock().ok()?;
        let until = *blocks.get(key)?;
        let now = Instant::now();
        if until <= now {
            blocks.remove(key);
            return None;
        }
        Some(until - now)
    }

    /// Every blocked key with the time its block has left, soonest to lift first.
    pub fn blocks(&self) -> Vec<(String, Duration)> {
        let Ok(mut blocks) = self.blocks.lock() else {
            return Vec::new();
        };
        let now = Instant::now();
        blocks.retain(|_, until| *until > now);
        let mut out: Vec<(String, Duration)> = blocks
            .iter()
            .map(|(key, until)| (key.clone(), *until - now))
            .collect();
        out.sort_by_key(|(_, left)| *left);
        out
    }

    /// The streams being published now, by key.
    pub fn streams(&self) -> Vec<StreamInfo> {
        let mut out: Vec<StreamInfo> = self
            .live
            .lock()
            .map(|live| live.values().map(|s| s.info.clone()).collect())
            .unwrap_or_default();
        out.sort_by(|a, b| a.stream_key.cmp(&b.stream_key));
        out
    }

    /// Lifts the block on `key`; returns whether there was one.
    pub fn unblock(&self, key: &str) -> bool {
        self.blocks
            .lock()
            .map(|mut b| b.remove(key).is_some())
            .unwrap_or(false)
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Stops accepting and ends every stream (the broadcaster is told, the upstream unpublished).
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }
    fn decoder_limits(&self) -> DecoderLimits {
        DecoderLimits {
            max_message_size: self.config.limits.max_message_size,
            max_chunk_streams: self.config.limits.max_chunk_streams,
        }
    }

    /// Claims a stream key; `None` when it is already being published. The receiver
    /// gets the reason when the stream is cut.
    fn claim(
        self: &Arc<Self>,
        info: &StreamInfo,
    ) -> Option<(LiveGuard, tokio::sync::mpsc::UnboundedReceiver<String>)> {
        let mut live = self.live.lock().ok()?;
        if live.contains_key(&info.stream_key) {
            return None;
        }
        let (cut, cut_rx) = tokio::sync::mpsc::unbounded_channel();
        let stream = LiveStream {
            cut,
            info: info.clone(),
        };
        live.insert(info.stream_key.clone(), stream);
        let guard = LiveGuard {
            relay: self.clone(),
            key: info.stream_key.clone(),
        };
        Some((guard, cut_rx))
    }
    /// Counts a connection; `None` when `max_connections` are open.
    fn admit(self: &Arc<Self>) -> Option<ConnectionGuard> {
        let limit = self.config.limits.max_connections;
        self.connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()?;
        Some(ConnectionGuard {
            relay: self.clone(),
        })
    }
}

/// Holds a stream key as live until dropped.
struct LiveGuard {
    relay: Arc<Relay>,
    key: String,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        if let Ok(mut live) = self.relay.live.lock() {
            live.remove(&self.key);
        }
    }
}

/// Counts one open connection until dropped.
struct ConnectionGuard {
    relay: Arc<Relay>,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.relay.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_blocks_the_key_until_the_cooldown_or_an_unblock() {
        let config = Config::parse(
            "[upstream]\nurl = \"rtmp://127.0.0.1:1/live\"\n",
            std::path::Path::new("t.toml"),
        )
        .expect("config");
        let relay = Relay::new(config).expect("relay");
        assert!(
            !relay.cut("k", "test", Duration::from_secs(60)),
            "nothing live under k"
        );
        let left = relay.blocked_for("k").expect("blocked");
        assert!(left > Duration::from_secs(55) && left <= Duration::from_secs(60));
        assert!(relay.unblock("k"));
        assert!(relay.blocked_for("k").is_none());
        relay.cut("j", "test", Duration::ZERO);
        assert!(
            relay.blocked_for("j").is_none(),
            "a zero cooldown blocks nothing"
        );
    }
}
