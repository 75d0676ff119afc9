//! Audio inspection of one stream: FLV / Enhanced RTMP audio tags → FFmpeg decoder (AAC, MP3,
//! Opus) → libswresample to 11025 Hz mono → Chromaprint sub-fingerprints → a window of the
//! newest ones, handed to the verdict every half second.
//!
//! A soundtrack survives what re-streamers do to the picture (cropping, framing inside a layout,
//! mirroring, overlays, filming a screen), so it is matched as well as the frames. Audio this
//! build cannot decode is reported once per stream (`Uninspectable` finding), never ignored.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;
use ffmpeg::codec::{self, Id};
use ffmpeg::format::sample::{Sample, Type as SampleType};
use ffmpeg::software::resampling;
use ffmpeg::util::channel_layout::ChannelLayout;
use ffmpeg_next as ffmpeg;

use super::decoder::{init_ffmpeg, stream_context};
use crate::hash::chromaprint::{StreamFingerprinter, SAMPLE_RATE};
use crate::relay::TappedAudio;

/// New sub-fingerprints between two looks at the window (~0.5 s).
pub const EVALUATE_EVERY: usize = 4;
/// The longest window kept, in sub-fingerprints (60 s, the largest `min_seconds`).
pub const MAX_WINDOW_ITEMS: usize = 485;
/// The largest audio message decoded: an AAC or MP3 frame is a few hundred bytes, so a
/// message this large is built to make one decode call take seconds.
pub const MAX_AUDIO_MESSAGE: usize = 64 * 1024;
/// Samples (at 11025 Hz) one packet may yield: a second; the rest is dropped and counted.
const MAX_SAMPLES_PER_PACKET: usize = SAMPLE_RATE as usize;
/// Packets in a row that yield no audio before the stream's audio is reported undecodable.
const FAILURES_REPORTED: u32 = 50;

/// Audio codecs inspection decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioCodec {
    /// AAC (FLV sound format 10, E-RTMP `mp4a`).
    Aac,
    /// MP3 (FLV sound formats 2 and 14, E-RTMP `.mp3`).
    Mp3,
    /// Opus (E-RTMP `Opus`).
    Opus,
}

impl AudioCodec {
    fn id(self) -> Id {
        match self {
            AudioCodec::Aac => Id::AAC,
            AudioCodec::Mp3 => Id::MP3,
            AudioCodec::Opus => Id::OPUS,
        }
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            AudioCodec::Aac => "aac",
            AudioCodec::Mp3 => "mp3",
            AudioCodec::Opus => "opus",
        }
    }
}

/// What an audio tag carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioTag {
    /// Decoder configuration (AAC AudioSpecificConfig, OpusHead).
    Config(AudioCodec, Bytes),
    /// Coded audio.
    Frame(AudioCodec, Bytes),
    /// Audio inspection cannot decode, and why.
    Unsupported(String),
    /// Nothing to decode (empty, end of sequence).
    Other,
}

/// Reads an FLV (or Enhanced RTMP) audio tag body.
pub fn parse_audio_tag(body: &Bytes) -> AudioTag {
    let Some(&first) = body.first() else {
        return AudioTag::Other;
    };
    let format = first >> 4;
    match format {
        10 => match body.get(1) {
            Some(0) => AudioTag::Config(AudioCodec::Aac, body.slice(2..)),
            Some(1) if body.len() > 2 => AudioTag::Frame(AudioCodec::Aac, body.slice(2..)),
            _ => AudioTag::Other,
        },
        2 | 14 if body.len() > 1 => AudioTag::Frame(AudioCodec::Mp3, body.slice(1..)),
        9 => parse_ex_audio(first & 0x0F, body),
        2 | 14 => AudioTag::Other,
        other => AudioTag::Unsupported(format!(
            "audio in FLV sound format {other} ({}), which inspection does not decode",
            legacy_format_name(other)
        )),
    }
}

fn legacy_format_name(format: u8) -> &'static str {
    match format {
        0 | 3 => "linear PCM",
        1 => "ADPCM",
        4..=6 => "Nellymoser",
        7 | 8 => "G.711",
        11 => "Speex",
        _ => "unknown",
    }
}

/// Enhanced RTMP audio: packet type in the low nibble, then a FourCC.
fn parse_ex_audio(packet_type: u8, body: &Bytes) -> AudioTag {
    let Some(fourcc) = body.get(1..5) else {
        return AudioTag::Unsupported("Enhanced RTMP audio tag without a FourCC".into());
    };
    let codec = match fourcc {
        b"mp4a" => AudioCodec::Aac,
        b".mp3" => AudioCodec::Mp3,
        b"Opus" => AudioCodec::Opus,
        other => {
            return AudioTag::Unsupported(format!(
                "Enhanced RTMP audio {:?}, which inspection does not decode",
                String::from_utf8_lossy(other)
            ))
        }
    };
    match packet_type {
        0 => AudioTag::Config(codec, body.slice(5..)),
        1 if body.len() > 5 => AudioTag::Frame(codec, body.slice(5..)),
        1 | 2 => AudioTag::Other,
        other => AudioTag::Unsupported(format!(
            "Enhanced RTMP audio packet type {other} (multichannel, multitrack or ModEx), which \
             inspection does not read"
        )),
    }
}

/// One stream's audio decoder and resampler: coded audio in, 11025 Hz mono samples out.
pub struct AudioDecoder {
    codec: AudioCodec,
    decoder: ffmpeg::decoder::Audio,
    frame: ffmpeg::frame::Audio,
    resampler: Option<(resampling::Context, (Sample, u64, u32))>,
    /// Samples given out for the current packet.
    packet_samples: usize,
    /// Packets FFmpeg rejected (or that decoded to more than a second of audio).
    pub errors: u64,
}

impl AudioDecoder {
    /// Opens a decoder for `codec` with its configuration record (may be empty for MP3).
    pub fn open(codec: AudioCodec, config: &[u8]) -> Result<AudioDecoder, String> {
        init_ffmpeg();
        let found = ffmpeg::decoder::find(codec.id())
            .ok_or_else(|| format!("FFmpeg has no {} decoder", codec.name()))?;
        let context = stream_context(found, config);
        AudioDecoder::from_context(codec, context)
    }

    fn from_context(codec: AudioCodec, context: codec::Context) -> Result<AudioDecoder, String> {
        let decoder = context
            .decoder()
            .audio()
            .map_err(|e| format!("cannot open {} decoder: {e}", codec.name()))?;
        Ok(AudioDecoder {
            codec,
            decoder,
            frame: ffmpeg::frame::Audio::empty(),
            resampler: None,
            packet_samples: 0,
            errors: 0,
        })
    }

    /// The codec this decoder was opened for.
    pub fn codec(&self) -> AudioCodec {
        self.codec
    }

    /// Decodes one packet; calls `out` with the 11025 Hz mono samples that come out.
    pub fn decode(&mut self, data: &[u8], ts_ms: i64, out: impl FnMut(&[i16])) {
        let mut packet = ffmpeg::Packet::copy(data);
        packet.set_pts(Some(ts_ms));
        packet.set_dts(Some(ts_ms));
        self.decode_packet(&packet, out);
    }

    fn decode_packet(&mut self, packet: &ffmpeg::Packet, mut out: impl FnMut(&[i16])) {
        self.packet_samples = 0;
        if self.decoder.send_packet(packet).is_err() {
            self.errors += 1;
            return;
        }
        self.drain(&mut out);
    }

    fn drain(&mut self, out: &mut impl FnMut(&[i16])) {
        loop {
            match self.decoder.receive_frame(&mut self.frame) {
                Ok(()) => {
                    if self.resample(out).is_err() {
                        self.errors += 1;
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

    fn resample(&mut self, out: &mut impl FnMut(&[i16])) -> Result<(), ffmpeg::Error> {
        let format = self.frame.format();
        let rate = self.frame.rate();
        let mut layout = self.frame.channel_layout();
        if layout.is_empty() || layout.channels() != i32::from(self.frame.channels()) {
            layout = ChannelLayout::default(i32::from(self.frame.channels()));
        }
        if rate == 0 || self.frame.samples() == 0 {
            return Ok(());
        }
        // Rebuilt when the input changes (HE-AAC reports its real rate late; a new config).
        let key = (format, layout.bits(), rate);
        if self.resampler.as_ref().is_none_or(|(_, k)| *k != key) {
            let context = resampling::Context::get(
                format,
                layout,
                rate,
                Sample::I16(SampleType::Packed),
                ChannelLayout::MONO,
                SAMPLE_RATE,
            )?;
            self.resampler = Some((context, key));
        }
        let Some((context, _)) = self.resampler.as_mut() else {
            return Ok(());
        };
        if self.packet_samples >= MAX_SAMPLES_PER_PACKET {
            // Decoded and dropped: one packet cannot make audio inspection spend seconds.
            self.errors += 1;
            return Ok(());
        }
        // SAFETY: the frame was filled by the decoder; its layout field is set to what the
        // resampler was built for, so libswresample reads it as such.
        unsafe {
            (*self.frame.as_mut_ptr()).channel_layout = layout.bits();
        }
        // Room for all of it: below 11025 Hz the output has more samples than the input, and
        // libswresample keeps what does not fit (and would keep it, growing, forever).
        let room = self.frame.samples() * SAMPLE_RATE as usize / rate as usize + 256;
        let mut resampled =
            ffmpeg::frame::Audio::new(Sample::I16(SampleType::Packed), room, ChannelLayout::MONO);
        context.run(&self.frame, &mut resampled)?;
        let n = resampled.samples();
        if n == 0 {
            return Ok(());
        }
        let bytes = resampled.data(0);
        let samples: Vec<i16> = bytes[..(n * 2).min(bytes.len())]
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        self.packet_samples += samples.len();
        out(&samples);
        Ok(())
    }
}

/// The audio of a file's best audio track at 11025 Hz mono (for `hashgate hash --audio`, scans
/// and tests), and how many packets could not be decoded.
pub fn decode_file_audio(path: &std::path::Path) -> Result<(Vec<i16>, u64), String> {
    init_ffmpeg();
    let mut input = ffmpeg::format::input(path).map_err(|e| e.to_string())?;
    let stream = input
        .streams()
        .best(ffmpeg::media::Type::Audio)
        .ok_or_else(|| "no audio track".to_owned())?;
    let index = stream.index();
    let context =
        codec::Context::from_parameters(stream.parameters()).map_err(|e| e.to_string())?;
    let codec = match context.id() {
        Id::AAC => AudioCodec::Aac,
        Id::MP3 => AudioCodec::Mp3,
        Id::OPUS => AudioCodec::Opus,
        // Reported under the closest name; the decoder is FFmpeg's for the file's codec.
        _ => AudioCodec::Aac,
    };
    let mut decoder = AudioDecoder::from_context(codec, context)?;
    let mut samples = Vec::new();
    for (s, packet) in input.packets() {
        if s.index() == index {
            decoder.decode_packet(&packet, |pcm| samples.extend_from_slice(pcm));
        }
    }
    if decoder.decoder.send_eof().is_ok() {
        decoder.drain(&mut |pcm: &[i16]| samples.extend_from_slice(pcm));
    }
    Ok((samples, decoder.errors))
}

/// A stream's newest sub-fingerprints, for matching.
#[derive(Debug, Clone)]
pub struct AudioWindow {
    /// Oldest first; at most [`MAX_WINDOW_ITEMS`].
    pub items: Vec<u32>,
    /// Stream time of the newest audio decoded, in milliseconds.
    pub stream_ms: i64,
    /// When the newest audio reached the relay.
    pub arrived: Instant,
    /// The audio the window covers (11025 Hz mono), for evidence; newest last.
    pub pcm: Vec<i16>,
}

/// What audio inspection found.
#[derive(Debug)]
pub enum AudioFinding {
    /// A window to match.
    Window(AudioWindow),
    /// The stream's audio cannot be inspected, and why (once per stream and cause).
    Uninspectable(String),
}

/// Counters of one stream's audio inspection.
#[derive(Debug, Default, Clone, Copy)]
pub struct AudioStats {
    /// Audio messages read.
    pub messages: u64,
    /// Sub-fingerprints made.
    pub items: u64,
    /// Packets the decoder rejected.
    pub decode_errors: u64,
}

/// One stream's audio inspection.
pub struct AudioInspector {
    window_items: usize,
    decoder: Option<AudioDecoder>,
    /// The configuration record the decoder was opened with.
    config: Option<(AudioCodec, Bytes)>,
    /// Packets in a row that yielded no audio.
    failures: u32,
    fingerprinter: StreamFingerprinter,
    items: VecDeque<u32>,
    pcm: VecDeque<i16>,
    since_window: usize,
    keep_pcm: bool,
    reported: Option<String>,
    /// Its counters.
    pub stats: AudioStats,
}

impl AudioInspector {
    /// Inspection that looks at the newest `window_items` sub-fingerprints; with `keep_pcm` it
    /// keeps the audio they cover (about 200 KB) for evidence.
    pub fn new(window_items: usize, keep_pcm: bool) -> AudioInspector {
        AudioInspector {
            window_items: window_items.clamp(1, MAX_WINDOW_ITEMS),
            decoder: None,
            config: None,
            failures: 0,
            fingerprinter: StreamFingerprinter::default(),
            items: VecDeque::new(),
            pcm: VecDeque::new(),
            since_window: 0,
            keep_pcm,
            reported: None,
            stats: AudioStats::default(),
        }
    }

    fn report(&mut self, cause: String, out: &mut impl FnMut(AudioFinding)) {
        if self.reported.as_deref() != Some(cause.as_str()) {
            self.reported = Some(cause.clone());
            out(AudioFinding::Uninspectable(cause));
        }
    }

    /// Reads one audio message.
    pub fn push(&mut self, audio: &TappedAudio, mut out: impl FnMut(AudioFinding)) {
        self.stats.messages += 1;
        if audio.payload.len() > MAX_AUDIO_MESSAGE {
            return self.report(
                format!(
                    "an audio message of {} bytes (audio frames are a few hundred)",
                    audio.payload.len()
                ),
                &mut out,
            );
        }
        match parse_audio_tag(&audio.payload) {
            AudioTag::Other => {}
            AudioTag::Unsupported(cause) => self.report(cause, &mut out),
            AudioTag::Config(codec, config) => {
                // The same header again (some encoders repeat it) changes nothing; reopening
                // would drop the decoder's overlap and the resampler's history each time.
                if self.config.as_ref() == Some(&(codec, config.clone())) {
                    return;
                }
                match AudioDecoder::open(codec, &config) {
                    Ok(decoder) => {
                        self.decoder = Some(decoder);
                        self.config = Some((codec, config));
                    }
                    Err(cause) => self.report(cause, &mut out),
                }
            }
            AudioTag::Frame(codec, data) => {
                if let Some(current) = self.decoder.as_ref().map(AudioDecoder::codec) {
                    if current != codec {
                        // A stray frame of another codec does not replace a working decoder.
                        return self.report(
                            format!(
                                "{} frames in a {} audio stream",
                                codec.name(),
                                current.name()
                            ),
                            &mut out,
                        );
                    }
                }
                if self.decoder.is_none() {
                    if codec == AudioCodec::Mp3 {
                        // MP3 frames carry their own headers: no configuration to wait for.
                        match AudioDecoder::open(codec, &[]) {
                            Ok(decoder) => self.decoder = Some(decoder),
                            Err(cause) => return self.report(cause, &mut out),
                        }
                    } else {
                        return self.report(
                            format!("{} audio without its configuration record", codec.name()),
                            &mut out,
                        );
                    }
                }
                let Some(decoder) = self.decoder.as_mut() else {
                    return;
                };
                let mut fresh: Vec<i16> = Vec::new();
                decoder.decode(&data, i64::from(audio.timestamp), |s| {
                    fresh.extend_from_slice(s)
                });
                self.stats.decode_errors = decoder.errors;
                if fresh.is_empty() {
                    self.failures += 1;
                    if self.failures == FAILURES_REPORTED {
                        self.report(
                            format!(
                                "{FAILURES_REPORTED} {} packets in a row decoded to no audio",
                                codec.name()
                            ),
                            &mut out,
                        );
                    }
                } else {
                    self.failures = 0;
                }
                self.take_samples(&fresh);
                if self.since_window >= EVALUATE_EVERY && self.items.len() >= self.window_items {
                    self.since_window = 0;
                    let keep_pcm =
                        self.window_items * crate::hash::chromaprint::ITEM_SAMPLES as usize;
                    let skip = self.pcm.len().saturating_sub(keep_pcm);
                    out(AudioFinding::Window(AudioWindow {
                        items: self.items.iter().copied().collect(),
                        stream_ms: i64::from(audio.timestamp),
                        arrived: audio.arrived,
                        pcm: self.pcm.iter().skip(skip).copied().collect(),
                    }));
                }
            }
        }
    }

    fn take_samples(&mut self, samples: &[i16]) {
        let items = &mut self.items;
        let made = &mut self.since_window;
        let total = &mut self.stats.items;
        self.fingerprinter.consume(samples, |v| {
            items.push_back(v);
            *made += 1;
            *total += 1;
        });
        while self.items.len() > self.window_items {
            self.items.pop_front();
        }
        // The window's audio plus the algorithm's latency (about 3 s), for evidence.
        if !self.keep_pcm {
            return;
        }
        let keep = (self.window_items + 32) * crate::hash::chromaprint::ITEM_SAMPLES as usize;
        self.pcm.extend(samples);
        while self.pcm.len() > keep {
            self.pcm.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_tags_are_read() {
        let aac_config = Bytes::from_static(&[0xAF, 0, 0x12, 0x10]);
        assert_eq!(
            parse_audio_tag(&aac_config),
            AudioTag::Config(AudioCodec::Aac, Bytes::from_static(&[0x12, 0x10]))
        );
        assert!(matches!(
            parse_audio_tag(&Bytes::from_static(&[0xAF, 1, 1, 2])),
            AudioTag::Frame(AudioCodec::Aac, _)
        ));
        assert!(matches!(
            parse_audio_tag(&Bytes::from_static(&[0x2F, 0xFF, 0xFB])),
            AudioTag::Frame(AudioCodec::Mp3, _)
        ));
        assert!(matches!(
            parse_audio_tag(&Bytes::from_static(b"\x91Opus\x01\x02")),
            AudioTag::Frame(AudioCodec::Opus, _)
        ));
        assert!(matches!(
            parse_audio_tag(&Bytes::from_static(b"\x90Opus")),
            AudioTag::Config(AudioCodec::Opus, _)
        ));
        for unsupported in [&b"\xB6\x00"[..], b"\x95Opus\x00", b"\x91fLaC\x00", b"\x91"] {
            assert!(
                matches!(
                    parse_audio_tag(&Bytes::copy_from_slice(unsupported)),
                    AudioTag::Unsupported(_)
                ),
                "{unsupported:?}"
            );
        }
        assert_eq!(parse_audio_tag(&Bytes::new()), AudioTag::Other);
    }

    #[test]
    fn garbage_aac_is_counted_not_fatal() {
        let mut inspector = AudioInspector::new(40, false);
        let mut findings = Vec::new();
        let now = Instant::now();
        // A valid AudioSpecificConfig (AAC-LC, 44.1 kHz, stereo), then junk frames.
        for (i, body) in [
            &b"\xAF\x00\x12\x10"[..],
            b"\xAF\x01\xDE\xAD\xBE\xEF",
            b"\xAF\x01\x00",
        ]
        .iter()
        .enumerate()
        {
            inspector.push(
                &TappedAudio {
                    timestamp: i as u32 * 23,
                    payload: Bytes::copy_from_slice(body),
                    arrived: now,
                },
                |f| findings.push(f),
            );
        }
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(inspector.stats.messages, 3);
    }

    #[test]
    fn aac_without_configuration_is_reported_once() {
        let mut inspector = AudioInspector::new(40, false);
        let mut findings = Vec::new();
        for _ in 0..3 {
            inspector.push(
                &TappedAudio {
                    timestamp: 0,
                    payload: Bytes::from_static(b"\xAF\x01\x21\x00"),
                    arrived: Instant::now(),
                },
                |f| findings.push(f),
            );
        }
        assert_eq!(findings.len(), 1, "{findings:?}");
    }

    fn message(body: &[u8], ts: u32) -> TappedAudio {
        TappedAudio {
            timestamp: ts,
            payload: Bytes::copy_from_slice(body),
            arrived: Instant::now(),
        }
    }

    #[test]
    fn a_repeated_header_does_not_reopen_and_a_stray_codec_does_not_replace() {
        let mut inspector = AudioInspector::new(40, false);
        let mut findings = Vec::new();
        inspector.push(&message(b"\xAF\x00\x12\x10", 0), |f| findings.push(f));
        let opened = inspector.decoder.as_ref().map(|d| d as *const AudioDecoder);
        inspector.push(&message(b"\xAF\x00\x12\x10", 23), |f| findings.push(f));
        assert_eq!(
            inspector.decoder.as_ref().map(|d| d as *const AudioDecoder),
            opened,
            "the same header reopened the decoder"
        );
        inspector.push(&message(b"\x2F\xFF\xFB\x90\x00", 46), |f| findings.push(f));
        assert_eq!(
            inspector.decoder.as_ref().map(AudioDecoder::codec),
            Some(AudioCodec::Aac)
        );
        assert!(
            matches!(&findings[..], [AudioFinding::Uninspectable(c)] if c.contains("mp3 frames")),
            "{findings:?}"
        );
    }

    #[test]
    fn oversized_messages_and_undecodable_streams_are_reported() {
        let mut inspector = AudioInspector::new(40, false);
        let mut findings = Vec::new();
        let mut huge = vec![0xAF, 0x01];
        huge.resize(MAX_AUDIO_MESSAGE + 1, 0);
        inspector.push(&message(&huge, 0), |f| findings.push(f));
        inspector.push(&message(b"\xAF\x00\x12\x10", 0), |f| findings.push(f));
        for i in 0..FAILURES_REPORTED {
            inspector.push(&message(b"\xAF\x01\xDE\xAD\xBE\xEF", i * 23), |f| {
                findings.push(f)
            });
        }
        let causes: Vec<String> = findings
            .iter()
            .map(|f| match f {
                AudioFinding::Uninspectable(c) => c.clone(),
                AudioFinding::Window(_) => "window".into(),
            })
            .collect();
        assert_eq!(causes.len(), 2, "{causes:?}");
        assert!(causes[0].contains("bytes"), "{causes:?}");
        assert!(causes[1].contains("decoded to no audio"), "{causes:?}");
    }
}
