//! Keyframes mode (configured, or the pool's lowered sampling): keyframes are decoded, the
//! other frames of each GOP kept, and decoded when the GOP runs long (catch-up) or when a probe
//! falls in it.
//!
//! A publisher who knows only keyframes are looked at puts benign pictures in the keyframes and
//! the clip in the frames between. So keyframes mode still samples between keyframes, at
//! frames it draws at random: each frame between keyframes is a probe with a chance in
//! proportion to the arrival time it covers, one per `PROBE_EVERY_MS` on average, whatever the
//! keyframes do (no keyframe placement resets or narrows it, and a probe never lands on a
//! keyframe); the GOP is decoded from its keyframe up to the probed frame, which is hashed and
//! compared with the last keyframe hashed. A stream whose probes keep finding pictures unlike
//! its keyframes is evasive: an `anomaly`, and inspected at full rate for a while whatever the
//! pool's load (the pool's admission and fair share keep that affordable).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::Rng;

use super::{Finding, HeldFrame, InspectStats, StreamInspector};
use crate::hash::pdq::PdqHash;
use crate::inspect::onscreen::Pick;

/// On average one probe per this much arrival time.
const PROBE_EVERY_MS: f64 = 4000.0;
/// A probe this far (bits) from its keyframe shows another picture, not the same scene moving.
const UNLIKE_BITS: u32 = 90;
/// Evasive when this many of the last [`PROBES_JUDGED`] probes were unlike their keyframes.
const UNLIKE_PROBES: usize = 2;
const PROBES_JUDGED: usize = 3;
/// How long an evasive stream is inspected at full rate (renewed while it stays so).
const EVASIVE_FOR: Duration = Duration::from_secs(60);

/// Probes of one stream and what they found.
#[derive(Debug, Default)]
pub(super) struct ProbeWatch {
    /// When the last frame arrived (probes come in proportion to arrival time).
    last_arrival: Option<Instant>,
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
    /// probe falls on one of them, then decoded from where the decoder stopped. A keyframe is
    /// what the bitstream says (an IDR), not only what the FLV tag's flag says.
    pub(super) fn keyframes_mode(
        &mut self,
        frame: HeldFrame,
        stats: &InspectStats,
        out: &mut dyn FnMut(Finding),
    ) {
        let step = self
            .picker
            .probes
            .last_arrival
            .replace(frame.arrived)
            .map(|last| frame.arrived.saturating_duration_since(last));
        let keyframe = frame.keyframe || frame.nals.is_some_and(|n| n.idr);
        if keyframe {
            self.clear_gop();
            self.catching_up = false;
            if let Some(active) = self.active.as_mut() {
                active.decoder.set_keyframes_only(true);
            }
            if self.keyframe_due(&frame) {
                self.last_keyframe_at = Some(frame.arrived);
                self.decode(&frame, stats, out);
            }
            // Decoded alone, the keyframe is flushed out of the decoder (see
            // `VideoDecoder::decode`): what follows it decodes from it again.
            self.gop_decoded = 0;
            self.hold(HeldFrame {
                keyframe: true,
                ..frame
            });
            return;
        }
        if self.catching_up {
            self.decode(&frame, stats, out);
            return;
        }
        // No keyframe for two thirds of the bound (or none yet): every frame is decoded until
        // the next one (intra refresh recovers pictures without one).
        let long_gop = self.last_keyframe_at.is_none_or(|at| {
            frame.arrived.saturating_duration_since(at) >= self.blind_bound() * 2 / 3
        });
        let probe = self.draw_probe(step);
        let pts = frame.pts;
        self.hold(frame);
        if long_gop {
            self.catching_up = true;
            self.decode_gop(None, stats, out);
        } else if probe && self.gop.first().is_some_and(|f| f.keyframe) {
            self.probe(pts, stats, out);
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

    /// Whether a frame that arrived `step` after the one before is probed: a chance in
    /// proportion to the time it covers (at most 250 ms of it), so probes come once per
    /// [`PROBE_EVERY_MS`] of arrival time on average wherever the keyframes are.
    fn draw_probe(&mut self, step: Option<Duration>) -> bool {
        let ms = step
            .map_or(0.0, |s| s.as_secs_f64() * 1000.0)
            .clamp(1.0, 250.0);
        self.rng.gen_bool(ms / PROBE_EVERY_MS)
    }

    /// A probe falls on the frame presented at `pts`: the GOP is decoded from where the
    /// decoder stopped up to it, and it is hashed.
    fn probe(&mut self, pts: i64, stats: &InspectStats, out: &mut dyn FnMut(Finding)) {
        self.decode_gop(Some(pts), stats, out);
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
