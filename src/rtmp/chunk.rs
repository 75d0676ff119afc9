//! The chunk stream codec (RTMP 1.0 §5.3): bytes in, [`Message`]s out, and back.
//!
//! The decoder is a `tokio_util` [`Decoder`]. It reassembles messages from interleaved chunks,
//! applies Set Chunk Size and Abort itself (they change how the very next chunk is read), counts
//! the bytes it consumed for acknowledgements, and enforces the per-connection limits. A message
//! that fits in one chunk is split off the read buffer without a copy.
//!
//! The encoder turns a message into a list of `Bytes` segments: small header buffers and slices
//! of the message payload, so forwarding media never copies it. The writer sends the segments
//! with vectored writes.

use std::collections::HashMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::Decoder;

use super::error::RtmpError;
use super::message::{kind, Message};

/// Chunk size every RTMP peer starts with.
pub const DEFAULT_CHUNK_SIZE: usize = 128;
/// Largest chunk size the specification allows (the top bit must be zero).
pub const MAX_CHUNK_SIZE: u32 = 0x7FFF_FFFF;
/// Timestamps at or above this value go in the extended timestamp field.
const EXTENDED_TIMESTAMP: u32 = 0x00FF_FFFF;
/// First allocation for a multi-chunk message; grown as chunks arrive, so a header that claims a
/// huge length costs nothing until the bytes actually come.
const INITIAL_REASSEMBLY: usize = 64 * 1024;

/// Per-connection limits the decoder enforces.
#[derive(Debug, Clone, Copy)]
pub struct DecoderLimits {
    /// Largest message accepted, in bytes.
    pub max_message_size: usize,
    /// Most distinct chunk stream ids a peer may use.
    pub max_chunk_streams: usize,
}

impl Default for DecoderLimits {
    fn default() -> Self {
        DecoderLimits {
            max_message_size: 8 * 1024 * 1024,
            max_chunk_streams: 64,
        }
    }
}

#[derive(Debug, Default)]
struct InboundStream {
    timestamp: u32,
    delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    /// The last full/partial header carried an extended timestamp of this value.
    extended: Option<u32>,
    /// Bytes of the message in progress, when it spans several chunks.
    partial: Option<BytesMut>,
}

/// The header of the next chunk, parsed without consuming anything.
struct ChunkHead {
    fmt: u8,
    csid: u32,
    header_len: usize,
    /// Timestamp or delta (extended value already substituted).
    time: u32,
    uses_extended: bool,
    length: u32,
    type_id: u8,
    stream_id: u32,
    payload_len: usize,
}

/// Decodes chunks into messages. See the module documentation.
#[derive(Debug)]
pub struct ChunkDecoder {
    chunk_size: usize,
    limits: DecoderLimits,
    streams: HashMap<u32, InboundStream>,
    bytes_consumed: u64,
    /// Bytes held in messages still being reassembled, over all chunk streams.
    reassembling: usize,
}

impl ChunkDecoder {
    /// A decoder at the default chunk size with the given limits.
    pub fn new(limits: DecoderLimits) -> Self {
        ChunkDecoder {
            chunk_size: DEFAULT_CHUNK_SIZE,
            limits,
            streams: HashMap::new(),
            bytes_consumed: 0,
            reassembling: 0,
        }
    }

    /// Bytes consumed so far: the running total acknowledgements report.
    pub fn bytes_consumed(&self) -> u64 {
        self.bytes_consumed
    }

    /// Current inbound chunk size.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    fn peek_head(&self, src: &[u8]) -> Result<Option<ChunkHead>, RtmpError> {
        let Some(&first) = src.first() else {
            return Ok(None);
        };
        let fmt = first >> 6;
        let (csid, mut pos) = match first & 0x3F {
            0 => match src.get(1) {
                Some(&b) => (64 + b as u32, 2),
                None => return Ok(None),
            },
            1 => match (src.get(1), src.get(2)) {
                (Some(&b1), Some(&b2)) => (64 + b1 as u32 + 256 * b2 as u32, 3),
                _ => return Ok(None),
            },
            id => (id as u32, 1),
        };
        let known = self.streams.get(&csid);
        if known.is_none() {
            if fmt != 0 {
                return Err(RtmpError::MissingHeader { fmt, csid });
            }
            if self.streams.len() >= self.limits.max_chunk_streams {
                return Err(RtmpError::TooManyChunkStreams(
                    self.limits.max_chunk_streams,
                ));
            }
        }
        let fixed = [11usize, 7, 3, 0][fmt as usize];
        if src.len() < pos + fixed {
            return Ok(None);
        }
        let field = &src[pos..pos + fixed];
        pos += fixed;
        let prev = known;
        let u24 = |b: &[u8]| (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        let (mut time, length, type_id, stream_id) = match fmt {
            0 => (
                u24(&field[0..3]),
                u24(&field[3..6]),
                field[6],
                u32::from_le_bytes([field[7], field[8], field[9], field[10]]),
            ),
            1 => {
                let p = prev.ok_or(RtmpError::MissingHeader { fmt, csid })?;
                (u24(&field[0..3]), u24(&field[3..6]), field[6], p.stream_id)
            }
            2 => {
                let p = prev.ok_or(RtmpError::MissingHeader { fmt, csid })?;
                (u24(&field[0..3]), p.length, p.type_id, p.stream_id)
            }
            _ => {
                let p = prev.ok_or(RtmpError::MissingHeader { fmt, csid })?;
                (p.delta, p.length, p.type_id, p.stream_id)
            }
        };
        let continuing = fmt == 3 && prev.is_some_and(|p| p.partial.is_some());
        let mut uses_extended = false;
        if fmt < 3 {
            if time == EXTENDED_TIMESTAMP {
                let Some(ext) = src.get(pos..pos + 4) else {
                    return Ok(None);
                };
                time = u32::from_be_bytes([ext[0], ext[1], ext[2], ext[3]]);
                pos += 4;
                uses_extended = true;
            }
        } else if let Some(ext_value) = prev.and_then(|p| p.extended) {
            // A type 3 chunk repeats the extended timestamp. Some encoders leave it out of
            // continuation chunks, so there it is only taken when it matches.
            uses_extended = true;
            match src.get(pos..pos + 4) {
                Some(ext) => {
                    let value = u32::from_be_bytes([ext[0], ext[1], ext[2], ext[3]]);
                    if !continuing || value == ext_value {
                        time = value;
                        pos += 4;
                    }
                }
                None => return Ok(None),
            }
        }
        if length as usize > self.limits.max_message_size {
            return Err(RtmpError::MessageTooLarge {
                size: length,
                limit: self.limits.max_message_size,
            });
        }
        let collected = if continuing {
            prev.and_then(|p| p.partial.as_ref()).map_or(0, |b| b.len())
        } else {
            0
        };
        let payload_len = (length as usize - collected).min(self.chunk_size);
        Ok(Some(ChunkHead {
            fmt,
            csid,
            header_len: pos,
            time,
            uses_extended,
            length,
            type_id,
            stream_id,
            payload_len,
        }))
    }

    /// Applies the protocol control messages that change how chunks are read.
    fn apply_control(&mut self, msg: &Message) -> Result<(), RtmpError> {
        match msg.type_id {
            kind::SET_CHUNK_SIZE => {
                let Some(raw) = msg.payload.get(0..4) else {
                    return Err(RtmpError::Protocol("Set Chunk Size body too short".into()));
                };
                let size = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
                if size == 0 || size > MAX_CHUNK_SIZE {
                    return Err(RtmpError::InvalidChunkSize(size));
                }
                self.chunk_size = size as usize;
            }
            kind::ABORT => {
                if let Some(raw) = msg.payload.get(0..4) {
                    let csid = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
                    if let Some(dropped) =
                        self.streams.get_mut(&csid).and_then(|s| s.partial.take())
                    {
                        self.reassembling -= dropped.len();
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl Decoder for ChunkDecoder {
    type Item = Message;
    type Error = RtmpError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, RtmpError> {
        loop {
            let Some(head) = self.peek_head(src)? else {
                return Ok(None);
            };
            let needed = head.header_len + head.payload_len;
            if src.len() < needed {
                src.reserve(needed - src.len());
                return Ok(None);
            }
            src.advance(head.header_len);
            let payload = src.split_to(head.payload_len);
            self.bytes_consumed += needed as u64;

            let stream = self.streams.entry(head.csid).or_default();
            let continuing = head.fmt == 3 && stream.partial.is_some();
            if !continuing {
                if let Some(dropped) = stream.partial.take() {
                    self.reassembling -= dropped.len();
                    tracing::debug!(csid = head.csid, "new message header before previous ended");
                }
                match head.fmt {
                    0 => {
                        stream.timestamp = head.time;
                        stream.delta = head.time;
                    }
                    1 | 2 => {
                        stream.delta = head.time;
                        stream.timestamp = stream.timestamp.wrapping_add(head.time);
                    }
                    _ => stream.timestamp = stream.timestamp.wrapping_add(head.time),
                }
                if head.fmt < 3 {
                    stream.extended = head.uses_extended.then_some(head.time);
                }
                stream.length = head.length;
                stream.type_id = head.type_id;
                stream.stream_id = head.stream_id;
            }

            // Messages in progress on all chunk streams together stay under twice the message
            // limit: a peer cannot open many huge messages and trickle them in.
            let reassembly_limit = self.limits.max_message_size.saturating_mul(2);
            let single_chunk = !continuing && payload.len() == stream.length as usize;
            if !single_chunk && self.reassembling + payload.len() > reassembly_limit {
                return Err(RtmpError::ReassemblyTooLarge(reassembly_limit));
            }
            let complete = match stream.partial.as_mut() {
                Some(buf) if continuing => {
                    buf.extend_from_slice(&payload);
                    self.reassembling += payload.len();
                    if buf.len() >= stream.length as usize {
                        stream.partial.take().map(|done| {
                            self.reassembling -= done.len();
                            done.freeze()
                        })
                    } else {
                        None
                    }
                }
                _ if single_chunk => Some(payload.freeze()),
                _ => {
                    let mut buf =
                        BytesMut::with_capacity((stream.length as usize).min(INITIAL_REASSEMBLY));
                    buf.extend_from_slice(&payload);
                    self.reassembling += buf.len();
                    stream.partial = Some(buf);
                    None
                }
            };

            if let Some(payload) = complete {
                let msg = Message {
                    csid: head.csid,
                    timestamp: stream.timestamp,
                    type_id: stream.type_id,
                    stream_id: stream.stream_id,
                    payload,
                };
                if msg.stream_id == 0 {
                    self.apply_control(&msg)?;
                }
                return Ok(Some(msg));
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct OutboundStream {
    timestamp: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
}

/// Encodes messages into chunk segments. See the module documentation.
#[derive(Debug)]
pub struct ChunkEncoder {
    chunk_size: usize,
    streams: HashMap<u32, OutboundStream>,
    scratch: BytesMut,
}

impl Default for ChunkEncoder {
    fn default() -> Self {
        ChunkEncoder {
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: HashMap::new(),
            scratch: BytesMut::with_capacity(4096),
        }
    }
}

impl ChunkEncoder {
    /// Current outbound chunk size.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Changes the outbound chunk size. Call it right after queueing the Set Chunk Size message
    /// that announces it.
    pub fn set_chunk_size(&mut self, size: usize) {
        self.chunk_size = size.clamp(1, MAX_CHUNK_SIZE as usize);
    }

    /// Appends the chunks of `msg` to `out`: header buffers and zero-copy payload slices.
    ///
    /// New messages get a type 0, 1 or 2 header; only continuation chunks use type 3, which
    /// keeps the timestamp meaning unambiguous for every decoder.
    pub fn encode(&mut self, msg: &Message, out: &mut Vec<Bytes>) {
        let prev = self.streams.get(&msg.csid).copied();
        let (fmt, time) = match prev {
            Some(p) if p.stream_id == msg.stream_id && msg.timestamp >= p.timestamp => {
                let delta = msg.timestamp - p.timestamp;
                if p.length as usize == msg.payload.len() && p.type_id == msg.type_id {
                    (2u8, delta)
                } else {
                    (1u8, delta)
                }
            }
            _ => (0u8, msg.timestamp),
        };
        self.streams.insert(
            msg.csid,
            OutboundStream {
                timestamp: msg.timestamp,
                length: msg.payload.len() as u32,
                type_id: msg.type_id,
                stream_id: msg.stream_id,
            },
        );
        let extended = time >= EXTENDED_TIMESTAMP;
        let field = if extended { EXTENDED_TIMESTAMP } else { time };

        put_basic_header(&mut self.scratch, fmt, msg.csid);
        put_u24(&mut self.scratch, field);
        if fmt <= 1 {
            put_u24(&mut self.scratch, msg.payload.len() as u32);
            self.scratch.put_u8(msg.type_id);
        }
        if fmt == 0 {
            self.scratch.put_u32_le(msg.stream_id);
        }
        if extended {
            self.scratch.put_u32(time);
        }

        let mut offset = 0;
        loop {
            let end = (offset + self.chunk_size).min(msg.payload.len());
            // Small bodies (control messages, commands) ride in the header buffer: one segment
            // instead of two, and no refcount traffic.
            if end - offset <= 64 {
                self.scratch.extend_from_slice(&msg.payload[offset..end]);
                out.push(self.scratch.split().freeze());
            } else {
                out.push(self.scratch.split().freeze());
                out.push(msg.payload.slice(offset..end));
            }
            offset = end;
            if offset >= msg.payload.len() {
                break;
            }
            put_basic_header(&mut self.scratch, 3, msg.csid);
            if extended {
                self.scratch.put_u32(time);
            }
        }
    }
}

fn put_basic_header(out: &mut BytesMut, fmt: u8, csid: u32) {
    let fmt_bits = fmt << 6;
    match csid {
        2..=63 => out.put_u8(fmt_bits | csid as u8),
        64..=319 => {
            out.put_u8(fmt_bits);
            out.put_u8((csid - 64) as u8);
        }
        _ => {
            let rest = csid.saturating_sub(64).min(65_535);
            out.put_u8(fmt_bits | 1);
            out.put_u8((rest & 0xFF) as u8);
            out.put_u8((rest >> 8) as u8);
        }
    }
}

fn put_u24(out: &mut BytesMut, value: u32) {
    out.put_slice(&value.to_be_bytes()[1..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtmp::message::Control;

    fn decoder() -> ChunkDecoder {
        ChunkDecoder::new(DecoderLimits::default())
    }

    fn decode_all(dec: &mut ChunkDecoder, bytes: &[u8]) -> Result<Vec<Message>, RtmpError> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(msg) = dec.decode(&mut buf)? {
            out.push(msg);
        }
        Ok(out)
    }

    fn encode_all(enc: &mut ChunkEncoder, msgs: &[Message]) -> Vec<u8> {
        let mut segments = Vec::new();
        for msg in msgs {
            enc.encode(msg, &mut segments);
        }
        segments.concat()
    }

    fn media(csid: u32, ts: u32, type_id: u8, len: usize) -> Message {
        Message {
            csid,
            timestamp: ts,
            type_id,
            stream_id: 1,
            payload: Bytes::from(
                (0..len)
                    .map(|i| (i * 7 + ts as usize) as u8)
                    .collect::<Vec<_>>(),
            ),
        }
    }

    /// RTMP 1.0 §5.3.2.1, example 1: audio messages of 32 bytes, 33 ms apart, on chunk stream
    /// 3, sent as one type 0 chunk then type 2 and type 3 chunks.
    #[test]
    fn specification_example_one() {
        let mut bytes = vec![0x03, 0, 3, 0xE8, 0, 0, 32, 8, 0x39, 0x30, 0, 0];
        bytes.extend_from_slice(&[0xAA; 32]);
        bytes.extend_from_slice(&[0x83, 0, 0, 33]);
        bytes.extend_from_slice(&[0xBB; 32]);
        bytes.push(0xC3);
        bytes.extend_from_slice(&[0xCC; 32]);
        bytes.push(0xC3);
        bytes.extend_from_slice(&[0xDD; 32]);
        let msgs = decode_all(&mut decoder(), &bytes).expect("valid chunks");
        let times: Vec<u32> = msgs.iter().map(|m| m.timestamp).collect();
        assert_eq!(times, vec![1000, 1033, 1066, 1099]);
        assert!(msgs.iter().all(|m| m.stream_id == 12345 && m.type_id == 8));
        assert_eq!(msgs[3].payload.as_ref(), &[0xDD; 32]);
    }

    /// §5.3.2.2, example 2: a 307-byte video message split into a 128-byte type 0 chunk and two
    /// type 3 continuation chunks.
    #[test]
    fn specification_example_two() {
        let body: Vec<u8> = (0..307u32).map(|i| i as u8).collect();
        let mut bytes = vec![0x04, 0, 3, 0xE8, 0, 1, 0x33, 9, 0x39, 0x30, 0, 0];
        bytes.extend_from_slice(&body[..128]);
        bytes.push(0xC4);
        bytes.extend_from_slice(&body[128..256]);
        bytes.push(0xC4);
        bytes.extend_from_slice(&body[256..]);
        let mut dec = decoder();
        let msgs = decode_all(&mut dec, &bytes).expect("valid chunks");
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].timestamp, 1000);
        assert_eq!(msgs[0].payload.as_ref(), body.as_slice());
        assert_eq!(dec.bytes_consumed(), bytes.len() as u64);
    }

    #[test]
    fn arrives_byte_by_byte() {
        let msgs = vec![
            media(6, 0, 9, 1000),
            media(4, 10, 8, 50),
            media(6, 40, 9, 1000),
        ];
        let bytes = encode_all(&mut ChunkEncoder::default(), &msgs);
        let mut dec = decoder();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for b in bytes {
            buf.put_u8(b);
            while let Some(m) = dec.decode(&mut buf).expect("valid") {
                out.push(m);
            }
        }
        assert_eq!(out, msgs);
    }

    #[test]
    fn round_trip_with_chunk_size_change_and_extended_timestamps() {
        let mut enc = ChunkEncoder::default();
        let mut msgs = vec![Control::SetChunkSize(4096).to_message()];
        let mut bytes = encode_all(&mut enc, &msgs);
        enc.set_chunk_size(4096);
        let rest = vec![
            media(6, 0xFF_FFF0, 9, 10_000),
            media(6, 0x0100_0000, 9, 10_000),
            media(6, 0x0100_0021, 9, 10_000),
            media(4, 0x0100_0000, 8, 300),
            media(6, 5, 9, 200), // timestamp going back: type 0 again
        ];
        bytes.extend(encode_all(&mut enc, &rest));
        msgs.extend(rest);
        let mut dec = decoder();
        assert_eq!(decode_all(&mut dec, &bytes).expect("valid"), msgs);
        assert_eq!(dec.chunk_size(), 4096);
    }

    #[test]
    fn continuation_without_repeated_extended_timestamp_is_accepted() {
        // Type 0 with extended timestamp 0x01000000, 200 bytes at chunk size 128, and a type 3
        // continuation that leaves the extended field out (as some encoders do).
        let body = [0x55u8; 200];
        let mut bytes = vec![0x06, 0xFF, 0xFF, 0xFF, 0, 0, 200, 9, 1, 0, 0, 0, 1, 0, 0, 0];
        bytes.extend_from_slice(&body[..128]);
        bytes.push(0xC6);
        bytes.extend_from_slice(&body[128..]);
        let msgs = decode_all(&mut decoder(), &bytes).expect("lenient");
        assert_eq!(msgs[0].timestamp, 0x0100_0000);
        assert_eq!(msgs[0].payload.as_ref(), &body[..]);
    }

    #[test]
    fn encoder_picks_compressed_headers() {
        let mut enc = ChunkEncoder::default();
        let mut segs = Vec::new();
        enc.encode(&media(4, 0, 8, 20), &mut segs);
        enc.encode(&media(4, 23, 8, 20), &mut segs);
        enc.encode(&media(4, 46, 8, 30), &mut segs);
        assert_eq!(segs[0][0] >> 6, 0);
        assert_eq!(segs[1][0] >> 6, 2);
        assert_eq!(&segs[1][1..4], &[0, 0, 23]);
        assert_eq!(segs[2][0] >> 6, 1);
    }

    #[test]
    fn large_payloads_are_not_copied() {
        let msg = media(6, 0, 9, 10_000);
        let mut enc = ChunkEncoder::default();
        enc.set_chunk_size(4096);
        let mut segs = Vec::new();
        enc.encode(&msg, &mut segs);
        let base = msg.payload.as_ptr();
        let payload_segs: Vec<&Bytes> = segs.iter().filter(|s| s.len() > 64).collect();
        assert_eq!(payload_segs.len(), 3);
        assert_eq!(payload_segs[0].as_ptr(), base);
        assert_eq!(payload_segs[1].as_ptr(), base.wrapping_add(4096));
    }

    #[test]
    fn single_chunk_message_is_split_off_the_read_buffer() {
        let msg = media(6, 0, 9, 100);
        let bytes = encode_all(&mut ChunkEncoder::default(), std::slice::from_ref(&msg));
        let mut buf = BytesMut::from(&bytes[..]);
        let start = buf.as_ptr();
        let out = decoder()
            .decode(&mut buf)
            .expect("valid")
            .expect("one message");
        assert_eq!(out.payload.as_ptr(), start.wrapping_add(12));
    }

    #[test]
    fn invalid_chunk_sizes_are_refused() {
        for size in [0u32, 0x8000_0000] {
            let mut msg = Control::SetChunkSize(0).to_message();
            msg.payload = Bytes::copy_from_slice(&size.to_be_bytes());
            let bytes = encode_all(&mut ChunkEncoder::default(), &[msg]);
            let err = decode_all(&mut decoder(), &bytes).expect_err("must refuse");
            assert!(
                matches!(err, RtmpError::InvalidChunkSize(s) if s == size),
                "{err}"
            );
        }
        let mut msg = Control::SetChunkSize(0).to_message();
        msg.payload = Bytes::copy_from_slice(&MAX_CHUNK_SIZE.to_be_bytes());
        let bytes = encode_all(&mut ChunkEncoder::default(), &[msg]);
        let mut dec = decoder();
        decode_all(&mut dec, &bytes).expect("2^31-1 is allowed");
        assert_eq!(dec.chunk_size(), MAX_CHUNK_SIZE as usize);
    }

    #[test]
    fn oversized_message_header_is_refused_before_any_allocation() {
        // Type 0 header announcing the largest length the 24-bit field holds (16.7 MB).
        let bytes = [0x06, 0, 0, 0, 0xFF, 0xFF, 0xFF, 9, 1, 0, 0, 0];
        let err = decode_all(&mut decoder(), &bytes).expect_err("too large");
        assert!(matches!(
            err,
            RtmpError::MessageTooLarge {
                size: 0xFF_FFFF,
                ..
            }
        ));
    }

    #[test]
    fn chunk_stream_flood_is_refused() {
        let mut bytes = Vec::new();
        for csid in 0..100u32 {
            // Type 0, three-byte basic header: csid = 64 + csid, empty message.
            bytes.extend_from_slice(&[0x01, csid as u8, 0, 0, 0, 0, 0, 0, 0, 9, 1, 0, 0, 0]);
        }
        let err = decode_all(&mut decoder(), &bytes).expect_err("flood");
        assert!(matches!(err, RtmpError::TooManyChunkStreams(64)));
    }

    #[test]
    fn many_large_messages_in_progress_are_refused() {
        let limits = DecoderLimits {
            max_message_size: 1000,
            max_chunk_streams: 64,
        };
        let mut dec = ChunkDecoder::new(limits);
        let mut bytes = Vec::new();
        // 1000-byte messages opened on ever more chunk streams, 128 bytes of each sent: the
        // decoder refuses once more than 2000 bytes would be held.
        for csid in 3..30u8 {
            bytes.extend_from_slice(&[csid, 0, 0, 0, 0, 0x03, 0xE8, 9, 1, 0, 0, 0]);
            bytes.extend_from_slice(&[0u8; 128]);
        }
        let err = decode_all(&mut dec, &bytes).expect_err("held too much");
        assert!(matches!(err, RtmpError::ReassemblyTooLarge(2000)), "{err}");
    }

    #[test]
    fn compressed_header_on_unknown_stream_is_refused() {
        let err = decode_all(&mut decoder(), &[0x43, 0, 0, 0, 0, 0, 4, 9]).expect_err("no prior");
        assert!(matches!(err, RtmpError::MissingHeader { fmt: 1, csid: 3 }));
    }

    #[test]
    fn abort_discards_partial_message() {
        let mut enc = ChunkEncoder::default();
        let big = media(6, 0, 9, 300);
        let mut segs = Vec::new();
        enc.encode(&big, &mut segs);
        // Keep only the first chunk (header + 128 bytes), then abort chunk stream 6.
        let first: Vec<u8> = segs[..2].concat();
        let abort = encode_all(&mut enc, &[Control::Abort(6).to_message()]);
        let next = media(6, 40, 9, 10);
        let mut enc2 = ChunkEncoder::default();
        let mut bytes = first;
        bytes.extend(abort);
        bytes.extend(encode_all(&mut enc2, std::slice::from_ref(&next)));
        let msgs = decode_all(&mut decoder(), &bytes).expect("valid");
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[1], next);
    }
}
