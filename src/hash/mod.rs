//! Perceptual hashes of frames: PDQ (the hash platforms exchange for terrorist content, with its
//! eight dihedral variants and letterbox removal) and the image_hasher family.
//!
//! `pdq` is the algorithm; `letterbox` finds the picture inside bars; `image_input` reads still
//! images the way the reference tools do; `imghash` wraps the image_hasher crate; `chromaprint`
//! fingerprints audio.

pub mod chromaprint;
pub mod image_input;
pub mod imghash;
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
}

impl FrameHashes {
    /// Every PDQ computed for the frame: the whole frame, then the content area if any.
    pub fn all(&self) -> impl Iterator<Item = &PdqDct> {
        std::iter::once(&self.full).chain(self.content.as_ref().map(|(_, d)| d))
    }
}

/// PDQ of a frame, and of its content area when `letterbox` is set and bars are found.
pub fn hash_frame(image: &LumaImage, letterbox: Option<LetterboxSettings>) -> FrameHashes {
    let full = pdq::pdq(image);
    let content = letterbox
        .and_then(|settings| letterbox::detect(image, settings))
        .map(|area| (area, pdq::pdq(&letterbox::crop(image, area))));
    FrameHashes { full, content }
}
