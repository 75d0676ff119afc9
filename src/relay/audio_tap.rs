//! The audio tap: each stream's audio messages towards audio inspection, copy-free and never
//! blocking. A full inbox drops the message for inspection only (AAC and MP3 frames decode on
//! their own, so a dropped one is a gap in the fingerprint, not garbage after it).

use std::time::Instant;

use bytes::Bytes;

use super::tap::StreamInfo;
use crate::rtmp::Message;

/// An audio message as inspection receives it.
#[derive(Debug, Clone)]
pub struct TappedAudio {
    /// Stream time in milliseconds.
    pub timestamp: u32,
    /// The FLV audio tag body, shared with the relay.
    pub payload: Bytes,
    /// When the relay read it off the broadcaster's socket.
    pub arrived: Instant,
}

/// Where an audio tap delivers: a bounded inbox that refuses rather than waits.
pub trait AudioSink: Send {
    /// Queues a message; false when the inbox is full.
    fn push(&mut self, audio: TappedAudio) -> bool;
    /// The stream ended.
    fn close(&mut self) {}
}

/// One stream's audio tap.
pub struct AudioTap {
    sink: Box<dyn AudioSink>,
    dropped: u64,
}

impl AudioTap {
    /// A tap delivering to `sink`.
    pub fn new(sink: Box<dyn AudioSink>) -> AudioTap {
        AudioTap { sink, dropped: 0 }
    }

    /// Offers an audio message; never waits. False when it was dropped.
    pub fn offer(&mut self, msg: &Message, arrived: Instant) -> bool {
        let audio = TappedAudio {
            timestamp: msg.timestamp,
            payload: msg.payload.clone(),
            arrived,
        };
        let queued = self.sink.push(audio);
        if !queued {
            self.dropped += 1;
        }
        queued
    }

    /// Messages dropped because inspection was behind.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

impl Drop for AudioTap {
    fn drop(&mut self) {
        self.sink.close();
    }
}

/// Opens audio taps for new streams; audio inspection implements it.
pub trait AudioTapProvider: Send + Sync {
    /// A tap for this stream's audio, or `None` to leave it unheard.
    fn open_audio(&self, stream: &StreamInfo) -> Option<AudioTap>;
}
