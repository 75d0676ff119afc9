//! Samples that keep coming out featureless while the stream spends bits: a picture faded to a
//! few levels of contrast, or carried where no plane hashed shows it, is skipped by the
//! quality gate like a black screen, but a black screen costs next to nothing to encode.
//! Decide-only: the stream inspector feeds it video sizes and samples and raises the anomaly.

/// Featureless samples in a row before the bitrate is judged (8 s at 2 fps).
pub const DULL_SAMPLES: u32 = 16;
/// Stream time the run must span, in milliseconds.
pub const DULL_SPAN_MS: i64 = 5_000;
/// Video bitrate over the run above which featureless samples are suspicious, in kbit/s. A
/// black or still screen encodes at a few kbit/s; a 360p picture with content at hundreds.
pub const DULL_KBPS: u64 = 300;

/// The anomaly's text.
pub const DULL: &str = "every sample is featureless while the video costs hundreds of kbit/s \
                        (a faded picture, or one hidden from the planes hashed)";

/// One stream's run of featureless samples and the video bytes that came with it.
#[derive(Debug, Default)]
pub struct DullWatch {
    run: u32,
    started_ms: Option<i64>,
    bytes: u64,
    reported: bool,
}

impl DullWatch {
    /// A video message of `len` bytes arrived.
    pub fn video(&mut self, len: usize) {
        if self.started_ms.is_some() {
            self.bytes += len as u64;
        }
    }

    /// A sample at stream time `stream_ms` was hashed; `featureless` when no plane of it
    /// reached the gate. True when the anomaly is due (once per run).
    pub fn sample(&mut self, featureless: bool, stream_ms: i64) -> bool {
        if !featureless {
            *self = DullWatch::default();
            return false;
        }
        let started = *self.started_ms.get_or_insert(stream_ms);
        self.run += 1;
        let span = stream_ms - started;
        if self.reported || self.run < DULL_SAMPLES || span < DULL_SPAN_MS {
            return false;
        }
        let kbps = self.bytes * 8 / span.max(1) as u64;
        self.reported = kbps >= DULL_KBPS;
        self.reported
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream's watch and its clock.
    #[derive(Default)]
    struct Stream {
        watch: DullWatch,
        frame: i64,
    }

    /// Feeds `seconds` more of a stream, samples at 2 fps and `bytes_per_frame` at 30 fps;
    /// returns how many times the anomaly was raised.
    fn run(stream: &mut Stream, seconds: i64, bytes_per_frame: usize, featureless: bool) -> u32 {
        let mut raised = 0;
        for _ in 0..seconds * 30 {
            stream.watch.video(bytes_per_frame);
            let at = stream.frame * 1000 / 30;
            if stream.frame % 15 == 0 && stream.watch.sample(featureless, at) {
                raised += 1;
            }
            stream.frame += 1;
        }
        raised
    }

    #[test]
    fn a_faded_picture_at_a_real_bitrate_is_reported_once() {
        let mut watch = Stream::default();
        // 4 KB a frame at 30 fps is ~960 kbit/s.
        assert_eq!(run(&mut watch, 20, 4000, true), 1);
    }

    #[test]
    fn a_black_screen_is_not_reported() {
        let mut watch = Stream::default();
        // 200 bytes a frame: ~48 kbit/s.
        assert_eq!(run(&mut watch, 60, 200, true), 0);
    }

    #[test]
    fn a_sample_with_features_starts_the_run_again() {
        let mut watch = Stream::default();
        assert_eq!(
            run(&mut watch, 6, 4000, true),
            0,
            "6 s is short of 16 samples"
        );
        assert_eq!(run(&mut watch, 1, 4000, false), 0);
        assert_eq!(run(&mut watch, 6, 4000, true), 0, "the run started again");
        assert_eq!(run(&mut watch, 4, 4000, true), 1);
    }

    #[test]
    fn pictures_with_features_are_never_reported() {
        let mut watch = Stream::default();
        assert_eq!(run(&mut watch, 60, 10_000, false), 0);
    }
}
