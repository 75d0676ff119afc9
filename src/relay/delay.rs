//! The delay buffer: media held for a fixed delay before it goes to the platform, so a cut can
//! discard what the verdict has not yet cleared. Audio, video and data share one line, in
//! arrival order. Every message is held at least the delay after it arrived, whatever the
//! publisher's pacing; within that, messages are released at their stream time plus the delay
//! against a monotonic clock, so the platform sees the broadcaster's own pacing, not the
//! network's jitter. Bounded in bytes: over the cap the stream is refused.
//!
//! With inspection on, a message also waits for inspection to have processed the video up to
//! it (its *gate*: the stream's wall coverage clock when it arrived): a burst, or inspection
//! running late, holds the line instead of letting unseen video out. The coverage watch cuts a
//! stream that stays that late; past `gate_timeout` beyond its due time a message goes out
//! anyway (only `on_uninspectable = "alert"` lets a stream get there).

use std::time::{Duration, Instant};

use super::queue::{ByteBounded, QueueFull, Weighed};
use crate::rtmp::Message;

/// A held message waiting for audio waits for the audio that arrived up to this long before
/// its release, not up to the release itself: on a live stream there always is audio that
/// arrived a moment ago and is still being judged. (Judged means decoded and fingerprinted;
/// windows are matched every 0.5 s of audio, which `delay` ≥ `min_seconds` + 1.5 s covers.)
pub const AUDIO_IN_FLIGHT: Duration = Duration::from_millis(250);

/// How far inspection must have come before a held message may go out: video processed up to
/// `video` on the stream's wall coverage clock (0: no wait), and with `audio` the audio that
/// arrived up to [`AUDIO_IN_FLIGHT`] before the message's release judged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gates {
    /// On the wall coverage clock.
    pub video: u64,
    /// Whether the message waits for audio inspection.
    pub audio: bool,
}

/// How far inspection has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Video processed, on the wall coverage clock.
    pub video: u64,
    /// Audio judged up to what arrived at this instant (`None`: all it was offered).
    pub audio: Option<Instant>,
}

impl Gates {
    fn reached(&self, release: Instant, progress: Progress) -> bool {
        let audio_judged = || {
            let needed = release.checked_sub(AUDIO_IN_FLIGHT);
            progress
                .audio
                .is_none_or(|judged| needed.is_none_or(|needed| needed <= judged))
        };
        self.video <= progress.video && (!self.audio || audio_judged())
    }
}

/// The delay line of one stream.
#[derive(Debug)]
pub struct DelayLine {
    delay: Duration,
    gate_timeout: Duration,
    /// (release time, inspection gates, message).
    held: ByteBounded<(Instant, Gates, Message)>,
    limit: usize,
    /// Wall instant and stream timestamp that map stream time to release time.
    anchor: Option<(Instant, u32)>,
    last_release: Option<Instant>,
}

impl DelayLine {
    /// A line holding media for `delay`, at most `limit` bytes; a message inspection has not
    /// reached goes out at most `gate_timeout` after its release time.
    pub fn new(delay: Duration, limit: usize, gate_timeout: Duration) -> DelayLine {
        DelayLine {
            delay,
            gate_timeout,
            held: ByteBounded::new(limit),
            limit,
            anchor: None,
            last_release: None,
        }
    }

    /// Holds a message that arrived at `arrived`, released once inspection has reached its
    /// `gates`.
    pub fn push(&mut self, msg: Message, arrived: Instant, gates: Gates) -> Result<(), QueueFull> {
        if self.held.held_bytes().saturating_add(msg.weight()) > self.limit {
            return Err(QueueFull {
                held: self.held.held_bytes(),
                limit: self.limit,
            });
        }
        // Timed only once it fits: a refused message must not move the anchor.
        let release = self.release_time(msg.timestamp, arrived);
        self.held
            .push((release, gates, msg))
            .map_err(|(full, _)| full)
    }

    /// Release at the message's stream time plus the delay, paced from the anchor, and never
    /// sooner than `delay` after it arrived. The anchor is the latest-arriving message relative
    /// to its timestamp seen so far: a publisher whose first media comes long after metadata
    /// with the same timestamp (OBS, any encoder with lookahead) moves the anchor later instead
    /// of shortening holds. Timestamps that run ahead of the wall clock by more than the delay
    /// (a jump, a stream sent faster than real time) re-anchor on arrival: the delay is a
    /// guarantee about wall time, whatever the timestamps say.
    fn release_time(&mut self, timestamp: u32, arrived: Instant) -> Instant {
        let earliest = arrived + self.delay;
        let by_timestamp = self.anchor.map(|(at, ts)| {
            let offset = timestamp.wrapping_sub(ts) as i32 as i64;
            let base = if offset >= 0 {
                at + Duration::from_millis(offset as u64)
            } else {
                at.checked_sub(Duration::from_millis(offset.unsigned_abs()))
                    .unwrap_or(at)
            };
            base + self.delay
        });
        let release = match by_timestamp {
            Some(t) if t >= earliest && t <= earliest + self.delay => t,
            _ => {
                self.anchor = Some((arrived, timestamp));
                earliest
            }
        };
        // Releases never go backwards, so arrival order is kept (this only lengthens holds).
        let release = self.last_release.map_or(release, |last| release.max(last));
        self.last_release = Some(release);
        release
    }

    /// When the oldest held message is due (by time; it may still wait for inspection).
    pub fn next_release(&self) -> Option<Instant> {
        self.held.front().map(|(at, _, _)| *at)
    }

    /// Takes every message due at `now` whose gates inspection has reached (`processed`),
    /// oldest first; order is kept, so one waiting message holds those behind it.
    pub fn take_due(&mut self, now: Instant, processed: Progress) -> Vec<Message> {
        let mut due = Vec::new();
        while let Some((at, gates, _)) = self.held.front() {
            let inspected = gates.reached(*at, processed) || now >= *at + self.gate_timeout;
            if *at > now || !inspected {
                break;
            }
            if let Some((_, _, msg)) = self.held.pop_front() {
                due.push(msg);
            }
        }
        due
    }

    /// Whether the oldest message is due by time but waits for inspection to reach its gates
    /// (`processed`), and is not yet past the gates' timeout.
    pub fn waiting_for_inspection(&self, now: Instant, processed: Progress) -> bool {
        self.held.front().is_some_and(|(at, gates, _)| {
            *at <= now && !gates.reached(*at, processed) && now < *at + self.gate_timeout
        })
    }

    /// Drops everything held (a cut); returns how many messages never left.
    pub fn discard(&mut self) -> usize {
        self.held.clear()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    /// Gates on video only.
    fn v(video: u64) -> Gates {
        Gates {
            video,
            audio: false,
        }
    }

    /// Progress of video, with no audio to wait for.
    fn p(video: u64) -> Progress {
        Progress { video, audio: None }
    }

    fn msg(ts: u32) -> Message {
        Message {
            csid: 6,
            timestamp: ts,
            type_id: 9,
            stream_id: 1,
            payload: Bytes::from_static(&[0u8; 100]),
        }
    }

    #[test]
    fn releases_by_timestamp_after_the_delay_in_order() {
        let t0 = Instant::now();
        let ms = |m: u64| t0 + Duration::from_millis(m);
        let mut line = DelayLine::new(Duration::from_secs(2), 1 << 20, Duration::from_secs(4));
        // Arrival jitter: the second message arrives 30 ms late, the third 5 ms early.
        line.push(msg(0), t0, v(0)).expect("room");
        line.push(msg(40), ms(70), v(0)).expect("room");
        line.push(msg(80), ms(75), v(0)).expect("room");
        line.push(msg(120), ms(150), v(0)).expect("room");
        assert_eq!(line.next_release(), Some(ms(2000)));
        assert!(line.take_due(ms(1999), p(u64::MAX)).is_empty());
        let order: Vec<(u32, u64)> = [2000, 2070, 2110, 2150]
            .iter()
            .flat_map(|&at| {
                line.take_due(ms(at), p(u64::MAX))
                    .into_iter()
                    .map(move |m| (m.timestamp, at))
            })
            .collect();
        // The late message is held its full delay from its arrival, and the anchor moves with
        // it: the early one after it goes out at its stream time from there, not sooner.
        assert_eq!(order, vec![(0, 2000), (40, 2070), (80, 2110), (120, 2150)]);
        assert!(line.is_empty());
    }

    #[test]
    fn no_message_is_held_less_than_the_delay() {
        // OBS: onMetaData at 0.05 s and the first frame at 0.7 s, both with timestamp 0; then
        // frames whose arrival lags and jitters around their timestamps.
        let t0 = Instant::now();
        let delay = Duration::from_secs(2);
        let mut line = DelayLine::new(delay, 1 << 20, Duration::from_secs(4));
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let arrivals = [
            (0, 50),
            (0, 700),
            (33, 720),
            (67, 760),
            (100, 900),
            (133, 905),
            (167, 910),
            (3_600_000, 950),
            (3_600_033, 990),
            (200, 1000),
        ];
        for (ts, arrived) in arrivals {
            line.push(msg(ts), at(arrived), v(0)).expect("room");
        }
        let mut held = Vec::new();
        let mut now = t0;
        while !line.is_empty() {
            now += Duration::from_millis(1);
            for m in line.take_due(now, p(u64::MAX)) {
                held.push((m.timestamp, now));
            }
        }
        for ((ts, arrived), (released_ts, released)) in arrivals.iter().zip(&held) {
            assert_eq!(ts, released_ts, "arrival order kept");
            assert!(
                *released >= at(*arrived) + delay,
                "message {ts} arrived at {arrived} ms, held only {:?}",
                *released - at(*arrived)
            );
        }
        // Paced by timestamps once anchored on the late first frame: frame 33 goes out 33 ms
        // after frame 0, not at its own (jittered) arrival plus the delay.
        assert_eq!(held[2].1 - held[1].1, Duration::from_millis(33));
    }

    #[test]
    fn jumps_re_anchor_and_cuts_discard() {
        let t0 = Instant::now();
        let mut line = DelayLine::new(Duration::from_secs(1), 1 << 20, Duration::from_secs(4));
        line.push(msg(0), t0, v(0)).expect("room");
        // Timestamps jump 1 hour ahead: released a delay after arrival, not in an hour.
        line.push(msg(3_600_000), t0 + Duration::from_millis(10), v(0))
            .expect("room");
        assert_eq!(
            line.take_due(t0 + Duration::from_millis(1010), p(u64::MAX))
                .len(),
            2
        );
        line.push(msg(3_600_040), t0 + Duration::from_millis(50), v(0))
            .expect("room");
        assert_eq!(line.discard(), 1);
        assert!(line.is_empty());
    }

    #[test]
    fn held_until_inspection_reaches_it_or_the_gate_times_out() {
        let t0 = Instant::now();
        let ms = |m: u64| t0 + Duration::from_millis(m);
        let mut line = DelayLine::new(Duration::from_secs(2), 1 << 20, Duration::from_secs(4));
        // Video up to clock 100 and 500 ms; audio that arrived after the second (same gate).
        line.push(msg(0), t0, v(100)).expect("room");
        line.push(msg(400), ms(400), v(500)).expect("room");
        line.push(msg(410), ms(410), v(500)).expect("room");
        assert_eq!(
            line.take_due(ms(3000), p(0)).len(),
            0,
            "inspection has not started"
        );
        assert!(line.waiting_for_inspection(ms(3000), p(0)));
        assert!(
            !line.waiting_for_inspection(ms(3000), p(100)),
            "inspected: only due"
        );
        assert!(!line.waiting_for_inspection(ms(1999), p(0)), "not due yet");
        assert_eq!(line.take_due(ms(3000), p(120)).len(), 1);
        assert_eq!(
            line.take_due(ms(3000), p(499)).len(),
            0,
            "inspection not yet at the second"
        );
        assert_eq!(line.take_due(ms(3000), p(500)).len(), 2);
        // Inspection never gets there: out after the gate timeout (alert-only streams).
        line.push(msg(500), ms(500), v(900)).expect("room");
        assert!(line.take_due(ms(6499), p(0)).is_empty());
        assert_eq!(line.take_due(ms(6500), p(0)).len(), 1);
    }

    #[test]
    fn bounded_in_bytes() {
        let mut line = DelayLine::new(Duration::from_secs(1), 400, Duration::from_secs(4));
        let now = Instant::now();
        line.push(msg(0), now, v(0)).expect("room");
        line.push(msg(1), now, v(0)).expect("room");
        assert!(line.push(msg(2), now, v(0)).is_err());
    }

    #[test]
    fn a_message_waiting_for_audio_goes_out_once_audio_is_judged_or_the_wait_times_out() {
        let t0 = Instant::now();
        let ms = |m: u64| t0 + Duration::from_millis(m);
        let mut line = DelayLine::new(Duration::from_secs(6), 1 << 20, Duration::from_secs(4));
        let gates = Gates {
            video: 10,
            audio: true,
        };
        // Released at 6 s: waits for the audio that arrived by 5.75 s to be judged.
        line.push(msg(0), t0, gates).expect("room");
        let progress = |audio| Progress { video: 10, audio };
        assert!(line.waiting_for_inspection(ms(6000), progress(Some(ms(5000)))));
        assert!(line.take_due(ms(6000), progress(Some(ms(5749)))).is_empty());
        assert!(
            line.take_due(
                ms(6000),
                Progress {
                    video: 9,
                    audio: None
                }
            )
            .is_empty(),
            "audio judged, video not processed"
        );
        assert_eq!(line.take_due(ms(6000), progress(Some(ms(5750)))).len(), 1);
        // All audio offered is judged: nothing to wait for.
        line.push(msg(40), ms(40), gates).expect("room");
        assert_eq!(line.take_due(ms(6040), progress(None)).len(), 1);
        // Never judged: out when the wait times out.
        line.push(msg(80), ms(80), gates).expect("room");
        assert!(line.take_due(ms(10_079), progress(Some(t0))).is_empty());
        assert_eq!(
            line.take_due(ms(10_080), progress(Some(t0))).len(),
            1,
            "timed out"
        );
        // Released later than pushed plus the delay (paced by its timestamp): the gate follows
        // the release.
        line.push(msg(3000), ms(100), gates).expect("room");
        assert!(line.take_due(ms(9000), progress(Some(ms(6000)))).is_empty());
        assert_eq!(line.take_due(ms(9000), progress(Some(ms(8750)))).len(), 1);
    }
}
