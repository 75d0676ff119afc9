//! Keyframes mode (configured, or the pool's lowered sampling): keyframes are decoded, the
//! other frames of each GOP kept, and decoded when the GOP runs long (catch-up) or when a probe
//! falls in it.
//!
//! A publisher who knows only keyframes are looked at puts benign pictures in the keyframes and
//! the clip in the frames between. So keyframes mode still samples between keyframes at points
//! it draws at random: each keyframe starts a probe with a chance of one GOP in `PROBE_EVERY`
//! of stream time on average (unpredictable which), at a random point of the GOP; when the frame
//! on screen at the point has arrived, the GOP is decoded from its keyframe up to there and that
//! frame is hashed, with its keyframe beside it. A stream whose probes keep landing on pictures
//! unlike their keyframes is evasive: an `anomaly`, and inspected at full rate for a while
//! whatever the pool's load (the pool's admission and fair share keep that affordable).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::Rng;

use super::{Finding, HeldFrame, InspectStats, StreamInspector};
use crate::hash::pdq::PdqHash;
use crate::inspect::onscreen::Pick;

/// On average one probe per this much stream time (a GOP's chance is its length over this).
const PROBE_EVERY_MS: f64 = 4000.0;
/// A probe this far (bits) from its keyframe shows another picture, not the same scene moving.
const UNLIKE_BITS: u32 = 90;
/// Evasive when this many of the last [`PROBES_JUDGED`] probes were unlike their keyframes.
const UNLIKE_PROBES: usize = 2;
const PROBES_JUDGED: usize = 3;
/// How long an evasive stream is inspected at full rate (renewed while it stays so).
const EVASIVE_FOR: Duration = Duration::from_secs(60);
/// The longest GOP a probe point is drawn over (longer GOPs are caught up on anyway).
const LONGEST_GOP_MS: i64 = 10_000;

/// Probes of one stream and what they found.
#[derive(Debug, Default)]
pub(super) struct ProbeWatch {
    /// The point of the probe in the current GOP, not yet reached.
    target: Option<i64>,
    /// Presentation time of the last keyframe and the GOP length before it.
    last_key_pts: Option<i64>,
    gop_ms: Option<i64>,
    /// The hash of the last keyframe hashed.
    key_hash: Option<PdqHash>,
    /// Whether each of the last probes was unlike its keyframe.
    unlike: VecDeque<bool>,
    evasive_until: Option<Instant>,
}

impl ProbeWatch {
    /// A keyframe hashed, or a probe: compares a probe with its keyframe; `true` when the
    /// stream has just turned out evasive.
    pub(super) fn hashed(&mut self, pick: Option<Pick>, keyframe: bool, hash: PdqHash) -> bool {
        if keyframe {
            self.key_hash = Some(hash);
            return false;
        }
        if pick != Some(Pick::Probe) {
            return false;
        }
        let Some(key) = self.key_hash else {
            return false;
        };
        if self.unlike.len() == PROBES_JUDGED {
            self.unlike.pop_front();
        }
        self.unlike.push_back(hash.distance(&key) > UNLIKE_BITS);
        self.unlike.iter().filter(|u| **u).count() >= UNLIKE_PROBES
    }

    /// Marks the stream evasive from `now` (returns whether it was not already).
    pub(super) fn mark_evasive(&mut self, now: Instant) -> bool {
        let was = self.evasive(now);
        self.evasive_until = Some(now + EVASIVE_FOR);
        !was
    }

    pub(super) fn evasive(&self, now: Instant) -> bool {
        self.evasive_until.is_some_and(|until| now < until)
    }
}

impl StreamInspector {
    /// Keyframes mode: keyframes are decoded; other frames are kept until the GOP runs long or a
    /// probe falls in it, then decoded from where the decoder stopped.
    pub(super) fn keyframes_mode(
        &mut self,
        mut frame: HeldFrame,
        stats: &InspectStats,
        out: &mut dyn FnMut(Finding),
    ) {
        if frame.keyframe {
            self.clear_gop();
            self.catching_up = false;
            self.picker.probes.target = self.draw_probe(frame.pts);
            if self.picker.probes.target.is_some() {
                // Hashed besides, to compare the probe with.
                frame.pick = Some(Pick::Extra);
            }
            if let Some(active) = self.active.as_mut() {
                active.decoder.set_keyframes_only(true);
            }
            if self.keyframe_due(&frame) || self.picker.probes.target.is_some() {
                self.last_keyframe_at = Some(frame.arrived);
                self.decode(&frame, stats, out);
            }
            // Decoded alone, the keyframe is flushed out of the decoder (see
            // `VideoDecoder::decode`): what follows it decodes from it again.
            self.gop_decoded = 0;
            self.hold(frame);
            return;
        }
        if self.catching_up {
            self.decode(&frame, stats, out);
            return;
        }
        let probe = self.picker.probes.target.filter(|t| frame.dts > *t);
        let long_gop = self.last_keyframe_at.is_some_and(|at| {
            frame.arrived.saturating_duration_since(at) >= self.blind_bound() * 2 / 3
        });
        let has_keyframe = self.gop.first().is_some_and(|f| f.keyframe);
        self.hold(frame);
        if !has_keyframe {
            return;
        }
        if let Some(target) = probe {
            self.picker.probes.target = None;
            self.probe(target, stats, out);
        }
        if long_gop {
            // Decode the rest of the GOP so far, then every frame until the next keyframe.
            self.catching_up = true;
            self.decode_gop(None, stats, out);
        }
    }

    /// Level 2 skips a keyframe only when the next one, a keyframe interval later, still keeps
    /// the stream within three quarters of the bound.
    fn keyframe_due(&mut self, frame: &HeldFrame) -> bool {
        let interval = self
            .last_keyframe_seen
            .map(|at| frame.arrived.saturating_duration_since(at));
        self.last_keyframe_seen = Some(frame.arrived);
        self.level < 2
            || self.last_keyframe_at.zip(interval).is_none_or(|(at, gop)| {
                frame.arrived.saturating_duration_since(at) + gop >= self.blind_bound() * 3 / 4
            })
    }

    /// Whether the GOP a keyframe at `pts` starts gets a probe, and its point.
    fn draw_probe(&mut self, pts: i64) -> Option<i64> {
        let probes = &mut self.picker.probes;
        if let Some(previous) = probes.last_key_pts {
            let gop = pts - previous;
            if (1..=LONGEST_GOP_MS).contains(&gop) {
                probes.gop_ms = Some(gop);
            }
        }
        probes.last_key_pts = Some(pts);
        let gop = probes.gop_ms.unwrap_or(2000);
        let chance = (gop as f64 / PROBE_EVERY_MS).min(1.0);
        let rng = &mut self.rng;
        rng.gen_bool(chance).then(|| pts + rng.gen_range(0..gop))
    }

    /// The probe's point is reached: the GOP is decoded from where the decoder stopped up to the
    /// newest frame, and the frame on screen at the point is hashed.
    fn probe(&mut self, target: i64, stats: &InspectStats, out: &mut dyn FnMut(Finding)) {
        let on_screen = self
            .gop
            .iter()
            .filter(|f| f.pts <= target)
            .map(|f| f.pts)
            .max();
        self.decode_gop(on_screen, stats, out);
        if let Some(active) = self.active.as_mut() {
            active.decoder.set_keyframes_only(true);
        }
    }

    /// Decodes the held GOP from where the decoder stopped (from the keyframe again when it was
    /// decoded alone); the frame presented at `probe` (not the keyframe) is hashed, and a
    /// keyframe decoded again is not hashed again.
    pub(super) fn decode_gop(
        &mut self,
        probe: Option<i64>,
        stats: &InspectStats,
        out: &mut dyn FnMut(Finding),
    ) {
        if let Some(active) = self.active.as_mut() {
            active.decoder.set_keyframes_only(false);
        }
        let held = std::mem::take(&mut self.gop);
        for f in held.iter().skip(self.gop_decoded) {
            let pick = match probe {
                _ if f.keyframe => Some(Pick::Pass),
                Some(pts) if f.pts == pts => Some(Pick::Probe),
                Some(_) => Some(Pick::Pass),
                None => f.pick,
            };
            self.decode(&HeldFrame { pick, ..f.clone() }, stats, out);
        }
        self.gop_decoded = held.len();
        self.gop = held;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::pdq::PdqHash;

    #[test]
    fn probes_unlike_their_keyframes_make_a_stream_evasive() {
        let key = PdqHash([0; 4]);
        let near = PdqHash([0xFF, 0, 0, 0]);
        let far = PdqHash([u64::MAX, u64::MAX, 0, 0]);
        let mut watch = ProbeWatch::default();
        assert!(
            !watch.hashed(Some(Pick::Probe), false, far),
            "no keyframe yet"
        );
        watch.hashed(Some(Pick::Extra), true, key);
        assert!(!watch.hashed(Some(Pick::Probe), false, far));
        assert!(
            !watch.hashed(Some(Pick::OnScreen), false, far),
            "only probes count"
        );
        assert!(!watch.hashed(Some(Pick::Probe), false, near));
        assert!(
            watch.hashed(Some(Pick::Probe), false, far),
            "two of the last three"
        );
        let now = Instant::now();
        assert!(watch.mark_evasive(now));
        assert!(!watch.mark_evasive(now), "reported once while it lasts");
        assert!(watch.evasive(now + Duration::from_secs(59)));
        assert!(!watch.evasive(now + Duration::from_secs(61)));
    }
}
