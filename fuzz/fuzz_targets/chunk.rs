//! The chunk decoder fed arbitrary bytes in arbitrary pieces (the first byte picks the piece
//! size), chunk-size changes included: every message it yields stays within the limits, and it
//! ends with messages, a clean wait for more, or an error, never a panic.
#![no_main]

use bytes::BytesMut;
use hashgate::rtmp::chunk::{ChunkDecoder, DecoderLimits};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&piece, data)) = data.split_first() else {
        return;
    };
    let piece = usize::from(piece).max(1);
    let limits = DecoderLimits {
        max_message_size: 1 << 20,
        max_chunk_streams: 16,
    };
    let mut decoder = ChunkDecoder::new(limits);
    let mut buffer = BytesMut::new();
    for part in data.chunks(piece) {
        buffer.extend_from_slice(part);
        loop {
            match decoder.decode(&mut buffer) {
                Ok(Some(message)) => {
                    assert!(message.payload.len() <= limits.max_message_size);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    let _ = decoder.decode_eof(&mut buffer);
});
