//! Perceptual hashes of frames: PDQ (the hash platforms exchange for terrorist content, with its
//! eight dihedral variants, letterbox removal and frame-in-frame) and the image_hasher family.
//!
//! `pdq` is the algorithm; `letterbox` finds the picture inside bars; `inset` finds video
//! playing inside a static layout; `image_input` reads still
//! images the way the reference tools do; `imghash` wraps the image_hasher crate; `chromaprint`
//! fingerprints audio.

pub mod chromaprint;
pub mod image_input;
pub mod imghash;
pub mod inset;
pub mod letterbox;
pub mod pdq;

use letterbox::{ContentArea, LetterboxSettings};
use pdq::{LumaImage, PdqDct};

/// The PDQ results for one frame.
#[derive(Clone)]
pub struct FrameHashes {
    /// PDQ of the whole frame.
    pub full: PdqDct,
    /// PDQ of the picture inside letterbox/pillarbox bars, when the frame has them.
    pub content: Option<(ContentArea, PdqDct)>,
    /// PDQ of the video playing inside a layout (frame-in-frame), when one was found.
    pub inset: Option<(ContentArea, PdqDct)>,
}

impl FrameHashes {
    /// Every PDQ computed for the frame: the whole frame, then the content area and the inset
    /// if any.
    pub fn all(&self) -> impl Iterator<Item = &PdqDct> {
        std::iter::once(&self.full)
            .chain(self.content.as_ref().map(|(_, d)| d))
            .chain(self.inset.as_ref().map(|(_, d)| d))
    }
}

/// PDQ of a frame, of its content area when `letterbox` is set and bars are found, and of the
/// `inset` (from a stream's [`inset::InsetTracker`]) unless it is the content area again.
pub fn hash_frame(
    image: &LumaImage,
    letterbox: Option<LetterboxSettings>,
    inset: Option<ContentArea>,
) -> FrameHashes {
    let full = pdq::pdq(image);
    let content = letterbox
        .and_then(|settings| letterbox::detect(image, settings))
        .map(|area| (area, pdq::pdq(&letterbox::crop(image, area))));
    let inset = inset
        .filter(|area| content.as_ref().is_none_or(|(c, _)| c != area))
        .map(|area| (area, pdq::pdq(&letterbox::crop(image, area))));
    FrameHashes {
        full,
        content,
        inset,
    }
}
