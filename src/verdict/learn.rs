//! Cuts teach the media bank: when a hash list cuts a stream on its whole picture, the frames
//! that matched are added to the learning bank (`[media_bank] learn`), so a later re-stream of
//! those moments, rotated, cropped, overlaid or filmed off a screen, is found by the bank where
//! PDQ no longer sees it.
//!
//! Only frames a hash list matched on the whole picture (or the picture inside its bars), as it
//! is, on all 256 bits, are learned. A match on a window, a colour plane, a negative or the
//! sure bits alone says the clip is in the frame, not that the frame is the clip: learning it
//! would teach the bank whatever shares the frame (a game beside a split screen), and the bank
//! would then cut that. Bank matches teach nothing (the bank would only learn itself).

use std::sync::Arc;

use crate::bank::live::Banks;
use crate::hash::pdq::LumaImage;
use crate::hash::View;
use crate::matcher::list::Match;

/// A frame that counted towards a cut, kept for evidence and learning.
pub(super) struct Counted {
    /// Stream time, milliseconds.
    pub stream_ms: i64,
    /// Its luma.
    pub luma: LumaImage,
    /// Whether a hash list matched its whole picture as it is ([`teaches`]).
    pub teaches: bool,
}

/// Whether a match may teach the learning bank the frame it was found on.
pub(super) fn teaches(m: &Match) -> bool {
    matches!(m.view, View::Frame | View::Content)
        && !m.negative
        && m.sure_bits.is_none()
        && m.inliers.is_none()
}

/// Adds the frames of a cut that may teach (`frames`) to the learning bank, on a thread of its
/// own (features and the bank file's rewrite take tens of milliseconds): clip `cut_by.label`,
/// its source naming the stream and the entry. Logs the outcome in one line.
pub(super) fn learn_from_cut(
    banks: &Arc<Banks>,
    key_shown: String,
    cut_by: &Match,
    frames: &[Counted],
) {
    if banks.settings().learn.is_none() || cut_by.view == View::Bank {
        return;
    }
    let frames: Vec<(u32, LumaImage)> = frames
        .iter()
        .filter(|c| c.teaches)
        .map(|c| {
            (
                c.stream_ms.clamp(0, i64::from(u32::MAX)) as u32,
                c.luma.clone(),
            )
        })
        .collect();
    if frames.is_empty() {
        return;
    }
    let banks = Arc::clone(banks);
    let clip = cut_by.label.clone();
    let source = format!(
        "learned from the cut of {key_shown} ({} / {})",
        cut_by.list, cut_by.label
    );
    let spawned = std::thread::Builder::new()
        .name("bank-learn".into())
        .spawn(move || match banks.learn(&clip, &source, &frames) {
            Ok(total) => tracing::warn!(clip = %clip.escape_debug(), learned = frames.len(), frames = total, "media bank learned a cut's frames"),
            Err(e) => tracing::error!(clip = %clip.escape_debug(), "a cut's frames were not learned: {e}"),
        });
    if let Err(e) = spawned {
        tracing::error!("a cut's frames were not learned: no thread: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matcher::list::{Action, ListKind};

    fn found(view: View) -> Match {
        Match {
            list: "incidents".into(),
            label: "incident-1".into(),
            source: "incidents.tsv:1".into(),
            distance: 4,
            action: Action::Cut,
            kind: ListKind::Block,
            position: None,
            view,
            negative: false,
            sure_bits: None,
            inliers: None,
        }
    }

    #[test]
    fn only_a_whole_picture_matched_as_it_is_teaches() {
        assert!(teaches(&found(View::Frame)));
        assert!(teaches(&found(View::Content)));
        // The clip is somewhere in the frame, not the frame: the rest must not be learned.
        for view in [
            View::Window,
            View::Seams,
            View::Inset,
            View::Colour,
            View::Bank,
        ] {
            assert!(!teaches(&found(view)), "{view:?}");
        }
        let negative = Match {
            negative: true,
            ..found(View::Frame)
        };
        let sure_bits_only = Match {
            sure_bits: Some(140),
            ..found(View::Frame)
        };
        assert!(!teaches(&negative) && !teaches(&sure_bits_only));
    }
}
