//! The relay's own settings: where broadcasters connect, the platform's ingest, the limits, the
//! routes and the delay. `config.toml`'s `[server]`, `[upstream]` and `[limits]` tables are
//! these types; [`RelaySettings`] is what `Config` hands the relay (never the whole config).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::units::{duration_value, mib, secs, size};

/// What the relay needs to run.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Where broadcasters connect.
    pub server: ServerConfig,
    /// The platform's ingest.
    pub upstream: UpstreamConfig,
    /// Per-connection and per-stream limits.
    pub limits: Limits,
    /// Keys published to another URL or under another key.
    pub routes: Vec<UpstreamRoute>,
    /// `verdict.delay`: how long media is held before it is forwarded (0: not held).
    pub delay: Duration,
    /// `verdict.max_blind_degraded`: how long a delayed stream may wait on inspection.
    pub max_blind_degraded: Duration,
    /// `verdict.delay_waits_for` holds `video`: held media waits for video inspection.
    pub waits_for_video: bool,
    /// `verdict.delay_waits_for` holds `audio`: held media waits for audio inspection.
    pub waits_for_audio: bool,
}

/// Where one key is published.
#[derive(Debug, Clone)]
pub struct UpstreamRoute {
    /// The broadcaster's key (normal form).
    pub key: String,
    /// Upstream URL; `[upstream] url` when absent.
    pub url: Option<String>,
    /// Key published upstream; the broadcaster's when absent.
    pub upstream_key: Option<String>,
}

impl RelaySettings {
    /// The upstream URL and key a stream published under `stream_key` goes to.
    pub fn route(&self, stream_key: &str) -> (&str, String) {
        match self.routes.iter().find(|r| r.key == stream_key) {
            Some(route) => (
                route.url.as_deref().unwrap_or(&self.upstream.url),
                route
                    .upstream_key
                    .clone()
                    .unwrap_or_else(|| stream_key.to_owned()),
            ),
            None => (&self.upstream.url, stream_key.to_owned()),
        }
    }
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Listening address, `"0.0.0.0:1935"` by default.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// PEM certificate chain: when set with `tls_key`, broadcasters must connect with rtmps.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            tls_cert: None,
            tls_key: None,
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 1935))
}

/// `[upstream]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// `rtmp://host:port/app` or `rtmps://…`; the stream key is appended per stream.
    pub url: String,
    /// PEM certificates trusted for rtmps instead of the system roots: CAs, or the platform's
    /// own (self-signed) certificate, accepted exactly as it is.
    pub ca_file: Option<PathBuf>,
    /// SHA-256 pins of the platform's public key (base64, `sha256//…`, or hex): with any set,
    /// an rtmps upstream is accepted when its key matches one, whoever signed its certificate.
    #[serde(default)]
    pub pin_sha256: Vec<String>,
    /// Deadline for each step of the upstream connect/publish sequence.
    #[serde(default = "secs::<5>", deserialize_with = "duration_value")]
    pub connect_timeout: Duration,
}

/// `[limits]`: every limit closes only the connection that hits it, with a log line naming it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Deadline for each handshake step (and the TLS handshake on the listener).
    #[serde(default = "secs::<5>", deserialize_with = "duration_value")]
    pub handshake_timeout: Duration,
    /// A broadcaster silent this long is disconnected.
    #[serde(default = "secs::<30>", deserialize_with = "duration_value")]
    pub idle_timeout: Duration,
    /// Largest RTMP message accepted from a broadcaster or the platform.
    #[serde(default = "mib::<8>", deserialize_with = "size")]
    pub max_message_size: usize,
    /// Most distinct chunk stream ids one peer may use.
    #[serde(default = "default_chunk_streams")]
    pub max_chunk_streams: usize,
    /// Most simultaneous broadcaster connections.
    #[serde(default = "default_connections")]
    pub max_connections: usize,
    /// Most simultaneous connections from one address (IPv6: one /64); 0 for no limit.
    #[serde(default = "default_connections_per_address")]
    pub max_connections_per_address: usize,
    /// New connections per second one address may open, sustained; 0 for no limit.
    #[serde(default = "default_connection_rate")]
    pub connection_rate_per_address: f64,
    /// New connections one address may open at once before the rate applies.
    #[serde(default = "default_connection_burst")]
    pub connection_burst_per_address: f64,
    /// From accepting a connection to its publish command (TLS, handshake, connect,
    /// createStream, publish): a connection that has not published by then is closed, so idle
    /// and half-open sockets free their slots.
    #[serde(default = "secs::<10>", deserialize_with = "duration_value")]
    pub publish_timeout: Duration,
    /// Most bytes queued for one stream's upstream (while it connects, or when it is slower than
    /// the broadcaster).
    #[serde(default = "mib::<32>", deserialize_with = "size")]
    pub queue_bytes: usize,
    /// How long the tail of a stream may take to reach the platform after the broadcaster ends.
    #[serde(default = "secs::<5>", deserialize_with = "duration_value")]
    pub drain_timeout: Duration,
    /// How far behind live a stream may fall waiting for the platform to read it before it is
    /// ended (a platform that reads a trickle would otherwise hold the broadcaster forever).
    #[serde(default = "secs::<15>", deserialize_with = "duration_value")]
    pub max_upstream_lag: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            handshake_timeout: secs::<5>(),
            idle_timeout: secs::<30>(),
            max_message_size: mib::<8>(),
            max_chunk_streams: default_chunk_streams(),
            max_connections: default_connections(),
            max_connections_per_address: default_connections_per_address(),
            connection_rate_per_address: default_connection_rate(),
            connection_burst_per_address: default_connection_burst(),
            publish_timeout: secs::<10>(),
            queue_bytes: mib::<32>(),
            drain_timeout: secs::<5>(),
            max_upstream_lag: secs::<15>(),
        }
    }
}

const fn default_chunk_streams() -> usize {
    64
}

// Generous: broadcasters behind one NAT or a load balancer without PROXY protocol share an
// address. Eviction (relay::door) keeps idlers from filling the door whatever their number.
const fn default_connections_per_address() -> usize {
    256
}

const fn default_connection_rate() -> f64 {
    50.0
}

const fn default_connection_burst() -> f64 {
    200.0
}

const fn default_connections() -> usize {
    1000
}
