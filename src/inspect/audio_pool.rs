//! Audio inspection workers, shared by every stream and fed by the relay's audio taps.
//!
//! Audio is cheap next to video (decoding and fingerprinting a stream's soundtrack takes well
//! under 1 % of a core), so the pool is simple: streams with audio waiting take turns, a batch
//! of messages each, on a few threads of their own. A stream's inbox is bounded; when it is full
//! the relay drops audio for inspection only. A panic in one stream's decoding ends that
//! stream's audio inspection, reported, and the worker goes on.

use crate::locks::Locked;
use crate::relay::queue::{ByteBounded, Weighed, PER_MESSAGE_OVERHEAD};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use super::audio::{AudioFinding, AudioInspector};
use super::pool::FrameSink;
use crate::relay::audio_tap::{AudioSink, AudioTap, AudioTapProvider, TappedAudio};
use crate::relay::StreamInfo;

/// Audio messages a worker reads from one stream before it turns to the next.
const BATCH: usize = 32;

/// How the audio pool runs.
#[derive(Debug, Clone, Copy)]
pub struct AudioPoolSettings {
    /// Worker threads.
    pub threads: usize,
    /// Audio messages waiting per stream before the tap drops (about 5 s of AAC).
    pub queue: usize,
    /// Sub-fingerprints in the window handed to the verdict.
    pub window_items: usize,
    /// Keep each window's audio for evidence (when an evidence folder is set).
    pub keep_audio: bool,
}

struct Inbox {
    queue: ByteBounded<TappedAudio>,
    closed: bool,
}

/// Bytes of audio waiting per stream, at most (a minute of 128 kbit/s AAC).
const MAX_INBOX_BYTES: usize = 1 << 20;

struct Slot {
    stream: StreamInfo,
    inbox: Mutex<Inbox>,
    scheduled: AtomicBool,
    work: Mutex<Option<AudioInspector>>,
}

#[derive(Default)]
struct Ready {
    slots: VecDeque<Arc<Slot>>,
    stopped: bool,
}

struct Shared {
    settings: AudioPoolSettings,
    ready: Mutex<Ready>,
    wake: Condvar,
    sink: Arc<dyn FrameSink>,
    /// Audio messages dropped because a stream's inbox was full, all streams.
    dropped: AtomicU64,
}

impl Shared {
    fn schedule(&self, slot: &Arc<Slot>) {
        if slot.scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        {
            let mut ready = self.ready.locked();
            ready.slots.push_back(slot.clone());
        }
        self.wake.notify_one();
    }

    fn next(&self) -> Option<Arc<Slot>> {
        let mut ready = self.ready.locked();
        loop {
            if ready.stopped {
                return None;
            }
            if let Some(slot) = ready.slots.pop_front() {
                return Some(slot);
            }
            ready = self.wake.wait(ready).ok()?;
        }
    }
}

/// The audio pool; implements [`AudioTapProvider`].
pub struct AudioPool {
    shared: Arc<Shared>,
}

impl AudioPool {
    /// Starts the workers.
    pub fn start(settings: AudioPoolSettings, sink: Arc<dyn FrameSink>) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            settings,
            ready: Mutex::default(),
            wake: Condvar::new(),
            sink,
            dropped: AtomicU64::new(0),
        });
        for index in 0..settings.threads.max(1) {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("audio-{index}"))
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
        Ok(AudioPool { shared })
    }

    /// Audio messages dropped so far because inspection was behind.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for AudioPool {
    fn drop(&mut self) {
        {
            let mut ready = self.shared.ready.locked();
            ready.stopped = true;
        }
        self.shared.wake.notify_all();
    }
}

impl Weighed for TappedAudio {
    fn weight(&self) -> usize {
        self.payload.len() + PER_MESSAGE_OVERHEAD
    }
}

struct SlotSink {
    slot: Arc<Slot>,
    shared: Arc<Shared>,
}

impl AudioSink for SlotSink {
    fn push(&mut self, audio: TappedAudio) -> bool {
        {
            let mut inbox = self.slot.inbox.locked();
            if inbox.closed
                || inbox.queue.len() >= self.shared.settings.queue.max(1)
                || inbox.queue.push(audio).is_err()
            {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                return false;
            }
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
}

impl AudioTapProvider for AudioPool {
    fn open_audio(&self, stream: &StreamInfo) -> Option<AudioTap> {
        let slot = Arc::new(Slot {
            stream: stream.clone(),
            inbox: Mutex::new(Inbox {
                queue: ByteBounded::new(MAX_INBOX_BYTES),
                closed: false,
            }),
            scheduled: AtomicBool::new(false),
            work: Mutex::new(Some(AudioInspector::new(
                self.shared.settings.window_items,
                self.shared.settings.keep_audio,
            ))),
        });
        Some(AudioTap::new(Box::new(SlotSink {
            slot,
            shared: self.shared.clone(),
        })))
    }
}

fn run_slot(shared: &Shared, slot: &Arc<Slot>) {
    {
        let mut work = slot.work.locked();
        if let Some(inspector) = work.as_mut() {
            for _ in 0..BATCH {
                let next = slot.inbox.locked().queue.pop_front();
                let Some(audio) = next else {
                    break;
                };
                inspector.push(&audio, |finding| match finding {
                    AudioFinding::Window(window) => shared.sink.audio(&slot.stream, window),
                    AudioFinding::Uninspectable(cause) => {
                        shared.sink.audio_uninspectable(&slot.stream, &cause)
                    }
                });
                // After the verdict: a delay buffer waiting for audio may now let it out.
                slot.stream.stats.audio_judged(audio.arrived);
            }
        }
        let finished = {
            let i = slot.inbox.locked();
            i.closed && i.queue.is_empty()
        };
        if finished {
            *work = None;
        }
    }
    slot.scheduled.store(false, Ordering::Release);
    // One lock at a time: `run_slot` takes work then inbox, so never hold inbox into work.
    let queued = !slot.inbox.locked().queue.is_empty();
    let more = queued && slot.work.locked().is_some();
    if more {
        shared.schedule(slot);
    }
}

fn abandon(shared: &Shared, slot: &Arc<Slot>) {
    tracing::error!(
        key = %crate::registry::key::shown(&slot.stream.stream_key),
        "audio inspection of this stream failed (a panic); its audio is no longer inspected"
    );
    *slot.work.locked() = None;
    {
        let mut inbox = slot.inbox.locked();
        inbox.queue.clear();
        inbox.closed = true;
    }
    // A delay waiting for audio must not wait out its timeout on every message from now on.
    slot.stream.stats.audio_abandoned();
    slot.scheduled.store(false, Ordering::Release);
    shared
        .sink
        .audio_uninspectable(&slot.stream, "audio inspection of this stream failed");
}
