//! Accepting broadcasters: TCP_NODELAY, the connection limit, optional TLS, one task each.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tracing::Instrument;

use super::door::{Admission, Refusal};
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
        tracing::info!(listen = %local, upstream = %self.settings.upstream.url, "listening for {tls}");
        let mut refusals = RefusalLog::default();
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
            let guard = match self.door.admit(peer.ip()) {
                Ok(admission) => admission,
                Err(refusal) => {
                    metrics().connections.inc(&["refused"]);
                    let l = &self.settings.limits;
                    let value = match refusal {
                        Refusal::Total => l.max_connections.to_string(),
                        Refusal::PerAddress => l.max_connections_per_address.to_string(),
                        Refusal::Rate => format!("{}/s", l.connection_rate_per_address),
                    };
                    refusals.note(refusal, &value, peer);
                    continue;
                }
            };
            let relay = self.clone();
            let span = tracing::info_span!("conn", %peer);
            tokio::spawn(
                async move {
                    let result = relay.serve_connection(tcp, peer, &guard).await;
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
        admission: &Admission,
    ) -> Result<(), RelayError> {
        let accepted = std::time::Instant::now();
        tcp.set_nodelay(true)
            .map_err(crate::rtmp::RtmpError::from)?;
        let io: BoxTransport = match &self.acceptor {
            Some(acceptor) => {
                let limit = self.settings.limits.handshake_timeout;
                let tls = tokio::time::timeout(limit, async {
                    tokio::select! {
                        tls = acceptor.accept(tcp) => Ok(tls),
                        () = admission.evicted() => Err(stream::evicted()),
                    }
                })
                .await
                .map_err(|_| RelayError::Limit {
                    limit: "handshake_timeout",
                    detail: "TLS handshake did not finish".into(),
                })??
                .map_err(|e| crate::rtmp::RtmpError::Tls(format!("handshake: {e}")))?;
                Box::new(tls)
            }
            None => Box::new(tcp),
        };
        stream::run(self.clone(), io, peer, accepted, admission).await
    }

    /// Waits for open connections to finish, at most twice the drain timeout.
    async fn drain(&self) {
        let deadline = tokio::time::Instant::now() + self.settings.limits.drain_timeout * 2;
        while self.door.open() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Logs refused connections without letting a flood flood the log: the first refusal of each
/// limit at once, then one line a second per limit with how many were refused meanwhile.
#[derive(Default)]
struct RefusalLog {
    last: [Option<std::time::Instant>; 3],
    suppressed: [u64; 3],
}

impl RefusalLog {
    fn note(&mut self, refusal: Refusal, value: &str, peer: SocketAddr) {
        let i = refusal as usize;
        let now = std::time::Instant::now();
        if self.last[i].is_some_and(|t| now.duration_since(t) < Duration::from_secs(1)) {
            self.suppressed[i] += 1;
            return;
        }
        let more = std::mem::take(&mut self.suppressed[i]);
        self.last[i] = Some(now);
        tracing::warn!(
            %peer,
            limit = refusal.limit(),
            refused_since_last_line = more,
            "refused: limit {} = {value} reached",
            refusal.limit()
        );
    }
}
