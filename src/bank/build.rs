//! Clips into a bank: a media file's frames sampled, as they are and mirrored left to right,
//! described and added. Shared by `hashgate bank add` and the admin API.

use std::path::Path;

use super::{Clip, MediaBank, DEFAULT_FEATURES};
use crate::hash::pdq::LumaImage;
use crate::inspect::file::decode_file;
use crate::inspect::sampler::Sampler;

/// Why a clip could not be added.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(pub String);

/// Frames sampled from a clip per second by default.
pub const DEFAULT_FPS: f64 = 2.0;

/// Adds the media file at `file` to `bank` under `name` (`source` names it in matches): its
/// frames at `fps`, and the same mirrored unless `mirrored` is false. Returns the frames added
/// (mirrored ones included).
pub fn add_media(
    bank: &mut MediaBank,
    name: &str,
    file: &Path,
    source: &str,
    fps: f64,
    mirrored: bool,
) -> Result<usize, BuildError> {
    let frames = sampled(file, fps)?;
    if frames.is_empty() {
        return Err(BuildError(format!("{source}: no frames")));
    }
    let mirror_frames: Vec<(u32, LumaImage)> = if mirrored {
        frames.iter().map(|(t, l)| (*t, mirror(l))).collect()
    } else {
        Vec::new()
    };
    let added = frames.len() + mirror_frames.len();
    let clip = Clip {
        name: name.to_owned(),
        source: source.to_owned(),
    };
    bank.add_clip(clip, frames, DEFAULT_FEATURES);
    if !mirror_frames.is_empty() {
        let clip = Clip {
            name: name.to_owned(),
            source: format!("{source} (mirrored)"),
        };
        bank.add_clip(clip, mirror_frames, DEFAULT_FEATURES);
    }
    Ok(added)
}

/// A picture mirrored left to right.
pub fn mirror(luma: &LumaImage) -> LumaImage {
    let pixels = luma
        .pixels
        .chunks(luma.width.max(1))
        .flat_map(|row| row.iter().rev().copied())
        .collect();
    LumaImage { pixels, ..*luma }
}

/// A file's sampled frames (ms, luma): a video's at `fps`, or an image once.
pub fn sampled(file: &Path, fps: f64) -> Result<Vec<(u32, LumaImage)>, BuildError> {
    if let Ok(picture) = image::open(file) {
        let rgb = picture.to_rgb8();
        let (w, h) = (rgb.width() as usize, rgb.height() as usize);
        return Ok(vec![(0, LumaImage::from_rgb8(w, h, rgb.as_raw()))]);
    }
    let mut sampler = Sampler::new(fps);
    let mut out = Vec::new();
    decode_file(file, |frame| {
        let ms = (frame.seconds * 1000.0).round() as i64;
        if sampler.take_in_stream_time(ms) {
            out.push((ms.clamp(0, i64::from(u32::MAX)) as u32, frame.luma));
        }
    })
    .map_err(|e| BuildError(format!("not an image, and as a video: {e}")))?;
    Ok(out)
}
