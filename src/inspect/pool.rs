//! The inspection pool: worker threads shared by every stream, fed by the relay's taps.
//!
//! Fair: a stream is not pinned to a worker. Streams with video waiting are in one ready queue
//! ordered by the CPU time inspection has spent on them (start-time fair queueing), and an idle
//! worker takes the one that has had least, for a slice of a few milliseconds. A stream that is
//! costly to decode therefore slows itself, never another stream's verdict.
//!
//! Fresh: inspecting video seconds old is useless, so a stream's oldest waiting message older
//! than `max_lag` makes inspection skip ahead to the newest keyframe waiting; the skipped
//! stretch is unseen video, judged at once against the coverage bound (uninspectable past it). When the pool as a whole cannot keep up it
//! degrades every stream's sampling — level 1 decodes keyframes only, level 2 fewer of them —
//! and recovers when load falls. That takes several streams falling behind: one stream that
//! costs more than `max_stream_cost` of a core, or that sends video faster than it can be
//! decoded, only makes itself late (its lateness does not count as the pool's), and a stream
//! cannot lower its own sampling: what it makes inspection skip is judged on the strict bound.

use crate::locks::Locked;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use super::admission::{self, Capacity, Load, StreamLoad};
use super::audio::AudioWindow;
use super::stream::{Finding, InspectSettings, InspectStats, SampledFrame, StreamInspector};
use crate::relay::tap::{video_frame_kind, TapSink, VideoFrameKind};
use crate::relay::{StreamInfo, TapProvider, TappedVideo, VideoTap};

/// Where inspection results go: the verdict, or a test.
pub trait FrameSink: Send + Sync {
    /// A sampled frame of `stream` was hashed.
    fn frame(&self, stream: &StreamInfo, frame: SampledFrame);
    /// Inspection found `stream` cannot be inspected, for `cause`.
    fn uninspectable(&self, _stream: &StreamInfo, _cause: &str) {}
    /// `stream` is inspectable but behaves the way evasion does.
    fn anomaly(&self, _stream: &StreamInfo, _cause: &str) {}
    /// The pool changed its sampling level (0 = as configured) with `streams` live.
    fn overload(&self, _level: u8, _streams: usize) {}
    /// Video of `stream` went unseen because the pool is short for others' load (not cut).
    fn unseen(&self, _stream: &StreamInfo, _cause: &str) {}
    /// `stream` ended; `stats` are its final counters.
    fn stream_ended(&self, _stream: &StreamInfo, _stats: &InspectStats) {}
    /// A window of `stream`'s newest audio sub-fingerprints, to match.
    fn audio(&self, _stream: &StreamInfo, _window: AudioWindow) {}
    /// `stream`'s audio cannot be inspected, for `cause` (its video still is).
    fn audio_uninspectable(&self, _stream: &StreamInfo, _cause: &str) {}
}

/// Picks the sampling settings of a stream (per-route overrides).
pub type SettingsFor = dyn Fn(&StreamInfo) -> InspectSettings + Send + Sync;

/// How the pool runs.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    /// Worker threads (0 = one per core).
    pub threads: usize,
    /// Video messages waiting per stream before the tap drops (whole GOPs).
    pub queue: usize,
    /// Video waiting longer than this is skipped for the newest keyframe.
    pub max_lag: Duration,
    /// A stream using more than this share of a core is sampled at keyframes only.
    pub max_stream_cost: f64,
    /// Cores of inspection the pool may fill before it refuses new streams (0: 0.8 per
    /// worker thread).
    pub capacity: f64,
    /// What a new stream is assumed to cost (share of a core) until its own cost is known.
    pub admission_cost: f64,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            threads: 0,
            queue: 256,
            max_lag: Duration::from_secs(1),
            max_stream_cost: 0.5,
            capacity: 0.0,
            admission_cost: DEFAULT_ADMISSION_COST,
        }
    }
}

/// What a new stream is assumed to cost until its own cost is known (for its first seconds): a
/// 720p30 stream at 2 fps in hybrid mode costs ~0.06 of a core of the 2-core test box (360p
/// ~0.02, 1080p ~0.2). A burst of publishes is taken on at this much each.
pub const DEFAULT_ADMISSION_COST: f64 = 0.06;
/// Cores of inspection per worker thread the pool fills by default (the relay and the rest of
/// the machine need some).
const CAPACITY_PER_THREAD: f64 = 0.8;

/// The most time a worker spends on one stream before it looks at the others again.
const SLICE: Duration = Duration::from_millis(4);
/// How often the pool measures its load.
const TICK: Duration = Duration::from_millis(250);
/// Time constant of a stream's cost average.
const COST_TAU_S: f64 = admission::COST_TAU_S;
/// How long sampling stays denser after a stream's frame matched a list.
const BOOST_FOR: Duration = Duration::from_secs(2);
/// How long a stream's cost is watched before it is taken as what the stream costs (growth
/// past it is the stream's own doing).
const SETTLING: Duration = Duration::from_secs(30);
/// How long a stream over its cost budget is kept out of the load measure once it was over.
const SHED_FOR: Duration = Duration::from_secs(10);
/// Ticks of sustained waiting before the pool lowers sampling, and of calm before it raises it.
const HOT_TICKS: u32 = 2;
const CALM_TICKS: u32 = 8;
/// Ticks after a change before the next: streams take the new level at their next keyframe,
/// and the backlog of the old one takes a moment to clear.
const SETTLE_TICKS: u32 = 12;

struct Inbox {
    queue: VecDeque<TappedVideo>,
    capacity: usize,
    closed: bool,
    /// The relay's delay line waits on video inspection holds (see [`TapSink::settle`]).
    settle: bool,
}

struct Work {
    inspector: StreamInspector,
    stats: Arc<InspectStats>,
    last_arrival: Instant,
    /// Share of a core spent on this stream lately.
    cost: f64,
    cost_at: Instant,
    /// Over budget lately: its waiting does not count as the pool's until then.
    shed_until: Option<Instant>,
    /// Its cost once settled: the most it cost over its first [`SETTLING`] of video.
    settled_cost: Option<f64>,
    /// The most it cost so far, while settling.
    cost_high: f64,
}

/// One stream in the pool.
struct Slot {
    stream: StreamInfo,
    inbox: Mutex<Inbox>,
    scheduled: AtomicBool,
    work: Mutex<Option<Work>>,
    /// Nanoseconds of inspection this stream has had (its place in the fair queue).
    vtime: AtomicU64,
    /// Over its cost budget: the load controller does not count its waiting.
    shed: AtomicBool,
    /// Its cost lately (f64 bits), and when it was measured (milliseconds since `opened`),
    /// for admission to read without waiting on the stream.
    cost_bits: AtomicU64,
    cost_at_ms: AtomicU64,
    opened: Instant,
    /// When inspection first had video of it: its cost is measured from then.
    first_video: std::sync::OnceLock<Instant>,
}

impl Slot {
    /// Its cost at `now`: the average decays while the stream has nothing to inspect.
    fn cost(&self, now: Instant) -> f64 {
        let measured = f64::from_bits(self.cost_bits.load(Ordering::Relaxed));
        let at = self.opened + Duration::from_millis(self.cost_at_ms.load(Ordering::Relaxed));
        let idle = now.saturating_duration_since(at).as_secs_f64();
        measured * (-idle / COST_TAU_S).exp()
    }

    /// (cost, age) as admission counts it: the age from the stream's first video, zero before;
    /// a stream that has sent no video for [`admission::WARMUP`] counts what it costs (nothing).
    fn load_entry(&self, now: Instant) -> (f64, Duration) {
        let age = match self.first_video.get() {
            Some(at) => now.saturating_duration_since(*at),
            None if now.saturating_duration_since(self.opened) >= admission::WARMUP => {
                admission::WARMUP
            }
            None => Duration::ZERO,
        };
        (self.cost(now), age)
    }
}

struct Ready {
    vtime: u64,
    seq: u64,
    slot: Arc<Slot>,
}

impl PartialEq for Ready {
    fn eq(&self, other: &Self) -> bool {
        (self.vtime, self.seq) == (other.vtime, other.seq)
    }
}
impl Eq for Ready {}
impl PartialOrd for Ready {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ready {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.vtime, self.seq).cmp(&(other.vtime, other.seq))
    }
}

#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Reverse<Ready>>,
    seq: u64,
    stopped: bool,
}

struct Shared {
    settings: PoolSettings,
    queue: Mutex<Queue>,
    wake: Condvar,
    /// Virtual time of the last stream served: a stream waking up starts no earlier.
    vclock: AtomicU64,
    level: AtomicU8,
    /// Several streams are late now (the load controller's view at its last tick).
    hot: AtomicBool,
    busy_ns: AtomicU64,
    slots: Mutex<Vec<Weak<Slot>>>,
    sink: Arc<dyn FrameSink>,
    capacity: Capacity,
    /// Admissions whose inspection has not opened yet.
    reservations: Mutex<VecDeque<Instant>>,
    /// An even share of the capacity among the live streams (f64 bits), as of the last tick.
    share_bits: AtomicU64,
}

impl Shared {
    /// What the pool carries now, with `waiting` admissions not opened yet.
    fn load(&self, now: Instant, waiting: usize) -> Load {
        let streams: Vec<(f64, Duration)> = self
            .slots
            .locked()
            .iter()
            .filter_map(Weak::upgrade)
            .map(|s| s.load_entry(now))
            .collect();
        self.capacity.load(&streams, waiting, self.short())
    }

    fn share(&self) -> f64 {
        f64::from_bits(self.share_bits.load(Ordering::Relaxed))
    }

    /// The pool is short of time now: several streams late, or sampling lowered.
    fn short(&self) -> bool {
        self.level.load(Ordering::Relaxed) > 0 || self.hot.load(Ordering::Relaxed)
    }
}

impl Shared {
    fn schedule(&self, slot: &Arc<Slot>) {
        if slot.scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        let vtime = slot
            .vtime
            .load(Ordering::Relaxed)
            .max(self.vclock.load(Ordering::Relaxed));
        slot.vtime.store(vtime, Ordering::Relaxed);
        {
            let mut q = self.queue.locked();
            q.seq += 1;
            let seq = q.seq;
            q.heap.push(Reverse(Ready {
                vtime,
                seq,
                slot: slot.clone(),
            }));
        }
        self.wake.notify_one();
    }

    fn next(&self) -> Option<Arc<Slot>> {
        let mut q = self.queue.locked();
        loop {
            if q.stopped {
                return None;
            }
            if let Some(Reverse(ready)) = q.heap.pop() {
                self.vclock.fetch_max(ready.vtime, Ordering::Relaxed);
                return Some(ready.slot);
            }
            q = self.wake.wait(q).ok()?;
        }
    }
}

/// The relay's end of a stream's inbox.
struct SlotTap {
    slot: Arc<Slot>,
    shared: Arc<Shared>,
}

impl TapSink for SlotTap {
    fn push(&mut self, video: TappedVideo) -> bool {
        {
            let mut inbox = self.slot.inbox.locked();
            if inbox.closed || inbox.queue.len() >= inbox.capacity {
                return false;
            }
            inbox.queue.push_back(video);
        }
        self.shared.schedule(&self.slot);
        true
    }

    fn close(&mut self) {
        {
            let mut inbox = self.slot.inbox.locked();
            inbox.closed = true;
        }
        self.shared.schedule(&self.slot);
    }

    fn settle(&mut self) {
        {
            let mut inbox = self.slot.inbox.locked();
            inbox.settle = true;
        }
        self.shared.schedule(&self.slot);
    }
}

/// The pool. Implements [`TapProvider`], so the relay opens one tap per stream through it.
pub struct Inspector {
    shared: Arc<Shared>,
    settings_for: Box<SettingsFor>,
}

impl Inspector {
    /// Starts the workers and the load controller.
    pub fn start(
        settings: PoolSettings,
        settings_for: Box<SettingsFor>,
        sink: Arc<dyn FrameSink>,
    ) -> std::io::Result<Inspector> {
        let threads = match settings.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let shared = Arc::new(Shared {
            settings,
            queue: Mutex::default(),
            wake: Condvar::new(),
            vclock: AtomicU64::new(0),
            level: AtomicU8::new(0),
            hot: AtomicBool::new(false),
            busy_ns: AtomicU64::new(0),
            slots: Mutex::default(),
            sink,
            capacity: Capacity {
                cores: if settings.capacity > 0.0 {
                    settings.capacity
                } else {
                    threads as f64 * CAPACITY_PER_THREAD
                },
                estimate: settings.admission_cost,
                budget: settings.max_stream_cost,
            },
            reservations: Mutex::default(),
            share_bits: AtomicU64::new(0),
        });
        for index in 0..threads {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("inspect-{index}"))
                .spawn(move || {
                    while let Some(slot) = shared.next() {
                        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            run_slot(&shared, &slot)
                        }));
                        if ran.is_err() {
                            abandon(&shared, &slot);
                        }
                    }
                })?;
        }
        let weak = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("inspect-load".into())
            .spawn(move || control_load(weak, threads))?;
        Ok(Inspector {
            shared,
            settings_for,
        })
    }

    /// The sampling level the pool is at (0 = as configured).
    pub fn level(&self) -> u8 {
        self.shared.level.load(Ordering::Relaxed)
    }
}

impl Drop for Inspector {
    fn drop(&mut self) {
        {
            let mut q = self.shared.queue.locked();
            q.stopped = true;
        }
        self.shared.wake.notify_all();
    }
}

impl TapProvider for Inspector {
    fn admit(&self, _stream: &StreamInfo) -> Result<(), String> {
        let now = Instant::now();
        // One admission at a time: two publishes at once must not both take the last room.
        let mut reservations = self.shared.reservations.locked();
        reservations.retain(|at| now.saturating_duration_since(*at) < admission::RESERVATION);
        let load = self.shared.load(now, reservations.len());
        self.shared.capacity.admit(load)?;
        reservations.push_back(now);
        Ok(())
    }

    fn open(&self, stream: &StreamInfo) -> Option<VideoTap> {
        let settings = (self.settings_for)(stream);
        stream.stats.set_target_fps(settings.fps);
        let slot = Arc::new(Slot {
            stream: stream.clone(),
            inbox: Mutex::new(Inbox {
                queue: VecDeque::new(),
                capacity: self.shared.settings.queue.max(1),
                closed: false,
                settle: false,
            }),
            scheduled: AtomicBool::new(false),
            work: Mutex::new(Some(Work {
                inspector: StreamInspector::new(settings),
                stats: Arc::default(),
                last_arrival: Instant::now(),
                cost: 0.0,
                cost_at: Instant::now(),
                shed_until: None,
                settled_cost: None,
                cost_high: 0.0,
            })),
            vtime: AtomicU64::new(self.shared.vclock.load(Ordering::Relaxed)),
            shed: AtomicBool::new(false),
            cost_bits: AtomicU64::new(0),
            cost_at_ms: AtomicU64::new(0),
            opened: Instant::now(),
            first_video: std::sync::OnceLock::new(),
        });
        self.shared.reservations.locked().pop_front();
        {
            let mut slots = self.shared.slots.locked();
            slots.retain(|s| s.strong_count() > 0);
            slots.push(Arc::downgrade(&slot));
        }
        Some(VideoTap::new(Box::new(SlotTap {
            slot,
            shared: self.shared.clone(),
        })))
    }
}

/// What a worker takes from a stream's inbox.
enum Next {
    Message(TappedVideo),
    /// Video waited too long: `dropped` messages, `span` of the stream's video (wall-clock
    /// coverage time), were skipped to stay at the live edge.
    Skipped {
        dropped: u64,
        span: Duration,
    },
    Empty {
        closed: bool,
    },
}

/// Takes the next message, skipping ahead when the oldest waiting one is stale: to the newest
/// keyframe waiting (its sequence header first), or past everything when none is there yet.
fn take_next(inbox: &mut Inbox, max_lag: Duration, now: Instant) -> Next {
    let Some(front) = inbox.queue.front() else {
        return Next::Empty {
            closed: inbox.closed,
        };
    };
    if now.saturating_duration_since(front.arrived) <= max_lag {
        return inbox.queue.pop_front().map_or(
            Next::Empty {
                closed: inbox.closed,
            },
            Next::Message,
        );
    }
    let kinds: Vec<VideoFrameKind> = inbox
        .queue
        .iter()
        .map(|v| video_frame_kind(&v.payload))
        .collect();
    let keep_from = kinds
        .iter()
        .rposition(|k| *k == VideoFrameKind::Keyframe)
        .unwrap_or(inbox.queue.len());
    let header_at = kinds[..keep_from]
        .iter()
        .rposition(|k| *k == VideoFrameKind::SequenceHeader);
    let skippable = keep_from - usize::from(header_at.is_some());
    if skippable == 0 {
        // The newest keyframe is already at the front (its header maybe before it): it is stale,
        // but it is the live edge there is; inspect it.
        return inbox.queue.pop_front().map_or(
            Next::Empty {
                closed: inbox.closed,
            },
            Next::Message,
        );
    }
    let header = header_at.and_then(|i| inbox.queue.get(i).cloned());
    let dropped: Vec<TappedVideo> = inbox.queue.drain(..keep_from).collect();
    let from = dropped.first().map_or(0, |v| v.clock.wall_ms);
    let to = inbox
        .queue
        .front()
        .or(dropped.last())
        .map_or(from, |v| v.clock.wall_ms);
    if let Some(header) = header {
        let (arrived, clock) = inbox
            .queue
            .front()
            .map_or((now, header.clock), |k| (k.arrived, k.clock));
        inbox.queue.push_front(TappedVideo {
            arrived,
            clock,
            ..header
        });
    }
    Next::Skipped {
        dropped: skippable as u64,
        span: Duration::from_millis(to.saturating_sub(from)),
    }
}

/// Runs one stream for a slice, then puts it back in the queue if it has more to do.
fn run_slot(shared: &Shared, slot: &Arc<Slot>) {
    let started = Instant::now();
    let cpu_started = thread_cpu_time();
    {
        let mut guard = slot.work.locked();
        let Some(work) = guard.as_mut() else {
            slot.scheduled.store(false, Ordering::Release);
            return;
        };
        let load = steer(shared, slot, work, started);
        let mut finished = false;
        loop {
            let next = take_next(
                &mut slot.inbox.locked(),
                shared.settings.max_lag,
                Instant::now(),
            );
            match next {
                Next::Message(video) => inspect_message(shared, slot, work, &video),
                Next::Skipped { dropped, span } => {
                    skipped(shared, slot, work, dropped, span, &load);
                }
                Next::Empty { closed } => {
                    finished = closed;
                    let settle = std::mem::take(&mut slot.inbox.locked().settle);
                    if settle && !closed {
                        let mut out = |f: Finding| deliver(shared, slot, f);
                        work.inspector.settle(&work.stats, &mut out);
                        slot.stream.stats.processed(work.inspector.settled());
                    }
                    break;
                }
            }
            if started.elapsed() >= SLICE {
                break;
            }
        }
        // The stream's cost is the CPU time it took, not the wall time: a busy machine that
        // runs the worker late must not make a stream look costlier than it is.
        let spent = thread_cpu_time().saturating_sub(cpu_started);
        let now = Instant::now();
        let dt = now.saturating_duration_since(work.cost_at).as_secs_f64();
        let decay = (-dt / COST_TAU_S).exp();
        work.cost = work.cost * decay + spent.as_secs_f64() / COST_TAU_S;
        work.cost_at = now;
        slot.cost_bits.store(work.cost.to_bits(), Ordering::Relaxed);
        let since_open = now.saturating_duration_since(slot.opened).as_millis() as u64;
        slot.cost_at_ms.store(since_open, Ordering::Relaxed);
        if finished {
            let mut out = |f: Finding| deliver(shared, slot, f);
            work.inspector
                .flush(&work.stats, work.last_arrival, &mut out);
            slot.stream.stats.processed(work.inspector.settled());
            shared.sink.stream_ended(&slot.stream, &work.stats);
            // The decoder and its pictures go now: give the memory back.
            *guard = None;
            crate::memory::release_soon();
        }
    }
    let spent = started.elapsed().as_nanos() as u64;
    slot.vtime.fetch_add(spent, Ordering::Relaxed);
    shared.busy_ns.fetch_add(spent, Ordering::Relaxed);
    slot.scheduled.store(false, Ordering::Release);
    let more = {
        let i = slot.inbox.locked();
        !i.queue.is_empty() || i.closed || i.settle
    } && slot.work.locked().is_some();
    if more {
        shared.schedule(slot);
    }
}

/// Where a stream stands with the pool before a slice: its cost budget, what it costs
/// against an even share, whether it made itself costly, and so its sampling level.
fn steer(shared: &Shared, slot: &Slot, work: &mut Work, started: Instant) -> StreamLoad {
    if work.cost > shared.settings.max_stream_cost {
        if work.shed_until.is_none() {
            tracing::warn!(
                key = %crate::registry::key::shown(&slot.stream.stream_key),
                cost = format!("{:.2}", work.cost),
                "inspection: stream over inspect.max_stream_cost; its lateness is its own"
            );
        }
        work.shed_until = Some(started + SHED_FOR);
    }
    let shed = work.shed_until.is_some_and(|until| started < until);
    slot.shed.store(shed, Ordering::Relaxed);
    // What the stream costs once settled: the most it cost over its first half minute of
    // video (a "starting soon" slide before the camera is not a stream that grew).
    if work.settled_cost.is_none() {
        work.cost_high = work.cost_high.max(work.cost);
        let settled = slot
            .first_video
            .get()
            .is_some_and(|at| started.saturating_duration_since(*at) >= SETTLING);
        if settled {
            work.settled_cost = Some(work.cost_high);
        }
    }
    let load = StreamLoad {
        cost: work.cost,
        settled_cost: work.settled_cost,
        over_budget: shed,
        evasive: work.inspector.evasive(started),
        exempt: work.inspector.exempt(started),
    };
    let estimate = shared.capacity.estimate;
    let stats = &slot.stream.stats;
    stats
        .responsible_for_load
        .store(load.responsible(estimate), Ordering::Relaxed);
    let pool_level = shared.level.load(Ordering::Relaxed);
    let level = load.level(pool_level, shared.share(), estimate);
    let waited = slot.inbox.locked().queue.front().is_some_and(|v| {
        started.saturating_duration_since(v.arrived) > shared.settings.max_lag / 2
    });
    let kept_waiting = waited && shared.short();
    if (level > 0 || kept_waiting) && !load.responsible(estimate) {
        // Sampled less, or kept waiting while the pool is short: coverage lost meanwhile, and
        // until the stream's samples catch up after, is the pool's doing.
        stats.note_lost_to_load();
    }
    if level != work.inspector.level() {
        work.inspector.set_level(level);
        stats.degraded.store(u64::from(level), Ordering::Relaxed);
    }
    load
}

/// Video of a stream was skipped to stay at the live edge: judged at once, before the keyframe
/// after the gap is hashed (and the delay line, gated on what inspection processed, lets the
/// gap out). Past the bound the stream is uninspectable when the gap is its own doing (it is
/// sent faster, or costs more, than it can be inspected, or made itself costly); when the pool
/// is short for others' load, it is reported and not cut.
fn skipped(
    shared: &Shared,
    slot: &Slot,
    work: &mut Work,
    dropped: u64,
    span: Duration,
    load: &StreamLoad,
) {
    // Frames held undecoded before the dropped ones go unseen too.
    let span = span + Duration::from_millis(work.inspector.held_span_ms());
    let stats = &slot.stream.stats;
    stats
        .inspection_dropped
        .fetch_add(dropped, Ordering::Relaxed);
    let pool_short = shared.short();
    let settings = work.inspector.settings();
    let bound = if pool_short {
        settings.max_blind_degraded
    } else {
        settings.max_blind
    };
    if pool_short && !load.responsible(shared.capacity.estimate) {
        // Whatever the span: the coverage watch must not take this gap for the stream's own.
        stats.note_lost_to_load();
    }
    if span > bound {
        let unseen = format!(
            "{:.1}s of video skipped to keep up (the bound is {:.1}s)",
            span.as_secs_f64(),
            bound.as_secs_f64()
        );
        if !pool_short {
            let cause = format!(
                "{unseen}; the stream fell behind on its own: it is sent faster, or costs \
                 more, than it can be inspected"
            );
            deliver(shared, slot, Finding::Uninspectable(cause));
        } else if load.responsible(shared.capacity.estimate) {
            let cause = format!(
                "{unseen}; inspection is overloaded and this stream made itself costly \
                 (over its budget, grown past what it cost when admitted, or evasive)"
            );
            deliver(shared, slot, Finding::Uninspectable(cause));
        } else {
            let cause = format!("{unseen}; inspection is overloaded by others' load");
            shared.sink.unseen(&slot.stream, &cause);
        }
    }
    work.inspector.resync();
}

/// CPU time this thread has used (`CLOCK_THREAD_CPUTIME_ID`).
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// A stream whose inspection panicked (a bug, in FFmpeg or here): its inspection ends, it is
/// reported uninspectable, and the worker goes on with the other streams.
fn abandon(shared: &Shared, slot: &Arc<Slot>) {
    tracing::error!(
        key = %crate::registry::key::shown(&slot.stream.stream_key),
        "inspection of this stream failed (a panic); it is no longer inspected"
    );
    let stats = slot.work.locked().take().map(|w| w.stats);
    {
        let mut inbox = slot.inbox.locked();
        inbox.queue.clear();
        inbox.closed = true;
    }
    slot.scheduled.store(false, Ordering::Release);
    shared
        .sink
        .uninspectable(&slot.stream, "inspection of this stream failed");
    if let Some(stats) = stats {
        shared.sink.stream_ended(&slot.stream, &stats);
    }
}

fn inspect_message(shared: &Shared, slot: &Slot, work: &mut Work, video: &TappedVideo) {
    slot.first_video.get_or_init(Instant::now);
    work.last_arrival = video.arrived;
    let lag = video.arrived.elapsed().as_millis() as u64;
    work.stats.lag_ms.store(lag, Ordering::Relaxed);
    let stats = &slot.stream.stats;
    stats.inspection_lag_ms.store(lag, Ordering::Relaxed);
    let matches_before = stats.matches.load(Ordering::Relaxed);
    let mut out = |f: Finding| deliver(shared, slot, f);
    work.inspector.handle(video, &work.stats, &mut out);
    stats.processed(work.inspector.settled());
    if stats.matches.load(Ordering::Relaxed) > matches_before {
        work.inspector.boost(video.arrived + BOOST_FOR);
    }
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    stats
        .frames_decoded
        .store(get(&work.stats.frames_decoded), Ordering::Relaxed);
    stats
        .decode_errors
        .store(get(&work.stats.decode_errors), Ordering::Relaxed);
}

fn deliver(shared: &Shared, slot: &Slot, finding: Finding) {
    match finding {
        Finding::Frame(frame) => {
            slot.stream.stats.hashed_now(frame.clock);
            shared.sink.frame(&slot.stream, *frame);
        }
        Finding::Uninspectable(cause) => shared.sink.uninspectable(&slot.stream, &cause),
        Finding::Anomaly(cause) => shared.sink.anomaly(&slot.stream, &cause),
    }
}

/// Measures the pool's load every tick and moves its sampling level: up when video waits
/// longer than half of `max_lag` or the workers are saturated, down after a calm spell.
fn control_load(shared: Weak<Shared>, threads: usize) {
    let mut hot_ticks = 0u32;
    let mut calm_ticks = 0u32;
    let mut settle_ticks = 0u32;
    loop {
        std::thread::sleep(TICK);
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if shared.queue.locked().stopped {
            return;
        }
        let busy = shared.busy_ns.swap(0, Ordering::Relaxed) as f64
            / (TICK.as_nanos() as f64 * threads as f64);
        let now = Instant::now();
        let slots: Vec<Arc<Slot>> = shared
            .slots
            .locked()
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        // The pool is short when several streams wait, not one: a stream over its cost budget, or
        // one that bursts, makes only itself late, and must not lower everyone's sampling.
        let counted: Vec<&Arc<Slot>> = slots
            .iter()
            .filter(|s| !s.shed.load(Ordering::Relaxed))
            .collect();
        let waits: Vec<Duration> = counted
            .iter()
            .filter_map(|s| {
                let inbox = s.inbox.locked();
                inbox
                    .queue
                    .front()
                    .map(|v| now.saturating_duration_since(v.arrived))
            })
            .collect();
        let waiting = waits.iter().max().copied().unwrap_or_default();
        let late = waits
            .iter()
            .filter(|w| **w > shared.settings.max_lag / 2)
            .count();
        let hot = late >= (counted.len() / 10).max(2);
        shared.hot.store(hot, Ordering::Relaxed);
        shared.share_bits.store(
            shared.capacity.share(slots.len()).to_bits(),
            Ordering::Relaxed,
        );
        let calm = waiting < Duration::from_millis(150) && busy < 0.8;
        hot_ticks = if hot { hot_ticks + 1 } else { 0 };
        calm_ticks = if calm { calm_ticks + 1 } else { 0 };
        let level = shared.level.load(Ordering::Relaxed);
        settle_ticks = settle_ticks.saturating_sub(1);
        let next = if settle_ticks > 0 {
            level
        } else if hot_ticks >= HOT_TICKS && level < 2 {
            level + 1
        } else if calm_ticks >= CALM_TICKS && level > 0 {
            level - 1
        } else {
            level
        };
        if next != level {
            hot_ticks = 0;
            calm_ticks = 0;
            settle_ticks = SETTLE_TICKS;
            shared.level.store(next, Ordering::Relaxed);
            tracing::warn!(
                level = next,
                streams = slots.len(),
                busy = format!("{:.0}%", busy * 100.0),
                waiting_ms = waiting.as_millis() as u64,
                "inspection load: sampling level changed"
            );
            shared.sink.overload(next, slots.len());
            // Idle streams pick the level up on their next message; none waits for it.
        }
    }
}

/// A sink that only logs: each hashed frame at debug level, a summary per stream at info.
pub struct LogSink;

impl FrameSink for LogSink {
    fn frame(&self, stream: &StreamInfo, frame: SampledFrame) {
        tracing::debug!(
            key = %crate::registry::key::shown(&stream.stream_key),
            stream_ms = frame.stream_time_ms,
            pdq = %frame.hashes.full.hash(),
            quality = frame.hashes.full.quality,
            letterboxed = frame.hashes.content.is_some(),
            inset = ?frame.hashes.inset.as_ref().map(|(area, _)| area),
            "frame hashed"
        );
    }

    fn stream_ended(&self, stream: &StreamInfo, stats: &InspectStats) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        tracing::info!(
            key = %crate::registry::key::shown(&stream.stream_key),
            decoded = get(&stats.frames_decoded),
            hashed = get(&stats.frames_hashed),
            concealed = get(&stats.frames_concealed),
            decode_errors = get(&stats.decode_errors),
            unsupported = get(&stats.unsupported_messages),
            "inspection ended"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn msg(payload: &'static [u8], arrived: Instant) -> TappedVideo {
        TappedVideo {
            timestamp: 0,
            payload: Bytes::from_static(payload),
            arrived,
            clock: Default::default(),
        }
    }

    const HEADER: &[u8] = &[0x17, 0, 0, 0, 0, 1];
    const KEY: &[u8] = &[0x17, 1, 0, 0, 0, 9];
    const INTER: &[u8] = &[0x27, 1, 0, 0, 0, 9];

    #[test]
    fn stale_video_is_skipped_to_the_newest_keyframe_with_its_header() {
        let now = Instant::now();
        let old = now - Duration::from_secs(5);
        let mut inbox = Inbox {
            queue: [HEADER, KEY, INTER, INTER, KEY, INTER]
                .iter()
                .enumerate()
                .map(|(i, p)| msg(p, old + Duration::from_millis(i as u64 * 33)))
                .collect(),
            capacity: 16,
            closed: false,
            settle: false,
        };
        let Next::Skipped { dropped, .. } = take_next(&mut inbox, Duration::from_secs(1), now)
        else {
            panic!("stale video must be skipped");
        };
        assert_eq!(
            dropped, 3,
            "the header is kept, the three frames before the keyframe go"
        );
        let kinds: Vec<_> = inbox
            .queue
            .iter()
            .map(|v| video_frame_kind(&v.payload))
            .collect();
        assert_eq!(
            kinds,
            vec![
                VideoFrameKind::SequenceHeader,
                VideoFrameKind::Keyframe,
                VideoFrameKind::Interframe
            ]
        );
        assert_eq!(
            inbox.queue[0].arrived, inbox.queue[1].arrived,
            "the header goes with its keyframe"
        );
        // Stale, but the newest keyframe (and its header) is at the front: inspected, not
        // skipped again and again. Stale frames with no keyframe after them go.
        for _ in 0..2 {
            assert!(matches!(
                take_next(&mut inbox, Duration::from_secs(1), now),
                Next::Message(_)
            ));
        }
        assert!(matches!(
            take_next(&mut inbox, Duration::from_secs(1), now),
            Next::Skipped { dropped: 1, .. }
        ));
        assert!(matches!(
            take_next(&mut inbox, Duration::from_secs(1), now),
            Next::Empty { closed: false }
        ));
    }

    struct Count(AtomicU64);
    impl FrameSink for Count {
        fn frame(&self, _: &StreamInfo, _: SampledFrame) {}
        fn stream_ended(&self, _: &StreamInfo, _: &InspectStats) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn every_stream_is_run_and_ended() {
        let sink = Arc::new(Count(AtomicU64::new(0)));
        let pool = Inspector::start(
            PoolSettings {
                threads: 2,
                ..PoolSettings::default()
            },
            Box::new(|_: &StreamInfo| InspectSettings::default()),
            sink.clone(),
        )
        .expect("pool");
        let now = Instant::now();
        let taps: Vec<VideoTap> = (0..20)
            .map(|i| {
                let info = StreamInfo::new(
                    &format!("s{i}"),
                    "live",
                    "127.0.0.1:1".parse().expect("addr"),
                );
                let mut tap = pool.open(&info).expect("tap");
                for _ in 0..50 {
                    let m = crate::rtmp::Message {
                        csid: 6,
                        timestamp: 0,
                        type_id: 9,
                        stream_id: 1,
                        payload: Bytes::from_static(INTER),
                    };
                    tap.offer(&m, now, Default::default());
                }
                tap
            })
            .collect();
        drop(taps);
        for _ in 0..200 {
            if sink.0.load(Ordering::Relaxed) == 20 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(sink.0.load(Ordering::Relaxed), 20);
    }
}
