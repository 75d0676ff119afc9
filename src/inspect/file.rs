//! Video files through the same decoding and sampling as live streams: for `hashgate hash`,
//! `hashgate scan` and the tests.

use std::path::Path;

use ffmpeg_next as ffmpeg;

use super::decoder::{colour_planes, init_ffmpeg, LumaExtractor};
use crate::hash::pdq::LumaImage;

/// A video file that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct VideoFileError {
    /// The file.
    pub path: String,
    /// What went wrong.
    pub reason: String,
}

/// One decoded frame of a file.
pub struct FileFrame {
    /// Index among all decoded frames, from 0.
    pub number: u64,
    /// Presentation time in seconds from the start of the stream.
    pub seconds: f64,
    /// Whether the decoder marked it a keyframe.
    pub keyframe: bool,
    /// The picture's luma.
    pub luma: LumaImage,
    /// Its colour planes (planar YUV formats; none for others).
    pub colour: Vec<LumaImage>,
}

/// Duration in seconds, when the container knows it.
pub fn duration_seconds(path: &Path) -> Option<f64> {
    init_ffmpeg();
    let input = ffmpeg::format::input(path).ok()?;
    let d = input.duration();
    (d > 0).then(|| d as f64 / f64::from(ffmpeg::ffi::AV_TIME_BASE))
}

/// Decodes every frame of the best video stream in `path`, calling `each` in presentation
/// order. Corrupt packets are skipped (and counted in the return value).
pub fn decode_file(path: &Path, mut each: impl FnMut(FileFrame)) -> Result<u64, VideoFileError> {
    init_ffmpeg();
    let fail = |reason: String| VideoFileError {
        path: path.display().to_string(),
        reason,
    };
    let mut input = ffmpeg::format::input(path).map_err(|e| fail(e.to_string()))?;
    let stream = input
        .streams()
        .best(ffmpeg::media::Type::Video)
        .ok_or_else(|| fail("no video stream".into()))?;
    let index = stream.index();
    let time_base = f64::from(stream.time_base());
    let start = if stream.start_time() == ffmpeg::ffi::AV_NOPTS_VALUE {
        0
    } else {
        stream.start_time()
    };
    let context = ffmpeg::codec::Context::from_parameters(stream.parameters())
        .map_err(|e| fail(e.to_string()))?;
    let mut decoder = context
        .decoder()
        .video()
        .map_err(|e| fail(format!("decoder: {e}")))?;
    let mut errors = 0u64;
    let mut number = 0u64;
    let mut frame = ffmpeg::frame::Video::empty();
    let mut extractor = LumaExtractor::default();
    let mut emit = |decoder: &mut ffmpeg::decoder::Video, each: &mut dyn FnMut(FileFrame)| {
        while decoder.receive_frame(&mut frame).is_ok() {
            let pts = frame.timestamp().or(frame.pts()).unwrap_or(0);
            if let Some(luma) = extractor.extract(&frame) {
                each(FileFrame {
                    number,
                    seconds: (pts - start) as f64 * time_base,
                    keyframe: frame.is_key(),
                    luma,
                    colour: colour_planes(&frame),
                });
            }
            number += 1;
        }
    };
    for (s, packet) in input.packets() {
        if s.index() != index {
            continue;
        }
        if decoder.send_packet(&packet).is_err() {
            errors += 1;
            continue;
        }
        emit(&mut decoder, &mut each);
    }
    if decoder.send_eof().is_ok() {
        emit(&mut decoder, &mut each);
    }
    Ok(errors)
}
