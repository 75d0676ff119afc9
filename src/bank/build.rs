//! Clips into a bank: a media file's frames sampled, as they are and mirrored left to right,
//! described and added. Shared by `hashgate bank add` and the admin API.

use std::path::Path;

use super::{reference, Clip, MediaBank, Reference, DEFAULT_FEATURES};
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
/// frames at `fps`, and the same mirrored unless `mirrored` is false. Each sampled frame is
/// described as it is decoded and dropped (a long 4K clip is never held in memory, only its
/// features: 18 KB a frame). Returns the frames added (mirrored ones included).
pub fn add_media(
    bank: &mut MediaBank,
    name: &str,
    file: &Path,
    source: &str,
    fps: f64,
    mirrored: bool,
) -> Result<usize, BuildError> {
    let (plain, flipped) = (bank.clips.len() as u32, bank.clips.len() as u32 + 1);
    let mut references = Vec::new();
    let mut mirror_references = Vec::new();
    each_sample(file, fps, |at_ms, luma| {
        references.push(reference(plain, at_ms, &luma, DEFAULT_FEATURES));
        if mirrored {
            mirror_references.push(reference(flipped, at_ms, &mirror(&luma), DEFAULT_FEATURES));
        }
    })?;
    push_clip(
        bank,
        name,
        source,
        references,
        mirrored.then_some(mirror_references),
    )
}

/// Adds frames already decoded (milliseconds into the clip, luma) to `bank` under `name`, as
/// they are and mirrored: what a cut stream's matched frames teach ([`super::live`]).
pub fn add_frames(
    bank: &mut MediaBank,
    name: &str,
    source: &str,
    frames: &[(u32, LumaImage)],
) -> Result<usize, BuildError> {
    let (plain, flipped) = (bank.clips.len() as u32, bank.clips.len() as u32 + 1);
    let references = frames
        .iter()
        .map(|(at_ms, luma)| reference(plain, *at_ms, luma, DEFAULT_FEATURES))
        .collect();
    let mirrored = frames
        .iter()
        .map(|(at_ms, luma)| reference(flipped, *at_ms, &mirror(luma), DEFAULT_FEATURES))
        .collect();
    push_clip(bank, name, source, references, Some(mirrored))
}

/// Appends a clip's reference frames (and its mirror image's, as a second clip) to `bank`;
/// returns the frames added.
fn push_clip(
    bank: &mut MediaBank,
    name: &str,
    source: &str,
    references: Vec<Reference>,
    mirrored: Option<Vec<Reference>>,
) -> Result<usize, BuildError> {
    if references.is_empty() {
        return Err(BuildError(format!("{source}: no frames")));
    }
    let added = references.len() + mirrored.as_ref().map_or(0, Vec::len);
    bank.clips.push(Clip {
        name: name.to_owned(),
        source: source.to_owned(),
    });
    bank.frames.extend(references);
    if let Some(mirrored) = mirrored {
        bank.clips.push(Clip {
            name: name.to_owned(),
            source: format!("{source} (mirrored)"),
        });
        bank.frames.extend(mirrored);
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

/// A file's sampled frames (ms, luma): a video's at `fps`, or an image once. Holds every
/// frame: for `bank check`, whose files are re-streams to look at, not clips to keep.
pub fn sampled(file: &Path, fps: f64) -> Result<Vec<(u32, LumaImage)>, BuildError> {
    let mut out = Vec::new();
    each_sample(file, fps, |at_ms, luma| out.push((at_ms, luma)))?;
    Ok(out)
}

/// Calls `each` with every sampled frame of a file (ms, luma): a video's at `fps`, or an
/// image once.
fn each_sample(
    file: &Path,
    fps: f64,
    mut each: impl FnMut(u32, LumaImage),
) -> Result<(), BuildError> {
    if let Ok(picture) = image::open(file) {
        let rgb = picture.to_rgb8();
        let (w, h) = (rgb.width() as usize, rgb.height() as usize);
        each(0, LumaImage::from_rgb8(w, h, rgb.as_raw()));
        return Ok(());
    }
    let mut sampler = Sampler::new(fps);
    decode_file(file, |frame| {
        let ms = (frame.seconds * 1000.0).round() as i64;
        if sampler.take_in_stream_time(ms) {
            each(ms.clamp(0, i64::from(u32::MAX)) as u32, frame.luma);
        }
    })
    .map_err(|e| BuildError(format!("not an image, and as a video: {e}")))?;
    Ok(())
}
