//! Cuts teach the media bank: when a hash list cuts a stream on its whole picture, the frames
//! that matched are added to the learning bank (`[media_bank] learn`), so a later re-stream of
//! those moments, rotated, cropped, overlaid or filmed off a screen, is found by the bank where
//! PDQ no longer sees it. What the learning bank finds does `learn_action` (alert by default).
//!
//! What is learned is decided apart ([`to_learn`]) and guarded against a publisher who wants a
//! benign picture learned (the bank would then cut it):
//! - only frames a hash list matched on the whole picture, as it is, on all 256 bits: a match on
//!   a window, the picture inside bars, a colour plane, a negative or the sure bits alone says
//!   the clip is somewhere in the frame, not that the frame is the clip;
//! - only when the cut itself was decided so, by at least `min_matches` such frames of the one
//!   entry that cut (a fluke match of another entry on a frame of the window teaches nothing),
//!   never on probation (one frame cuts there) and never from a bank match;
//! - every learned frame at one position of its clip: a publisher's timestamps must not give
//!   learned frames a timeline (a clip's timeline lets matches count past the flood guard);
//! - a few learnings at a time, none once the bank is full (checked before any work), and no
//!   frame the learning bank already finds (a wave of re-streams would fill it with copies).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::bank::live::{AddError, Banks};
use crate::hash::pdq::LumaImage;
use crate::hash::View;
use crate::matcher::list::{Action, Match};
use crate::metrics::metrics;

/// A frame that counted towards a cut, kept for evidence and learning.
pub(super) struct Counted {
    /// Stream time, milliseconds.
    pub stream_ms: i64,
    /// Its luma.
    pub luma: LumaImage,
    /// The label of the entry a hash list matched on its whole picture as it is ([`teaches`]),
    /// if one did.
    pub taught_by: Option<String>,
}

/// Whether a match may teach the learning bank the frame it was found on.
pub(super) fn teaches(m: &Match) -> bool {
    m.view == View::Frame && !m.negative && m.sure_bits.is_none() && m.inliers.is_none()
}

/// The entry a counted frame may teach the learning bank for: the first of its matches that
/// can cut (the matcher's nearest), when that one [`teaches`].
pub(super) fn taught_by(matches: &[Match]) -> Option<String> {
    matches
        .iter()
        .find(|m| m.action == Action::Cut)
        .filter(|m| teaches(m))
        .map(|m| m.label.clone())
}

/// The frames a cut teaches, or none: see the module's rules.
pub(super) fn to_learn<'a>(
    cut_by: &Match,
    frames: &'a [Counted],
    min_matches: usize,
    probation: bool,
) -> Vec<&'a LumaImage> {
    if probation || !teaches(cut_by) {
        return Vec::new();
    }
    let taught: Vec<&LumaImage> = frames
        .iter()
        .filter(|c| c.taught_by.as_deref() == Some(cut_by.label.as_str()))
        .map(|c| &c.luma)
        .collect();
    if taught.len() < min_matches.max(1) {
        return Vec::new();
    }
    taught
}

/// Learnings running at once, at most [`MOST_PENDING`]: each rewrites the bank file, and a wave
/// of cuts must not queue threads without end.
static PENDING: AtomicUsize = AtomicUsize::new(0);
const MOST_PENDING: usize = 4;

/// Adds `frames` ([`to_learn`]) to the learning bank as clip `cut_by.label`, on a thread of its
/// own (features and the bank file's rewrite take tens of milliseconds). Logs the outcome in
/// one line.
pub(super) fn learn_from_cut(
    banks: &Arc<Banks>,
    stream_key: &str,
    cut_by: &Match,
    frames: Vec<&LumaImage>,
) {
    if frames.is_empty() || banks.settings().learn.is_none() {
        return;
    }
    let clip = cut_by.label.clone();
    if !banks.has_room_to_learn(2 * frames.len()) {
        tracing::error!(clip = %clip.escape_debug(), "a cut's frames were not learned: the learning bank holds media_bank.learn_max_frames frames");
        metrics().bank_learnings.inc(&["full"]);
        return;
    }
    if PENDING.fetch_add(1, Ordering::SeqCst) >= MOST_PENDING {
        PENDING.fetch_sub(1, Ordering::SeqCst);
        tracing::error!(clip = %clip.escape_debug(), "a cut's frames were not learned: {MOST_PENDING} learnings are under way");
        metrics().bank_learnings.inc(&["busy"]);
        return;
    }
    // One position for all: no timeline (see the module doc). The key is named by its hash:
    // a bank file outlives the stream, and its sources show in other streams' events.
    let frames: Vec<(u32, LumaImage)> = frames.into_iter().map(|l| (0, l.clone())).collect();
    let banks = Arc::clone(banks);
    let source = format!(
        "learned from a cut ({} / {}), stream {}",
        cut_by.list,
        cut_by.label,
        &crate::registry::key::hex_sha256(stream_key)[..16]
    );
    let spawned = std::thread::Builder::new()
        .name("bank-learn".into())
        .spawn(move || {
            let result = match banks.learn(&clip, &source, &frames) {
                Ok(total) => {
                    tracing::warn!(clip = %clip.escape_debug(), learned = frames.len(), frames = total, "media bank learned a cut's frames");
                    "learned"
                }
                Err(AddError::Known) => {
                    tracing::info!(clip = %clip.escape_debug(), "the learning bank already finds this cut's frames");
                    "known"
                }
                Err(e @ AddError::Full(_)) => {
                    tracing::error!(clip = %clip.escape_debug(), "a cut's frames were not learned: {e}");
                    "full"
                }
                Err(e) => {
                    tracing::error!(clip = %clip.escape_debug(), "a cut's frames were not learned: {e}");
                    "error"
                }
            };
            metrics().bank_learnings.inc(&[result]);
            PENDING.fetch_sub(1, Ordering::SeqCst);
        });
    if let Err(e) = spawned {
        PENDING.fetch_sub(1, Ordering::SeqCst);
        metrics().bank_learnings.inc(&["error"]);
        tracing::error!("a cut's frames were not learned: no thread: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matcher::list::ListKind;

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
        // The clip is somewhere in the frame, not the frame: the rest must not be learned (the
        // bars around a "letterboxed" clip may hold a faint picture of the publisher's choice).
        for view in [
            View::Content,
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

    #[test]
    fn a_frame_teaches_for_its_nearest_cutting_match_when_that_is_a_whole_picture() {
        let window = found(View::Window);
        let alert = Match {
            action: Action::Alert,
            label: "alert-only".into(),
            ..found(View::Frame)
        };
        // An alert-only whole picture before the cutting match does not teach.
        assert_eq!(
            taught_by(&[alert.clone(), found(View::Frame)]).as_deref(),
            Some("incident-1")
        );
        assert_eq!(taught_by(&[alert]), None);
        // The match that can cut was on a window: the frame teaches nothing, even if a whole
        // picture matched further away.
        assert_eq!(taught_by(&[window, found(View::Frame)]), None);
        assert_eq!(taught_by(&[]), None);
    }

    fn counted(taught_by: Option<&str>, value: f32) -> Counted {
        Counted {
            stream_ms: 0,
            luma: LumaImage {
                width: 1,
                height: 1,
                pixels: vec![value],
            },
            taught_by: taught_by.map(str::to_owned),
        }
    }

    #[test]
    fn a_cut_teaches_only_its_own_entry_s_whole_pictures_and_only_when_they_decided_it() {
        let cut_by = found(View::Frame);
        let frames = [
            counted(Some("incident-1"), 1.0),
            counted(None, 2.0),
            counted(Some("another"), 3.0),
            counted(Some("incident-1"), 4.0),
        ];
        let learned: Vec<f32> = to_learn(&cut_by, &frames, 2, false)
            .iter()
            .map(|l| l.pixels[0])
            .collect();
        assert_eq!(learned, vec![1.0, 4.0]);
        // Fewer such frames than the policy's matches, probation, or a cut decided on a window:
        // nothing.
        assert!(to_learn(&cut_by, &frames, 3, false).is_empty());
        assert!(to_learn(&cut_by, &frames, 2, true).is_empty());
        assert!(to_learn(&found(View::Window), &frames, 2, false).is_empty());
    }
}
