//! Accepting broadcasters: TCP_NODELAY, the connection limit, optional TLS, one task each.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tracing::Instrument;

use super::{stream, Relay, RelayError};
use crate::metrics::metrics;
use crate::rtmp::connection::BoxTransport;

/// Binds the listening socket (separate from [`Relay::run`] so callers can learn the port).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, RelayError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| RelayError::Setup(format!("cannot listen on {addr}: {e}")))
}

impl Relay {
    /// Accepts broadcasters until [`Relay::shutdown`], then waits for open streams to end.
    pub async fn run(self: Arc<Self>, listener: TcpListener) -> Result<(), RelayError> {
        let local = listener
            .local_addr()
            .map_err(|e| RelayError::Setup(format!("listener address: {e}")))?;
        let tls = if self.acceptor.is_some() {
            "rtmps"
        } else {
            "rtmp"
        };
        tracing::info!(listen = %local, upstream = %self.config.upstream.url, "listening for {tls}");
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = self.shutdown.cancelled() => break,
            };
            let Some(guard) = self.admit() else {
                metrics().connections.inc(&["refused"]);
                tracing::warn!(
                    %peer,
                    limit = "max_connections",
                    "refused: limit max_connections = {} reached",
                    self.config.limits.max_connections
                );
                continue;
            };
            let relay = self.clone();
            let span = tracing::info_span!("conn", %peer);
            tokio::spawn(
                async move {
                    let _guard = guard;
                    let result = relay.serve_connection(tcp, peer).await;
                    let label = result
                        .as_ref()
                        .map_or_else(RelayError::result_label, |()| "ok");
                    metrics().connections.inc(&[label]);
                    if let Err(e) = result {
                        match &e {
                            RelayError::Limit { limit, .. } => {
                                tracing::warn!(limit, "closed: {e}")
                            }
                            RelayError::Rtmp(inner) if inner.is_disconnect() => {
                                tracing::info!("closed: {e}")
                            }
                            _ => tracing::warn!("closed: {e}"),
                        }
                    }
                }
                .instrument(span),
            );
        }
        self.drain().await;
        Ok(())
    }

    async fn serve_connection(
        self: &Arc<Self>,
        tcp: tokio::net::TcpStream,
        peer: SocketAddr,
    ) -> Result<(), RelayError> {
        tcp.set_nodelay(true)
            .map_err(crate::rtmp::RtmpError::from)?;
        let io: BoxTransport = match &self.acceptor {
            Some(acceptor) => {
                let limit = self.config.limits.handshake_timeout;
                let tls = tokio::time::timeout(limit, acceptor.accept(tcp))
                    .await
                    .map_err(|_| RelayError::Limit {
                        limit: "handshake_timeout",
                        detail: "TLS handshake did not finish".into(),
                    })?
                    .map_err(|e| crate::rtmp::RtmpError::Tls(format!("handshake: {e}")))?;
                Box::new(tls)
            }
            None => Box::new(tcp),
        };
        stream::run(self.clone(), io, peer).await
    }

    /// Waits for open connections to finish, at most twice the drain timeout.
    async fn drain(&self) {
        let deadline = tokio::time::Instant::now() + self.config.limits.drain_timeout * 2;
        while self.connections.load(std::sync::atomic::Ordering::Acquire) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
