//! Live counters of one stream, shared by the relay (bytes, frames) and inspection (hashes,
//! lag, matches, coverage), read by the admin API's `GET /streams` and the verdict's coverage
//! watch.
//!
//! Coverage is measured on two clocks that only video advances: *wall* (arrival at the relay)
//! and *stream* (the publisher's timestamps). Each video message moves both by the time since
//! the previous one, clamped to [`MAX_CLOCK_STEP_MS`] so that a pause in the video (or a
//! timestamp jump) cannot by itself look like a stretch nobody inspected. A hashed frame marks
//! the clocks of the message that carried it as *covered*. On the wall clock, what lies between
//! covered and the newest video received is video nobody has looked at (skipped, undecodable,
//! or still waiting: lag counts, since the delay buffer releases by the wall clock). On the
//! stream clock it is measured up to the newest message inspection has *processed*, so a
//! publisher sending faster than real time is not blind for the backlog it made, only for
//! stretches inspection skipped or could not decode.

use crate::locks::Locked;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The most one video message can advance a coverage clock, in milliseconds. Small next to the
/// coverage bound: a decoder holds a few frames back for reordering, and with frames seconds
/// apart in stream time (a timelapse, or stretched timestamps) that delay alone must not read
/// as blindness; a pause in the video counts as this much at most.
pub const MAX_CLOCK_STEP_MS: u64 = 250;

/// Where a video message sits on the stream's two coverage clocks, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CoverageClock {
    /// Wall-clock time of video received (arrival gaps, clamped).
    pub wall_ms: u64,
    /// Stream time of video received (timestamp steps, clamped; steps back count as 0).
    pub stream_ms: u64,
}

#[derive(Debug, Default)]
struct ClockState {
    previous: Option<(u32, Instant)>,
    clock: CoverageClock,
}

/// A stream's coverage now (see [`StreamStats::coverage`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coverage {
    /// Processed video with no hashed frame after it, wall-clock time.
    pub blind_wall: Duration,
    /// The same in stream time.
    pub blind_stream: Duration,
    /// Received video not yet processed, wall-clock time.
    pub backlog: Duration,
}

/// A rate that decays: hashed frames per second over the last few seconds.
#[derive(Debug)]
struct RateMeter {
    rate: f64,
    at: Instant,
}

/// Time constant of the hashed-frame rate, in seconds.
const RATE_TAU_S: f64 = 4.0;

impl RateMeter {
    fn decayed(&self, now: Instant) -> f64 {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.rate * (-dt / RATE_TAU_S).exp()
    }
}

/// One stream's counters. Every field is an atomic: writers never wait.
#[derive(Debug)]
pub struct StreamStats {
    /// When the publish was accepted.
    pub since: SystemTime,
    started: Instant,
    /// Media payload bytes received from the broadcaster.
    pub bytes_in: AtomicU64,
    /// Video messages received.
    pub video_messages: AtomicU64,
    /// Unix time in milliseconds of the last hashed frame (0: none yet).
    pub last_hash_unix_ms: AtomicU64,
    /// How far inspection is behind the live edge, in milliseconds.
    pub inspection_lag_ms: AtomicU64,
    /// Hashed frames that matched a block list.
    pub matches: AtomicU64,
    /// Frames decoded.
    pub frames_decoded: AtomicU64,
    /// Frames hashed.
    pub frames_hashed: AtomicU64,
    /// Packets the decoder rejected.
    pub decode_errors: AtomicU64,
    /// Video messages inspection never looked at: dropped by a full tap or shed as stale.
    pub inspection_dropped: AtomicU64,
    /// Sampling rate the stream is configured for (f64 bits; 0 = every frame).
    target_fps_bits: AtomicU64,
    /// Sampling level: 0 as configured, 1 keyframes only (overload), 2 keyframes, fewer.
    pub degraded: AtomicU64,
    /// The relay has ended the stream (what inspection still finds of it cuts nothing).
    pub ended: std::sync::atomic::AtomicBool,
    /// The stream made itself costly to inspect (over its budget, grown past its cost when
    /// admitted, or evasive): under overload, its lost coverage is its own doing.
    pub responsible_for_load: std::sync::atomic::AtomicBool,
    /// When (milliseconds since the publish, plus one) inspection last skipped its video
    /// because the pool was short for others' load (0: never).
    lost_to_load_ms: AtomicU64,
    /// Audio messages audio inspection never heard: dropped by a full inbox or refused.
    pub audio_dropped: AtomicU64,
    /// The verdict has reported that audio inspection fell behind.
    pub audio_behind_reported: std::sync::atomic::AtomicBool,
    clock: Mutex<ClockState>,
    received_wall_ms: AtomicU64,
    received_stream_ms: AtomicU64,
    processed_wall_ms: AtomicU64,
    processed_stream_ms: AtomicU64,
    covered_wall_ms: AtomicU64,
    covered_stream_ms: AtomicU64,
    /// Arrival (ms since the publish, plus one) of the newest audio message offered to audio
    /// inspection, and of the newest it has judged.
    audio_received_ms: AtomicU64,
    audio_judged_ms: AtomicU64,
    hash_rate: Mutex<RateMeter>,
}

impl Default for StreamStats {
    fn default() -> StreamStats {
        StreamStats {
            since: SystemTime::now(),
            started: Instant::now(),
            bytes_in: AtomicU64::new(0),
            video_messages: AtomicU64::new(0),
            last_hash_unix_ms: AtomicU64::new(0),
            inspection_lag_ms: AtomicU64::new(0),
            matches: AtomicU64::new(0),
            frames_decoded: AtomicU64::new(0),
            frames_hashed: AtomicU64::new(0),
            decode_errors: AtomicU64::new(0),
            inspection_dropped: AtomicU64::new(0),
            target_fps_bits: AtomicU64::new(0),
            degraded: AtomicU64::new(0),
            ended: std::sync::atomic::AtomicBool::new(false),
            responsible_for_load: std::sync::atomic::AtomicBool::new(false),
            lost_to_load_ms: AtomicU64::new(0),
            audio_dropped: AtomicU64::new(0),
            audio_behind_reported: std::sync::atomic::AtomicBool::new(false),
            clock: Mutex::default(),
            received_wall_ms: AtomicU64::new(0),
            received_stream_ms: AtomicU64::new(0),
            processed_wall_ms: AtomicU64::new(0),
            processed_stream_ms: AtomicU64::new(0),
            covered_wall_ms: AtomicU64::new(0),
            covered_stream_ms: AtomicU64::new(0),
            audio_received_ms: AtomicU64::new(0),
            audio_judged_ms: AtomicU64::new(0),
            hash_rate: Mutex::new(RateMeter {
                rate: 0.0,
                at: Instant::now(),
            }),
        }
    }
}

impl StreamStats {
    /// Seconds since the publish.
    pub fn age(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Average received bitrate since the publish, in bits per second.
    pub fn bitrate(&self) -> f64 {
        self.bytes_in.load(Ordering::Relaxed) as f64 * 8.0 / self.age().max(1e-3)
    }

    /// Average video messages (frames) per second since the publish.
    pub fn fps(&self) -> f64 {
        self.video_messages.load(Ordering::Relaxed) as f64 / self.age().max(1e-3)
    }

    /// Records that a frame was hashed now, carried by the video message at `covered`.
    pub fn hashed_now(&self, covered: CoverageClock) {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.last_hash_unix_ms.store(ms, Ordering::Relaxed);
        self.frames_hashed.fetch_add(1, Ordering::Relaxed);
        self.covered_wall_ms
            .fetch_max(covered.wall_ms, Ordering::Relaxed);
        self.covered_stream_ms
            .fetch_max(covered.stream_ms, Ordering::Relaxed);
        {
            let mut meter = self.hash_rate.locked();
            let now = Instant::now();
            meter.rate = meter.decayed(now) + 1.0 / RATE_TAU_S;
            meter.at = now;
        }
    }

    /// Advances the coverage clocks for a video message with timestamp `ts` that arrived at
    /// `arrived`; returns where it sits on them. Called by the relay for every video message.
    pub fn video_arrived(&self, ts: u32, arrived: Instant) -> CoverageClock {
        let mut state = self.clock.locked();
        if let Some((prev_ts, prev_at)) = state.previous {
            let wall = arrived.saturating_duration_since(prev_at).as_millis() as u64;
            let step = ts.wrapping_sub(prev_ts) as i32;
            let stream = u64::try_from(step).unwrap_or(0);
            state.clock.wall_ms += wall.min(MAX_CLOCK_STEP_MS);
            state.clock.stream_ms += stream.min(MAX_CLOCK_STEP_MS);
        }
        state.previous = Some((ts, arrived));
        self.received_wall_ms
            .store(state.clock.wall_ms, Ordering::Relaxed);
        self.received_stream_ms
            .store(state.clock.stream_ms, Ordering::Relaxed);
        state.clock
    }

    /// Inspection skipped video of this stream because the pool was short for others' load.
    pub fn note_lost_to_load(&self) {
        let ms = self.started.elapsed().as_millis() as u64 + 1;
        self.lost_to_load_ms.store(ms, Ordering::Relaxed);
    }

    /// Whether inspection skipped video of this stream for others' load within `lately`.
    pub fn lost_to_load_within(&self, lately: Duration) -> bool {
        let at = self.lost_to_load_ms.load(Ordering::Relaxed);
        let now = self.started.elapsed().as_millis() as u64;
        at > 0 && now < at + lately.as_millis() as u64
    }

    /// Inspection took the video message at `clock` (decoded it, or decided not to).
    pub fn processed(&self, clock: CoverageClock) {
        self.processed_wall_ms
            .fetch_max(clock.wall_ms, Ordering::Release);
        self.processed_stream_ms
            .fetch_max(clock.stream_ms, Ordering::Relaxed);
    }

    /// Coverage in detail: how much of the video inspection has processed has no hashed frame
    /// after it (wall, stream: *blind*), and how much received video is still waiting to be
    /// processed (wall: *backlog*, lateness rather than blindness).
    pub fn coverage(&self) -> Coverage {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let ms = Duration::from_millis;
        let covered_wall = get(&self.covered_wall_ms);
        let processed_wall = get(&self.processed_wall_ms).max(covered_wall);
        Coverage {
            blind_wall: ms(processed_wall - covered_wall),
            blind_stream: ms(
                get(&self.processed_stream_ms).saturating_sub(get(&self.covered_stream_ms))
            ),
            backlog: ms(get(&self.received_wall_ms).saturating_sub(processed_wall)),
        }
    }

    /// Where `at` falls on the audio clocks: milliseconds since the publish, plus one.
    fn audio_clock(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.started).as_millis() as u64 + 1
    }

    /// An audio message that arrived at `arrived` was offered to audio inspection.
    pub fn audio_offered(&self, arrived: Instant) {
        self.audio_received_ms
            .fetch_max(self.audio_clock(arrived), Ordering::Relaxed);
    }

    /// Audio inspection has judged (decoded, fingerprinted and matched the windows of) the
    /// audio message that arrived at `arrived`, or found it cannot.
    pub fn audio_judged(&self, arrived: Instant) {
        // Release: whoever sees this progress also sees the cut its verdict sent.
        self.audio_judged_ms
            .fetch_max(self.audio_clock(arrived), Ordering::Release);
    }

    /// Audio inspection of this stream gave up (its worker failed): nothing is waited for.
    pub fn audio_abandoned(&self) {
        self.audio_judged_ms.store(u64::MAX, Ordering::Release);
    }

    /// How far audio inspection has judged: up to the audio that arrived at the instant
    /// returned, or everything it was offered (`None`).
    pub fn audio_judged_up_to(&self) -> Option<Instant> {
        let judged = self.audio_judged_ms.load(Ordering::Acquire);
        if judged >= self.audio_received_ms.load(Ordering::Relaxed) {
            return None;
        }
        Some(self.started + Duration::from_millis(judged.saturating_sub(1)))
    }

    /// The wall coverage clock of the newest video received (a delay-line gate).
    pub fn received_wall(&self) -> u64 {
        self.received_wall_ms.load(Ordering::Relaxed)
    }

    /// How far inspection has processed video, on the wall coverage clock.
    pub fn processed_wall(&self) -> u64 {
        self.processed_wall_ms.load(Ordering::Acquire)
    }

    /// How much video has no hashed frame after it: (wall time up to the newest received,
    /// stream time up to the newest processed).
    pub fn blind(&self) -> (Duration, Duration) {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let wall = get(&self.received_wall_ms).saturating_sub(get(&self.covered_wall_ms));
        let stream = get(&self.processed_stream_ms).saturating_sub(get(&self.covered_stream_ms));
        (Duration::from_millis(wall), Duration::from_millis(stream))
    }

    /// Sets the sampling rate the stream is configured for.
    pub fn set_target_fps(&self, fps: f64) {
        self.target_fps_bits.store(fps.to_bits(), Ordering::Relaxed);
    }

    /// The sampling rate the stream is configured for (0 = every frame).
    pub fn target_fps(&self) -> f64 {
        f64::from_bits(self.target_fps_bits.load(Ordering::Relaxed))
    }

    /// Frames hashed per second lately (decaying over a few seconds).
    pub fn hashed_fps(&self) -> f64 {
        self.hash_rate.locked().decayed(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_clocks_advance_with_video_and_are_clamped() {
        let stats = StreamStats::default();
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert_eq!(stats.video_arrived(0, at(0)), CoverageClock::default());
        let c = stats.video_arrived(33, at(40));
        assert_eq!((c.wall_ms, c.stream_ms), (40, 33));
        stats.hashed_now(c);
        // A ten-second pause, then a one-hour timestamp jump: one clamped step each.
        let c = stats.video_arrived(10_033, at(10_040));
        assert_eq!((c.wall_ms, c.stream_ms), (290, 283));
        let c = stats.video_arrived(3_610_033, at(10_073));
        assert_eq!((c.wall_ms, c.stream_ms), (323, 533));
        // Timestamps going back advance stream time by nothing.
        let c = stats.video_arrived(5, at(10_106));
        assert_eq!((c.wall_ms, c.stream_ms), (356, 533));
        assert_eq!(
            stats.blind(),
            (Duration::from_millis(316), Duration::ZERO),
            "stream time counts only once inspection has processed it"
        );
        stats.processed(c);
        let coverage = stats.coverage();
        assert_eq!(
            (coverage.blind_wall, coverage.backlog),
            (Duration::from_millis(316), Duration::ZERO)
        );
        assert_eq!(
            stats.blind(),
            (Duration::from_millis(316), Duration::from_millis(500))
        );
        stats.hashed_now(c);
        assert_eq!(stats.blind(), (Duration::ZERO, Duration::ZERO));
        assert!(stats.hashed_fps() > 0.4);
    }
}
