//! Decoding timestamps for containers that do not store them. Matroska keeps only presentation
//! times, so with B-frames FFmpeg cannot tell the first frames' decoding times until its reorder
//! buffer fills; RTMP needs one for every frame (the tag carries pts − dts). The frames without
//! one are held until the first known decoding time, then spaced back from it one frame
//! duration apart, which is what the encoder did.

/// Assigns a decoding time to every video frame, in milliseconds.
pub struct DtsFiller<T> {
    frame_ms: f64,
    held: Vec<(i64, T)>,
    last: Option<i64>,
}

/// At most this many frames are held waiting for a decoding time (B-frame reorder depth is
/// at most 16 in H.264); past it they go out with dts = pts.
const MAX_HELD: usize = 32;

impl<T> DtsFiller<T> {
    /// A filler for frames `frame_ms` apart.
    pub fn new(frame_ms: f64) -> DtsFiller<T> {
        DtsFiller {
            frame_ms,
            held: Vec::new(),
            last: None,
        }
    }

    /// One frame, in decoding order: its decoding time if known, its presentation time. Returns
    /// the frames now ready as (dts, pts, item).
    pub fn push(&mut self, dts: Option<i64>, pts: i64, item: T) -> Vec<(i64, i64, T)> {
        match (dts, self.last) {
            (Some(dts), _) => {
                let held = std::mem::take(&mut self.held);
                let count = held.len();
                let mut ready: Vec<(i64, i64, T)> = held
                    .into_iter()
                    .enumerate()
                    .map(|(i, (pts, item))| {
                        let back = (count - i) as f64 * self.frame_ms;
                        let filled = (dts as f64 - back).round() as i64;
                        (filled.min(pts), pts, item)
                    })
                    .collect();
                self.last = Some(dts);
                ready.push((dts, pts, item));
                ready
            }
            (None, Some(last)) => {
                let dts = ((last as f64 + self.frame_ms).round() as i64).min(pts);
                self.last = Some(dts);
                vec![(dts, pts, item)]
            }
            (None, None) => {
                self.held.push((pts, item));
                if self.held.len() >= MAX_HELD {
                    return self.finish();
                }
                Vec::new()
            }
        }
    }

    /// The frames still held (the file ended before any decoding time), with dts = pts.
    pub fn finish(&mut self) -> Vec<(i64, i64, T)> {
        let held = std::mem::take(&mut self.held);
        if let Some((pts, _)) = held.last() {
            self.last = Some(*pts);
        }
        held.into_iter()
            .map(|(pts, item)| (pts, pts, item))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::DtsFiller;

    #[test]
    fn frames_before_the_first_known_dts_are_spaced_back_from_it() {
        // Matroska's view of an x264 stream at 30 fps with B-frames (ffprobe of a remux).
        let mut filler = DtsFiller::new(1000.0 / 30.0);
        assert!(filler.push(None, 23, 'a').is_empty());
        assert!(filler.push(None, 123, 'b').is_empty());
        let ready = filler.push(Some(23), 56, 'c');
        assert_eq!(ready, vec![(-44, 23, 'a'), (-10, 123, 'b'), (23, 56, 'c')]);
        assert_eq!(filler.push(None, 200, 'd'), vec![(56, 200, 'd')]);
    }

    #[test]
    fn a_filled_dts_never_passes_its_pts() {
        let mut filler = DtsFiller::new(40.0);
        assert_eq!(filler.push(Some(0), 0, ()), vec![(0, 0, ())]);
        assert_eq!(filler.push(None, 20, ()), vec![(20, 20, ())]);
        let mut filler = DtsFiller::new(40.0);
        filler.push(None, 0, ());
        assert_eq!(filler.finish(), vec![(0, 0, ())]);
    }
}
