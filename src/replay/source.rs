//! A media file as the RTMP messages a broadcaster would send: demuxed with FFmpeg, H.264 video
//! as FLV AVC tags, AAC or MP3 audio as FLV audio tags, an `onMetaData` first.

use std::path::{Path, PathBuf};

use bytes::{BufMut, Bytes, BytesMut};
use ffmpeg_next as ffmpeg;
use tokio::sync::mpsc;

use super::timestamps::DtsFiller;
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
    /// One frame's duration in milliseconds: spaces loops, fills missing decoding times.
    frame_ms: f64,
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

/// The lowest decoding time among the first packets: the zero of the replayed timeline, so
/// that no timestamp is negative (B-frames start below zero in MP4 and FLV files) and every
/// interval between frames is kept.
fn earliest_dts_ms(
    path: &Path,
    video: usize,
    audio: Option<(usize, AudioCodec)>,
    frame_ms: f64,
) -> Option<i64> {
    let mut earliest: Option<i64> = None;
    let mut seen = 0;
    read_timed(path, video, audio, frame_ms, |packet| {
        earliest = Some(earliest.map_or(packet.dts, |e: i64| e.min(packet.dts)));
        seen += 1;
        seen < 64
    })
    .ok()?;
    earliest
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
        let frame_ms = 1000.0 / fps;
        let picked = audio.as_ref().map(|(a, codec)| (a.index(), *codec));
        // No packet at all: there is nothing to send, and any zero will do.
        let origin_ms = earliest_dts_ms(path, video.index(), picked, frame_ms).unwrap_or(0);
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
            frame_ms,
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
            let mut last: u32 = offset;
            let read = read_timed(
                &self.path,
                self.video,
                self.audio,
                self.frame_ms,
                |packet| {
                    let message = self.message(packet, offset);
                    last = last.max(message.timestamp);
                    tx.blocking_send(Ok(message)).is_ok()
                },
            );
            match read {
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
                Ok(false) => return,
                Ok(true) => {}
            }
            if !looped {
                return;
            }
            offset = last.saturating_add(self.frame_ms.round().max(1.0) as u32);
        }
    }

    fn message(&self, packet: Timed, offset: u32) -> Message {
        let timestamp = offset.saturating_add((packet.dts - self.origin_ms).max(0) as u32);
        if packet.stream == self.video {
            let cts = (packet.pts - packet.dts) as i32;
            return media(
                kind::VIDEO,
                timestamp,
                avc_tag(false, packet.key, cts, &packet.data),
            );
        }
        let tag = match self.audio {
            Some((_, AudioCodec::Mp3)) => {
                let mut tag = BytesMut::with_capacity(1 + packet.data.len());
                // MP3, 44 kHz, 16-bit, stereo: FLV's flags; decoders read the frame headers.
                tag.put_u8(0x2F);
                tag.put_slice(&packet.data);
                tag.freeze()
            }
            _ => aac_tag(1, &packet.data),
        };
        media(kind::AUDIO, timestamp, tag)
    }
}

/// A demuxed packet of the video or the audio stream, times in milliseconds.
struct Timed {
    stream: usize,
    dts: i64,
    pts: i64,
    key: bool,
    data: Bytes,
}

/// Reads the video and audio packets of `path` in order, with a decoding time for every video
/// frame, until `each` returns false (then `Ok(false)`) or the file ends (`Ok(true)`).
fn read_timed(
    path: &Path,
    video: usize,
    audio: Option<(usize, AudioCodec)>,
    frame_ms: f64,
    mut each: impl FnMut(Timed) -> bool,
) -> Result<bool, String> {
    let mut input = ffmpeg::format::input(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut filler = DtsFiller::new(frame_ms);
    let audio_index = audio.map(|(index, _)| index);
    for (stream, packet) in input.packets() {
        let index = stream.index();
        if index != video && Some(index) != audio_index {
            continue;
        }
        let Some(data) = packet.data() else {
            continue;
        };
        let tb = f64::from(stream.time_base()) * 1000.0;
        let to_ms = |ts: i64| (ts as f64 * tb).round() as i64;
        let dts = packet.dts().map(to_ms);
        let Some(pts) = packet.pts().map(to_ms).or(dts) else {
            continue;
        };
        let timed = Timed {
            stream: index,
            dts: dts.unwrap_or(pts),
            pts,
            key: packet.is_key(),
            data: Bytes::copy_from_slice(data),
        };
        let ready = if index == video {
            filler.push(dts, pts, timed)
        } else {
            vec![(timed.dts, pts, timed)]
        };
        for (dts, pts, timed) in ready {
            if !each(Timed { dts, pts, ..timed }) {
                return Ok(false);
            }
        }
    }
    for (dts, pts, timed) in filler.finish() {
        if !each(Timed { dts, pts, ..timed }) {
            return Ok(false);
        }
    }
    Ok(true)
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
