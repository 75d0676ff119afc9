//! FLV and Enhanced RTMP video and audio tag headers, as the relay's tap and inspection read
//! them: no panic on any payload.
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
});
