//! One stream's inspection, as a plain state machine: video messages in, hashed frames and
//! findings out.
//!
//! The decoder opens on the first sequence header and is reopened only when the codec changes
//! (at most once a second); a new header of the same codec whose parameter sets really differ
//! reaches FFmpeg as new extradata, and one that differs only in bytes that do not matter
//! (reserved bits, repeated profile fields) is ignored — counted, since a stream of headers is
//! itself suspicious. A declared picture over `max_pixels`, or video in a codec or packaging
//! inspection cannot decode, makes the stream uninspectable at once.
//!
//! In `all` and `hybrid` modes each coded frame's fate is decided before it is decoded, from
//! the timestamps alone (`onscreen`: the frame on screen at each sample point), so the frames
//! hashed are the same whatever the mode and the shortcuts; a frame waits for its fate (a
//! frame or two) with the sequence headers after it. Hybrid mode then holds each frame until a
//! sampled frame needs it: a sampled frame is decoded with the frames held before it, and the
//! frames held when an IDR keyframe comes (nothing after an IDR refers to them) are dropped
//! undecoded. It decodes what `all` mode would need for the same samples and no more, and
//! hashes each keyframe besides. A sampled frame the decoder never shows (refused, withheld)
//! leaves its sample to the next picture that comes out.
//!
//! Keyframes mode decodes keyframes only, but keeps the GOP's other frames: when no keyframe
//! has come for two thirds of the coverage bound, it decodes them too (from the keyframe on)
//! until the next keyframe, so a long GOP cannot make the stream blind.

mod keyframes;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::decoder::{DecodedFrame, Shortcuts, VideoDecoder};
use super::dull::{DullWatch, DULL};
use super::flicker::FlickerWatch;
use super::flv::{parse_video_tag, VideoCodec, VideoTag};
use super::onscreen::{OnScreen, Pick, Timing};
use super::params::{self, DecodingConfig, PictureSize};
use crate::hash::inset::{InsetSettings, InsetTracker};
use crate::hash::letterbox::LetterboxSettings;
use crate::hash::pdq::LumaImage;
use crate::hash::{hash_frame, FrameHashes, Views, FEATURELESS};
use crate::metrics::metrics;
use crate::relay::stats::CoverageClock;
use crate::relay::TappedVideo;

/// Default `inspect.max_pixels`: DCI 4K (4096×2160), which covers UHD (3840×2160).
pub const DEFAULT_MAX_PIXELS: u64 = 4096 * 2160;

/// The anomaly a stream whose frames flicker raises (see [`FlickerWatch`]).
const FLICKER: &str = "most samples would land on other frames than the ones on screen at \
                       their points (frames shown for a blink): timestamps that steer sampling";

/// The anomaly of a stream that keeps sending frames presented inside stretches already
/// sampled (decode times stepping back): timestamps that try to slip frames past the samples.
const LATE_FRAMES: &str = "frames keep arriving for stretches of the stream already sampled \
     (decode times stepping back): timestamps that steer sampling";

/// The anomaly of a stream whose probes between keyframes keep finding other pictures.
const EVASIVE: &str = "frames between keyframes look unlike the keyframes (benign keyframes \
     with other content between them): inspected at full rate whatever the load";

/// Why a stream whose frames carry parameter sets of their own is uninspectable.
const FOREIGN_PARAMETER_SETS: &str = "parameter sets inside frames differ from the sequence \
     header's: decoders apply them, repackagers (nginx-rtmp's HLS) replace them with the \
     header's, so the platform's viewers and inspection would see different pictures";

/// More sequence headers than this within [`CHURN_WINDOW`] is reported as an anomaly.
const CHURN_HEADERS: usize = 10;
const CHURN_WINDOW: Duration = Duration::from_secs(10);
/// Codec changes (decoder reopens) are honoured at most this often.
const MIN_REOPEN_INTERVAL: Duration = Duration::from_secs(1);
/// Most bytes of a GOP kept for a catch-up decode in keyframes mode.
const MAX_GOP_BYTES: usize = 16 << 20;

/// Which frames are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SamplingMode {
    /// Decode every frame, hash the sampled ones: exact sampling times.
    All,
    /// Decode keyframes only (FFmpeg skips the rest): far cheaper, one frame per GOP at most,
    /// unless a GOP runs longer than the coverage bound allows.
    Keyframes,
    /// Hash every keyframe, plus frames sampled as in `All`; decode a frame only once a
    /// sampled frame needs it. The frames after a GOP's last sample are dropped undecoded when
    /// the next IDR keyframe makes them useless. The default: the same samples as `All` (and
    /// keyframes besides) for less decoding.
    #[default]
    Hybrid,
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
    /// Frame-in-frame detection for the inset hash; `None` looks for no inset.
    pub frame_in_frame: Option<InsetSettings>,
    /// Hash the frame's windows (halves, quadrants, centre, seam-bound rectangles).
    pub windows: bool,
    /// Hash the colour planes of every sample, not only of those whose luma is featureless.
    pub colour_planes: bool,
    /// Largest picture decoded, in pixels; larger makes the stream uninspectable.
    pub max_pixels: u64,
    /// The coverage bound (`verdict.max_blind`): keyframes mode decodes a GOP's other frames
    /// when no keyframe came within two thirds of it.
    pub max_blind: Duration,
    /// The coverage bound while the pool sheds load (`verdict.max_blind_degraded`).
    pub max_blind_degraded: Duration,
    /// What decoding may leave out of frames the sampler will not pick.
    pub shortcuts: Shortcuts,
}

impl Default for InspectSettings {
    fn default() -> Self {
        InspectSettings {
            fps: 2.0,
            mode: SamplingMode::default(),
            letterbox: Some(LetterboxSettings::default()),
            frame_in_frame: Some(InsetSettings::default()),
            windows: true,
            colour_planes: true,
            max_pixels: DEFAULT_MAX_PIXELS,
            max_blind: Duration::from_millis(1500),
            max_blind_degraded: Duration::from_secs(4),
            shortcuts: Shortcuts::default(),
        }
    }
}

/// Counters of one stream's inspection, shared with whoever reports on it.
#[derive(Debug, Default)]
pub struct InspectStats {
    /// Frames that came out of the decoder.
    pub frames_decoded: AtomicU64,
    /// Frames the sampler picked and that were hashed.
    pub frames_hashed: AtomicU64,
    /// Packets the decoder rejected.
    pub decode_errors: AtomicU64,
    /// Frames FFmpeg reconstructed with concealment (hashed like the others).
    pub frames_concealed: AtomicU64,
    /// Video messages in a codec inspection cannot decode (forwarded, not inspected).
    pub unsupported_messages: AtomicU64,
    /// Coded frames that arrived before any sequence header.
    pub frames_without_config: AtomicU64,
    /// Sequence headers received.
    pub sequence_headers: AtomicU64,
    /// Times the decoder was (re)opened.
    pub decoder_opens: AtomicU64,
    /// How far behind the live edge inspection is, in milliseconds (arrival to processing).
    pub lag_ms: AtomicU64,
}

/// A sampled, hashed frame.
pub struct SampledFrame {
    /// Presentation time in stream milliseconds.
    pub stream_time_ms: i64,
    /// When the video message carrying it reached the relay.
    pub arrived: Instant,
    /// Where that message sits on the stream's coverage clocks.
    pub clock: CoverageClock,
    /// Its hashes.
    pub hashes: FrameHashes,
    /// The picture's luma (kept for evidence).
    pub luma: LumaImage,
}

/// What inspecting a message found.
pub enum Finding {
    /// A sampled frame, hashed.
    Frame(Box<SampledFrame>),
    /// The stream cannot be inspected, and why (raised once per cause).
    Uninspectable(String),
    /// Inspectable, but the stream behaves the way evasion does (raised once per cause).
    Anomaly(String),
}

/// A coded frame kept for a catch-up decode.
#[derive(Clone)]
struct HeldFrame {
    data: Bytes,
    pts: i64,
    keyframe: bool,
    arrived: Instant,
    clock: CoverageClock,
    /// What its NAL units say, read once on arrival (`None`: not read, or not readable).
    nals: Option<params::FrameNals>,
    /// Whether it is hashed, decided before decoding (`None`: keyframes mode decides as its
    /// picture comes out).
    pick: Option<Pick>,
}

/// A coded frame as it arrived, before inspection has looked into it.
struct ArrivedFrame {
    codec: VideoCodec,
    keyframe: bool,
    pts: i64,
    data: Bytes,
    arrived: Instant,
    clock: CoverageClock,
}

/// What waits for the on-screen sampling to decide the frames before it: a coded frame, or a
/// sequence header (or its end), which must reach the decoder after them.
enum Queued {
    Frame(ArrivedFrame),
    Header {
        codec: VideoCodec,
        config: Bytes,
        arrived: Instant,
        clock: CoverageClock,
    },
}

impl Queued {
    fn clock(&self) -> CoverageClock {
        match self {
            Queued::Frame(f) => f.clock,
            Queued::Header { clock, .. } => *clock,
        }
    }
}

struct ActiveDecoder {
    codec: VideoCodec,
    raw: Bytes,
    config: Option<DecodingConfig>,
    /// What the decoding shortcuts need from `config`, derived when it is set.
    facts: ConfigFacts,
    decoder: VideoDecoder,
}

/// What the decoding shortcuts need to know of a configuration record.
#[derive(Default)]
struct ConfigFacts {
    /// Length size for reading frames, when FFmpeg reads them as length-prefixed NAL units
    /// (H.264 or HEVC with a parsed record); `None`: no shortcut.
    length_size: Option<u8>,
    hevc: bool,
    /// H.264: how slice headers code frame_num (one SPS).
    frame_num: Option<params::FrameNumSyntax>,
    /// PPS ids the record declares: an IDR naming another is not trusted to clear anything.
    pps_ids: Vec<u32>,
}

impl ConfigFacts {
    fn of(codec: VideoCodec, raw: &[u8], config: Option<&DecodingConfig>) -> ConfigFacts {
        let hevc = match codec {
            VideoCodec::H264 => false,
            VideoCodec::Hevc => true,
            VideoCodec::Av1 | VideoCodec::Vp9 => return ConfigFacts::default(),
        };
        let Some(config) = config.filter(|_| length_prefixed(hevc, raw)) else {
            return ConfigFacts::default();
        };
        ConfigFacts {
            length_size: Some(config.length_size),
            hevc,
            frame_num: (!hevc)
                .then(|| params::h264_frame_num_syntax(config))
                .flatten(),
            pps_ids: params::pps_ids(hevc, config),
        }
    }
}

/// One stream's decoder, sampler and hasher.
pub struct StreamInspector {
    settings: InspectSettings,
    active: Option<ActiveDecoder>,
    picker: Picker,
    /// 0: as configured; 1: keyframes only; 2: keyframes only, fewer of them.
    level: u8,
    gop: Vec<HeldFrame>,
    gop_bytes: usize,
    /// Frames of the held GOP the decoder has had (from its keyframe on).
    gop_decoded: usize,
    catching_up: bool,
    /// Back from keyframes mode with the GOP held: its rest is decoded with the next message.
    resume_gop: bool,
    /// Into keyframes mode: what hybrid mode held is decoded with the next message.
    decode_pending_next: bool,
    /// Inspected at full rate whatever the pool's level until then (a match).
    exempt_until: Option<Instant>,
    /// Draws probe points (keyframes mode).
    rng: StdRng,
    /// Hybrid mode: frames not decoded yet, since the last one decoded.
    pending: Vec<HeldFrame>,
    pending_bytes: usize,
    /// The newest message inspection has finished with: nothing before it is held undecoded.
    settled: CoverageClock,
    /// The clock of the last message handled.
    last_clock: CoverageClock,
    /// A wanted frame whose picture the decoder still holds (reordering), and the packets
    /// decoded since.
    awaiting: Option<(i64, u32)>,
    /// H.264: frame_num of the last reference frame sent to the decoder, and the last frame
    /// skipped since (sent after all if the next frame's frame_num shows FFmpeg would have
    /// needed it to follow the sequence as the platform's decoder does).
    last_ref_frame_num: Option<u32>,
    last_skipped: Option<HeldFrame>,
    /// Decoding shortcuts given up on for this decoder: a frame whose NAL units this parser
    /// cannot read as FFmpeg does (framing, start codes, an in-band avcC), or an IDR that
    /// dropped held frames and did not decode. Every frame is decoded from then on.
    shortcuts_off: bool,
    /// Arrival of the last keyframe decoded, and of the last one seen.
    last_keyframe_at: Option<Instant>,
    last_keyframe_seen: Option<Instant>,
    /// After inspection dropped work: ignore frames until a keyframe.
    skip_to_keyframe: bool,
    headers: VecDeque<Instant>,
    /// Frames shown for a blink between others (timestamps that steer sampling).
    flicker: FlickerWatch,
    last_open: Option<Instant>,
    reported: Vec<String>,
    counted_errors: u64,
    counted_concealed: u64,
    /// Recent packets' presentation times with their arrival and coverage clock: a decoded
    /// picture is credited to the message that carried it, not to the one whose decoding let
    /// it out (B-frame reordering holds pictures back by a few messages).
    carried_by: VecDeque<(i64, Carried)>,
    /// The number the next packet goes to the decoder with.
    next_packet: i64,
}

/// What a decoded picture is credited to: the message that carried its frame, and whether it
/// is hashed (`None`: keyframes mode, judged as the picture comes out).
#[derive(Clone, Copy)]
struct Carried {
    /// The number its packet went to the decoder with (`None`: not known).
    number: Option<i64>,
    pts: i64,
    arrived: Instant,
    clock: CoverageClock,
    pick: Option<Pick>,
}

/// Packets remembered for crediting pictures to their messages.
const CARRIED_BY: usize = 64;
/// Packets decoded whole while waiting for a wanted picture to leave the decoder's reorder
/// buffer (x264 holds at most a few).
const AWAIT_PACKETS: u32 = 16;

impl StreamInspector {
    /// A fresh inspector.
    pub fn new(settings: InspectSettings) -> StreamInspector {
        StreamInspector {
            settings,
            active: None,
            picker: Picker {
                onscreen: OnScreen::live(settings.fps),
                owed: VecDeque::new(),
                probes: keyframes::ProbeWatch::default(),
                inset: settings.frame_in_frame.map(InsetTracker::new),
                dull: DullWatch::default(),
            },
            level: 0,
            gop: Vec::new(),
            gop_bytes: 0,
            gop_decoded: 0,
            catching_up: false,
            resume_gop: false,
            decode_pending_next: false,
            exempt_until: None,
            rng: StdRng::from_entropy(),
            pending: Vec::new(),
            pending_bytes: 0,
            settled: CoverageClock::default(),
            last_clock: CoverageClock::default(),
            awaiting: None,
            last_ref_frame_num: None,
            last_skipped: None,
            shortcuts_off: false,
            last_keyframe_at: None,
            last_keyframe_seen: None,
            skip_to_keyframe: false,
            headers: VecDeque::new(),
            flicker: FlickerWatch::default(),
            last_open: None,
            reported: Vec::new(),
            counted_errors: 0,
            counted_concealed: 0,
            carried_by: VecDeque::with_capacity(CARRIED_BY),
            next_packet: 0,
        }
    }

    /// Sets the sampling level the pool chose (0 = as configured, 1 = keyframes only,
    /// 2 = fewer keyframes).
    pub fn set_level(&mut self, level: u8) {
        let was_keyframes_only = self.keyframes_only();
        self.level = level.min(2);
        if self.keyframes_only() && !was_keyframes_only {
            // What waits for its fate is decided now, and what hybrid mode held decoded, with
            // the next message; the GOP under way is decoded to its end (the next keyframe).
            self.picker.onscreen.settle();
            self.decode_pending_next = true;
            self.catching_up = true;
        }
        if was_keyframes_only && !self.keyframes_only() && !self.catching_up {
            // The decoder has had the GOP's keyframe and not its other frames: they are decoded
            // from the held GOP with the next message, or, without one, from the next keyframe.
            if self.gop.first().is_some_and(|f| f.keyframe) {
                self.resume_gop = true;
            } else {
                self.skip_to_keyframe = true;
                self.clear_gop();
            }
            if let Some(active) = self.active.as_mut() {
                active.decoder.set_keyframes_only(false);
            }
        }
        if !self.keyframes_only() {
            self.catching_up = false;
        }
    }

    /// A frame just matched a list: sample more densely until `until` (arrival time), so the
    /// match is confirmed, or not, within a fraction of a second, and at full rate whatever the
    /// pool's load.
    pub fn boost(&mut self, until: Instant) {
        self.picker.onscreen.boost(until);
        self.exempt_until = Some(self.exempt_until.map_or(until, |t| t.max(until)));
    }

    /// Whether the stream is inspected at full rate whatever the pool's load (a match lately,
    /// or evasive).
    pub fn exempt(&self, now: Instant) -> bool {
        self.exempt_until.is_some_and(|until| now < until) || self.evasive(now)
    }

    /// Whether the stream's frames between keyframes looked unlike its keyframes lately.
    pub fn evasive(&self, now: Instant) -> bool {
        self.picker.probes.evasive(now)
    }

    /// The settings it was made with.
    pub fn settings(&self) -> &InspectSettings {
        &self.settings
    }

    /// The sampling level in force.
    pub fn level(&self) -> u8 {
        self.level
    }

    /// Inspection dropped messages to stay at the live edge: decoding restarts at a keyframe.
    pub fn resync(&mut self) {
        self.picker.onscreen.reset();
        self.skip_to_keyframe = true;
        self.clear_gop();
        self.clear_pending();
        self.awaiting = None;
        self.last_ref_frame_num = None;
        self.last_skipped = None;
        self.catching_up = false;
    }

    fn keyframes_only(&self) -> bool {
        self.settings.mode == SamplingMode::Keyframes || self.level > 0
    }

    fn blind_bound(&self) -> Duration {
        if self.level > 0 {
            self.settings.max_blind_degraded
        } else {
            self.settings.max_blind
        }
    }

    /// Handles one video message; calls `out` for each hashed frame and finding.
    pub fn handle(
        &mut self,
        video: &TappedVideo,
        stats: &InspectStats,
        out: &mut dyn FnMut(Finding),
    ) {
        self.picker.dull.video(video.payload.len());
        self.handle_message(video, stats, out);
        self.last_clock = video.clock;
        if self.pending.is_empty() && self.awaiting.is_none() && self.picker.onscreen.is_empty() {
            self.settled = video.clock;
        }
    }

    /// Finishes what is held now, without waiting for more video: the frames hybrid mode holds
    /// are decoded (and sampled if due by then), and a wanted picture still in the decoder's
    /// reorder buffer is let go (more frames would push it out; none are coming yet).
    pub fn settle(&mut self, stats: &InspectStats, out: &mut dyn FnMut(Finding)) {
        self.picker.onscreen.settle();
        self.run_decided(stats, out);
        self.decode_pending(stats, out);
        self.awaiting = None;
        self.settled = self.last_clock;
    }

    /// Where inspection stands on the stream's coverage clocks: the newest message it has
    /// finished with. Frames hybrid mode holds undecoded are not finished: the delay buffer
    /// must not let them out before the sample that needs them (or the IDR that makes them
    /// useless) has been judged.
    pub fn settled(&self) -> CoverageClock {
        self.settled
    }

    fn handle_message(
        &mut self,
        video: &TappedVideo,
        stats: &InspectStats,
        out: &mut dyn FnMut(Finding),
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
        // What waits from before goes first, oldest first: what hybrid mode held and what waited
        // for its fate when the pool lowered sampling, and the rest of a GOP held in keyframes
        // mode when the pool raised it again.
        if std::mem::take(&mut self.decode_pending_next) {
            self.decode_pending(stats, out);
        }
        self.run_decided(stats, out);
        if std::mem::take(&mut self.resume_gop) {
            self.decode_gop(None, stats, out);
            self.clear_gop();
        }
        match tag {
            VideoTag::SequenceStart { codec, config } => {
                let header = Queued::Header {
                    codec,
                    config,
                    arrived: video.arrived,
                    clock: video.clock,
                };
                self.picker.onscreen.push_other(header);
            }
            VideoTag::Frame {
                codec,
                keyframe,
                composition_time,
                data,
            } => {
                let dts = video.timestamp as i64;
                let pts = dts + composition_time as i64;
                if self.flicker.observe(pts) {
                    self.report_once(out, Finding::Anomaly(FLICKER.into()));
                }
                let frame = ArrivedFrame {
                    codec,
                    keyframe,
                    pts,
                    data,
                    arrived: video.arrived,
                    clock: video.clock,
                };
                if self.keyframes_only() {
                    self.frame(frame, None, stats, out);
                } else {
                    let timing = Timing {
                        dts,
                        pts,
                        arrived: video.arrived,
                    };
                    self.picker
                        .onscreen
                        .push_frame(timing, Queued::Frame(frame));
                    if self.picker.onscreen.take_late_overflow() {
                        self.report_once(out, Finding::Anomaly(LATE_FRAMES.into()));
                    }
                }
            }
            VideoTag::SequenceEnd => self.flush(stats, video.arrived, out),
            VideoTag::Skip {
                what,
                unsupported_codec,
            } => {
                if unsupported_codec {
                    stats.unsupported_messages.fetch_add(1, Ordering::Relaxed);
                    self.report_once(
                        out,
                        Finding::Uninspectable(format!("{what} is not decoded")),
                    );
                }
            }
        }
        self.run_decided(stats, out);
    }

    /// Handles what the on-screen sampling has decided, in arrival order.
    fn run_decided(&mut self, stats: &InspectStats, out: &mut dyn FnMut(Finding)) {
        while let Some((item, pick)) = self.picker.onscreen.pop() {
            let clock = item.clock();
            match item {
                Queued::Frame(frame) => self.frame(frame, pick, stats, out),
                Queued::Header {
                    codec,
                    config,
                    arrived,
                    ..
                } => self.configure(codec, config, arrived, stats, out),
            }
            if self.pending.is_empty() && self.awaiting.is_none() {
                self.settled = clock;
            }
        }
    }

    /// One coded frame, its fate decided (`pick`; `None` in keyframes mode): checked against
    /// the decoder in force, then decoded, held or skipped as the mode says.
    fn frame(
        &mut self,
        frame: ArrivedFrame,
        pick: Option<Pick>,
        stats: &InspectStats,
        out: &mut dyn FnMut(Finding),
    ) {
        let Some(active_codec) = self.active.as_ref().map(|a| a.codec) else {
            stats.frames_without_config.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if frame.codec != active_codec {
            // A player demuxes them as a second video stream and may show it.
            stats.unsupported_messages.fetch_add(1, Ordering::Relaxed);
            self.report_once(
                out,
                Finding::Uninspectable(format!(
                    "{} frames while the stream's video is {}",
                    frame.codec.name(),
                    active_codec.name()
                )),
            );
            return;
        }
        if self.skip_to_keyframe && !frame.keyframe {
            return;
        }
        self.skip_to_keyframe = false;
        if self.foreign_parameter_sets(&frame.data) {
            self.report_once(out, Finding::Uninspectable(FOREIGN_PARAMETER_SETS.into()));
        }
        let hybrid = self.settings.mode == SamplingMode::Hybrid;
        let pick = match pick {
            Some(Pick::Pass)
                if hybrid
                    && frame.keyframe
                    && self
                        .picker
                        .onscreen
                        .extra_keyframe(frame.pts, frame.arrived) =>
            {
                Some(Pick::Extra)
            }
            pick => pick,
        };
        let nals = self.read_nals(&frame.data);
        let frame = HeldFrame {
            data: frame.data,
            pts: frame.pts,
            keyframe: frame.keyframe,
            arrived: frame.arrived,
            clock: frame.clock,
            nals,
            pick,
        };
        if self.keyframes_only() {
            self.keyframes_mode(frame, stats, out);
        } else if hybrid {
            self.hybrid_mode(frame, stats, out);
        } else {
            self.decode(&frame, stats, out);
        }
        self.count_decoder_errors(stats);
    }

    /// Hybrid mode: a frame is decoded (after those held before it) when the sampler may pick
    /// it, it is a keyframe, or it carries parameter sets; otherwise held. An IDR keyframe
    /// drops what is held.
    fn hybrid_mode(
        &mut self,
        frame: HeldFrame,
        stats: &InspectStats,
        out: &mut dyn FnMut(Finding),
    ) {
        let nals = frame.nals;
        if self.shortcuts_off {
            self.decode_pending(stats, out);
            self.decode(&frame, stats, out);
            return;
        }
        let wanted = frame.keyframe
            || self.awaiting.is_some()
            || nals.is_none_or(|n| n.parameter_sets)
            || frame.pick.is_some_and(Pick::hashed);
        if !wanted && self.pending_bytes + frame.data.len() <= MAX_GOP_BYTES {
            self.pending_bytes += frame.data.len();
            self.pending.push(frame);
            return;
        }
        let known_pps = |n: params::FrameNals| {
            self.active
                .as_ref()
                .is_some_and(|a| n.idr_pps.is_some_and(|id| a.facts.pps_ids.contains(&id)))
        };
        let dropping = frame.keyframe
            && !self.pending.is_empty()
            && nals.is_some_and(|n| n.idr && known_pps(n));
        if !dropping {
            self.decode_pending(stats, out);
            self.decode(&frame, stats, out);
            return;
        }
        let errors = self.active.as_ref().map_or(0, |a| a.decoder.errors);
        self.clear_pending();
        self.decode(&frame, stats, out);
        if self
            .active
            .as_ref()
            .is_some_and(|a| a.decoder.errors > errors)
        {
            // The frames dropped for it may have been needed after all: decode everything
            // from now on, as in `all` mode.
            self.shortcuts_off = true;
            self.report_once(
                out,
                Finding::Anomaly("an IDR keyframe did not decode: hybrid decoding is off".into()),
            );
        }
    }

    /// Whether a frame of the active codec carries parameter sets its sequence header does not
    /// declare (see [`params::carries_foreign_parameter_set`]).
    fn foreign_parameter_sets(&self, data: &[u8]) -> bool {
        self.active.as_ref().is_some_and(|a| {
            a.facts.length_size.is_some()
                && a.config
                    .as_ref()
                    .is_some_and(|c| params::carries_foreign_parameter_set(a.facts.hevc, c, data))
        })
    }

    /// The NAL summary of a frame of the active codec; `None` when it is not H.264 or HEVC in
    /// length-prefixed framing with a parsed configuration, or when shortcuts are off. A frame
    /// that does not parse turns them off for this decoder.
    fn read_nals(&mut self, data: &[u8]) -> Option<params::FrameNals> {
        if self.shortcuts_off {
            return None;
        }
        let active = self.active.as_ref()?;
        let facts = &active.facts;
        let nals = params::frame_nals(facts.hevc, facts.length_size?, data);
        // Parameter sets the record does not declare change what the shortcuts read from it.
        let new_parameter_sets = nals.is_some_and(|n| n.parameter_sets)
            && !active
                .config
                .as_ref()
                .is_some_and(|c| params::repeats_config(facts.hevc, c, data));
        if nals.is_none() || new_parameter_sets {
            self.shortcuts_off = true;
            tracing::debug!("a frame not read as the record says: decoding shortcuts off");
            return None;
        }
        nals
    }

    /// Wall-clock span of the frames held undecoded (waiting for their fate, or held by hybrid
    /// mode), in milliseconds: unseen video, should they be dropped.
    pub fn held_span_ms(&self) -> u64 {
        let waiting = self.picker.onscreen.waiting().filter_map(|q| match q {
            Queued::Frame(f) => Some(f.clock.wall_ms),
            Queued::Header { .. } => None,
        });
        let walls = self.pending.iter().map(|f| f.clock.wall_ms).chain(waiting);
        let (min, max) = walls.fold((u64::MAX, 0), |(lo, hi), w| (lo.min(w), hi.max(w)));
        max.saturating_sub(min)
    }

    fn decode_pending(&mut self, stats: &InspectStats, out: &mut dyn FnMut(Finding)) {
        let held = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        for f in &held {
            self.decode(f, stats, out);
        }
        if let Some(last) = held.last() {
            self.settled = last.clock;
        }
        // Keep the allocation for the next stretch.
        self.pending = held;
        self.pending.clear();
    }

    fn clear_pending(&mut self) {
        self.pending.clear();
        self.pending_bytes = 0;
    }

    fn hold(&mut self, frame: HeldFrame) {
        if self.gop_bytes + frame.data.len() > MAX_GOP_BYTES {
            // Too long to catch up on: the coverage watch will see the gap.
            self.clear_gop();
            return;
        }
        self.gop_bytes += frame.data.len();
        self.gop.push(frame);
    }

    fn clear_gop(&mut self) {
        self.gop.clear();
        self.gop_bytes = 0;
        self.gop_decoded = 0;
    }

    fn decode(&mut self, frame: &HeldFrame, stats: &InspectStats, out: &mut dyn FnMut(Finding)) {
        // Wanted for itself (it is hashed; in keyframes mode, a keyframe may be), or to push an
        // awaited picture out.
        let for_itself = match frame.pick {
            Some(pick) => pick.hashed(),
            None => frame.keyframe,
        };
        // Unreferenced frames are skipped even while a picture is awaited: reference frames
        // push it out as well. Only in sequence: a skipped picture must not change how FFmpeg
        // reads the frame_num of the next one (it gap-fills references on a jump).
        let nals = frame
            .nals
            .filter(|_| self.settings.shortcuts.skip_unreferenced && !self.shortcuts_off);
        let syntax = self
            .active
            .as_ref()
            .and_then(|a| Some((a.facts.length_size?, a.facts.frame_num?)));
        let frame_num = syntax
            .filter(|_| nals.is_some())
            .and_then(|(size, sx)| Some((params::h264_frame_num(size, &frame.data, sx)?, sx)));
        let in_sequence = frame_num.is_some_and(|(num, sx)| {
            self.last_ref_frame_num
                .is_some_and(|last| num == (last + 1) & ((1u32 << sx.bits) - 1))
        });
        if !for_itself && in_sequence && nals.is_some_and(|n| n.unreferenced) {
            // Nothing decoded later can refer to it: it never reaches FFmpeg.
            self.last_skipped = Some(frame.clone());
            return;
        }
        if let Some(skipped) = self.last_skipped.take() {
            if !in_sequence {
                self.send(&skipped, false, stats, out);
            }
        }
        if nals.is_some_and(|n| n.referenced) {
            self.last_ref_frame_num = frame_num.map(|(num, _)| num);
        }
        self.send(frame, for_itself, stats, out);
    }

    /// Hands a frame to FFmpeg; `for_itself`: it may be hashed (see `decode`).
    fn send(
        &mut self,
        frame: &HeldFrame,
        for_itself: bool,
        stats: &InspectStats,
        out: &mut dyn FnMut(Finding),
    ) {
        let wanted = for_itself || self.awaiting.is_some();
        let Some(active) = self.active.as_mut() else {
            return;
        };
        let number = self.next_packet;
        self.next_packet += 1;
        if self.carried_by.len() >= CARRIED_BY {
            self.carried_by.pop_front();
        }
        self.carried_by.push_back((number, Carried::of(frame)));
        let (settings, picker) = (&self.settings, &mut self.picker);
        if frame.pick.is_some_and(Pick::hashed) {
            picker.owe(number, frame.pts);
        }
        let carried_by = &self.carried_by;
        let unknown = Carried {
            pick: frame.pick.map(|_| Pick::Pass),
            ..Carried::of(frame)
        };
        // While a picture wanted for itself is still held in the decoder for reordering, the
        // frames that push it out are decoded, so its hash is not delayed.
        let mut newest_out = None;
        active
            .decoder
            .decode(&frame.data, number, frame.keyframe, wanted, |picture| {
                let carried = credit(carried_by, picture.packet, unknown);
                newest_out = newest_out.max(Some(carried.pts));
                sample(settings, picker, stats, carried, picture, out)
            });
        // Await the newest wanted picture not out yet (a later wanted frame restarts the
        // count); give up after AWAIT_PACKETS (a damaged stream may never emit it).
        let target = match self.awaiting {
            Some((pts, _)) if for_itself && frame.pts > pts => Some((frame.pts, 0)),
            Some((pts, n)) => Some((pts, n + 1)),
            None if for_itself => Some((frame.pts, 0)),
            None => None,
        };
        self.awaiting =
            target.filter(|&(pts, n)| n < AWAIT_PACKETS && newest_out.is_none_or(|o| o < pts));
    }

    fn count_decoder_errors(&mut self, stats: &InspectStats) {
        let Some(active) = self.active.as_ref() else {
            return;
        };
        let (errors, concealed) = (active.decoder.errors, active.decoder.concealed);
        if errors > self.counted_errors {
            let new = errors - self.counted_errors;
            stats.decode_errors.fetch_add(new, Ordering::Relaxed);
            metrics().decode_errors.add(new);
        }
        if concealed > self.counted_concealed {
            stats
                .frames_concealed
                .fetch_add(concealed - self.counted_concealed, Ordering::Relaxed);
        }
        self.counted_errors = errors;
        self.counted_concealed = concealed;
    }

    fn report_once(&mut self, out: &mut dyn FnMut(Finding), finding: Finding) {
        let text = match &finding {
            Finding::Uninspectable(t) | Finding::Anomaly(t) => t.clone(),
            Finding::Frame(_) => return out(finding),
        };
        if self.reported.contains(&text) {
            return;
        }
        tracing::warn!("{text}");
        if self.reported.len() < 16 {
            self.reported.push(text);
        }
        out(finding);
    }

    fn configure(
        &mut self,
        codec: VideoCodec,
        raw: Bytes,
        arrived: Instant,
        stats: &InspectStats,
        out: &mut dyn FnMut(Finding),
    ) {
        stats.sequence_headers.fetch_add(1, Ordering::Relaxed);
        // Frames held in hybrid mode were coded with the parameter sets in force before this
        // header: they go to the decoder first.
        self.decode_pending(stats, out);
        self.headers.push_back(arrived);
        while self
            .headers
            .front()
            .is_some_and(|t| arrived.saturating_duration_since(*t) > CHURN_WINDOW)
        {
            self.headers.pop_front();
        }
        if self.headers.len() > CHURN_HEADERS {
            self.report_once(
                out,
                Finding::Anomaly(format!(
                    "sequence header churn: more than {CHURN_HEADERS} headers within {}s",
                    CHURN_WINDOW.as_secs()
                )),
            );
        }
        if self
            .active
            .as_ref()
            .is_some_and(|a| a.codec == codec && a.raw == raw)
        {
            return;
        }
        let config = match codec {
            VideoCodec::H264 => params::avc_config(&raw),
            VideoCodec::Hevc => params::hevc_config(&raw),
            VideoCodec::Av1 | VideoCodec::Vp9 => None,
        };
        if let Some(size) = config.as_ref().and_then(|c| picture_size(codec, c)) {
            if size.pixels() > self.settings.max_pixels {
                // Not decoded at all: the cost of a picture this size is the attack.
                self.active = None;
                self.report_once(
                    out,
                    Finding::Uninspectable(format!(
                        "picture {}x{} is over inspect.max_pixels = {}",
                        size.width, size.height, self.settings.max_pixels
                    )),
                );
                return;
            }
        }
        if let Some(active) = self.active.as_mut().filter(|a| a.codec == codec) {
            let same = config.is_some() && active.config == config;
            active.raw = raw.clone();
            if !same {
                // The parameter sets changed: FFmpeg re-reads them with the next packet.
                active.facts = ConfigFacts::of(codec, &raw, config.as_ref());
                active.decoder.reconfigure(raw);
                active.config = config;
                self.last_ref_frame_num = None;
                self.last_skipped = None;
            }
            return;
        }
        let too_soon = self
            .last_open
            .is_some_and(|t| arrived.saturating_duration_since(t) < MIN_REOPEN_INTERVAL);
        if too_soon && self.active.is_some() {
            self.report_once(
                out,
                Finding::Anomaly("codec switching faster than once a second".into()),
            );
            return;
        }
        self.last_open = Some(arrived);
        match VideoDecoder::open(
            codec,
            &raw,
            self.keyframes_only(),
            self.settings.max_pixels,
            self.settings.shortcuts,
        ) {
            Ok(decoder) => {
                tracing::debug!(codec = codec.name(), "decoder opened");
                stats.decoder_opens.fetch_add(1, Ordering::Relaxed);
                self.counted_errors = 0;
                self.counted_concealed = 0;
                self.clear_gop();
                self.catching_up = false;
                self.awaiting = None;
                self.shortcuts_off = false;
                self.last_ref_frame_num = None;
                self.last_skipped = None;
                self.active = Some(ActiveDecoder {
                    codec,
                    facts: ConfigFacts::of(codec, &raw, config.as_ref()),
                    raw,
                    config,
                    decoder,
                });
            }
            Err(e) => {
                stats.decode_errors.fetch_add(1, Ordering::Relaxed);
                metrics().decode_errors.inc();
                tracing::warn!("cannot open a decoder for this stream: {e}");
                self.active = None;
            }
        }
    }

    /// Emits the frames the decoder still holds (end of sequence or of stream), after decoding
    /// those hybrid mode held: their sample never came, but the wall clock may still take one.
    pub fn flush(&mut self, stats: &InspectStats, arrived: Instant, out: &mut dyn FnMut(Finding)) {
        self.picker.onscreen.settle();
        self.run_decided(stats, out);
        self.decode_pending(stats, out);
        self.awaiting = None;
        self.settled = self.last_clock;
        let Some(active) = self.active.as_mut() else {
            return;
        };
        let (settings, picker) = (&self.settings, &mut self.picker);
        let carried_by = &self.carried_by;
        let unknown = Carried {
            number: None,
            pts: 0,
            arrived,
            clock: self.last_clock,
            pick: None,
        };
        active.decoder.finish(|picture| {
            let carried = credit(carried_by, picture.packet, unknown);
            sample(settings, picker, stats, carried, picture, out)
        });
    }
}

/// Whether FFmpeg reads this codec's frames as length-prefixed NAL units under the sequence
/// header `raw` (its own tests: an avcC starts with version 1; an hvcC does not start like an
/// Annex B start code). Otherwise it reads start codes, and so must any shortcut: none is taken.
fn length_prefixed(hevc: bool, raw: &[u8]) -> bool {
    if hevc {
        raw.len() > 3 && (raw[0] != 0 || raw[1] != 0 || raw[2] > 1)
    } else {
        raw.first() == Some(&1)
    }
}

fn picture_size(codec: VideoCodec, config: &DecodingConfig) -> Option<PictureSize> {
    match codec {
        VideoCodec::H264 => params::avc_picture_size(config),
        VideoCodec::Hevc => params::hevc_picture_size(config),
        VideoCodec::Av1 | VideoCodec::Vp9 => None,
    }
}

/// What decides which frames are hashed and what of them: the on-screen sampling, and the
/// motion history that finds an inset.
struct Picker {
    onscreen: OnScreen<Queued>,
    /// Picked frames sent to the decoder whose pictures have not come out yet (packet number,
    /// presentation time). A picture presented after one of them that comes out first stands
    /// in for it: a picked frame the decoder never shows (refused, withheld) still leaves a
    /// sample.
    owed: VecDeque<(i64, i64)>,
    /// Keyframes mode's probes between keyframes, and what they found.
    probes: keyframes::ProbeWatch,
    inset: Option<InsetTracker>,
    /// Featureless samples against the bitrate.
    dull: DullWatch,
}

impl Carried {
    fn of(frame: &HeldFrame) -> Carried {
        Carried {
            number: None,
            pts: frame.pts,
            arrived: frame.arrived,
            clock: frame.clock,
            pick: frame.pick,
        }
    }
}

/// The frame a decoded picture came from (by the number its packet went in with), else
/// `unknown`.
fn credit(carried_by: &VecDeque<(i64, Carried)>, packet: Option<i64>, unknown: Carried) -> Carried {
    packet
        .and_then(|number| carried_by.iter().rev().find(|(n, _)| *n == number))
        .map_or(unknown, |(_, c)| Carried {
            number: packet,
            ..*c
        })
}

/// Picked frames owed a sample at most: past it the oldest is forgotten.
const OWED: usize = 16;

impl Picker {
    /// A picked frame went to the decoder as packet `number`: its picture is owed a sample.
    fn owe(&mut self, number: i64, pts: i64) {
        if self.owed.len() == OWED {
            self.owed.pop_front();
        }
        self.owed.push_back((number, pts));
    }

    /// The picture of packet `number`, presented at `pts`, came out: what it settles of the
    /// owed samples; `true` when a picked frame presented before it never came out (this
    /// picture stands in for it). Pictures come out in presentation order.
    fn settle_owed(&mut self, number: Option<i64>, pts: i64) -> bool {
        let mine = |n: i64| Some(n) == number;
        let missed = self.owed.iter().any(|&(n, p)| !mine(n) && p < pts);
        self.owed.retain(|&(n, p)| !mine(n) && p > pts);
        missed
    }
}

/// Counts a decoded picture and, when its frame was picked, hashes it and hands it on.
fn sample(
    settings: &InspectSettings,
    picker: &mut Picker,
    stats: &InspectStats,
    carried: Carried,
    mut frame: DecodedFrame,
    out: &mut dyn FnMut(Finding),
) {
    stats.frames_decoded.fetch_add(1, Ordering::Relaxed);
    metrics().frames_decoded.inc();
    let Carried { arrived, clock, .. } = carried;
    let take = match carried.pick {
        Some(pick) => picker.settle_owed(carried.number, carried.pts) || pick.hashed(),
        None => picker.onscreen.take_at_or_after(carried.pts, arrived),
    };
    if take {
        metrics().frames_sampled.inc();
        let started = Instant::now();
        let Some(luma) = frame.luma() else {
            return;
        };
        let inset = picker
            .inset
            .as_mut()
            .and_then(|t| t.observe(&luma, carried.pts));
        let views = Views {
            letterbox: settings.letterbox,
            inset,
            windows: settings.windows,
        };
        let mut hashes = hash_frame(&luma, views);
        hashes.add_colour(&frame.colour(), settings.colour_planes);
        if picker
            .dull
            .sample(hashes.featureless(FEATURELESS), carried.pts)
        {
            out(Finding::Anomaly(DULL.into()));
        }
        metrics().hash_duration.observe(started.elapsed());
        let keyframe = frame.keyframe;
        if picker
            .probes
            .hashed(carried.pick, keyframe, hashes.full.hash())
            && picker.probes.mark_evasive(arrived)
        {
            out(Finding::Anomaly(EVASIVE.into()));
        }
        stats.frames_hashed.fetch_add(1, Ordering::Relaxed);
        metrics().frames_hashed.inc();
        out(Finding::Frame(Box::new(SampledFrame {
            stream_time_ms: carried.pts,
            arrived,
            clock,
            hashes,
            luma,
        })));
    }
}
