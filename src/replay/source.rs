//! A media file as the RTMP messages a broadcaster would send: demuxed with FFmpeg, H.264 video
//! as FLV AVC tags, AAC or MP3 audio as FLV audio tags, an `onMetaData` first.

use std::path::{Path, PathBuf};

use bytes::{BufMut, Bytes, BytesMut};
use ffmpeg_next as ffmpeg;
use tokio::sync::mpsc;

use crate::inspect::decoder::init_ffmpeg;
use crate::rtmp::amf0::{self, Amf0Value};
use crate::rtmp::message::kind;
use crate::rtmp::Message;

/// Why a file cannot be replayed.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct SourceError {
    /// The file.
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AudioCodec {
    Aac,
    Mp3,
}

/// A file opened for replay: its first messages and what the demuxer will pick.
#[derive(Debug)]
pub struct MediaSource {
    path: PathBuf,
    video: usize,
    audio: Option<(usize, AudioCodec)>,
    /// Stream time of the file's first packet, in milliseconds.
    origin_ms: i64,
    /// One frame's duration, to space loops.
    frame_ms: u32,
    /// Duration in milliseconds when the container knows it.
    pub duration_ms: Option<u64>,
    /// onMetaData and the sequence headers, sent before any frame.
    pub header: Vec<Message>,
}

fn media(type_id: u8, timestamp: u32, payload: Bytes) -> Message {
    Message {
        csid: 0,
        timestamp,
        type_id,
        stream_id: 0,
        payload,
    }
}

/// The codec parameters' extradata (avcC, AudioSpecificConfig), copied.
fn extradata(stream: &ffmpeg::format::stream::Stream) -> Vec<u8> {
    let params = stream.parameters();
    // SAFETY: the parameters belong to the open input and outlive this call; FFmpeg keeps
    // `extradata_size` bytes at `extradata` (or a null pointer with size 0).
    unsafe {
        let p = params.as_ptr();
        if (*p).extradata.is_null() || (*p).extradata_size <= 0 {
            return Vec::new();
        }
        std::slice::from_raw_parts((*p).extradata, (*p).extradata_size as usize).to_vec()
    }
}

fn dimensions(stream: &ffmpeg::format::stream::Stream) -> (i32, i32) {
    let params = stream.parameters();
    // SAFETY: as in `extradata`; width and height are plain fields.
    unsafe { ((*params.as_ptr()).width, (*params.as_ptr()).height) }
}

fn start_ms(stream: &ffmpeg::format::stream::Stream) -> i64 {
    let start = stream.start_time();
    if start == ffmpeg::ffi::AV_NOPTS_VALUE {
        return 0;
    }
    (start as f64 * f64::from(stream.time_base()) * 1000.0).round() as i64
}

/// The lowest decoding time among the first packets of the `chosen` streams: the zero of the
/// replayed timeline, so that no timestamp is negative (B-frames start below zero in MP4 and
/// FLV files) and every interval between frames is kept.
fn earliest_dts_ms(path: &Path, chosen: &[Option<usize>]) -> Option<i64> {
    let mut input = ffmpeg::format::input(path).ok()?;
    input
        .packets()
        .filter(|(stream, _)| chosen.contains(&Some(stream.index())))
        .take(64)
        .filter_map(|(stream, packet)| {
            let ts = packet.dts().or(packet.pts())?;
            Some((ts as f64 * f64::from(stream.time_base()) * 1000.0).round() as i64)
        })
        .min()
}

impl MediaSource {
    /// Opens `path` and checks it can be sent: H.264 video with an avcC record (MP4, MKV,
    /// FLV, MOV); AAC or MP3 audio is sent along, other audio is left out with a warning.
    pub fn open(path: &Path) -> Result<MediaSource, SourceError> {
        init_ffmpeg();
        let fail = |reason: String| SourceError {
            path: path.display().to_string(),
            reason,
        };
        let input = ffmpeg::format::input(path).map_err(|e| fail(e.to_string()))?;
        let video = input
            .streams()
            .best(ffmpeg::media::Type::Video)
            .ok_or_else(|| fail("no video stream".into()))?;
        let codec = video.parameters().id();
        if codec != ffmpeg::codec::Id::H264 {
            return Err(fail(format!(
                "video codec {codec:?} is not supported for replay (H.264 only); \
                 transcode with `ffmpeg -i IN -c:v libx264 -c:a aac OUT.mp4`"
            )));
        }
        let avcc = extradata(&video);
        if avcc.first() != Some(&1) {
            return Err(fail(
                "H.264 without an avcC record (Annex B, as in MPEG-TS); \
                 remux with `ffmpeg -i IN -c copy OUT.mp4`"
                    .into(),
            ));
        }
        let (width, height) = dimensions(&video);
        let rate = video.avg_frame_rate();
        let fps = if rate.denominator() > 0 && rate.numerator() > 0 {
            f64::from(rate)
        } else {
            30.0
        };
        let audio = input
            .streams()
            .best(ffmpeg::media::Type::Audio)
            .and_then(|a| match a.parameters().id() {
                ffmpeg::codec::Id::AAC if !extradata(&a).is_empty() => Some((a, AudioCodec::Aac)),
                ffmpeg::codec::Id::MP3 => Some((a, AudioCodec::Mp3)),
                other => {
                    tracing::warn!(
                        "{}: audio {other:?} is left out (AAC or MP3 only)",
                        path.display()
                    );
                    None
                }
            });
        let chosen = [Some(video.index()), audio.as_ref().map(|(a, _)| a.index())];
        let origin_ms = earliest_dts_ms(path, &chosen).unwrap_or_else(|| {
            std::iter::once(start_ms(&video))
                .chain(audio.as_ref().map(|(a, _)| start_ms(a)))
                .min()
                .unwrap_or(0)
        });
        let duration = input.duration();
        let duration_ms =
            (duration > 0).then(|| duration as u64 * 1000 / ffmpeg::ffi::AV_TIME_BASE as u64);

        let mut meta = vec![
            ("width", Amf0Value::Number(f64::from(width))),
            ("height", Amf0Value::Number(f64::from(height))),
            ("framerate", Amf0Value::Number(fps)),
            ("videocodecid", Amf0Value::Number(7.0)),
            ("encoder", Amf0Value::string("hashgate replay")),
        ];
        if let Some(ms) = duration_ms {
            meta.push(("duration", Amf0Value::Number(ms as f64 / 1000.0)));
        }
        if let Some((_, codec)) = &audio {
            let id = if *codec == AudioCodec::Aac { 10.0 } else { 2.0 };
            meta.push(("audiocodecid", Amf0Value::Number(id)));
        }
        let on_metadata = amf0::encode_all(&[
            Amf0Value::string("@setDataFrame"),
            Amf0Value::string("onMetaData"),
            Amf0Value::EcmaArray(meta.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()),
        ]);
        let mut header = vec![
            media(kind::DATA_AMF0, 0, on_metadata),
            media(kind::VIDEO, 0, avc_tag(true, true, 0, &avcc)),
        ];
        if let Some((a, AudioCodec::Aac)) = &audio {
            header.push(media(kind::AUDIO, 0, aac_tag(0, &extradata(a))));
        }
        Ok(MediaSource {
            path: path.to_owned(),
            video: video.index(),
            audio: audio.map(|(a, codec)| (a.index(), codec)),
            origin_ms,
            frame_ms: (1000.0 / fps).round().max(1.0) as u32,
            duration_ms,
            header,
        })
    }

    /// Demuxes on a thread of its own, sending messages into a bounded channel (so a paced
    /// publisher holds only a few frames). With `looped`, starts over at the end, timestamps
    /// continuing. Ends when the receiver is dropped; a read error is sent as `Err`.
    pub fn spawn(self, looped: bool) -> mpsc::Receiver<Result<Message, String>> {
        let (tx, rx) = mpsc::channel(64);
        let spawned = std::thread::Builder::new()
            .name("replay-demux".into())
            .spawn(move || self.demux(looped, &tx));
        if let Err(e) = spawned {
            tracing::error!("replay: cannot start the demuxer thread: {e}");
        }
        rx
    }

    fn demux(&self, looped: bool, tx: &mpsc::Sender<Result<Message, String>>) {
        let mut offset: u32 = 0;
        loop {
            let mut input = match ffmpeg::format::input(&self.path) {
                Ok(input) => input,
                Err(e) => {
                    let _ = tx.blocking_send(Err(format!("{}: {e}", self.path.display())));
                    return;
                }
            };
            let mut last: u32 = offset;
            for (stream, packet) in input.packets() {
                let Some(message) = self.message(&stream, &packet, offset) else {
                    continue;
                };
                last = last.max(message.timestamp);
                if tx.blocking_send(Ok(message)).is_err() {
                    return;
                }
            }
            if !looped {
                return;
            }
            offset = last.saturating_add(self.frame_ms);
        }
    }

    fn message(
        &self,
        stream: &ffmpeg::format::stream::Stream,
        packet: &ffmpeg::Packet,
        offset: u32,
    ) -> Option<Message> {
        let data = packet.data()?;
        let to_ms = |ts: i64| (ts as f64 * f64::from(stream.time_base()) * 1000.0).round() as i64;
        let dts = packet.dts().or(packet.pts()).map_or(0, to_ms);
        let timestamp = offset.saturating_add((dts - self.origin_ms).max(0) as u32);
        if stream.index() == self.video {
            let cts = packet.pts().map_or(0, |pts| to_ms(pts) - dts);
            let tag = avc_tag(false, packet.is_key(), cts as i32, data);
            return Some(media(kind::VIDEO, timestamp, tag));
        }
        match self.audio {
            Some((index, AudioCodec::Aac)) if index == stream.index() => {
                Some(media(kind::AUDIO, timestamp, aac_tag(1, data)))
            }
            Some((index, AudioCodec::Mp3)) if index == stream.index() => {
                let mut tag = BytesMut::with_capacity(1 + data.len());
                // MP3, 44 kHz, 16-bit, stereo: FLV's flags; decoders read the frame headers.
                tag.put_u8(0x2F);
                tag.put_slice(data);
                Some(media(kind::AUDIO, timestamp, tag.freeze()))
            }
            _ => None,
        }
    }
}

/// An FLV AVC video tag body: sequence header (`config`) or a coded frame.
fn avc_tag(config: bool, keyframe: bool, cts: i32, data: &[u8]) -> Bytes {
    let mut tag = BytesMut::with_capacity(5 + data.len());
    let frame_type: u8 = if config || keyframe { 1 } else { 2 };
    tag.put_u8(frame_type << 4 | 7);
    tag.put_u8(if config { 0 } else { 1 });
    let cts = cts.clamp(-(1 << 23), (1 << 23) - 1) as u32;
    tag.put_slice(&cts.to_be_bytes()[1..]);
    tag.put_slice(data);
    tag.freeze()
}

/// An FLV AAC audio tag body: `packet_type` 0 carries the AudioSpecificConfig, 1 a frame.
fn aac_tag(packet_type: u8, data: &[u8]) -> Bytes {
    let mut tag = BytesMut::with_capacity(2 + data.len());
    tag.put_u8(0xAF);
    tag.put_u8(packet_type);
    tag.put_slice(data);
    tag.freeze()
}
