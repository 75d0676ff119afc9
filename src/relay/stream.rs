//! One broadcaster from handshake to close, and the upstream leg of its stream.
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

use tokio::task::{JoinError, JoinHandle};
use tracing::Instrument;

use super::delay::DelayLine;
use super::door::Admission;
use super::lag::LiveLag;
use super::queue::PendingMedia;
use super::tap::{StreamInfo, VideoTap};
use super::{Relay, RelayError};
use crate::events::EventKind;
use crate::metrics::metrics;
use crate::registry::StreamKey;
use crate::rtmp::client::{PublishTarget, UpstreamEvent, UpstreamPublisher};
use crate::rtmp::connection::{BoxTransport, Connection};
use crate::rtmp::handshake;
use crate::rtmp::message::kind;
use crate::rtmp::server::{PublishRequest, PublisherEvent, ServerSession};
use crate::rtmp::url::RtmpUrl;
use crate::rtmp::RtmpError;

/// How often a delay line whose head is due but not yet inspected looks again.
const INSPECTION_POLL: std::time::Duration = std::time::Duration::from_millis(10);

/// How long a broadcaster that ended its stream gets to hang up before we close.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// The upstream leg: being set up, or publishing.
enum Upstream {
    Connecting {
        task: JoinHandle<Result<Box<UpstreamPublisher>, RtmpError>>,
        pending: PendingMedia,
    },
    Ready(Box<UpstreamPublisher>),
    /// The setup failed; nothing is left to wait for or to close.
    Failed,
}

/// What happened on the upstream leg.
enum UpstreamStep {
    Connected(Result<Result<Box<UpstreamPublisher>, RtmpError>, JoinError>),
    Event(Result<UpstreamEvent, RtmpError>),
}

impl Upstream {
    /// Waits for the next thing the upstream leg does. Cancel-safe.
    async fn next_step(&mut self) -> UpstreamStep {
        match self {
            Upstream::Connecting { task, .. } => UpstreamStep::Connected(task.await),
            Upstream::Ready(up) => UpstreamStep::Event(up.next_event().await),
            Upstream::Failed => std::future::pending().await,
        }
    }
}

/// What the stream's task reacts to.
enum Step {
    Publisher(Result<Result<PublisherEvent, RtmpError>, tokio::time::error::Elapsed>),
    Upstream(UpstreamStep),
    Release,
    Cut(String),
    Shutdown,
    DrainExpired,
}

/// Sleeps until `at`, or forever when there is nothing to wait for.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

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
    let Some((_live, mut cut_rx)) = relay.registry.claim(&info) else {
        session
            .reject_publish(
                &request,
                "NetStream.Publish.BadName",
                "stream key already publishing",
            )
            .await?;
        return Err(RtmpError::Protocol("stream key is already publishing".into()).into());
    };
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
    let mut tap = relay.taps.as_ref().and_then(|taps| taps.open(&info));
    let mut audio_tap = relay
        .audio_taps
        .as_ref()
        .and_then(|taps| taps.open_audio(&info));
    let mut upstream = Upstream::Connecting {
        task: tokio::spawn(connect_upstream(relay.clone(), target.clone()).in_current_span()),
        pending: PendingMedia::new(relay.settings.limits.queue_bytes),
    };
    let idle = relay.settings.limits.idle_timeout;
    let upstream_failed = |source: RtmpError| RelayError::Upstream {
        url: target.url.to_string(),
        source,
    };
    let mut forwarded = Forwarded::new(relay.settings.limits.max_upstream_lag);
    let delay = relay.settings.delay;
    let gate_timeout = relay.settings.max_blind_degraded;
    let mut delay_line = (!delay.is_zero())
        .then(|| DelayLine::new(delay, relay.settings.limits.queue_bytes, gate_timeout));
    // Without inspection there is nothing to wait for.
    let inspected = tap.is_some();
    let mut publisher_done = false;
    let mut drain_deadline: Option<Instant> = None;
    let mut settle_asked = false;

    let ending: Result<(), RelayError> = loop {
        // With a delay buffer, the stream ends when the broadcaster has and the line is empty.
        if publisher_done && delay_line.as_ref().is_none_or(DelayLine::is_empty) {
            break Ok(());
        }
        let release_at = match (&delay_line, &upstream) {
            // Due but waiting for inspection: look again shortly (inspection runs elsewhere and
            // does not signal this task; 10 ms is well under a frame). Inspection may be holding
            // frames for a sample that only more video would bring (the video paused): ask it
            // to finish them, once per wait.
            (Some(line), Upstream::Ready(_)) if line.waiting_for_inspection(Instant::now()) => {
                if !settle_asked {
                    settle_asked = true;
                    if let Some(tap) = tap.as_mut() {
                        tap.settle();
                    }
                }
                Some(Instant::now() + INSPECTION_POLL)
            }
            (Some(line), Upstream::Ready(_)) => {
                settle_asked = false;
                line.next_release()
            }
            _ => None,
        };
        let step = tokio::select! {
            // A cut goes first: nothing due in the same instant may slip out before it.
            biased;
            Some(reason) = cut_rx.recv() => Step::Cut(reason),
            event = tokio::time::timeout(idle, session.next_event()), if !publisher_done => {
                Step::Publisher(event)
            }
            step = upstream.next_step() => Step::Upstream(step),
            _ = sleep_until_some(release_at) => Step::Release,
            _ = relay.shutdown.cancelled(), if drain_deadline.is_none() => Step::Shutdown,
            _ = sleep_until_some(drain_deadline) => Step::DrainExpired,
        };
        let outcome = match step {
            // Shutting down: the stream may end by itself within the drain timeout (its held
            // media then goes out as usual); past it, it is ended.
            Step::Shutdown => {
                drain_deadline = Some(Instant::now() + relay.settings.limits.drain_timeout);
                Ok(())
            }
            Step::DrainExpired => break Ok(()),
            Step::Cut(reason) => {
                if let Some(line) = delay_line.as_mut() {
                    let held = line.discard();
                    tracing::info!(held, "cut: held media discarded, never forwarded");
                }
                break Err(RelayError::Cut(reason));
            }
            Step::Release => match (&mut delay_line, &mut upstream) {
                (Some(line), Upstream::Ready(up)) => {
                    let processed = if inspected {
                        info.stats.processed_wall()
                    } else {
                        u64::MAX
                    };
                    for msg in line.take_due(Instant::now(), processed) {
                        forward(up, &msg, &mut forwarded);
                    }
                    write_upstream(up, idle, &mut forwarded.lag)
                        .await
                        .map_err(upstream_failed)
                }
                _ => Ok(()),
            },
            Step::Publisher(Err(_)) => Err(RelayError::Limit {
                limit: "idle_timeout",
                detail: format!("nothing from the broadcaster for {idle:?}"),
            }),
            Step::Publisher(Ok(Err(e))) => Err(e.into()),
            Step::Publisher(Ok(Ok(PublisherEvent::Closed | PublisherEvent::Unpublished))) => {
                publisher_done = true;
                if let Some(tap) = tap.as_mut() {
                    tap.end();
                }
                Ok(())
            }
            Step::Publisher(Ok(Ok(PublisherEvent::Media(msg)))) => {
                let size = msg.payload.len() as u64;
                info.stats.bytes_in.fetch_add(size, Ordering::Relaxed);
                metrics().bytes_received.add(size);
                // Video inside aggregate messages is inspected like any other: the platform
                // unpacks them (the aggregate itself is forwarded as it came).
                let parts = match msg.type_id {
                    kind::AGGREGATE => match msg.aggregate_parts() {
                        Ok(parts) => parts,
                        Err(e) => break Err(RtmpError::Protocol(e.to_string()).into()),
                    },
                    _ => Vec::new(),
                };
                if let Some(audio_tap) = audio_tap.as_mut() {
                    let arrived = Instant::now();
                    for audio in std::iter::once(&msg)
                        .chain(parts.iter())
                        .filter(|m| m.type_id == kind::AUDIO)
                    {
                        if !audio_tap.offer(audio, arrived) {
                            info.stats.audio_dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                let videos = std::iter::once(&msg)
                    .chain(parts.iter())
                    .filter(|m| m.type_id == kind::VIDEO);
                for video in videos {
                    info.stats.video_messages.fetch_add(1, Ordering::Relaxed);
                    let arrived = Instant::now();
                    let clock = info.stats.video_arrived(video.timestamp, arrived);
                    if let Some(tap) = tap.as_mut() {
                        let before = tap.dropped();
                        tap.offer(video, arrived, clock);
                        let dropped = tap.dropped() - before;
                        if dropped > 0 {
                            info.stats
                                .inspection_dropped
                                .fetch_add(dropped, Ordering::Relaxed);
                        }
                    }
                }
                if let Some(line) = delay_line.as_mut() {
                    let gate = if inspected {
                        info.stats.received_wall()
                    } else {
                        0
                    };
                    line.push(msg, Instant::now(), gate)
                        .map_err(|full| RelayError::Limit {
                            limit: "queue_bytes",
                            detail: format!("delay buffer over its cap: {full}"),
                        })
                } else {
                    match &mut upstream {
                        Upstream::Failed => Ok(()),
                        Upstream::Connecting { pending, .. } => {
                            pending.push(msg).map_err(|(full, _)| RelayError::Limit {
                                limit: "queue_bytes",
                                detail: format!("upstream publish not ready yet: {full}"),
                            })
                        }
                        Upstream::Ready(up) => {
                            forward(up, &msg, &mut forwarded);
                            write_upstream(up, idle, &mut forwarded.lag)
                                .await
                                .map_err(upstream_failed)
                        }
                    }
                }
            }
            Step::Upstream(UpstreamStep::Connected(joined)) => {
                let connected = joined
                    .map_err(|e| RtmpError::Protocol(format!("upstream task failed: {e}")))
                    .and_then(|result| result);
                match connected {
                    Ok(mut up) => {
                        if let Upstream::Connecting { pending, .. } = &mut upstream {
                            for msg in pending.drain() {
                                forward(&mut up, &msg, &mut forwarded);
                            }
                        }
                        tracing::info!(
                            handshake = ?up.handshake,
                            connect_ms = started.elapsed().as_millis() as u64,
                            "upstream publishing"
                        );
                        let flushed = write_upstream(&mut up, idle, &mut forwarded.lag).await;
                        upstream = Upstream::Ready(up);
                        flushed.map_err(upstream_failed)
                    }
                    Err(e) => {
                        upstream = Upstream::Failed;
                        Err(upstream_failed(e))
                    }
                }
            }
            Step::Upstream(UpstreamStep::Event(event)) => match (event, &mut upstream) {
                (Ok(UpstreamEvent::Nothing), Upstream::Ready(up)) => {
                    write_upstream(up, idle, &mut forwarded.lag)
                        .await
                        .map_err(upstream_failed)
                }
                (Ok(UpstreamEvent::Closed), _) => Err(upstream_failed(RtmpError::Closed)),
                (Err(e), _) => Err(upstream_failed(e)),
                (Ok(UpstreamEvent::Nothing), _) => Ok(()),
            },
        };
        if let Err(e) = outcome {
            break Err(e);
        }
        if let Err(e) = session.flush().await {
            break Err(e.into());
        }
    };

    let drain = relay.settings.limits.drain_timeout;
    let upstream_bytes = finish_upstream(upstream, &ending, drain).await;
    let ended_by_shutdown = drain_deadline.is_some() && !publisher_done;
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
        Err(RelayError::Cut(reason)) => {
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
        Err(_) => "error",
    };
    info.stats.ended.store(true, Ordering::Release);
    crate::memory::release_soon();
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
        "unpublish"
    );
    ending
}

/// Queues one message for the platform and counts it.
/// What went to the platform: the message count and how far behind live it is.
struct Forwarded {
    messages: u64,
    lag: LiveLag,
}

impl Forwarded {
    fn new(max_lag: std::time::Duration) -> Forwarded {
        Forwarded {
            messages: 0,
            lag: LiveLag::new(max_lag),
        }
    }
}

fn forward(up: &mut UpstreamPublisher, msg: &crate::rtmp::Message, forwarded: &mut Forwarded) {
    up.queue_media(msg);
    forwarded.messages += 1;
    metrics().bytes_forwarded.add(msg.payload.len() as u64);
}

/// Dials the platform and runs the publish sequence.
async fn connect_upstream(
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

/// Sends what is queued upstream; a platform that accepts nothing for `limit` fails the stream.
/// Writes what is queued for the platform. Each write may wait `idle` for progress; and the
/// stream may fall at most `limits.max_upstream_lag` behind live while waiting on the platform
/// (a platform that reads a trickle makes progress on every write, and would otherwise hold
/// the broadcaster forever).
async fn write_upstream(
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
