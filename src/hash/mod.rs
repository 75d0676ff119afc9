//! Perceptual hashes of frames: PDQ (the hash platforms exchange for terrorist content, with its
//! eight dihedral variants, letterbox removal and frame-in-frame) and the image_hasher family.
//!
//! `pdq` is the algorithm; `letterbox` finds the picture inside bars; `inset` finds video
//! playing inside a static layout; `windows` hashes the halves, quadrants, centre and seam-bound
//! rectangles where a clip sits when its surroundings move too; `image_input` reads still
//! images the way the reference tools do; `imghash` wraps the image_hasher crate; `chromaprint`
//! fingerprints audio; `speed` makes audio references at other speeds.

pub mod chromaprint;
pub mod image_input;
pub mod imghash;
pub mod inset;
pub mod letterbox;
pub mod pdq;
pub mod speed;
pub mod windows;

use letterbox::{ContentArea, LetterboxSettings};
use pdq::{LumaImage, PdqDct};
use windows::{Window, WindowKind};

/// Which picture of a frame a hash was taken of: the matcher treats them alike, reports say
/// which one matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum View {
    /// The whole frame.
    #[default]
    Frame,
    /// The picture inside letterbox or pillarbox bars.
    Content,
    /// The video playing inside a still layout (frame-in-frame).
    Inset,
    /// A half, a quadrant or the centre.
    Window,
    /// A rectangle bounded by seams.
    Seams,
    /// A colour plane (a picture moved out of the luma).
    Colour,
    /// The frame's local features, matched against a media bank (`crate::bank`).
    Bank,
}

impl View {
    /// Short name for reports and events.
    pub fn name(self) -> &'static str {
        match self {
            View::Frame => "frame",
            View::Content => "content",
            View::Inset => "inset",
            View::Window => "window",
            View::Seams => "seams",
            View::Colour => "colour",
            View::Bank => "bank",
        }
    }
}

/// Colour planes are box-averaged to at least this many rows before their PDQ.
const COLOUR_ROWS: usize = 256;

/// The quality (contrast stretched) below which a frame's luma counts as featureless and its
/// colour planes are hashed instead: the default `min_quality` of lists.
pub const FEATURELESS: u32 = 50;

/// What [`hash_frame`] hashes beside the whole frame.
#[derive(Debug, Clone, Copy, Default)]
pub struct Views {
    /// Letterbox detection for the content-area hash; `None` looks for no bars.
    pub letterbox: Option<LetterboxSettings>,
    /// The stream's frame-in-frame inset, when its tracker found one.
    pub inset: Option<ContentArea>,
    /// Hash the fixed and seam windows ([`windows`]).
    pub windows: bool,
}

/// The PDQ results for one frame.
#[derive(Clone)]
pub struct FrameHashes {
    /// PDQ of the whole frame.
    pub full: PdqDct,
    /// PDQ of the picture inside letterbox/pillarbox bars, when the frame has them.
    pub content: Option<(ContentArea, PdqDct)>,
    /// PDQ of the video playing inside a layout (frame-in-frame), when one was found.
    pub inset: Option<(ContentArea, PdqDct)>,
    /// PDQ of the frame's windows, when asked for.
    pub windows: Vec<Window>,
    /// PDQ of the colour planes, when they were given ([`FrameHashes::add_colour`]).
    pub colour: Vec<PdqDct>,
}

impl FrameHashes {
    /// Every PDQ computed for the frame, with the view it was taken of: the whole frame first.
    pub fn views(&self) -> impl Iterator<Item = (View, &PdqDct)> {
        let window = |w: &Window| match w.kind {
            WindowKind::Fixed => View::Window,
            WindowKind::Seams => View::Seams,
        };
        std::iter::once((View::Frame, &self.full))
            .chain(self.content.as_ref().map(|(_, d)| (View::Content, d)))
            .chain(self.inset.as_ref().map(|(_, d)| (View::Inset, d)))
            .chain(self.windows.iter().map(move |w| (window(w), &w.dct)))
            .chain(self.colour.iter().map(|d| (View::Colour, d)))
    }

    /// Every PDQ computed for the frame.
    pub fn all(&self) -> impl Iterator<Item = &PdqDct> {
        self.views().map(|(_, d)| d)
    }

    /// Whether no view of the luma reaches quality `gate` with its contrast stretched: the
    /// frame is dark or flat, or its picture is carried elsewhere (the colour planes).
    pub fn luma_featureless(&self, gate: u32) -> bool {
        self.views()
            .filter(|(v, _)| *v != View::Colour)
            .all(|(_, d)| d.stretched_quality < gate)
    }

    /// Whether no view at all (colour planes included) reaches quality `gate`: nothing of the
    /// frame was compared with the lists.
    pub fn featureless(&self, gate: u32) -> bool {
        self.views().all(|(_, d)| d.stretched_quality < gate)
    }

    /// Hashes the frame's colour planes (a picture moved into them): always when asked
    /// (`always`: the luma may carry something else), else only when the luma is featureless.
    pub fn add_colour(&mut self, planes: &[LumaImage], always: bool) {
        if always || self.luma_featureless(FEATURELESS) {
            // Reduced first: a 4K frame's planes are 1080p each, and PDQ reads 64 × 64.
            self.colour = planes
                .iter()
                .map(|p| pdq::pdq(&windows::reduced(p, COLOUR_ROWS)))
                .collect();
        }
    }
}

/// PDQ of a frame, of its content area when `views.letterbox` is set and bars are found, of the
/// inset (from a stream's [`inset::InsetTracker`]) unless it is the content area again, and of
/// its windows when `views.windows` is set.
pub fn hash_frame(image: &LumaImage, views: Views) -> FrameHashes {
    let full = pdq::pdq(image);
    let content = views
        .letterbox
        .and_then(|settings| letterbox::detect(image, settings))
        .map(|area| (area, pdq::pdq(&letterbox::crop(image, area))));
    let inset = views
        .inset
        .filter(|area| content.as_ref().is_none_or(|(c, _)| c != area))
        .map(|area| (area, pdq::pdq(&letterbox::crop(image, area))));
    let windows = if views.windows {
        windows::hash_windows(image)
    } else {
        Vec::new()
    };
    FrameHashes {
        full,
        content,
        inset,
        windows,
        colour: Vec::new(),
    }
}
