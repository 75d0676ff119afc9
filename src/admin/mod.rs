//! The admin HTTP API: health, Prometheus metrics, live streams, operator cuts, key blocks and
//! list reloads, on `[admin] listen` (loopback by default).
//!
//! Access: `/healthz` is always open (load balancers probe it). Off loopback every other call
//! needs `Authorization: Bearer <token>`; with a token set, calls that change something (POST,
//! DELETE) need it on loopback too.

mod handlers;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::serve::ListenerExt;
use axum::Router;
use tokio_util::sync::CancellationToken;

use crate::config::AdminConfig;
use crate::events::Events;
use crate::matcher::Matcher;
use crate::relay::Relay;

/// What the handlers act on.
pub struct AdminState {
    /// The relay whose streams are listed and cut.
    pub relay: Arc<Relay>,
    /// The lists in force.
    pub matcher: Arc<Matcher>,
    /// Where operator actions are recorded.
    pub events: Arc<Events>,
    token: Option<String>,
    reads_need_token: bool,
}

impl AdminState {
    /// Access rules from `config`.
    pub fn new(
        config: &AdminConfig,
        relay: Arc<Relay>,
        matcher: Arc<Matcher>,
        events: Arc<Events>,
    ) -> AdminState {
        AdminState {
            relay,
            matcher,
            events,
            token: config.token(),
            reads_need_token: !config.listen.ip().is_loopback(),
        }
    }
}

/// The API's routes over `state`.
pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/healthz", get(handlers::healthz))
        .route("/metrics", get(handlers::metrics))
        .route("/streams", get(handlers::streams))
        .route("/streams/{key}/cut", post(handlers::cut))
        .route("/blocks", get(handlers::blocks))
        .route("/blocks/{key}", delete(handlers::unblock))
        .route("/lists/reload", post(handlers::reload_lists))
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
    if request.uri().path() == "/healthz" {
        return next.run(request).await;
    }
    let mutating = request.method() != Method::GET && request.method() != Method::HEAD;
    let needed = state.reads_need_token || (mutating && state.token.is_some());
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
    fn token_comparison() {
        assert!(super::constant_time_eq(b"secret", b"secret"));
        assert!(!super::constant_time_eq(b"secret", b"secreT"));
        assert!(!super::constant_time_eq(b"secret", b"secret2"));
    }
}
