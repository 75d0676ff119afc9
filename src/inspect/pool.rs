//! The inspection pool: worker threads, each running many streams' inspectors, fed by the
//! relay's bounded video taps. A worker that falls behind only makes its taps fill up; the relay
//! then drops video for inspection (whole GOPs, see `relay::tap`) and never waits.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tracing::Instrument;

use super::stream::{InspectSettings, InspectStats, SampledFrame, StreamInspector};
use crate::relay::{StreamInfo, TapProvider, TappedVideo, VideoTap};

/// Where hashed frames go: the matcher, or a test.
pub trait FrameSink: Send + Sync {
    /// A sampled frame of `stream` was hashed.
    fn frame(&self, stream: &StreamInfo, frame: SampledFrame);
    /// `stream` ended; `stats` are its final counters.
    fn stream_ended(&self, _stream: &StreamInfo, _stats: &InspectStats) {}
    /// How far behind the live edge inspection of `stream` is, after each video message.
    fn lag(&self, _stream: &StreamInfo, _lag: std::time::Duration) {}
}

/// Picks the sampling settings of a stream (per-route overrides).
pub type SettingsFor = dyn Fn(&StreamInfo) -> InspectSettings + Send + Sync;

struct Job {
    stream: StreamInfo,
    settings: InspectSettings,
    rx: mpsc::Receiver<TappedVideo>,
    stats: Arc<InspectStats>,
}

struct Worker {
    jobs: mpsc::UnboundedSender<Job>,
    active: Arc<AtomicUsize>,
}

/// The pool. Implements [`TapProvider`], so the relay opens one tap per stream through it.
pub struct Inspector {
    workers: Vec<Worker>,
    tap_capacity: usize,
    settings_for: Box<SettingsFor>,
}

impl Inspector {
    /// Starts `threads` workers (0 = one per core). Each stream's tap holds `tap_capacity`
    /// video messages.
    pub fn start(
        threads: usize,
        tap_capacity: usize,
        settings_for: Box<SettingsFor>,
        sink: Arc<dyn FrameSink>,
    ) -> std::io::Result<Inspector> {
        let threads = match threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let mut workers = Vec::with_capacity(threads);
        for index in 0..threads {
            let (jobs, job_rx) = mpsc::unbounded_channel();
            let active = Arc::new(AtomicUsize::new(0));
            let (sink, worker_active) = (sink.clone(), active.clone());
            std::thread::Builder::new()
                .name(format!("inspect-{index}"))
                .spawn(move || run_worker(job_rx, sink, worker_active))?;
            workers.push(Worker { jobs, active });
        }
        Ok(Inspector {
            workers,
            tap_capacity,
            settings_for,
        })
    }
}

impl TapProvider for Inspector {
    fn open(&self, stream: &StreamInfo) -> Option<VideoTap> {
        // The least busy worker takes the stream.
        let worker = self
            .workers
            .iter()
            .min_by_key(|w| w.active.load(Ordering::Acquire))?;
        let (tap, rx) = VideoTap::channel(self.tap_capacity);
        let job = Job {
            stream: stream.clone(),
            settings: (self.settings_for)(stream),
            rx,
            stats: Arc::new(InspectStats::default()),
        };
        worker.active.fetch_add(1, Ordering::AcqRel);
        worker.jobs.send(job).ok()?;
        Some(tap)
    }
}

/// A worker: a single-threaded runtime whose tasks are streams; decoding and hashing run
/// inline, so one worker uses at most one core.
fn run_worker(
    mut jobs: mpsc::UnboundedReceiver<Job>,
    sink: Arc<dyn FrameSink>,
    active: Arc<AtomicUsize>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("inspection worker could not start: {e}");
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        while let Some(job) = jobs.recv().await {
            let (sink, active) = (sink.clone(), active.clone());
            let span = tracing::info_span!("inspect", key = %job.stream.stream_key);
            tokio::task::spawn_local(
                async move {
                    inspect(job, sink.as_ref()).await;
                    active.fetch_sub(1, Ordering::AcqRel);
                }
                .instrument(span),
            );
        }
    });
}

async fn inspect(mut job: Job, sink: &dyn FrameSink) {
    let mut inspector = StreamInspector::new(job.settings);
    let mut last_arrival = Instant::now();
    while let Some(video) = job.rx.recv().await {
        last_arrival = video.arrived;
        let lag = video.arrived.elapsed();
        job.stats
            .lag_ms
            .store(lag.as_millis() as u64, Ordering::Relaxed);
        job.stream
            .stats
            .inspection_lag_ms
            .store(lag.as_millis() as u64, Ordering::Relaxed);
        sink.lag(&job.stream, lag);
        inspector.handle(&video, &job.stats, &mut |frame| {
            sink.frame(&job.stream, frame)
        });
        // Let the other streams of this worker have their turn between messages.
        tokio::task::yield_now().await;
    }
    inspector.flush(&job.stats, last_arrival, &mut |frame| {
        sink.frame(&job.stream, frame)
    });
    sink.stream_ended(&job.stream, &job.stats);
}

/// A sink that only logs: each hashed frame at debug level, a summary per stream at info.
pub struct LogSink;

impl FrameSink for LogSink {
    fn frame(&self, stream: &StreamInfo, frame: SampledFrame) {
        tracing::debug!(
            key = %stream.stream_key,
            stream_ms = frame.stream_time_ms,
            pdq = %frame.hashes.full.hash(),
            quality = frame.hashes.full.quality,
            letterboxed = frame.hashes.content.is_some(),
            "frame hashed"
        );
    }

    fn stream_ended(&self, stream: &StreamInfo, stats: &InspectStats) {
        let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        tracing::info!(
            key = %stream.stream_key,
            decoded = get(&stats.frames_decoded),
            hashed = get(&stats.frames_hashed),
            decode_errors = get(&stats.decode_errors),
            unsupported = get(&stats.unsupported_messages),
            "inspection ended"
        );
    }
}
