//! One stream's inspection, as a plain state machine: video messages in, hashed frames out.
//! Opens the decoder on each sequence header (reopens it when the configuration changes, e.g. a
//! resolution switch), decodes, samples by stream time, hashes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::decoder::{DecodedFrame, VideoDecoder};
use super::flv::{parse_video_tag, VideoCodec, VideoTag};
use super::sampler::Sampler;
use crate::hash::letterbox::LetterboxSettings;
use crate::hash::pdq::LumaImage;
use crate::hash::{hash_frame, FrameHashes};
use crate::metrics::metrics;
use crate::relay::TappedVideo;

/// Which frames are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SamplingMode {
    /// Decode every frame, hash the sampled ones: exact sampling times.
    #[default]
    All,
    /// Decode keyframes only (FFmpeg skips the rest): far cheaper, one frame per GOP at most.
    Keyframes,
}

/// How a stream is sampled and hashed.
#[derive(Debug, Clone, Copy)]
pub struct InspectSettings {
    /// Frames per second of stream time to hash (0 = every decoded frame).
    pub fps: f64,
    /// Which frames are decoded.
    pub mode: SamplingMode,
    /// Letterbox detection for the content-area hash; `None` hashes whole frames only.
    pub letterbox: Option<LetterboxSettings>,
}

/// Counters of one stream's inspection, shared with whoever reports on it.
#[derive(Debug, Default)]
pub struct InspectStats {
    /// Frames that came out of the decoder.
    pub frames_decoded: AtomicU64,
    /// Frames the sampler picked and that were hashed.
    pub frames_hashed: AtomicU64,
    /// Packets or frames the decoder rejected.
    pub decode_errors: AtomicU64,
    /// Video messages in a codec inspection cannot decode (forwarded, not inspected).
    pub unsupported_messages: AtomicU64,
    /// Coded frames that arrived before any sequence header.
    pub frames_without_config: AtomicU64,
    /// How far behind the live edge inspection is, in milliseconds (arrival to processing).
    pub lag_ms: AtomicU64,
}

/// A sampled, hashed frame.
pub struct SampledFrame {
    /// Presentation time in stream milliseconds.
    pub stream_time_ms: i64,
    /// When the video message carrying it reached the relay.
    pub arrived: Instant,
    /// Its hashes.
    pub hashes: FrameHashes,
    /// The picture's luma (kept for evidence).
    pub luma: LumaImage,
}

/// One stream's decoder, sampler and hasher.
pub struct StreamInspector {
    settings: InspectSettings,
    decoder: Option<(VideoCodec, bytes::Bytes, VideoDecoder)>,
    sampler: Sampler,
    warned_unsupported: bool,
    reported_errors: u64,
}

impl StreamInspector {
    /// A fresh inspector.
    pub fn new(settings: InspectSettings) -> StreamInspector {
        StreamInspector {
            settings,
            decoder: None,
            sampler: Sampler::new(settings.fps),
            warned_unsupported: false,
            reported_errors: 0,
        }
    }

    /// Handles one video message; calls `out` for each sampled frame.
    pub fn handle(
        &mut self,
        video: &TappedVideo,
        stats: &InspectStats,
        out: &mut dyn FnMut(SampledFrame),
    ) {
        let tag = match parse_video_tag(&video.payload) {
            Ok(tag) => tag,
            Err(e) => {
                stats.decode_errors.fetch_add(1, Ordering::Relaxed);
                metrics().decode_errors.inc();
                tracing::debug!("skipping video message: {e}");
                return;
            }
        };
        match tag {
            VideoTag::SequenceStart { codec, config } => self.configure(codec, config, stats),
            VideoTag::Frame {
                keyframe,
                composition_time,
                data,
                ..
            } => {
                let Some((_, _, decoder)) = self.decoder.as_mut() else {
                    stats.frames_without_config.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                // The tag says which frames are keyframes: in keyframes mode the others never
                // reach FFmpeg (not even its parser).
                if !keyframe && self.settings.mode == SamplingMode::Keyframes {
                    return;
                }
                let dts = video.timestamp as i64;
                let pts = dts + composition_time as i64;
                let (settings, sampler) = (&self.settings, &mut self.sampler);
                decoder.decode(&data, dts, pts, keyframe, |frame| {
                    sample(settings, sampler, stats, video.arrived, frame, out)
                });
                let errors = decoder.errors;
                if errors > self.reported_errors {
                    stats
                        .decode_errors
                        .fetch_add(errors - self.reported_errors, Ordering::Relaxed);
                    metrics().decode_errors.add(errors - self.reported_errors);
                    self.reported_errors = errors;
                }
            }
            VideoTag::SequenceEnd => self.flush(stats, video.arrived, out),
            VideoTag::Skip {
                what,
                unsupported_codec,
            } => {
                if unsupported_codec {
                    stats.unsupported_messages.fetch_add(1, Ordering::Relaxed);
                    if !self.warned_unsupported {
                        self.warned_unsupported = true;
                        tracing::warn!("not inspecting this stream: {what} (forwarded as is)");
                    }
                }
            }
        }
    }

    fn configure(&mut self, codec: VideoCodec, config: bytes::Bytes, stats: &InspectStats) {
        if matches!(&self.decoder, Some((c, cfg, _)) if *c == codec && *cfg == config) {
            return;
        }
        let keyframes_only = self.settings.mode == SamplingMode::Keyframes;
        match VideoDecoder::open(codec, &config, keyframes_only) {
            Ok(decoder) => {
                tracing::debug!(codec = codec.name(), "decoder opened");
                self.reported_errors = 0;
                self.decoder = Some((codec, config, decoder));
            }
            Err(e) => {
                stats.decode_errors.fetch_add(1, Ordering::Relaxed);
                metrics().decode_errors.inc();
                tracing::warn!("cannot inspect this stream: {e}");
                self.decoder = None;
            }
        }
    }

    /// Emits the frames the decoder still holds (end of sequence or of stream).
    pub fn flush(
        &mut self,
        stats: &InspectStats,
        arrived: Instant,
        out: &mut dyn FnMut(SampledFrame),
    ) {
        let Some((_, _, decoder)) = self.decoder.as_mut() else {
            return;
        };
        let (settings, sampler) = (&self.settings, &mut self.sampler);
        decoder.finish(|frame| sample(settings, sampler, stats, arrived, frame, out));
    }
}

/// Counts a decoded frame and, when the sampler picks it, hashes it and hands it on.
fn sample(
    settings: &InspectSettings,
    sampler: &mut Sampler,
    stats: &InspectStats,
    arrived: Instant,
    frame: DecodedFrame,
    out: &mut dyn FnMut(SampledFrame),
) {
    stats.frames_decoded.fetch_add(1, Ordering::Relaxed);
    metrics().frames_decoded.inc();
    if sampler.take(frame.pts_ms) {
        metrics().frames_sampled.inc();
        let started = Instant::now();
        let hashes = hash_frame(&frame.luma, settings.letterbox);
        metrics().hash_duration.observe(started.elapsed());
        stats.frames_hashed.fetch_add(1, Ordering::Relaxed);
        metrics().frames_hashed.inc();
        out(SampledFrame {
            stream_time_ms: frame.pts_ms,
            arrived,
            hashes,
            luma: frame.luma,
        });
    }
}
