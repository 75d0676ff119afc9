//! Which frames to hash: a rate in stream time (from timestamps, not the wall clock), so a
//! stream replayed faster or slower is sampled at the same points of its content.

/// Picks frames at `fps` per second of stream time; `fps <= 0` picks every frame.
#[derive(Debug, Clone)]
pub struct Sampler {
    interval_ms: Option<f64>,
    next_due_ms: Option<f64>,
    last_seen_ms: Option<f64>,
}

/// A timestamp this far behind the last one is a discontinuity (a new sequence, a wrapped
/// clock), not B-frame reordering.
const JUMP_BACK_MS: f64 = 1000.0;

impl Sampler {
    /// A sampler at `fps` frames per second of stream time.
    pub fn new(fps: f64) -> Sampler {
        Sampler {
            interval_ms: (fps > 0.0 && fps.is_finite()).then(|| 1000.0 / fps),
            next_due_ms: None,
            last_seen_ms: None,
        }
    }

    /// Whether the frame presented at `pts_ms` is to be hashed.
    pub fn take(&mut self, pts_ms: i64) -> bool {
        let Some(interval) = self.interval_ms else {
            return true;
        };
        let t = pts_ms as f64;
        let jumped_back = self
            .last_seen_ms
            .is_some_and(|last| t < last - JUMP_BACK_MS);
        self.last_seen_ms = Some(t);
        if jumped_back {
            // Restart the schedule instead of starving it until the old time comes back.
            self.next_due_ms = None;
        }
        match self.next_due_ms {
            Some(due) if t + 0.5 < due => false,
            Some(due) => {
                // Skip whole intervals after a gap so one late frame does not cause a burst.
                let behind = ((t - due) / interval).floor().max(0.0);
                self.next_due_ms = Some(due + (behind + 1.0) * interval);
                true
            }
            None => {
                self.next_due_ms = Some(t + interval);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(fps: f64, frames: impl Iterator<Item = i64>) -> Vec<i64> {
        let mut s = Sampler::new(fps);
        frames.filter(|&t| s.take(t)).collect()
    }

    #[test]
    fn samples_at_the_rate_in_stream_time() {
        // 30 fps for 3 s, sampled at 2 fps: 6 frames, 500 ms apart (to the frame).
        let frames = (0..90).map(|i| i * 1000 / 30);
        assert_eq!(
            taken(2.0, frames.clone()),
            vec![0, 500, 1000, 1500, 2000, 2500]
        );
        assert_eq!(taken(0.0, frames.clone()).len(), 90);
        assert_eq!(taken(0.5, frames).len(), 2);
    }

    #[test]
    fn gaps_and_jumps_do_not_burst_or_stall() {
        let mut frames: Vec<i64> = (0..30).map(|i| i * 33).collect();
        frames.extend((0..30).map(|i| 5000 + i * 33)); // 4 s gap
        frames.extend((0..30).map(|i| i * 33)); // timestamps restart
        let got = taken(1.0, frames.into_iter());
        assert_eq!(got, vec![0, 5000, 0]);
    }
}
