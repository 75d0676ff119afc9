//! The delay buffer: media held for a fixed delay before it goes to the platform, so a cut can
//! discard what the verdict has not yet cleared. Audio, video and data share one line, in
//! arrival order; each message is released at its stream time plus the delay against a monotonic
//! clock anchored at the stream's start, so the platform sees the broadcaster's own pacing, not
//! the network's jitter. Bounded in bytes: over the cap the stream is refused.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::queue::QueueFull;
use crate::rtmp::Message;

const PER_MESSAGE_OVERHEAD: usize = 64;

/// The delay line of one stream.
#[derive(Debug)]
pub struct DelayLine {
    delay: Duration,
    held: VecDeque<(Instant, Message)>,
    bytes: usize,
    limit: usize,
    /// Wall instant and stream timestamp that map stream time to release time.
    anchor: Option<(Instant, u32)>,
    last_release: Option<Instant>,
}

impl DelayLine {
    /// A line holding media for `delay`, at most `limit` bytes.
    pub fn new(delay: Duration, limit: usize) -> DelayLine {
        DelayLine {
            delay,
            held: VecDeque::new(),
            bytes: 0,
            limit,
            anchor: None,
            last_release: None,
        }
    }

    /// Holds a message that arrived at `arrived`.
    pub fn push(&mut self, msg: Message, arrived: Instant) -> Result<(), QueueFull> {
        let cost = msg.payload.len() + PER_MESSAGE_OVERHEAD;
        if self.bytes + cost > self.limit {
            return Err(QueueFull {
                held: self.bytes,
                limit: self.limit,
            });
        }
        let release = self.release_time(msg.timestamp, arrived);
        self.bytes += cost;
        self.held.push_back((release, msg));
        Ok(())
    }

    fn release_time(&mut self, timestamp: u32, arrived: Instant) -> Instant {
        let by_timestamp = self.anchor.map(|(at, ts)| {
            let offset = timestamp.wrapping_sub(ts) as i32 as i64;
            if offset >= 0 {
                at + Duration::from_millis(offset as u64) + self.delay
            } else {
                at.checked_sub(Duration::from_millis(offset.unsigned_abs()))
                    .unwrap_or(at)
                    + self.delay
            }
        });
        // A stream sent faster or slower than real time, or a timestamp jump, re-anchors: the
        // delay is a guarantee about wall time, whatever the timestamps say.
        let release = match by_timestamp {
            Some(t) if t >= arrived + self.delay / 2 && t <= arrived + self.delay * 2 => t,
            _ => {
                self.anchor = Some((arrived, timestamp));
                arrived + self.delay
            }
        };
        // Releases never go backwards, so arrival order is kept.
        let release = self.last_release.map_or(release, |last| release.max(last));
        self.last_release = Some(release);
        release
    }

    /// When the oldest held message is due.
    pub fn next_release(&self) -> Option<Instant> {
        self.held.front().map(|(at, _)| *at)
    }

    /// Takes every message due at `now`, oldest first.
    pub fn take_due(&mut self, now: Instant) -> Vec<Message> {
        let mut due = Vec::new();
        while self.held.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, msg)) = self.held.pop_front() {
                self.bytes -= msg.payload.len() + PER_MESSAGE_OVERHEAD;
                due.push(msg);
            }
        }
        due
    }

    /// Drops everything held (a cut); returns how many messages never left.
    pub fn discard(&mut self) -> usize {
        let n = self.held.len();
        self.held.clear();
        self.bytes = 0;
        n
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
        let mut line = DelayLine::new(Duration::from_secs(2), 1 << 20);
        // Arrival jitter: the second message arrives late, the third early.
        line.push(msg(0), t0).expect("room");
        line.push(msg(40), t0 + Duration::from_millis(70))
            .expect("room");
        line.push(msg(80), t0 + Duration::from_millis(75))
            .expect("room");
        assert_eq!(line.next_release(), Some(t0 + Duration::from_secs(2)));
        assert!(line.take_due(t0 + Duration::from_millis(1999)).is_empty());
        let due: Vec<u32> = line
            .take_due(t0 + Duration::from_millis(2040))
            .iter()
            .map(|m| m.timestamp)
            .collect();
        assert_eq!(
            due,
            vec![0, 40],
            "released at stream time + delay, not arrival + delay"
        );
        assert_eq!(line.take_due(t0 + Duration::from_millis(2080)).len(), 1);
        assert!(line.is_empty());
    }

    #[test]
    fn jumps_re_anchor_and_cuts_discard() {
        let t0 = Instant::now();
        let mut line = DelayLine::new(Duration::from_secs(1), 1 << 20);
        line.push(msg(0), t0).expect("room");
        // Timestamps jump 1 hour ahead: released a delay after arrival, not in an hour.
        line.push(msg(3_600_000), t0 + Duration::from_millis(10))
            .expect("room");
        assert_eq!(line.take_due(t0 + Duration::from_millis(1010)).len(), 2);
        line.push(msg(3_600_040), t0 + Duration::from_millis(50))
            .expect("room");
        assert_eq!(line.discard(), 1);
        assert!(line.is_empty());
    }

    #[test]
    fn bounded_in_bytes() {
        let mut line = DelayLine::new(Duration::from_secs(1), 400);
        let now = Instant::now();
        line.push(msg(0), now).expect("room");
        line.push(msg(1), now).expect("room");
        assert!(line.push(msg(2), now).is_err());
    }
}
