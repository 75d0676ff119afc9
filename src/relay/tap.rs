//! The video tap: a copy-free, never-blocking branch of each stream's video messages towards
//! inspection.
//!
//! The relay offers every video message to the stream's tap. A full inbox never delays
//! forwarding: the message is dropped for inspection only, and the tap then skips to the next
//! keyframe (a decoder fed half a GOP only produces garbage), re-sending the last sequence header
//! first so the decoder can start again. The inbox is a [`TapSink`]: the inspection pool's, or a
//! plain bounded channel ([`VideoTap::channel`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::stats::CoverageClock;
use crate::rtmp::Message;

/// A video message as inspection receives it.
#[derive(Debug, Clone)]
pub struct TappedVideo {
    /// Stream time in milliseconds.
    pub timestamp: u32,
    /// FLV / Enhanced RTMP video tag body, shared with the relay (no copy).
    pub payload: Bytes,
    /// When the relay read it off the broadcaster's socket.
    pub arrived: Instant,
    /// Where it sits on the stream's coverage clocks (see [`super::stats`]).
    pub clock: CoverageClock,
}

/// Where a tap delivers: a bounded inbox that refuses rather than waits.
pub trait TapSink: Send {
    /// Queues a message; false when the inbox is full (the message is then dropped).
    fn push(&mut self, video: TappedVideo) -> bool;
    /// The stream ended: no more messages.
    fn close(&mut self) {}
    /// The relay's delay line is waiting for inspection to finish with video it has: finish
    /// what is held now (hybrid mode's frames waiting for a sample that has not come, as
    /// when the video pauses) rather than wait for more video.
    fn settle(&mut self) {}
}

impl TapSink for mpsc::Sender<TappedVideo> {
    fn push(&mut self, video: TappedVideo) -> bool {
        self.try_send(video).is_ok()
    }
}

/// The stream a tap is opened for.
#[derive(Debug, Clone)]
pub struct StreamInfo {
    /// Unique for the life of the process: tells apart two streams published under one key.
    pub id: u64,
    /// Broadcaster's stream key.
    pub stream_key: String,
    /// Application the broadcaster connected to.
    pub app: String,
    /// Broadcaster's address.
    pub peer: SocketAddr,
    /// Its live counters.
    pub stats: Arc<super::stats::StreamStats>,
}

impl StreamInfo {
    /// A stream just published, with fresh counters.
    pub fn new(stream_key: &str, app: &str, peer: SocketAddr) -> StreamInfo {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        StreamInfo {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            stream_key: stream_key.to_owned(),
            app: app.to_owned(),
            peer,
            stats: Arc::default(),
        }
    }
}

/// Opens taps for new streams; the inspection side implements it.
pub trait TapProvider: Send + Sync {
    /// Whether inspection can take this stream on, asked at its publish; the refusal says why
    /// (the broadcaster is refused, never accepted and cut later for lack of capacity).
    fn admit(&self, _stream: &StreamInfo) -> Result<(), String> {
        Ok(())
    }

    /// A tap for this stream, or `None` to leave it uninspected.
    fn open(&self, stream: &StreamInfo) -> Option<VideoTap>;
}

pub use crate::rtmp::video_tag::{video_frame_kind, VideoFrameKind};

/// One stream's tap. See the module documentation.
pub struct VideoTap {
    sink: Box<dyn TapSink>,
    sequence_header: Option<TappedVideo>,
    resync: bool,
    dropped: u64,
    ended: bool,
}

impl VideoTap {
    /// A tap delivering to `sink`.
    pub fn new(sink: Box<dyn TapSink>) -> VideoTap {
        VideoTap {
            sink,
            sequence_header: None,
            resync: false,
            dropped: 0,
            ended: false,
        }
    }

    /// The broadcaster is done: inspection finishes what it holds now (hybrid mode's frames
    /// waiting for a sample), so the delay buffer can let the end of the stream out without
    /// waiting for the tap to be dropped.
    pub fn end(&mut self) {
        if !self.ended {
            self.ended = true;
            self.sink.close();
        }
    }

    /// A tap and the receiver inspection reads from, holding at most `capacity` messages.
    pub fn channel(capacity: usize) -> (VideoTap, mpsc::Receiver<TappedVideo>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (VideoTap::new(Box::new(tx)), rx)
    }

    /// The delay line waits for inspection: ask it to finish what it holds (see
    /// [`TapSink::settle`]).
    pub fn settle(&mut self) {
        if !self.ended {
            self.sink.settle();
        }
    }

    /// Offers a video message that arrived at `arrived`, at `clock` on the coverage clocks.
    /// Never waits.
    pub fn offer(&mut self, msg: &Message, arrived: Instant, clock: CoverageClock) {
        if self.ended {
            return;
        }
        let video = TappedVideo {
            timestamp: msg.timestamp,
            payload: msg.payload.clone(),
            arrived,
            clock,
        };
        match video_frame_kind(&msg.payload) {
            VideoFrameKind::SequenceHeader => {
                self.sequence_header = Some(video.clone());
                // A header that does not fit is resent before the next keyframe.
                self.resync = !self.send(video);
            }
            VideoFrameKind::Keyframe if self.resync => {
                // The header is resent as of now: it is part of this keyframe's catch-up, and
                // its first arrival would make inspection look as old as the stream.
                let header_sent = match self.sequence_header.clone() {
                    Some(header) => self.send(TappedVideo {
                        arrived: video.arrived,
                        clock: video.clock,
                        ..header
                    }),
                    None => true,
                };
                self.resync = !(header_sent && self.send(video));
            }
            _ if self.resync => self.dropped += 1,
            _ => self.resync = !self.send(video),
        }
    }

    fn send(&mut self, video: TappedVideo) -> bool {
        let sent = self.sink.push(video);
        if !sent {
            self.dropped += 1;
        }
        sent
    }

    /// Video messages inspection did not get because it was behind.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

impl Drop for VideoTap {
    fn drop(&mut self) {
        self.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(ts: u32, bytes: &'static [u8]) -> Message {
        Message {
            csid: 6,
            timestamp: ts,
            type_id: 9,
            stream_id: 1,
            payload: Bytes::from_static(bytes),
        }
    }

    const HEADER: &[u8] = &[0x17, 0, 0, 0, 0, 1];
    const KEY: &[u8] = &[0x17, 1, 0, 0, 0, 9];
    const INTER: &[u8] = &[0x27, 1, 0, 0, 0, 9];

    #[test]
    fn full_tap_drops_until_next_keyframe_and_replays_the_header() {
        let (mut tap, mut rx) = VideoTap::channel(2);
        let now = Instant::now();
        let later = now + std::time::Duration::from_secs(300);
        let c = CoverageClock::default();
        tap.offer(&video(0, HEADER), now, c);
        tap.offer(&video(0, KEY), now, c);
        tap.offer(&video(40, INTER), now, c); // channel full: dropped, resync
        assert_eq!(rx.try_recv().map(|v| v.timestamp).ok(), Some(0));
        assert_eq!(rx.try_recv().map(|v| v.timestamp).ok(), Some(0));
        tap.offer(&video(80, INTER), now, c); // room now, but mid-GOP: skipped
        tap.offer(&video(120, KEY), later, c); // header replayed, then keyframe
        tap.offer(&video(160, INTER), later, c); // full again
        assert_eq!(tap.dropped(), 3);
        let header = rx.try_recv().expect("header replayed");
        assert_eq!(header.payload, Bytes::from_static(HEADER));
        assert_eq!(
            header.arrived, later,
            "a replayed header arrives with its keyframe, not 5 minutes ago"
        );
        assert_eq!(rx.try_recv().map(|v| v.timestamp).ok(), Some(120));
        assert!(rx.try_recv().is_err());
    }
}
