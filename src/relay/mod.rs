//! The relay: accepts broadcasters, and for each published stream opens one publish to the
//! platform and forwards audio, video and data unchanged, in order, as shared `Bytes`.
//!
//! `listener` accepts and enforces connection limits; `stream` runs one broadcaster from
//! handshake to close in one task, and `live` its published stream as a state machine;
//! `queue` is the byte-bounded queue (the first GOP while the upstream publish is set up, the
//! delay line); `tap` branches video towards inspection without ever blocking, and `audio_tap`
//! audio.

pub mod audio_tap;
pub mod delay;
pub mod door;
pub mod lag;
mod listener;
mod live;
pub mod queue;
pub mod reading;
pub mod settings;
pub mod stats;
mod stream;
pub mod tap;

use std::sync::Arc;
use std::time::Duration;

use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::events::Events;
use crate::registry::StreamRegistry;
use crate::rtmp::chunk::DecoderLimits;
use crate::rtmp::tls::{self, TlsClient};
use crate::rtmp::RtmpError;
pub use settings::RelaySettings;

pub use audio_tap::{AudioTap, AudioTapProvider, TappedAudio};
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
    /// The broadcaster sent a message the gate cannot read as the platform would, so it does
    /// not forward it: the stream is refused.
    #[error("refused: {0}")]
    Unreadable(String),
    /// Inspection had no room for the stream: refused at its publish.
    #[error("publish refused: {0}")]
    AtCapacity(String),
}

impl RelayError {
    /// The `result` label of `hashgate_connections_total` for a connection that ended so.
    pub fn result_label(&self) -> &'static str {
        match self {
            RelayError::Rtmp(e) if e.is_disconnect() => "disconnected",
            RelayError::Rtmp(_) | RelayError::Unreadable(_) => "protocol_error",
            RelayError::Limit { .. } => "limit",
            RelayError::Upstream { .. } => "upstream_error",
            RelayError::Setup(_) => "error",
            RelayError::Cut(_) => "cut",
            RelayError::Blocked(_) => "blocked",
            RelayError::AtCapacity(_) => "at_capacity",
        }
    }
}

/// Shared state of a running relay.
pub struct Relay {
    settings: Arc<RelaySettings>,
    tls_client: Option<TlsClient>,
    acceptor: Option<TlsAcceptor>,
    /// Live streams, blocks and probation, by key name.
    registry: Arc<StreamRegistry>,
    door: Arc<door::Door>,
    taps: Option<Arc<dyn TapProvider>>,
    audio_taps: Option<Arc<dyn AudioTapProvider>>,
    events: Arc<Events>,
    shutdown: CancellationToken,
}

impl Relay {
    /// Prepares a relay that claims its streams' keys in `registry`: loads the TLS material
    /// the settings name.
    pub fn new(config: RelaySettings, registry: Arc<StreamRegistry>) -> Result<Relay, RelayError> {
        let any_rtmps = std::iter::once(config.upstream.url.as_str())
            .chain(config.routes.iter().filter_map(|r| r.url.as_deref()))
            .any(|url| url.starts_with("rtmps://"));
        let tls_client = if any_rtmps {
            let client = TlsClient::with_trust(&tls::UpstreamTrust {
                ca_file: config.upstream.ca_file.clone(),
                pin_sha256: config.upstream.pin_sha256.clone(),
            })
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
        let door = Arc::new(door::Door::new(door::DoorLimits {
            max_connections: config.limits.max_connections,
            max_per_address: config.limits.max_connections_per_address,
            rate_per_address: config.limits.connection_rate_per_address,
            burst_per_address: config.limits.connection_burst_per_address,
        }));
        Ok(Relay {
            settings: Arc::new(config),
            tls_client,
            acceptor,
            registry,
            door,
            taps: None,
            audio_taps: None,
            events: Arc::new(Events::disabled()),
            shutdown: CancellationToken::new(),
        })
    }

    /// Sends every stream's video to taps from `provider`.
    pub fn with_taps(mut self, provider: Arc<dyn TapProvider>) -> Relay {
        self.taps = Some(provider);
        self
    }

    /// Sends every stream's audio to taps from `provider`.
    pub fn with_audio_taps(mut self, provider: Arc<dyn AudioTapProvider>) -> Relay {
        self.audio_taps = Some(provider);
        self
    }

    /// Records publish, unpublish and blocked events in `events`.
    pub fn with_events(mut self, events: Arc<Events>) -> Relay {
        self.events = events;
        self
    }

    /// Cuts the stream published under `key` (its name in normal form): the broadcaster gets
    /// `NetStream.Publish.Rejected` with `reason` and is closed, the platform gets FCUnpublish
    /// and deleteStream, nothing more is forwarded. With a non-zero `block_for`, the key is
    /// refused at publish time until then; with a non-zero `probation`, its next streams are cut
    /// on their first match until then. Returns whether such a stream was live.
    pub fn cut(&self, key: &str, reason: &str, block_for: Duration, probation: Duration) -> bool {
        self.registry.cut(key, reason, block_for, probation)
    }

    /// How long `key` stays blocked, if it is.
    pub fn blocked_for(&self, key: &str) -> Option<Duration> {
        self.registry.blocked_for(key)
    }

    /// Whether `key` was cut for content within `verdict.probation`.
    pub fn on_probation(&self, key: &str) -> bool {
        self.registry.on_probation(key)
    }

    /// The key an operator means by `text` (the key, or its SHA-256 when keys are redacted).
    pub fn resolve(&self, text: &str) -> String {
        self.registry.resolve(text)
    }

    /// Every blocked key with the time its block has left, soonest to lift first.
    pub fn blocks(&self) -> Vec<(String, Duration)> {
        self.registry.blocks()
    }

    /// The streams being published now, by key.
    pub fn streams(&self) -> Vec<StreamInfo> {
        self.registry.streams()
    }

    /// Lifts the block on `key`; returns whether there was one.
    pub fn unblock(&self, key: &str) -> bool {
        self.registry.unblock(key)
    }

    /// The settings in force.
    pub fn settings(&self) -> &RelaySettings {
        &self.settings
    }

    /// The registry the relay claims keys in.
    pub fn registry(&self) -> &Arc<StreamRegistry> {
        &self.registry
    }

    /// Cancelled when [`Relay::shutdown`] is called (the instance is draining).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops accepting and ends every stream (the broadcaster is told, the upstream unpublished).
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    fn decoder_limits(&self) -> DecoderLimits {
        DecoderLimits {
            max_message_size: self.settings.limits.max_message_size,
            max_chunk_streams: self.settings.limits.max_chunk_streams,
        }
    }
}
