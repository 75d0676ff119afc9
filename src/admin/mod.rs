//! The admin HTTP API: health, Prometheus metrics, live streams, operator cuts, key blocks and
//! list reloads, on `[admin] listen` (loopback by default).
//!
//! `/healthz` answers 503 once the instance is draining (readiness); in a fleet,
//! `GET /streams?scope=cluster` lists every instance's streams, and cuts and unblocks reach
//! the instance that carries the stream.
//!
//! Access: `/healthz` is always open (load balancers probe it). With a token configured every
//! other call needs `Authorization: Bearer <token>`, on loopback too (`/streams`, `/blocks` and
//! the metrics' labels reveal stream keys, which are credentials); off loopback a token is
//! required. Browsers are kept out whatever the token: a request whose `Host` is not a name the
//! API answers to (DNS rebinding) and a write that carries an `Origin` (a web page's form or
//! fetch: this API serves no pages) are refused with 403.

mod handlers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::serve::ListenerExt;
use axum::Router;
use tokio_util::sync::CancellationToken;

use crate::cluster::Cluster;
use crate::config::AdminConfig;
use crate::events::Events;
use crate::gate::Gate;
use crate::matcher::Matcher;
use crate::registry::StreamRegistry;

/// What the handlers act on.
pub struct AdminState {
    /// The streams listed and cut, the blocks listed and lifted.
    pub registry: Arc<StreamRegistry>,
    /// How long an operator's cut blocks the key unless the call says (`verdict.cooldown`).
    pub cut_block: Duration,
    /// How long an operator's cut puts the key on probation (`verdict.probation`).
    pub cut_probation: Duration,
    /// The lists in force.
    pub matcher: Arc<Matcher>,
    /// The media banks, when configured.
    pub banks: Option<Arc<crate::bank::live::Banks>>,
    /// Where operator actions are recorded.
    pub events: Arc<Events>,
    /// The fleet, when this instance is a member: operator actions reach every instance.
    pub cluster: Option<Arc<Cluster>>,
    /// Cancelled when the instance starts draining: `/healthz` then answers 503, so a load
    /// balancer or Kubernetes stops sending new broadcasters while streams finish.
    pub draining: CancellationToken,
    token: Option<String>,
    reads_need_token: bool,
    /// Names accepted in `Host`; `None`: any (off loopback, where every call needs the token).
    hosts: Option<Vec<String>>,
}

impl AdminState {
    /// Access rules from `config`.
    pub fn new(config: &AdminConfig, gate: &Gate) -> AdminState {
        AdminState {
            registry: gate.registry.clone(),
            cut_block: gate.policy.cooldown,
            cut_probation: gate.policy.probation,
            matcher: gate.matcher.clone(),
            banks: gate.banks.clone(),
            events: gate.events.clone(),
            cluster: gate.cluster.clone(),
            draining: gate.relay.shutdown_token(),
            token: config.token(),
            reads_need_token: !config.listen.ip().is_loopback(),
            hosts: (config.listen.ip().is_loopback() || !config.allowed_hosts.is_empty())
                .then(|| allowed_hosts(config)),
        }
    }
}

/// The API's routes over `state`.
pub fn router(state: Arc<AdminState>) -> Router {
    let max_upload = state.banks.as_ref().map_or(0, |b| b.settings().max_upload);
    Router::new()
        .route("/healthz", get(handlers::healthz))
        .route("/livez", get(handlers::livez))
        .route("/metrics", get(handlers::metrics))
        .route("/streams", get(handlers::streams))
        .route("/streams/{key}/cut", post(handlers::cut))
        .route("/blocks", get(handlers::blocks))
        .route("/blocks/{key}", delete(handlers::unblock))
        .route("/lists/reload", post(handlers::reload_lists))
        .route(
            "/banks/{bank}/clips",
            post(handlers::add_bank_clip).layer(axum::extract::DefaultBodyLimit::max(max_upload)),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authorize,
        ))
        .with_state(state)
}

/// Binds the admin address (separate from [`serve`] so callers learn the port and bind errors
/// stop startup).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("admin API: cannot listen on {addr}: {e}"))
}

/// Serves the API on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AdminState>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(listen = %addr, token = state.token.is_some(), "admin API listening");
    }
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("admin API: TCP_NODELAY: {e}");
        }
    });
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

async fn authorize(State(state): State<Arc<AdminState>>, request: Request, next: Next) -> Response {
    if matches!(request.uri().path(), "/healthz" | "/livez") {
        return next.run(request).await;
    }
    let mutating = request.method() != Method::GET && request.method() != Method::HEAD;
    if let Some(why) = browser_refusal(&state, &request, mutating) {
        return refuse(StatusCode::FORBIDDEN, &why);
    }
    let needed = state.reads_need_token || state.token.is_some();
    if !needed {
        return next.run(request).await;
    }
    let Some(token) = state.token.as_deref() else {
        // Unreachable with a validated config: off loopback a token is required.
        return refuse(StatusCode::FORBIDDEN, "no admin token is configured");
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(p) if constant_time_eq(p.as_bytes(), token.as_bytes()) => next.run(request).await,
        Some(_) => refuse(StatusCode::UNAUTHORIZED, "wrong bearer token"),
        None => refuse(StatusCode::UNAUTHORIZED, "this call needs a bearer token"),
    }
}

/// Host names (lower case, without port) the API answers to: loopback's, the listening
/// address, and `admin.allowed_hosts`.
fn allowed_hosts(config: &AdminConfig) -> Vec<String> {
    let mut hosts: Vec<String> = ["127.0.0.1", "[::1]", "localhost"]
        .into_iter()
        .map(String::from)
        .collect();
    let ip = config.listen.ip();
    if !ip.is_unspecified() {
        hosts.push(match ip {
            std::net::IpAddr::V4(v4) => v4.to_string(),
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        });
    }
    hosts.extend(config.allowed_hosts.iter().map(|h| h.to_ascii_lowercase()));
    hosts
}

/// Why a request looks like a browser's reaching in from a web page, if it does.
fn browser_refusal(state: &AdminState, request: &Request, mutating: bool) -> Option<String> {
    let headers = request.headers();
    if mutating {
        if let Some(origin) = headers.get(header::ORIGIN) {
            return Some(format!(
                "cross-origin write refused (Origin: {})",
                String::from_utf8_lossy(origin.as_bytes()).escape_debug()
            ));
        }
        // Some browsers and privacy settings drop Origin; their fetch metadata still says
        // where a request comes from.
        let site = headers.get("sec-fetch-site").map(|v| v.as_bytes());
        if matches!(site, Some(b"cross-site" | b"same-site")) {
            return Some("a write from a web page refused (Sec-Fetch-Site)".into());
        }
    }
    let hosts = state.hosts.as_ref()?;
    let Some(host) = headers
        .get(header::HOST)
        .map(|h| String::from_utf8_lossy(h.as_bytes()).to_ascii_lowercase())
    else {
        return Some("a Host header is required".into());
    };
    if hosts.iter().any(|h| h == strip_port(&host)) {
        None
    } else {
        Some(format!(
            "unexpected Host {:?} (add it to admin.allowed_hosts)",
            host.escape_debug().to_string()
        ))
    }
}

/// `host[:port]` without the port; IPv6 literals keep their brackets.
fn strip_port(host: &str) -> &str {
    if let Some(end) = host.strip_prefix('[').and_then(|h| h.find(']')) {
        return &host[..end + 2];
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

fn refuse(status: StatusCode, why: &str) -> Response {
    let body = axum::Json(serde_json::json!({ "error": why }));
    (status, [(header::WWW_AUTHENTICATE, "Bearer")], body).into_response()
}

/// Compares without stopping at the first difference, so timing does not reveal the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn host_names_lose_their_port() {
        assert_eq!(super::strip_port("127.0.0.1:8935"), "127.0.0.1");
        assert_eq!(super::strip_port("localhost"), "localhost");
        assert_eq!(super::strip_port("[::1]:8935"), "[::1]");
        assert_eq!(super::strip_port("[::1]"), "[::1]");
        assert_eq!(super::strip_port("evil.example:80"), "evil.example");
    }

    #[test]
    fn token_comparison() {
        assert!(super::constant_time_eq(b"secret", b"secret"));
        assert!(!super::constant_time_eq(b"secret", b"secreT"));
        assert!(!super::constant_time_eq(b"secret", b"secret2"));
    }
}
