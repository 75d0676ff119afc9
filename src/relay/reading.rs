//! One reading of the stream for the gate and the platform: what each message from the
//! broadcaster becomes before anything of it is inspected or forwarded.
//!
//! The relay re-chunks everything it forwards, so the broadcaster's chunk framing never reaches
//! the platform; but message bodies do, and an ingest server reads some of them in ways a
//! careful parser does not (nginx-rtmp, read in its source and tried live):
//!
//! - aggregates are unpacked at every depth, and every message inside is dispatched, commands
//!   and Set Chunk Size included ([`aggregate`]): read to the bottom here, refused when they
//!   carry anything but media, forwarded as they came only when no platform can read them
//!   otherwise, else as the media inside;
//! - AMF data messages are dispatched by their name alone, case-insensitively and up to a NUL,
//!   whatever their type: a data message named `deleteStream` or `publish` unpublishes the
//!   stream or republishes it under another name. Only data messages named exactly as metadata
//!   is named ([`METADATA_NAMES`]) go on;
//! - video info/command frames (frame type 5) are skipped by FFmpeg's demuxer, so by inspection
//!   and by players built on it, but muxed as video by nginx-rtmp's HLS (and a sequence header in
//!   one is cached for it): they do not go on;
//! - classic AVC/HEVC messages of a packet type other than 0 and 1 that carry data are decoded
//!   as frames by FFmpeg and dropped by nginx-rtmp's HLS: they do not go on either;
//! - a negative composition time is sign-extended by FFmpeg and read as 16,777 s ahead by
//!   nginx-rtmp's HLS: a stream that sends one is refused (no encoder does);
//! - nginx-rtmp does not read Enhanced RTMP video tags at all (its HLS and the header it hands
//!   joining players stay those of the classic tags): a stream whose video switches between
//!   the two framings is refused, since inspection would follow a header the platform ignores.

use bytes::Bytes;

use crate::rtmp::aggregate::{self, AggregateError};
use crate::rtmp::message::kind;
use crate::rtmp::video_tag::{is_enhanced, video_forwarding, VideoForwarding};
use crate::rtmp::Message;

/// Names of the AMF data messages forwarded: metadata and the timed-text and cue-point data
/// encoders send. None of them is a name nginx-rtmp runs as a command in any case.
pub const METADATA_NAMES: &[&str] = &[
    "@setDataFrame",
    "@clearDataFrame",
    "onMetaData",
    "onTextData",
    "onCuePoint",
    "onCaptionInfo",
];

/// A broadcaster's message as the gate and the platform will both read it.
#[derive(Debug, Default, PartialEq)]
pub struct Reading {
    /// What goes on towards the platform, in order: the message as it came, or the media
    /// inside an aggregate that cannot go on as it came, less what is left out.
    pub pass_on: Vec<Message>,
    /// The audio and video messages the platform will get from `pass_on`: what inspection sees.
    pub media: Vec<Message>,
    /// Messages not forwarded, each with why (never media inspection would have seen).
    pub left_out: Vec<String>,
}

/// Why a stream is refused: something in it no platform reads the way the gate does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unreadable {
    /// An aggregate that cannot be read to the bottom, or carries more than media.
    #[error(transparent)]
    Aggregate(#[from] AggregateError),
    /// A coded video frame presented before it is decoded.
    #[error("a video frame with a negative composition time ({0} ms): platforms read it apart")]
    NegativeCompositionTime(i32),
    /// Video in classic FLV tags and in Enhanced RTMP tags on one stream.
    #[error(
        "video switches between classic FLV and Enhanced RTMP tags: platforms that read only \
         the classic ones would show other pictures than inspection sees"
    )]
    MixedFraming,
}

/// What reading a stream remembers from one message to the next.
#[derive(Debug, Default)]
pub struct Reader {
    /// Whether the stream's video came in Enhanced RTMP tags (`None`: no video yet).
    enhanced: Option<bool>,
}

/// Messages a stream's reading left out: counted, each kind of reason logged once.
#[derive(Debug, Default)]
pub struct LeftOut {
    count: u64,
    logged: Vec<String>,
}

impl LeftOut {
    /// Notes one message left out, for `why`.
    pub fn note(&mut self, why: &str) {
        self.count += 1;
        if self.logged.len() < 8 && !self.logged.iter().any(|w| w == why) {
            tracing::warn!("not forwarded: {why} (platforms read it otherwise)");
            self.logged.push(why.to_owned());
        }
    }

    /// How many messages were left out.
    pub fn count(&self) -> u64 {
        self.count
    }
}

impl Reader {
    /// Reads one media message (audio, video, data or aggregate) from the broadcaster.
    pub fn read(&mut self, msg: Message) -> Result<Reading, Unreadable> {
        let mut reading = Reading::default();
        if msg.type_id != kind::AGGREGATE {
            if self.keep(&mut reading, &msg)? {
                reading.pass_on.push(msg);
            }
            return Ok(reading);
        }
        let unpacked = aggregate::unpack(&msg)?;
        let mut kept = Vec::with_capacity(unpacked.media.len());
        for sub in unpacked.media {
            if self.keep(&mut reading, &sub)? {
                kept.push(sub);
            }
        }
        if unpacked.plain && reading.left_out.is_empty() {
            reading.pass_on.push(msg);
        } else {
            reading.pass_on = kept;
        }
        Ok(reading)
    }

    /// [`Reading::keep`], after checking the video's framing stays what it was.
    fn keep(&mut self, reading: &mut Reading, msg: &Message) -> Result<bool, Unreadable> {
        if msg.type_id == kind::VIDEO && !msg.payload.is_empty() {
            let enhanced = is_enhanced(&msg.payload);
            if *self.enhanced.get_or_insert(enhanced) != enhanced {
                return Err(Unreadable::MixedFraming);
            }
        }
        reading.keep(msg)
    }
}

/// Reads one media message of a stream whose earlier messages are not known (tests, fuzzing).
pub fn read(msg: Message) -> Result<Reading, Unreadable> {
    Reader::default().read(msg)
}

impl Reading {
    /// Whether a message (not an aggregate) goes on; its audio or video is noted as media, what
    /// is left out with why.
    fn keep(&mut self, msg: &Message) -> Result<bool, Unreadable> {
        let left_out = match msg.type_id {
            kind::VIDEO => match video_forwarding(&msg.payload) {
                VideoForwarding::Frame { composition_time } if composition_time < 0 => {
                    return Err(Unreadable::NegativeCompositionTime(composition_time))
                }
                VideoForwarding::Command => "a video info/command frame (frame type 5)".into(),
                VideoForwarding::OddPacket(packet_type) => {
                    format!("a video frame under AVC/HEVC packet type {packet_type}")
                }
                _ => {
                    self.media.push(msg.clone());
                    return Ok(true);
                }
            },
            kind::AUDIO => {
                self.media.push(msg.clone());
                return Ok(true);
            }
            kind::DATA_AMF0 | kind::DATA_AMF3 => match data_name(msg) {
                Some(name) if METADATA_NAMES.contains(&name) => return Ok(true),
                name => format!(
                    "a data message named {:?}: not a metadata name",
                    name.unwrap_or("(none)")
                ),
            },
            other => format!("a message of type {other}"),
        };
        self.left_out.push(left_out);
        Ok(false)
    }
}

/// The name of an AMF data message, read where nginx-rtmp reads it (after the one-byte prefix
/// of an AMF3 message): an AMF0 string, valid UTF-8 with no NUL, else `None`.
fn data_name(msg: &Message) -> Option<&str> {
    let body: &Bytes = &msg.payload;
    let body = if msg.type_id == kind::DATA_AMF3 {
        body.get(1..)?
    } else {
        &body[..]
    };
    let (&marker, rest) = body.split_first()?;
    if marker != 0x02 {
        return None;
    }
    let len = u16::from_be_bytes([*rest.first()?, *rest.get(1)?]) as usize;
    let name = std::str::from_utf8(rest.get(2..2 + len)?).ok()?;
    (!name.contains('\0')).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(type_id: u8, ts: u32, payload: Vec<u8>) -> Message {
        Message {
            csid: 4,
            timestamp: ts,
            type_id,
            stream_id: 1,
            payload: Bytes::from(payload),
        }
    }

    fn data(type_id: u8, name: &str) -> Message {
        let mut body = if type_id == kind::DATA_AMF3 {
            vec![0]
        } else {
            vec![]
        };
        body.push(2);
        body.extend_from_slice(&(name.len() as u16).to_be_bytes());
        body.extend_from_slice(name.as_bytes());
        body.extend_from_slice(&[2, 0, 10]);
        body.extend_from_slice(b"onMetaData");
        message(type_id, 0, body)
    }

    fn packed(parts: &[&Message]) -> Vec<u8> {
        let mut body = Vec::new();
        for m in parts {
            let size = m.payload.len() as u32;
            body.push(m.type_id);
            body.extend_from_slice(&size.to_be_bytes()[1..]);
            body.extend_from_slice(&m.timestamp.to_be_bytes()[1..]);
            body.push((m.timestamp >> 24) as u8);
            body.extend_from_slice(&[0, 0, 1]);
            body.extend_from_slice(&m.payload);
            body.extend_from_slice(&(size + 11).to_be_bytes());
        }
        body
    }

    const FRAME: &[u8] = &[0x27, 1, 0, 0, 33, 0, 0, 0, 1, 0x41];

    #[test]
    fn media_and_metadata_go_on_as_they_came() {
        let video = message(kind::VIDEO, 40, FRAME.to_vec());
        let reading = read(video.clone()).expect("readable");
        assert_eq!(reading.pass_on, vec![video.clone()]);
        assert_eq!(reading.media, vec![video]);
        for type_id in [kind::DATA_AMF0, kind::DATA_AMF3] {
            let meta = data(type_id, "@setDataFrame");
            let reading = read(meta.clone()).expect("readable");
            assert_eq!(reading.pass_on, vec![meta]);
            assert!(reading.media.is_empty() && reading.left_out.is_empty());
        }
    }

    #[test]
    fn data_messages_named_like_commands_are_left_out() {
        for name in [
            "deleteStream",
            "PUBLISH",
            "onMetaData\0x",
            "onmetadata",
            "connect",
            "",
        ] {
            let reading = read(data(kind::DATA_AMF0, name)).expect("readable");
            assert!(reading.pass_on.is_empty(), "{name:?} went on");
            assert_eq!(reading.left_out.len(), 1);
        }
        // Not an AMF0 string at all.
        let reading = read(message(kind::DATA_AMF0, 0, vec![0, 0, 0])).expect("readable");
        assert!(reading.pass_on.is_empty());
    }

    #[test]
    fn command_frames_are_left_out_and_negative_composition_times_refused() {
        let command = message(kind::VIDEO, 0, vec![0x57, 1, 0, 0, 0, 0, 0, 0, 1, 0x41]);
        let reading = read(command).expect("readable");
        assert!(reading.pass_on.is_empty() && reading.media.is_empty());
        let early = message(
            kind::VIDEO,
            0,
            vec![0x27, 1, 0xFF, 0xFF, 0xDF, 0, 0, 0, 1, 0x41],
        );
        assert_eq!(read(early), Err(Unreadable::NegativeCompositionTime(-33)));
    }

    #[test]
    fn frames_under_other_packet_types_are_left_out() {
        for packet_type in [2u8, 3, 200] {
            let odd = message(
                kind::VIDEO,
                0,
                vec![0x27, packet_type, 0, 0, 0, 0, 0, 0, 1, 0x41],
            );
            let reading = read(odd).expect("readable");
            assert!(reading.pass_on.is_empty() && reading.media.is_empty());
        }
        // End of sequence without data goes on.
        let end = message(kind::VIDEO, 0, vec![0x17, 2, 0, 0, 0]);
        assert_eq!(read(end).expect("readable").pass_on.len(), 1);
    }

    #[test]
    fn video_switching_between_classic_and_enhanced_tags_is_refused() {
        let mut reader = Reader::default();
        let classic = message(kind::VIDEO, 0, FRAME.to_vec());
        let mut enhanced = vec![0x90];
        enhanced.extend_from_slice(b"avc1");
        enhanced.extend_from_slice(&[1, 0x64, 0, 0x1F]);
        let enhanced = message(kind::VIDEO, 40, enhanced);
        assert!(reader.read(classic.clone()).is_ok());
        assert_eq!(reader.read(enhanced.clone()), Err(Unreadable::MixedFraming));
        // One framing throughout is read.
        let mut only_enhanced = Reader::default();
        assert!(only_enhanced.read(enhanced.clone()).is_ok());
        assert!(only_enhanced.read(enhanced).is_ok());
        assert!(only_enhanced
            .read(message(kind::AUDIO, 0, vec![0xaf, 1, 2]))
            .is_ok());
        assert_eq!(only_enhanced.read(classic), Err(Unreadable::MixedFraming));
    }

    #[test]
    fn an_aggregate_goes_on_whole_only_when_it_holds_nothing_left_out() {
        let video = message(kind::VIDEO, 1000, FRAME.to_vec());
        let meta = data(kind::DATA_AMF0, "onMetaData");
        let plain = message(kind::AGGREGATE, 1000, packed(&[&video, &meta]));
        let reading = read(plain.clone()).expect("readable");
        assert_eq!(reading.pass_on, vec![plain]);
        assert_eq!(reading.media.len(), 1);
        assert_eq!(reading.media[0].timestamp, 1000);
        // A command-named data message inside: the rest goes on as messages of their own.
        let sneaky = data(kind::DATA_AMF0, "deleteStream");
        let mixed = message(kind::AGGREGATE, 1000, packed(&[&video, &sneaky, &meta]));
        let reading = read(mixed).expect("readable");
        let types: Vec<u8> = reading.pass_on.iter().map(|m| m.type_id).collect();
        assert_eq!(types, vec![kind::VIDEO, kind::DATA_AMF0]);
        assert_eq!(reading.left_out.len(), 1);
        // Nested: the media inside goes on as messages of their own.
        let nested = message(kind::AGGREGATE, 1000, packed(&[&plain_of(&video)]));
        let reading = read(nested).expect("readable");
        assert_eq!(reading.pass_on, vec![video.clone()]);
        assert_eq!(reading.media, vec![video]);
    }

    fn plain_of(m: &Message) -> Message {
        message(kind::AGGREGATE, m.timestamp, packed(&[m]))
    }
}
