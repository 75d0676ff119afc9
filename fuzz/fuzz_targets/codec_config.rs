//! AVC and HEVC configuration records and the frames after them, through every parser the
//! inspection runs before FFmpeg sees them: records, SPS picture sizes, frame_num syntax, PPS
//! ids, NAL summaries, IDR and in-band parameter set checks.
#![no_main]

use hashgate::inspect::params;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [selector, len_hi, len_lo, rest @ ..] = data else {
        return;
    };
    let hevc = selector & 1 == 1;
    let record_len = usize::from(u16::from_be_bytes([*len_hi, *len_lo])).min(rest.len());
    let (record, frame) = rest.split_at(record_len);
    let config = if hevc {
        params::hevc_config(record)
    } else {
        params::avc_config(record)
    };
    let length_size = (selector >> 1) % 5;
    if let Some(config) = &config {
        let _ = if hevc {
            params::hevc_picture_size(config)
        } else {
            params::avc_picture_size(config)
        };
        if !hevc {
            if let Some(syntax) = params::h264_frame_num_syntax(config) {
                let _ = params::h264_frame_num(length_size, frame, syntax);
            }
        }
        let _ = params::pps_ids(hevc, config);
        let _ = params::repeats_config(hevc, config, frame);
    }
    let _ = params::frame_nals(hevc, length_size, frame);
    let _ = params::is_idr(hevc, length_size, frame);
    let _ = params::h264_sps_size(frame);
    let _ = params::hevc_sps_size(frame);
});
