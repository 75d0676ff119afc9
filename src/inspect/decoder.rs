//! Decoding with FFmpeg (ffmpeg-next): a decoder opened from the stream's sequence header,
//! luma planes out. Damage is handled the way players handle it: a packet FFmpeg rejects is
//! counted and decoding goes on with the next one, and pictures FFmpeg reconstructed with
//! concealment are hashed like any other (what a viewer sees is what counts). A new sequence
//! header of the same codec reaches FFmpeg as new extradata with the next packet, as FFmpeg's
//! own FLV demuxer passes it, so the decoder is never reopened for it. Pictures over
//! `max_pixels` are refused by FFmpeg before a frame is allocated. In keyframes mode FFmpeg is
//! told to skip every other frame (`AVDISCARD_NONKEY`).

use std::sync::Once;

use ffmpeg::codec::{self, Id};
use ffmpeg::format::Pixel;
use ffmpeg::software::scaling;
use ffmpeg::util::color;
use ffmpeg_next as ffmpeg;

use super::flv::VideoCodec;
use crate::hash::pdq::LumaImage;

/// FFmpeg's padding requirement after extradata and packet data.
const PADDING: usize = 64;

/// Why a decoder could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// FFmpeg has no decoder for the codec.
    #[error("FFmpeg has no {0} decoder")]
    NoDecoder(&'static str),
    /// FFmpeg refused the configuration.
    #[error("cannot open {codec} decoder: {source}")]
    Open {
        /// Codec.
        codec: &'static str,
        /// FFmpeg's error.
        source: ffmpeg::Error,
    },
}

/// Initialises FFmpeg once and keeps its own log quiet: decode errors are counted and reported
/// by hashgate, one line per stream, not one per macroblock.
pub fn init_ffmpeg() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = ffmpeg::init();
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Fatal);
    });
}

/// A decoder context for one live stream's codec: `config` (the sequence header's record) as
/// extradata, one thread (streams are decoded in parallel with one another), millisecond
/// packet times. Shared by the video and the audio decoders.
pub fn stream_context(found: ffmpeg::Codec, config: &[u8]) -> codec::Context {
    let mut context = codec::Context::new_with_codec(found);
    // SAFETY: the context was just allocated by FFmpeg and is exclusively ours; extradata is
    // allocated with av_mallocz (FFmpeg frees it with the context) and padded as required.
    unsafe {
        let ptr = context.as_mut_ptr();
        if !config.is_empty() {
            let extradata = ffmpeg::ffi::av_mallocz(config.len() + PADDING) as *mut u8;
            if !extradata.is_null() {
                std::ptr::copy_nonoverlapping(config.as_ptr(), extradata, config.len());
                (*ptr).extradata = extradata;
                (*ptr).extradata_size = config.len() as i32;
            }
        }
        (*ptr).thread_count = 1;
        (*ptr).pkt_timebase = ffmpeg::ffi::AVRational { num: 1, den: 1000 };
    }
    context
}

/// What a live stream's decoder may leave out, for frames the sampler will not pick. Each
/// shortcut is measured in `bench/inspect.sh` against a full decode (the distance of the sampled
/// frames' PDQ to the same frames decoded whole).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shortcuts {
    /// H.264 frames that no other frame can reference (every slice has nal_ref_idc 0, and
    /// nothing but SEI rides with them: most B-frames) are not handed to the decoder unless the
    /// sampler may pick them. Lossless: nothing decoded later depends on them. (HEVC's
    /// "sub-layer non-reference" NAL types are not that, so HEVC frames are always decoded.)
    pub skip_unreferenced: bool,
    /// Frames the sampler will not pick are decoded without the in-loop deblocking filter.
    /// Lossy: later frames predict from the unfiltered pictures.
    pub skip_loop_filter: bool,
    /// Sampled pictures wider than this are scaled down (libswscale, area filter) to this
    /// width before hashing; 0 hashes them at full size.
    pub hash_width: u32,
}

impl Shortcuts {
    /// Every frame decoded whole, every sampled picture hashed at full size: what `hashgate
    /// hash` and the reference vectors use.
    pub const EXACT: Shortcuts = Shortcuts {
        skip_unreferenced: false,
        skip_loop_filter: false,
        hash_width: 0,
    };
}

impl Default for Shortcuts {
    fn default() -> Self {
        // Measured in bench/inspect.sh: skipping unreferenced frames changes no sampled hash;
        // hashing at 640 px moved them 8-12 bits at p99 and skipping deblocking ~50, so both
        // are off.
        Shortcuts {
            skip_unreferenced: true,
            skip_loop_filter: false,
            hash_width: 0,
        }
    }
}

/// A picture that came out of the decoder. Its luma is read only when asked for: most pictures
/// are decoded only so that later ones can be, and are never hashed.
pub struct DecodedFrame<'a> {
    /// The number the frame's packet was handed over with (see [`VideoDecoder::decode`]);
    /// `None` when FFmpeg could not tell.
    pub packet: Option<i64>,
    /// Whether FFmpeg marked it a keyframe.
    pub keyframe: bool,
    frame: &'a ffmpeg::frame::Video,
    luma: &'a mut LumaExtractor,
    hash_width: u32,
}

impl DecodedFrame<'_> {
    /// The picture's colour planes, for a picture whose luma is featureless (see
    /// [`colour_planes`]).
    pub fn colour(&self) -> Vec<LumaImage> {
        colour_planes(self.frame)
    }

    /// The picture's luma, stretched to full range, scaled down to the configured hashing
    /// width if it is wider. `None` for an empty picture.
    pub fn luma(&mut self) -> Option<LumaImage> {
        if self.hash_width > 0 && self.frame.width() > self.hash_width {
            self.luma.extract_scaled(self.frame, self.hash_width)
        } else {
            self.luma.extract(self.frame)
        }
    }
}

/// One stream's decoder.
pub struct VideoDecoder {
    codec: VideoCodec,
    decoder: ffmpeg::decoder::Video,
    frame: ffmpeg::frame::Video,
    luma: LumaExtractor,
    keyframes_only: bool,
    shortcuts: Shortcuts,
    new_extradata: Option<bytes::Bytes>,
    /// Packets FFmpeg rejected.
    pub errors: u64,
    /// Pictures FFmpeg flagged as reconstructed with concealment (hashed all the same).
    pub concealed: u64,
    /// Size of the last picture decoded.
    pub last_size: Option<(u32, u32)>,
}

fn ffmpeg_id(codec: VideoCodec) -> Id {
    match codec {
        VideoCodec::H264 => Id::H264,
        VideoCodec::Hevc => Id::HEVC,
        VideoCodec::Av1 => Id::AV1,
        VideoCodec::Vp9 => Id::VP9,
    }
}

impl VideoDecoder {
    /// Opens a decoder from the configuration record of a sequence header. `keyframes_only`
    /// makes FFmpeg skip every frame that is not a keyframe; pictures of more than `max_pixels`
    /// are refused; `shortcuts` say what may be left out of frames that are not wanted.
    pub fn open(
        codec: VideoCodec,
        config: &[u8],
        keyframes_only: bool,
        max_pixels: u64,
        shortcuts: Shortcuts,
    ) -> Result<Self, DecodeError> {
        init_ffmpeg();
        let found =
            ffmpeg::decoder::find(ffmpeg_id(codec)).ok_or(DecodeError::NoDecoder(codec.name()))?;
        let mut context = stream_context(found, config);
        // SAFETY: the context is exclusively ours; a plain field is set.
        unsafe {
            (*context.as_mut_ptr()).max_pixels = max_pixels.min(i64::MAX as u64) as i64;
        }
        let mut decoder = context.decoder();
        if keyframes_only {
            decoder.skip_frame(ffmpeg::Discard::NonKey);
        }
        let decoder = decoder.video().map_err(|source| DecodeError::Open {
            codec: codec.name(),
            source,
        })?;
        Ok(VideoDecoder {
            codec,
            decoder,
            frame: ffmpeg::frame::Video::empty(),
            luma: LumaExtractor::default(),
            keyframes_only,
            shortcuts,
            new_extradata: None,
            errors: 0,
            concealed: 0,
            last_size: None,
        })
    }

    /// A new configuration record of the same codec: FFmpeg gets it as new extradata with the
    /// next packet (it re-reads the parameter sets then, as it does for a player).
    pub fn reconfigure(&mut self, config: bytes::Bytes) {
        self.new_extradata = Some(config);
    }

    /// Switches between decoding every frame and keyframes only. Back to every frame, FFmpeg
    /// resumes at the next keyframe on its own.
    pub fn set_keyframes_only(&mut self, keyframes_only: bool) {
        if keyframes_only != self.keyframes_only {
            self.keyframes_only = keyframes_only;
            self.set_discards(true);
        }
    }

    /// What FFmpeg leaves out of the next packet. Both fields are read per slice as it is
    /// decoded by the H.264 and HEVC decoders (one thread, no frame threading), so they apply
    /// packet by packet.
    fn set_discards(&mut self, wanted: bool) {
        let skip_frame = if self.keyframes_only {
            ffmpeg::Discard::NonKey
        } else {
            ffmpeg::Discard::Default
        };
        let skip_loop_filter = if !wanted && self.shortcuts.skip_loop_filter {
            ffmpeg::Discard::All
        } else {
            ffmpeg::Discard::Default
        };
        self.decoder.skip_frame(skip_frame);
        self.decoder.skip_loop_filter(skip_loop_filter);
    }

    /// The codec this decoder was opened for.
    pub fn codec(&self) -> VideoCodec {
        self.codec
    }

    /// Decodes one coded frame; calls `out` for each picture that comes out. Keyframe or not,
    /// what the stream inspector hands over goes to FFmpeg: it knows better than the FLV tag's
    /// flag where decoding can start (a publisher could flag no frame at all as a keyframe). A
    /// frame not `wanted` (the sampler cannot pick it) may be decoded without deblocking, if so
    /// configured.
    ///
    /// The packet goes in stamped with `number` (increasing per stream) as both its decode
    /// and presentation time, and each picture comes out with the number of the packet it was
    /// coded in ([`DecodedFrame::packet`]): FFmpeg carries a packet's pts over to its picture
    /// exactly, whatever the reordering. The stream's own timestamps never reach FFmpeg, whose
    /// best-effort timestamp a publisher can steer onto the decode times (two repeated
    /// presentation times are enough) and so credit a picture to another frame.
    pub fn decode(
        &mut self,
        data: &[u8],
        number: i64,
        keyframe: bool,
        wanted: bool,
        mut out: impl FnMut(DecodedFrame),
    ) {
        self.set_discards(wanted);
        let mut packet = ffmpeg::Packet::copy(data);
        packet.set_dts(Some(number));
        packet.set_pts(Some(number));
        if keyframe {
            packet.set_flags(ffmpeg::packet::Flags::KEY);
        }
        if let Some(config) = self.new_extradata.take() {
            attach_new_extradata(&mut packet, &config);
        }
        if self.decoder.send_packet(&packet).is_err() {
            self.errors += 1;
        }
        self.drain(&mut out);
        // Fed keyframes only, the decoder would hold each picture back until the next keyframe
        // (reordering delay): a second of latency. Each keyframe decodes on its own, so drain it
        // out now.
        if self.keyframes_only {
            self.finish(&mut out);
        }
    }

    /// Flushes the frames FFmpeg still holds (B-frame reordering) at the end of a sequence.
    pub fn finish(&mut self, mut out: impl FnMut(DecodedFrame)) {
        if self.decoder.send_eof().is_ok() {
            self.drain(&mut out);
        }
        self.decoder.flush();
    }

    fn drain(&mut self, out: &mut impl FnMut(DecodedFrame)) {
        loop {
            match self.decoder.receive_frame(&mut self.frame) {
                Ok(()) => {
                    // SAFETY: reading plain fields of the frame FFmpeg just filled.
                    let concealed = unsafe {
                        (*self.frame.as_ptr()).flags & ffmpeg::ffi::AV_FRAME_FLAG_CORRUPT != 0
                            || (*self.frame.as_ptr()).decode_error_flags != 0
                    };
                    if concealed {
                        self.concealed += 1;
                    }
                    self.last_size = Some((self.frame.width(), self.frame.height()));
                    if self.frame.width() > 0 && self.frame.height() > 0 {
                        out(DecodedFrame {
                            packet: self.frame.pts(),
                            keyframe: self.frame.is_key(),
                            frame: &self.frame,
                            luma: &mut self.luma,
                            hash_width: self.shortcuts.hash_width,
                        });
                    }
                }
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {
                    return
                }
                Err(ffmpeg::Error::Eof) => return,
                Err(_) => {
                    self.errors += 1;
                    return;
                }
            }
        }
    }
}

/// Attaches `config` to `packet` as `AV_PKT_DATA_NEW_EXTRADATA`, the way FFmpeg's FLV demuxer
/// hands a mid-stream sequence header to the decoder.
fn attach_new_extradata(packet: &mut ffmpeg::Packet, config: &[u8]) {
    use ffmpeg::packet::Mut;
    // SAFETY: the packet is ours; av_packet_new_side_data returns a buffer of exactly the
    // requested size owned by the packet (or null, then nothing is attached).
    unsafe {
        let data = ffmpeg::ffi::av_packet_new_side_data(
            packet.as_mut_ptr(),
            ffmpeg::ffi::AVPacketSideDataType::AV_PKT_DATA_NEW_EXTRADATA,
            config.len(),
        );
        if !data.is_null() {
            std::ptr::copy_nonoverlapping(config.as_ptr(), data, config.len());
        }
    }
}

/// Luma out of decoded frames: read in place for 8-bit YUV and grey formats, converted with
/// swscale for anything else (10-bit, RGB, palettes). Limited-range luma is stretched to full.
/// The scaled path (live streams) has libswscale's area filter average the luma plane down to
/// a hashing width first, so the hash reads a quarter of the pixels of a 720p picture.
#[derive(Default)]
pub(crate) struct LumaExtractor {
    to_gray: Option<(Pixel, u32, u32, scaling::Context)>,
    scaled: Option<(ScaleKey, scaling::Context)>,
}

/// What a scaling context was made for: source format and size, target size.
type ScaleKey = (Pixel, u32, u32, u32, u32);

// SAFETY: an SwsContext has no thread affinity; it is owned by one stream's extractor and used
// by whichever inspection worker runs that stream, never by two threads at once (the pool hands
// a stream to one worker at a time, behind a mutex).
unsafe impl Send for LumaExtractor {}

/// Formats whose first plane is 8-bit luma, read in place.
fn eight_bit_luma(format: Pixel) -> bool {
    matches!(
        format,
        Pixel::YUV420P
            | Pixel::YUVJ420P
            | Pixel::YUV422P
            | Pixel::YUVJ422P
            | Pixel::YUV444P
            | Pixel::YUVJ444P
            | Pixel::YUV440P
            | Pixel::NV12
            | Pixel::NV21
            | Pixel::GRAY8
    )
}

/// The two colour planes of a planar 8-bit YUV picture, each as a grey picture at its own
/// (subsampled) size; none for other formats. A clip moved into a colour plane, its luma
/// left flat, is hashed from them. Offset and scale change no PDQ bit, so the planes are
/// taken as they are.
pub fn colour_planes(frame: &ffmpeg::frame::Video) -> Vec<LumaImage> {
    let format = frame.format();
    let planar =
        eight_bit_luma(format) && !matches!(format, Pixel::NV12 | Pixel::NV21 | Pixel::GRAY8);
    if !planar || frame.planes() < 3 {
        return Vec::new();
    }
    (1..3)
        .map(|plane| {
            LumaImage::from_luma_plane(
                frame.plane_width(plane) as usize,
                frame.plane_height(plane) as usize,
                frame.stride(plane),
                frame.data(plane),
                false,
            )
        })
        .collect()
}

fn full_range(frame: &ffmpeg::frame::Video) -> bool {
    frame.color_range() == color::Range::JPEG
        || matches!(
            frame.format(),
            Pixel::YUVJ420P | Pixel::YUVJ422P | Pixel::YUVJ444P
        )
}

impl LumaExtractor {
    pub(crate) fn extract(&mut self, frame: &ffmpeg::frame::Video) -> Option<LumaImage> {
        let (w, h, format) = (frame.width(), frame.height(), frame.format());
        if w == 0 || h == 0 {
            return None;
        }
        if eight_bit_luma(format) {
            return Some(LumaImage::from_luma_plane(
                w as usize,
                h as usize,
                frame.stride(0),
                frame.data(0),
                !full_range(frame),
            ));
        }
        let stale =
            !matches!(&self.to_gray, Some((f, sw, sh, _)) if *f == format && *sw == w && *sh == h);
        if stale {
            let ctx =
                scaling::Context::get(format, w, h, Pixel::GRAY8, w, h, scaling::Flags::POINT)
                    .ok()?;
            self.to_gray = Some((format, w, h, ctx));
        }
        let (_, _, _, ctx) = self.to_gray.as_mut()?;
        let mut gray = ffmpeg::frame::Video::empty();
        ctx.run(frame, &mut gray).ok()?;
        Some(LumaImage::from_luma_plane(
            w as usize,
            h as usize,
            gray.stride(0),
            gray.data(0),
            false,
        ))
    }

    /// The luma averaged down (area filter) to `width` pixels wide, height in proportion.
    pub(crate) fn extract_scaled(
        &mut self,
        frame: &ffmpeg::frame::Video,
        width: u32,
    ) -> Option<LumaImage> {
        let (w, h, format) = (frame.width(), frame.height(), frame.format());
        if w == 0 || h == 0 || width == 0 || width >= w {
            return self.extract(frame);
        }
        let height = ((u64::from(h) * u64::from(width) + u64::from(w) / 2) / u64::from(w)).max(1);
        let height = height as u32;
        // 8-bit luma planes are scaled as a grey picture: the plane alone, no format
        // conversion, its range stretched afterwards as on the exact path.
        let in_place = eight_bit_luma(format);
        let source = if in_place { Pixel::GRAY8 } else { format };
        let key = (source, w, h, width, height);
        if !matches!(&self.scaled, Some((k, _)) if *k == key) {
            let ctx = scaling::Context::get(
                source,
                w,
                h,
                Pixel::GRAY8,
                width,
                height,
                scaling::Flags::AREA,
            )
            .ok()?;
            self.scaled = Some((key, ctx));
        }
        let (_, ctx) = self.scaled.as_mut()?;
        let mut gray = ffmpeg::frame::Video::new(Pixel::GRAY8, width, height);
        if in_place {
            // SAFETY: the context was made for a GRAY8 source of w x h and a GRAY8 target of
            // width x height; the source is the frame's first plane (w x h bytes of luma,
            // FFmpeg's own buffer) with null for the planes a grey picture does not have (the
            // arrays have the four entries sws_scale reads); the target is a frame just
            // allocated at that size.
            let scaled = unsafe {
                let src = frame.as_ptr();
                let dst = gray.as_mut_ptr();
                let src_planes = [
                    (*src).data[0] as *const u8,
                    std::ptr::null(),
                    std::ptr::null(),
                    std::ptr::null(),
                ];
                let src_strides = [(*src).linesize[0], 0, 0, 0];
                ffmpeg::ffi::sws_scale(
                    ctx.as_mut_ptr(),
                    src_planes.as_ptr(),
                    src_strides.as_ptr(),
                    0,
                    h as i32,
                    (*dst).data.as_ptr(),
                    (*dst).linesize.as_ptr(),
                )
            };
            if scaled <= 0 {
                return None;
            }
        } else {
            ctx.run(frame, &mut gray).ok()?;
        }
        Some(LumaImage::from_luma_plane(
            width as usize,
            height as usize,
            gray.stride(0),
            gray.data(0),
            in_place && !full_range(frame),
        ))
    }
}
