//! One broadcaster from handshake to close, and the upstream leg of its stream.
//!
//! The broadcaster's task reads messages and pushes media into the stream's byte-bounded queue
//! (and video into the tap); it never waits on the upstream. The upstream task connects and
//! publishes (meanwhile the queue holds the first GOP), then writes whatever the queue holds in
//! batches. When the broadcaster ends, the upstream task drains the queue and unpublishes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::task::JoinHandle;
use tracing::Instrument;

use super::queue::{media_queue, PushError, QueueReceiver};
use super::tap::{StreamInfo, VideoTap};
use super::{Relay, RelayError};
use crate::rtmp::client::{PublishTarget, UpstreamEvent, UpstreamPublisher};
use crate::rtmp::connection::{BoxTransport, Connection};
use crate::rtmp::handshake;
use crate::rtmp::message::kind;
use crate::rtmp::server::{PublishRequest, PublisherEvent, ServerSession};
use crate::rtmp::url::RtmpUrl;
use crate::rtmp::RtmpError;

/// How long a broadcaster that ended its stream gets to hang up before we close.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// What the upstream leg did, for the unpublish log line.
#[derive(Debug, Default)]
struct UpstreamTotals {
    messages: u64,
    bytes: u64,
}

/// Runs one broadcaster connection to its end.
pub(super) async fn run(
    relay: Arc<Relay>,
    mut io: BoxTransport,
    peer: SocketAddr,
) -> Result<(), RelayError> {
    let limits = &relay.config.limits;
    handshake::accept(&mut io, limits.handshake_timeout)
        .await
        .map_err(|e| match e {
            RtmpError::Timeout(step) => RelayError::Limit {
                limit: "handshake_timeout",
                detail: format!("handshake stalled {step}"),
            },
            other => other.into(),
        })?;
    let mut session = ServerSession::new(Connection::new(io, relay.decoder_limits()));
    let request = tokio::time::timeout(limits.idle_timeout, session.wait_for_publish())
        .await
        .map_err(|_| RelayError::Limit {
            limit: "idle_timeout",
            detail: "no publish before the idle timeout".into(),
        })??;
    let span = tracing::info_span!("stream", key = %request.stream_key);
    publish(relay, session, request, peer)
        .instrument(span)
        .await
}

async fn publish(
    relay: Arc<Relay>,
    mut session: ServerSession,
    request: PublishRequest,
    peer: SocketAddr,
) -> Result<(), RelayError> {
    if request.stream_key.is_empty() {
        session
            .reject_publish(&request, "NetStream.Publish.BadName", "empty stream key")
            .await?;
        return Err(RtmpError::Protocol("publish with an empty stream key".into()).into());
    }
    let Some(_live) = relay.claim(&request.stream_key, peer) else {
        session
            .reject_publish(
                &request,
                "NetStream.Publish.BadName",
                "stream key already publishing",
            )
            .await?;
        return Err(RtmpError::Protocol("stream key is already publishing".into()).into());
    };
    let (url_text, upstream_key) = relay.config.route(&request.stream_key);
    // Validated with the config, so this only fails if the config was built by hand.
    let url = RtmpUrl::parse(url_text)?;
    let target = PublishTarget {
        url,
        stream_key: upstream_key,
        publish_type: request.publish_type.clone(),
        fourcc_list: request.fourcc_list.clone(),
    };
    session.accept_publish(&request).await?;
    tracing::info!(app = %request.app, upstream = %target.url, upstream_key = %target.stream_key, "publish");

    let started = Instant::now();
    let (queue, queue_rx) = media_queue(relay.config.limits.queue_bytes);
    let mut upstream: JoinHandle<Result<UpstreamTotals, RelayError>> =
        tokio::spawn(run_upstream(relay.clone(), target, queue_rx).in_current_span());
    let mut tap = relay.taps.as_ref().and_then(|taps| {
        taps.open(&StreamInfo {
            stream_key: request.stream_key.clone(),
            app: request.app.clone(),
            peer,
        })
    });

    let idle = relay.config.limits.idle_timeout;
    let ending: Result<(), RelayError> = loop {
        let event = tokio::select! {
            event = tokio::time::timeout(idle, session.next_event()) => event,
            ended = &mut upstream => {
                let error = match ended {
                    Ok(Err(e)) => e,
                    Ok(Ok(_)) => RelayError::Setup("upstream ended while publishing".into()),
                    Err(join) => RelayError::Setup(format!("upstream task failed: {join}")),
                };
                let code = match &error {
                    RelayError::Upstream { source: RtmpError::Refused { .. }, .. } => {
                        "NetStream.Publish.Rejected"
                    }
                    _ => "NetStream.Failed",
                };
                tracing::warn!("upstream failed: {error}");
                // The broadcaster is told why; its own connection may already be gone.
                drop(session.fail(code, &error.to_string()).await);
                return Err(error);
            }
            _ = relay.shutdown.cancelled() => break Ok(()),
        };
        match event {
            Err(_) => {
                break Err(RelayError::Limit {
                    limit: "idle_timeout",
                    detail: format!("nothing from the broadcaster for {idle:?}"),
                })
            }
            Ok(Err(e)) => break Err(e.into()),
            Ok(Ok(PublisherEvent::Closed | PublisherEvent::Unpublished)) => break Ok(()),
            Ok(Ok(PublisherEvent::Media(msg))) => {
                if msg.type_id == kind::VIDEO {
                    if let Some(tap) = tap.as_mut() {
                        tap.offer(&msg, Instant::now());
                    }
                }
                match queue.push(msg) {
                    Ok(()) => {}
                    Err(e @ PushError::Full { .. }) => {
                        break Err(RelayError::Limit {
                            limit: "queue_bytes",
                            detail: format!("upstream is not keeping up: {e}"),
                        })
                    }
                    // The upstream task ended; its result is picked up on the next turn.
                    Err(PushError::Closed) => {}
                }
            }
        }
        if let Err(e) = session.flush().await {
            break Err(e.into());
        }
    };

    // Let the upstream send what is queued and unpublish, within the drain timeout.
    drop(queue);
    let drain = relay.config.limits.drain_timeout;
    let totals = match tokio::time::timeout(drain, &mut upstream).await {
        Ok(Ok(Ok(totals))) => Some(totals),
        Ok(Ok(Err(e))) => {
            tracing::warn!("upstream failed while draining: {e}");
            None
        }
        Ok(Err(join)) => {
            tracing::warn!("upstream task failed: {join}");
            None
        }
        Err(_) => {
            upstream.abort();
            tracing::warn!(
                limit = "drain_timeout",
                "upstream did not drain within {drain:?}"
            );
            None
        }
    };
    let dropped = tap.as_ref().map_or(0, VideoTap::dropped);
    let in_bytes = session.connection().bytes_read();
    match &ending {
        Ok(()) if relay.shutdown.is_cancelled() => {
            drop(
                session
                    .fail("NetStream.Failed", "hashgate is shutting down")
                    .await,
            );
        }
        Ok(()) => drop(session.close(LINGER).await),
        Err(_) => {}
    }
    let totals = totals.unwrap_or_default();
    tracing::info!(
        seconds = format!("{:.1}", started.elapsed().as_secs_f64()),
        in_bytes,
        out_bytes = totals.bytes,
        messages = totals.messages,
        inspection_dropped = dropped,
        "unpublish"
    );
    ending
}

/// Publishes to the platform and forwards the queue until the broadcaster's side ends.
async fn run_upstream(
    relay: Arc<Relay>,
    target: PublishTarget,
    mut queue: QueueReceiver,
) -> Result<UpstreamTotals, RelayError> {
    let upstream_error = |source| RelayError::Upstream {
        url: target.url.to_string(),
        source,
    };
    let connect_started = Instant::now();
    let mut up = UpstreamPublisher::publish(
        &target,
        relay.tls_client.as_ref(),
        relay.decoder_limits(),
        relay.config.upstream.connect_timeout,
    )
    .await
    .map_err(upstream_error)?;
    tracing::info!(
        handshake = ?up.handshake,
        connect_ms = connect_started.elapsed().as_millis() as u64,
        "upstream publishing"
    );
    let mut totals = UpstreamTotals::default();
    loop {
        tokio::select! {
            biased;
            next = queue.recv() => {
                let Some(msg) = next else { break };
                up.queue_media(&msg);
                totals.messages += 1;
                // Whatever else is already queued goes out in the same vectored write.
                while let Some(more) = queue.try_recv() {
                    up.queue_media(&more);
                    totals.messages += 1;
                }
                up.flush().await.map_err(upstream_error)?;
            }
            event = up.next_event() => {
                match event.map_err(upstream_error)? {
                    UpstreamEvent::Closed => return Err(upstream_error(RtmpError::Closed)),
                    UpstreamEvent::Nothing => up.flush().await.map_err(upstream_error)?,
                }
            }
        }
    }
    totals.bytes = up.bytes_written();
    up.unpublish().await.map_err(upstream_error)?;
    Ok(totals)
}
