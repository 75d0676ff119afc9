//! Media banks: the second matcher, for when the platform holds the clip itself. A bank keeps
//! the local features (ORB-style corners with 256-bit descriptors, [`features`]) of a clip's
//! sampled frames; a stream's frame matches when enough of its features pair with one
//! reference frame's ([`matching`]) in one geometric arrangement ([`geometry`]), which sees
//! through rotation, crops, logos, captions, picture-in-picture and a screen filmed at an angle
//! where PDQ, a hash of the whole picture, cannot. [`index`] picks the reference frames worth
//! verifying, [`overlay`] takes a screen-door grid off a picture first, [`mod@file`] is the on-disk format, [`build`] turns clips into reference frames
//! and [`live`] holds the banks in force for the verdict ([`remote`] fetches those a fleet shares).

pub mod build;
pub mod features;
pub mod file;
pub mod geometry;
pub mod image;
pub mod index;
pub mod live;
pub mod matching;
pub mod overlay;
pub mod remote;

use crate::hash::pdq::LumaImage;
use features::Feature;
use geometry::{verify, Pair};
use image::Grey;
use index::VoteIndex;
use matching::{pairs, PairRule, Stored};

/// A reference frame: one sampled frame of a clip, by its features.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    /// Index of its clip in [`MediaBank::clips`].
    pub clip: u32,
    /// Where in the clip, milliseconds.
    pub at_ms: u32,
    /// Its working picture's size.
    pub width: u16,
    /// Its working picture's size.
    pub height: u16,
    /// Its features.
    pub features: Vec<Stored>,
}

/// A clip a bank holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clip {
    /// The name it was added under (the label events carry).
    pub name: String,
    /// The file it was built from.
    pub source: String,
}

/// A media bank in memory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MediaBank {
    /// The clips.
    pub clips: Vec<Clip>,
    /// Their sampled frames.
    pub frames: Vec<Reference>,
}

/// How a frame is checked against a bank.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CheckSettings {
    /// Features taken from each frame (and each reference frame).
    pub features: usize,
    /// How features pair.
    pub rule: PairRule,
    /// How far (working-picture pixels) a pair may sit from where the mapping puts it.
    pub tolerance: f64,
    /// Reference frames verified per check: those with the most pairs.
    pub candidates: usize,
}

impl Default for CheckSettings {
    fn default() -> Self {
        CheckSettings {
            features: DEFAULT_FEATURES,
            rule: PairRule::default(),
            tolerance: 4.0,
            candidates: 3,
        }
    }
}

/// Features per frame by default.
pub const DEFAULT_FEATURES: usize = 500;

/// A frame's features at the working size.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameFeatures {
    /// The working picture's size.
    pub width: usize,
    /// The working picture's size.
    pub height: usize,
    /// Its features.
    pub features: Vec<Feature>,
}

impl FrameFeatures {
    /// The features of a frame's luma.
    pub fn of(luma: &LumaImage, budget: usize) -> FrameFeatures {
        if luma.width == 0 || luma.height == 0 || luma.pixels.len() < luma.width * luma.height {
            return FrameFeatures {
                width: luma.width,
                height: luma.height,
                features: Vec::new(),
            };
        }
        let mut grey = Grey::working(luma);
        // Both the bank's frames and a stream's: a reference's own full lines go the same way.
        overlay::erase_thin_lines(&mut grey);
        let features = features::detect(&grey, budget);
        FrameFeatures {
            width: grey.width,
            height: grey.height,
            features,
        }
    }
}

/// The reference frame that best explains a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankHit {
    /// Index of the clip in [`MediaBank::clips`].
    pub clip: u32,
    /// Where in the clip, milliseconds.
    pub at_ms: u32,
    /// Feature pairs one mapping explains.
    pub inliers: usize,
    /// Feature pairs found with that reference frame.
    pub pairs: usize,
}

impl MediaBank {
    /// Adds a clip's sampled frames (milliseconds into the clip, luma); returns its index.
    pub fn add_clip(
        &mut self,
        clip: Clip,
        frames: impl IntoIterator<Item = (u32, LumaImage)>,
        budget: usize,
    ) -> u32 {
        let index = self.clips.len() as u32;
        self.clips.push(clip);
        for (at_ms, luma) in frames {
            self.frames.push(reference(index, at_ms, &luma, budget));
        }
        index
    }

    /// Reference features held, over every frame.
    pub fn feature_count(&self) -> usize {
        self.frames.iter().map(|f| f.features.len()).sum()
    }

    /// The reference frame whose features one mapping explains best, with how many, of
    /// the frames with the most pairs (`settings.candidates` of them); None when no frame
    /// shares four pairs in any plausible arrangement. Pairs the frame with every reference
    /// frame: for small banks; [`IndexedBank`] votes first.
    pub fn best(&self, frame: &FrameFeatures, settings: &CheckSettings) -> Option<BankHit> {
        self.best_among(frame, settings, 0..self.frames.len())
    }

    /// [`MediaBank::best`] over the reference frames `among` only.
    pub fn best_among(
        &self,
        frame: &FrameFeatures,
        settings: &CheckSettings,
        among: impl IntoIterator<Item = usize>,
    ) -> Option<BankHit> {
        let mut candidates: Vec<(usize, Vec<Pair>)> = among
            .into_iter()
            .filter_map(|i| Some((i, self.frames.get(i)?)))
            .map(|(i, r)| (i, pairs(&frame.features, &r.features, settings.rule)))
            .filter(|(_, p)| p.len() >= 4)
            .collect();
        candidates.sort_by_key(|(i, p)| (std::cmp::Reverse(p.len()), *i));
        candidates.truncate(settings.candidates);
        let mut best: Option<BankHit> = None;
        for (i, found) in candidates {
            let r = &self.frames[i];
            let size = (f64::from(r.width), f64::from(r.height));
            let Some(fit) = verify(&found, settings.tolerance, size) else {
                continue;
            };
            if best.as_ref().is_none_or(|b| fit.inliers > b.inliers) {
                best = Some(BankHit {
                    clip: r.clip,
                    at_ms: r.at_ms,
                    inliers: fit.inliers,
                    pairs: found.len(),
                });
            }
        }
        best
    }
}

/// A bank with its vote index: the frames a check verifies are those its features vote for,
/// so a check costs about the same whatever the bank's size.
#[derive(Debug, Clone)]
pub struct IndexedBank {
    /// The bank.
    pub bank: MediaBank,
    index: VoteIndex,
}

/// Frames ranked by votes and then paired exhaustively, per check. Pairing costs ~0.3 ms a
/// frame; on the evasion corpus (`bench/media_bank_evasion.sh`) 3 frames caught what 8 did
/// but one row at the threshold (20 inliers, 19 with 3), whose controls stayed at most 7.
const VOTED_FRAMES: usize = 3;

impl IndexedBank {
    /// Indexes a bank.
    pub fn new(bank: MediaBank) -> IndexedBank {
        let index = VoteIndex::build(bank.frames.iter().map(|f| f.features.as_slice()));
        IndexedBank { bank, index }
    }

    /// As [`MediaBank::best`], over the frames the frame's features vote for most (every
    /// frame when the bank holds no more than that).
    pub fn best(&self, frame: &FrameFeatures, settings: &CheckSettings) -> Option<BankHit> {
        if self.bank.frames.len() <= VOTED_FRAMES {
            return self.bank.best(frame, settings);
        }
        let query: Vec<[u64; 4]> = frame.features.iter().map(|f| f.descriptor).collect();
        let voted = self.index.vote(&query, VOTED_FRAMES);
        self.bank
            .best_among(frame, settings, voted.into_iter().map(|(f, _)| f))
    }

    /// Bytes of the index.
    pub fn index_bytes(&self) -> usize {
        self.index.memory_bytes()
    }
}

/// A reference frame from a sampled frame of a clip.
pub fn reference(clip: u32, at_ms: u32, luma: &LumaImage, budget: usize) -> Reference {
    let found = FrameFeatures::of(luma, budget);
    Reference {
        clip,
        at_ms,
        width: found.width as u16,
        height: found.height as u16,
        features: found.features.iter().map(Stored::from).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pictures_too_small_or_malformed_for_features_have_none_and_do_not_panic() {
        for (w, h) in [
            (0, 0),
            (0, 10),
            (10, 0),
            (1, 1),
            (1, 5000),
            (5000, 1),
            (40, 33),
        ] {
            let luma = LumaImage {
                width: w,
                height: h,
                pixels: vec![128.0; w * h],
            };
            assert!(FrameFeatures::of(&luma, 500).features.is_empty(), "{w}x{h}");
        }
        let short = LumaImage {
            width: 100,
            height: 100,
            pixels: vec![1.0; 10],
        };
        assert!(FrameFeatures::of(&short, 500).features.is_empty());
        // Textured pictures at and just past the border the corner code needs: the corner
        // code runs, and every feature lies inside the picture.
        for (w, h) in [
            (33, 33),
            (34, 34),
            (33, 200),
            (200, 33),
            (48, 48),
            (600, 40),
        ] {
            let g = crate::bank::features::tests::blocks(w.max(60), h.max(60), 5);
            let luma = LumaImage {
                width: w,
                height: h,
                pixels: (0..w * h).map(|i| f32::from(g.at(i % w, i / w))).collect(),
            };
            let found = FrameFeatures::of(&luma, 500);
            for f in &found.features {
                assert!(f.x >= 0.0 && f.y >= 0.0, "{w}x{h}: {f:?}");
                assert!((f.x as usize) < w && (f.y as usize) < h, "{w}x{h}: {f:?}");
            }
        }
    }
}
