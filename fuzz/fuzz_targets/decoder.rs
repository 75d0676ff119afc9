//! The decoder opener and FFmpeg behind it: a configuration record of any codec the gate
//! decodes, then frames, decoded as inspection does (a picture-size cap, the shortcuts on),
//! and every picture's luma taken. No panic, and no picture past the cap.
#![no_main]

use hashgate::inspect::decoder::{Shortcuts, VideoDecoder};
use hashgate::inspect::flv::VideoCodec;
use libfuzzer_sys::fuzz_target;

const MAX_PIXELS: u64 = 320 * 240;

fuzz_target!(|data: &[u8]| {
    let [selector, len, rest @ ..] = data else {
        return;
    };
    let codec = match selector % 4 {
        0 => VideoCodec::H264,
        1 => VideoCodec::Hevc,
        2 => VideoCodec::Av1,
        _ => VideoCodec::Vp9,
    };
    let record_len = usize::from(*len).min(rest.len());
    let (record, mut frames) = rest.split_at(record_len);
    let keyframes_only = selector & 4 != 0;
    let Ok(mut decoder) = VideoDecoder::open(
        codec,
        record,
        keyframes_only,
        MAX_PIXELS,
        Shortcuts::default(),
    ) else {
        return;
    };
    let mut check = |mut frame: hashgate::inspect::decoder::DecodedFrame| {
        if let Some(luma) = frame.luma() {
            assert!((luma.width as u64) * (luma.height as u64) <= MAX_PIXELS);
        }
    };
    let mut number = 0;
    while let [hi, lo, tail @ ..] = frames {
        let n = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (frame, after) = tail.split_at(n);
        let wanted = hi & 0x80 != 0;
        decoder.decode(frame, number, number == 0, wanted, &mut check);
        number += 1;
        frames = after;
    }
    decoder.finish(&mut check);
});
