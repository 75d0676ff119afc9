//! One published stream's life, from the broadcaster's accepted publish to its end, as a state
//! machine: a [`Phase`] (publishing, draining for a shutdown, flushing the delay line after the
//! broadcaster ended), the upstream leg's state ([`Upstream`]: connecting with media held, ready,
//! failed), and one named handler per thing that can happen ([`Step`]). The task waits on the
//! two sockets, the delay line's next release, a cut and the shutdown, and nothing else.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::{JoinError, JoinHandle};
use tracing::Instrument;

use super::audio_tap::AudioTap;
use super::delay::{DelayLine, Gates, Progress};
use super::queue::PendingMedia;
use super::reading::{LeftOut, Reader};
use super::stream::{connect_upstream, forward, write_upstream, Forwarded};
use super::tap::{StreamInfo, VideoTap};
use super::{Relay, RelayError};
use crate::metrics::metrics;
use crate::rtmp::client::{PublishTarget, UpstreamEvent, UpstreamPublisher};
use crate::rtmp::message::kind;
use crate::rtmp::server::{PublisherEvent, ServerSession};
use crate::rtmp::{Message, RtmpError};

/// How often a delay line whose head is due but not yet inspected looks again.
const INSPECTION_POLL: Duration = Duration::from_millis(10);

/// The upstream leg: being set up, or publishing.
pub(super) enum Upstream {
    /// The publish to the platform is being set up on its own task; media is held meanwhile.
    Connecting {
        task: JoinHandle<Result<Box<UpstreamPublisher>, RtmpError>>,
        pending: PendingMedia,
    },
    /// The platform accepted the publish.
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

/// Where the stream is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The broadcaster publishes; media flows.
    Publishing,
    /// Shutting down: the broadcaster may still end by itself until `until`; then it is ended.
    Draining { until: Instant },
    /// The broadcaster is done: what the delay line holds goes out (by `until` when shutting
    /// down), then the stream ends.
    Flushing { until: Option<Instant> },
}

impl Phase {
    fn publisher_done(self) -> bool {
        matches!(self, Phase::Flushing { .. })
    }

    fn drain_deadline(self) -> Option<Instant> {
        match self {
            Phase::Publishing => None,
            Phase::Draining { until } => Some(until),
            Phase::Flushing { until } => until,
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

/// Whether the stream goes on after a step.
enum Flow {
    Continue,
    End,
}

/// Sleeps until `at`, or forever when there is nothing to wait for.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// A published stream between its publish and its end.
pub(super) struct LiveStream<'a> {
    relay: &'a Arc<Relay>,
    info: &'a StreamInfo,
    target: &'a PublishTarget,
    cut_rx: UnboundedReceiver<String>,
    pub(super) upstream: Upstream,
    pub(super) tap: Option<VideoTap>,
    audio_tap: Option<AudioTap>,
    delay_line: Option<DelayLine>,
    pub(super) forwarded: Forwarded,
    /// Messages not forwarded because the platform would read them apart.
    pub(super) left_out: LeftOut,
    /// The stream as the gate and the platform both read it.
    reader: Reader,
    /// Whether inspection watches the stream (without it there is nothing to wait for).
    inspected: bool,
    idle: Duration,
    phase: Phase,
    /// Inspection was asked to finish what it holds during the current wait.
    settle_asked: bool,
    started: Instant,
}

impl<'a> LiveStream<'a> {
    /// Opens the taps and starts the upstream publish to `target`.
    pub(super) fn start(
        relay: &'a Arc<Relay>,
        info: &'a StreamInfo,
        target: &'a PublishTarget,
        cut_rx: UnboundedReceiver<String>,
    ) -> LiveStream<'a> {
        let settings = &relay.settings;
        let tap = relay.taps.as_ref().and_then(|taps| taps.open(info));
        let audio_tap = relay
            .audio_taps
            .as_ref()
            .and_then(|taps| taps.open_audio(info));
        let upstream = Upstream::Connecting {
            task: tokio::spawn(connect_upstream(relay.clone(), target.clone()).in_current_span()),
            pending: PendingMedia::new(settings.limits.queue_bytes),
        };
        let delay_line = (!settings.delay.is_zero()).then(|| {
            DelayLine::new(
                settings.delay,
                settings.limits.queue_bytes,
                settings.max_blind_degraded,
            )
        });
        LiveStream {
            relay,
            info,
            target,
            cut_rx,
            upstream,
            inspected: tap.is_some(),
            tap,
            audio_tap,
            delay_line,
            forwarded: Forwarded::new(settings.limits.max_upstream_lag),
            left_out: LeftOut::default(),
            reader: Reader::default(),
            idle: settings.limits.idle_timeout,
            phase: Phase::Publishing,
            settle_asked: false,
            started: Instant::now(),
        }
    }

    /// Whether the stream was ended by a shutdown (not by its broadcaster).
    pub(super) fn ended_by_shutdown(&self) -> bool {
        matches!(self.phase, Phase::Draining { .. })
    }

    /// Runs the stream until it ends: `Ok` when the broadcaster ended it (or the drain after a
    /// shutdown ran out), else why it was ended.
    pub(super) async fn run(&mut self, session: &mut ServerSession) -> Result<(), RelayError> {
        loop {
            // With a delay buffer, the stream ends when the broadcaster has and the line is empty.
            if self.phase.publisher_done()
                && self.delay_line.as_ref().is_none_or(DelayLine::is_empty)
            {
                return Ok(());
            }
            let step = self.next_step(session).await;
            if let Flow::End = self.on_step(step).await? {
                return Ok(());
            }
            session.flush().await?;
        }
    }

    /// When the delay line next lets something out. Due but waiting for inspection: look again
    /// shortly (inspection runs elsewhere and does not signal this task; 10 ms is well under a
    /// frame). Inspection may be holding frames for a sample that only more video would bring
    /// (the video paused): it is asked to finish them, once per wait.
    fn release_at(&mut self) -> Option<Instant> {
        let (Some(line), Upstream::Ready(_)) = (&self.delay_line, &self.upstream) else {
            return None;
        };
        let now = Instant::now();
        if !line.waiting_for_inspection(now, self.processed()) {
            self.settle_asked = false;
            return line.next_release();
        }
        if !self.settle_asked {
            self.settle_asked = true;
            if let Some(tap) = self.tap.as_mut() {
                tap.settle();
            }
        }
        Some(now + INSPECTION_POLL)
    }

    /// How far inspection has processed the video (on the wall coverage clock; all of it when
    /// the stream's video is not inspected) and judged the audio (up to what arrived when).
    fn processed(&self) -> Progress {
        Progress {
            video: if self.inspected {
                self.info.stats.processed_wall()
            } else {
                u64::MAX
            },
            audio: self.info.stats.audio_judged_up_to(),
        }
    }

    async fn next_step(&mut self, session: &mut ServerSession) -> Step {
        let release_at = self.release_at();
        let publisher_done = self.phase.publisher_done();
        let drain_deadline = self.phase.drain_deadline();
        let idle = self.idle;
        tokio::select! {
            // A cut goes first: nothing due in the same instant may slip out before it.
            biased;
            Some(reason) = self.cut_rx.recv() => Step::Cut(reason),
            event = tokio::time::timeout(idle, session.next_event()), if !publisher_done => {
                Step::Publisher(event)
            }
            step = self.upstream.next_step() => Step::Upstream(step),
            _ = sleep_until_some(release_at) => Step::Release,
            _ = self.relay.shutdown.cancelled(), if drain_deadline.is_none() => Step::Shutdown,
            _ = sleep_until_some(drain_deadline) => Step::DrainExpired,
        }
    }

    async fn on_step(&mut self, step: Step) -> Result<Flow, RelayError> {
        match step {
            Step::Shutdown => self.on_shutdown(),
            // The drain after a shutdown ran out: the stream is ended.
            Step::DrainExpired => return Ok(Flow::End),
            Step::Cut(reason) => return Err(self.on_cut(reason)),
            Step::Release => self.on_release().await?,
            Step::Publisher(Err(_)) => {
                return Err(RelayError::Limit {
                    limit: "idle_timeout",
                    detail: format!("nothing from the broadcaster for {:?}", self.idle),
                })
            }
            Step::Publisher(Ok(Err(e))) => return Err(e.into()),
            Step::Publisher(Ok(Ok(PublisherEvent::Closed | PublisherEvent::Unpublished))) => {
                self.on_broadcaster_done()
            }
            Step::Publisher(Ok(Ok(PublisherEvent::Media(msg)))) => self.on_media(msg).await?,
            Step::Upstream(UpstreamStep::Connected(joined)) => {
                self.on_upstream_connected(joined).await?
            }
            Step::Upstream(UpstreamStep::Event(event)) => self.on_upstream_event(event).await?,
        }
        Ok(Flow::Continue)
    }

    /// Shutting down: the stream may end by itself within the drain timeout (its held media
    /// then goes out as usual); past it, it is ended.
    fn on_shutdown(&mut self) {
        let until = Instant::now() + self.relay.settings.limits.drain_timeout;
        self.phase = match self.phase {
            Phase::Publishing | Phase::Draining { .. } => Phase::Draining { until },
            Phase::Flushing { .. } => Phase::Flushing { until: Some(until) },
        };
    }

    fn on_cut(&mut self, reason: String) -> RelayError {
        if let Some(line) = self.delay_line.as_mut() {
            let held = line.discard();
            tracing::info!(held, "cut: held media discarded, never forwarded");
        }
        RelayError::Cut(reason)
    }

    fn on_broadcaster_done(&mut self) {
        self.phase = Phase::Flushing {
            until: self.phase.drain_deadline(),
        };
        if let Some(tap) = self.tap.as_mut() {
            tap.end();
        }
    }

    fn upstream_failed(&self, source: RtmpError) -> RelayError {
        RelayError::Upstream {
            url: self.target.url.to_string(),
            source,
        }
    }

    /// Lets out what the delay line holds that is due and inspected.
    async fn on_release(&mut self) -> Result<(), RelayError> {
        let processed = self.processed();
        // Inspection records its progress after its verdict: a cut that verdict sent is in
        // the channel by now, and must win over what that progress lets out.
        if let Ok(reason) = self.cut_rx.try_recv() {
            return Err(self.on_cut(reason));
        }
        let (Some(line), Upstream::Ready(up)) = (&mut self.delay_line, &mut self.upstream) else {
            return Ok(());
        };
        for msg in line.take_due(Instant::now(), processed) {
            forward(up, &msg, &mut self.forwarded);
        }
        let written = write_upstream(up, self.idle, &mut self.forwarded.lag).await;
        written.map_err(|e| self.upstream_failed(e))
    }

    /// One message from the broadcaster: counted, read as the platform will read it (see
    /// [`Reader`]), its audio and video offered to the taps (never waiting), then what goes on
    /// held in the delay line, held for the upstream being set up, or forwarded.
    async fn on_media(&mut self, msg: Message) -> Result<(), RelayError> {
        let stats = &self.info.stats;
        let size = msg.payload.len() as u64;
        stats.bytes_in.fetch_add(size, Ordering::Relaxed);
        metrics().bytes_received.add(size);
        let read = self
            .reader
            .read(msg)
            .map_err(|e| RelayError::Unreadable(e.to_string()))?;
        for why in &read.left_out {
            self.left_out.note(why);
        }
        if let Some(audio_tap) = self.audio_tap.as_mut() {
            let arrived = Instant::now();
            for audio in read.media.iter().filter(|m| m.type_id == kind::AUDIO) {
                // Offered either way: a message the inbox dropped was never judged, so a delay
                // waiting for audio holds until later audio is judged or its wait times out.
                stats.audio_offered(arrived);
                if !audio_tap.offer(audio, arrived) {
                    stats.audio_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        for video in read.media.iter().filter(|m| m.type_id == kind::VIDEO) {
            stats.video_messages.fetch_add(1, Ordering::Relaxed);
            let arrived = Instant::now();
            let clock = stats.video_arrived(video.timestamp, arrived);
            if let Some(tap) = self.tap.as_mut() {
                let before = tap.dropped();
                tap.offer(video, arrived, clock);
                let dropped = tap.dropped() - before;
                if dropped > 0 {
                    stats
                        .inspection_dropped
                        .fetch_add(dropped, Ordering::Relaxed);
                }
            }
        }
        for msg in read.pass_on {
            self.pass_on(msg).await?;
        }
        Ok(())
    }

    /// Holds a message in the delay line, holds it for the upstream being set up, or forwards it.
    async fn pass_on(&mut self, msg: Message) -> Result<(), RelayError> {
        if let Some(line) = self.delay_line.as_mut() {
            let now = Instant::now();
            let settings = &self.relay.settings;
            let gates = Gates {
                video: if self.inspected && settings.waits_for_video {
                    self.info.stats.received_wall()
                } else {
                    0
                },
                audio: self.audio_tap.is_some() && settings.waits_for_audio,
            };
            return line
                .push(msg, now, gates)
                .map_err(|full| RelayError::Limit {
                    limit: "queue_bytes",
                    detail: format!("delay buffer over its cap: {full}"),
                });
        }
        match &mut self.upstream {
            Upstream::Failed => Ok(()),
            Upstream::Connecting { pending, .. } => {
                pending.push(msg).map_err(|(full, _)| RelayError::Limit {
                    limit: "queue_bytes",
                    detail: format!("upstream publish not ready yet: {full}"),
                })
            }
            Upstream::Ready(up) => {
                forward(up, &msg, &mut self.forwarded);
                let written = write_upstream(up, self.idle, &mut self.forwarded.lag).await;
                written.map_err(|e| self.upstream_failed(e))
            }
        }
    }

    /// The platform accepted the publish (what was held goes out first) or refused it.
    async fn on_upstream_connected(
        &mut self,
        joined: Result<Result<Box<UpstreamPublisher>, RtmpError>, JoinError>,
    ) -> Result<(), RelayError> {
        let connected = joined
            .map_err(|e| RtmpError::Protocol(format!("upstream task failed: {e}")))
            .and_then(|result| result);
        match connected {
            Ok(mut up) => {
                if let Upstream::Connecting { pending, .. } = &mut self.upstream {
                    for msg in pending.drain() {
                        forward(&mut up, &msg, &mut self.forwarded);
                    }
                }
                tracing::info!(
                    handshake = ?up.handshake,
                    connect_ms = self.started.elapsed().as_millis() as u64,
                    "upstream publishing"
                );
                let flushed = write_upstream(&mut up, self.idle, &mut self.forwarded.lag).await;
                self.upstream = Upstream::Ready(up);
                flushed.map_err(|e| self.upstream_failed(e))
            }
            Err(e) => {
                self.upstream = Upstream::Failed;
                Err(self.upstream_failed(e))
            }
        }
    }

    /// The platform said something (acknowledgements, a close).
    async fn on_upstream_event(
        &mut self,
        event: Result<UpstreamEvent, RtmpError>,
    ) -> Result<(), RelayError> {
        match (event, &mut self.upstream) {
            (Ok(UpstreamEvent::Nothing), Upstream::Ready(up)) => {
                let written = write_upstream(up, self.idle, &mut self.forwarded.lag).await;
                written.map_err(|e| self.upstream_failed(e))
            }
            (Ok(UpstreamEvent::Closed), _) => Err(self.upstream_failed(RtmpError::Closed)),
            (Err(e), _) => Err(self.upstream_failed(e)),
            (Ok(UpstreamEvent::Nothing), _) => Ok(()),
        }
    }
}
