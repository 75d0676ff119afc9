//! FLV and Enhanced RTMP video and audio tag headers, as the relay's tap and inspection read
//! them, and a whole media message as the relay reads it before forwarding (aggregates to the
//! bottom, data message names, command frames): no panic on any payload.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let payload = Bytes::copy_from_slice(data);
    let _ = hashgate::relay::tap::video_frame_kind(data);
    if let Ok(tag) = hashgate::inspect::flv::parse_video_tag(&payload) {
        let _ = format!("{tag:?}");
    }
    let _ = format!("{:?}", hashgate::inspect::audio::parse_audio_tag(&payload));
    // The first byte picks the message type the rest arrives as.
    if let Some((&pick, body)) = data.split_first() {
        let type_id = [8u8, 9, 15, 18, 22][usize::from(pick) % 5];
        let msg = hashgate::rtmp::Message {
            csid: 4,
            timestamp: u32::from(pick) << 20,
            type_id,
            stream_id: 1,
            payload: Bytes::copy_from_slice(body),
        };
        let _ = format!("{:?}", hashgate::relay::reading::read(msg));
    }
});
