//! The relay: accepts broadcasters, and for each published stream opens one publish to the
//! platform and forwards audio, video and data unchanged, in order, as shared `Bytes`.
//!
//! `listener` accepts and enforces connection limits; `stream` runs one broadcaster and its
//! upstream leg in one task; `queue` holds the first GOP, bounded in bytes, while the upstream
//! publish is set up; `tap` branches video towards inspection without ever blocking.

mod listener;
pub mod queue;
mod stream;
pub mod tap;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::rtmp::chunk::DecoderLimits;
use crate::rtmp::tls::{self, TlsClient};
use crate::rtmp::RtmpError;

pub use listener::bind;
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
}

/// Shared state of a running relay.
pub struct Relay {
    config: Arc<Config>,
    tls_client: Option<TlsClient>,
    acceptor: Option<TlsAcceptor>,
    live: Mutex<HashMap<String, SocketAddr>>,
    connections: AtomicUsize,
    taps: Option<Arc<dyn TapProvider>>,
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
            connections: AtomicUsize::new(0),
            taps: None,
            shutdown: CancellationToken::new(),
        })
    }

    /// Sends every stream's video to taps from `provider`.
    pub fn with_taps(mut self, provider: Arc<dyn TapProvider>) -> Relay {
        self.taps = Some(provider);
        self
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Stops accepting and ends every stream (the broadcaster is told, the upstream unpublished).
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Number of streams being published now.
    pub fn live_streams(&self) -> usize {
        self.live.lock().map(|l| l.len()).unwrap_or(0)
    }

    fn decoder_limits(&self) -> DecoderLimits {
        DecoderLimits {
            max_message_size: self.config.limits.max_message_size,
            max_chunk_streams: self.config.limits.max_chunk_streams,
        }
    }

    /// Claims a stream key for `peer`; `None` when it is already being published.
    fn claim(self: &Arc<Self>, key: &str, peer: SocketAddr) -> Option<LiveGuard> {
        let mut live = self.live.lock().ok()?;
        if live.contains_key(key) {
            return None;
        }
        live.insert(key.to_owned(), peer);
        Some(LiveGuard {
            relay: self.clone(),
            key: key.to_owned(),
        })
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
