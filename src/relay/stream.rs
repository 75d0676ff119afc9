//! One broadcaster from handshake to close: the deadline before the publish, the checks at it
//! (key form, block, one publisher per key), the route upstream, then the stream's life
//! (`live`), and its end told to the broadcaster, the platform and the event log.
//!
//! One task per stream owns both sockets. While the upstream publish is being set up (on its own
//! task), media is held in a byte-bounded queue, so the first GOP is kept; once the platform
//! accepts, the queue is flushed and every message is written upstream as soon as it is read —
//! the same `Bytes`, one `writev`, no hand-off between tasks. The only waits on the path are the
//! two sockets. Video is also offered to the tap, which never waits.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;

use super::door::Admission;
use super::lag::LiveLag;
use super::live::{LiveStream, Upstream};
use super::tap::{StreamInfo, VideoTap};
use super::{Relay, RelayError};
use crate::events::EventKind;
use crate::metrics::metrics;
use crate::registry::StreamKey;
use crate::rtmp::client::{PublishTarget, UpstreamPublisher};
use crate::rtmp::connection::{BoxTransport, Connection};
use crate::rtmp::handshake;
use crate::rtmp::server::{PublishRequest, ServerSession};
use crate::rtmp::url::RtmpUrl;
use crate::rtmp::RtmpError;

/// How long a broadcaster that ended its stream gets to hang up before we close.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// Why a connection that had not published was closed for a newcomer.
pub(super) fn evicted() -> RelayError {
    RelayError::Limit {
        limit: "max_connections",
        detail: format!(
            "evicted: the door was full and this connection had not published within {:?}",
            super::door::EVICTABLE_AFTER
        ),
    }
}

/// Runs one broadcaster connection to its end.
pub(super) async fn run(
    relay: Arc<Relay>,
    mut io: BoxTransport,
    peer: SocketAddr,
    accepted: Instant,
    admission: &Admission,
) -> Result<(), RelayError> {
    let limits = &relay.settings.limits;
    // Everything before the publish shares one deadline: a peer that trickles its handshake
    // or never publishes gives its slot back within publish_timeout.
    let publish_deadline = accepted + limits.publish_timeout;
    let late = || RelayError::Limit {
        limit: "publish_timeout",
        detail: format!(
            "no publish within {:?} of connecting",
            limits.publish_timeout
        ),
    };
    let before_publish = async {
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
        let request = session.wait_for_publish().await?;
        Ok::<_, RelayError>((session, request))
    };
    let (session, request) = tokio::select! {
        done = tokio::time::timeout_at(publish_deadline.into(), before_publish) => {
            done.map_err(|_| late())??
        }
        () = admission.evicted() => return Err(evicted()),
    };
    admission.published();
    let name = crate::registry::key::normal_name(&request.stream_key);
    let span = tracing::info_span!("stream", key = %crate::registry::key::shown(&name));
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
    let key = match StreamKey::parse(&request.stream_key) {
        Ok(key) => key,
        Err(e) => {
            session
                .reject_publish(&request, "NetStream.Publish.BadName", &e.to_string())
                .await?;
            return Err(RtmpError::Protocol(format!("publish refused: {e}")).into());
        }
    };
    if let Some(remaining) = relay.blocked_for(&key.name) {
        let secs = crate::registry::seconds_left(remaining);
        relay
            .events
            .emit(&key.name, peer, EventKind::Blocked { remaining_s: secs });
        session
            .reject_publish(
                &request,
                "NetStream.Publish.Rejected",
                &format!("stream key blocked for {secs} more seconds"),
            )
            .await?;
        return Err(RelayError::Blocked(secs));
    }
    let info = StreamInfo::new(&key.name, &request.app, peer);
    let Some((claimed, cut_rx)) = relay.registry.claim(&info) else {
        session
            .reject_publish(
                &request,
                "NetStream.Publish.BadName",
                "stream key already publishing",
            )
            .await?;
        return Err(RtmpError::Protocol("stream key is already publishing".into()).into());
    };
    // Admission after the key is claimed: a publish refused for its key takes no room.
    if let Some(Err(reason)) = relay.taps.as_ref().map(|taps| taps.admit(&info)) {
        drop(claimed);
        relay.events.emit(
            &key.name,
            peer,
            EventKind::AtCapacity {
                reason: reason.clone(),
            },
        );
        // The broadcaster learns that there is no room, not how full inspection is.
        session
            .reject_publish(
                &request,
                "NetStream.Publish.Rejected",
                "at capacity: try again later or elsewhere",
            )
            .await?;
        return Err(RelayError::AtCapacity(reason));
    }
    let (url_text, upstream_name) = relay.settings.route(&key.name);
    let upstream_key = key.upstream(&upstream_name);
    // Validated with the config, so this only fails if the config was built by hand.
    let url = RtmpUrl::parse(url_text)?;
    let target = PublishTarget {
        url,
        stream_key: upstream_key,
        publish_type: request.publish_type.clone(),
        fourcc_list: request.fourcc_list.clone(),
    };
    session.accept_publish(&request).await?;
    tracing::info!(
        app = %request.app.escape_debug(),
        upstream = %target.url,
        upstream_key = %crate::registry::key::shown(&target.stream_key),
        "publish"
    );
    relay.events.emit(
        &key.name,
        peer,
        EventKind::Publish {
            app: request.app.clone(),
        },
    );

    let started = Instant::now();
    let mut live = LiveStream::start(&relay, &info, &target, cut_rx);
    let ending = live.run(&mut session).await;
    let ended_by_shutdown = live.ended_by_shutdown();
    let LiveStream {
        upstream,
        tap,
        forwarded,
        left_out,
        ..
    } = live;

    let drain = relay.settings.limits.drain_timeout;
    let upstream_bytes = finish_upstream(upstream, &ending, drain).await;
    match &ending {
        Ok(()) if ended_by_shutdown => {
            drop(
                session
                    .fail("NetStream.Failed", "hashgate is shutting down")
                    .await,
            );
        }
        Ok(()) => drop(session.close(LINGER).await),
        Err(error @ RelayError::Upstream { source, .. }) => {
            let code = match source {
                RtmpError::Refused { .. } => "NetStream.Publish.Rejected",
                _ => "NetStream.Failed",
            };
            tracing::warn!("upstream failed: {error}");
            // The broadcaster is told that the platform failed, not where the platform's ingest
            // is (the operator's log has the address); its connection may already be gone.
            drop(session.fail(code, &source.broadcaster_reason()).await);
        }
        Err(RelayError::Cut(reason) | RelayError::Unreadable(reason)) => {
            // Whatever is still queued is dropped; the broadcaster is told why.
            drop(session.fail("NetStream.Publish.Rejected", reason).await);
        }
        Err(_) => {}
    }
    let reason = match &ending {
        Ok(()) if ended_by_shutdown => "shutdown",
        Ok(()) => "broadcaster",
        Err(RelayError::Cut(_)) => "cut",
        Err(RelayError::Upstream { .. }) => "upstream",
        Err(RelayError::Unreadable(_)) => "refused",
        Err(_) => "error",
    };
    info.stats.ended.store(true, Ordering::Release);
    crate::memory::release_soon();
    // The key is free again before its end is announced: a broadcaster who reconnects on the
    // event meets its block (if any), not itself.
    drop(claimed);
    relay.events.emit(
        &key.name,
        peer,
        EventKind::Unpublish {
            reason: reason.to_owned(),
        },
    );
    tracing::info!(
        seconds = format!("{:.1}", started.elapsed().as_secs_f64()),
        messages = forwarded.messages,
        upstream_bytes,
        inspection_dropped = tap.as_ref().map_or(0, VideoTap::dropped),
        left_out = left_out.count(),
        "unpublish"
    );
    ending
}

/// What went to the platform: the message count and how far behind live it is.
pub(super) struct Forwarded {
    pub(super) messages: u64,
    pub(super) lag: LiveLag,
}

impl Forwarded {
    pub(super) fn new(max_lag: std::time::Duration) -> Forwarded {
        Forwarded {
            messages: 0,
            lag: LiveLag::new(max_lag),
        }
    }
}

/// Queues one message for the platform and counts it.
pub(super) fn forward(
    up: &mut UpstreamPublisher,
    msg: &crate::rtmp::Message,
    forwarded: &mut Forwarded,
) {
    up.queue_media(msg);
    forwarded.messages += 1;
    metrics().bytes_forwarded.add(msg.payload.len() as u64);
}

/// Dials the platform and runs the publish sequence.
pub(super) async fn connect_upstream(
    relay: Arc<Relay>,
    target: PublishTarget,
) -> Result<Box<UpstreamPublisher>, RtmpError> {
    UpstreamPublisher::publish(
        &target,
        relay.tls_client.as_ref(),
        relay.decoder_limits(),
        relay.settings.upstream.connect_timeout,
    )
    .await
    .map(Box::new)
}

/// Writes what is queued for the platform. Each write may wait `idle` for progress; and the
/// stream may fall at most `limits.max_upstream_lag` behind live while waiting on the platform
/// (a platform that reads a trickle makes progress on every write, and would otherwise hold
/// the broadcaster forever).
pub(super) async fn write_upstream(
    up: &mut UpstreamPublisher,
    idle: std::time::Duration,
    lag: &mut LiveLag,
) -> Result<(), RtmpError> {
    let started = Instant::now();
    lag.write_started(started);
    let mut flush = std::pin::pin!(up.flush());
    let result = loop {
        let waiting = started.elapsed();
        if let Some(behind) = lag.over(waiting) {
            break Err(RtmpError::Behind {
                lag_s: behind.as_secs_f64(),
            });
        }
        let Some(idle_left) = idle.checked_sub(waiting).filter(|d| !d.is_zero()) else {
            break Err(RtmpError::Timeout("writing to the platform (idle_timeout)"));
        };
        // Wake when the lag could reach its bound, to judge it then.
        let check = lag.allowance(waiting).max(LAG_CHECK_MIN).min(idle_left);
        if let Ok(result) = tokio::time::timeout(check, flush.as_mut()).await {
            break result;
        }
    };
    lag.write_finished(Instant::now(), started.elapsed());
    result
}

/// Shortest wait between two lag checks while a write to the platform waits.
const LAG_CHECK_MIN: std::time::Duration = std::time::Duration::from_millis(100);

/// Ends the upstream leg: after a clean end the held tail is sent and the platform gets
/// FCUnpublish and deleteStream, within `drain`. Returns the bytes sent upstream.
async fn finish_upstream(
    upstream: Upstream,
    ending: &Result<(), RelayError>,
    drain: std::time::Duration,
) -> u64 {
    let upstream_broke = matches!(ending, Err(RelayError::Upstream { .. }));
    let up = match upstream {
        Upstream::Failed => return 0,
        Upstream::Ready(up) => up,
        Upstream::Connecting { task, .. } if ending.is_err() => {
            task.abort();
            return 0;
        }
        Upstream::Connecting {
            mut task,
            mut pending,
        } => {
            // A stream shorter than the upstream setup still reaches the platform.
            match tokio::time::timeout(drain, &mut task).await {
                Ok(Ok(Ok(mut up))) => {
                    for msg in pending.drain() {
                        forward(&mut up, &msg, &mut Forwarded::new(drain));
                    }
                    up
                }
                Ok(_) => return 0,
                Err(_) => {
                    task.abort();
                    return 0;
                }
            }
        }
    };
    let bytes = up.bytes_written();
    if upstream_broke {
        return bytes;
    }
    match tokio::time::timeout(drain, up.unpublish()).await {
        Ok(Ok(total)) => total,
        Ok(Err(e)) => {
            tracing::warn!("upstream unpublish failed: {e}");
            bytes
        }
        Err(_) => {
            tracing::warn!(
                limit = "drain_timeout",
                "upstream unpublish took over {drain:?}"
            );
            bytes
        }
    }
}
