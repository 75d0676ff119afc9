//! Video tag bodies as RTMP carries them: classic FLV (AVC, codec id 7; and the legacy HEVC id
//! 12) and Enhanced RTMP's ExVideoTagHeader (FourCC `avc1`, `hvc1`, `av01`, `vp09`).
//!
//! The one parser of video tag headers: the relay reads a body's [`VideoFrameKind`] (where a
//! GOP starts) and inspection its [`VideoTag`] (what to decode) from the same [`parse_video_tag`],
//! so the two can never disagree on what a message is. A coded frame of a codec inspection
//! cannot decode is still a keyframe or an interframe to the relay.

use bytes::Bytes;

/// A video codec inspection may decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    /// H.264 / AVC.
    H264,
    /// H.265 / HEVC.
    Hevc,
    /// AV1.
    Av1,
    /// VP9.
    Vp9,
}

impl VideoCodec {
    fn from_fourcc(fourcc: [u8; 4]) -> Option<VideoCodec> {
        match &fourcc {
            b"avc1" => Some(VideoCodec::H264),
            b"hvc1" => Some(VideoCodec::Hevc),
            b"av01" => Some(VideoCodec::Av1),
            b"vp09" => Some(VideoCodec::Vp9),
            _ => None,
        }
    }

    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            VideoCodec::H264 => "h264",
            VideoCodec::Hevc => "hevc",
            VideoCodec::Av1 => "av1",
            VideoCodec::Vp9 => "vp9",
        }
    }
}

/// What one video message carries.
#[derive(Debug, Clone, PartialEq)]
pub enum VideoTag {
    /// Decoder configuration (AVCDecoderConfigurationRecord, hvcC, av1C, vpcC).
    SequenceStart {
        /// Codec.
        codec: VideoCodec,
        /// The configuration record, as the decoder's extradata.
        config: Bytes,
    },
    /// One coded frame.
    Frame {
        /// Codec.
        codec: VideoCodec,
        /// Whether decoding can start here.
        keyframe: bool,
        /// Presentation minus decode time, in milliseconds.
        composition_time: i32,
        /// The coded data (length-prefixed NAL units, OBUs or a VP9 frame).
        data: Bytes,
    },
    /// End of sequence.
    SequenceEnd,
    /// Something to forward but not to decode: metadata, command frames, or video inspection
    /// cannot decode (a codec it does not handle, multitrack, ModEx; named in `what`).
    Skip {
        /// What it was, for the one warning per stream.
        what: String,
        /// True when it is video inspection cannot decode (the stream is then uninspectable).
        unsupported_codec: bool,
    },
}

/// A video tag body too short for its own header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("video tag of {0} bytes is truncated")]
pub struct TruncatedTag(pub usize);

fn si24(b: &[u8]) -> i32 {
    let raw = (b[0] as i32) << 16 | (b[1] as i32) << 8 | b[2] as i32;
    (raw << 8) >> 8
}

/// What a video message carries, read from its first bytes (classic FLV and Enhanced RTMP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoFrameKind {
    /// Decoder configuration (AVC/HEVC sequence header, E-RTMP SequenceStart).
    SequenceHeader,
    /// A keyframe: decoding can start here.
    Keyframe,
    /// Any other coded frame.
    Interframe,
    /// End of sequence, metadata, command frames, empty or truncated bodies.
    Other,
}

/// Classifies a video tag body from the same parse as [`parse_video_tag`], with the frame type
/// of coded frames in codecs inspection does not decode. Cheap enough for the relay's path: no
/// copy, no allocation, the coded data untouched.
pub fn video_frame_kind(payload: &[u8]) -> VideoFrameKind {
    let Some(&first) = payload.first() else {
        return VideoFrameKind::Other;
    };
    let key_or_inter = |keyframe: bool| {
        if keyframe {
            VideoFrameKind::Keyframe
        } else {
            VideoFrameKind::Interframe
        }
    };
    let frame_type = if first & 0x80 != 0 {
        (first >> 4) & 0x07
    } else {
        first >> 4
    };
    let keyframe = frame_type == 1 || frame_type == 4;
    match parse_header(payload) {
        Ok(Header::SequenceStart { .. }) => VideoFrameKind::SequenceHeader,
        Ok(Header::Frame { keyframe, .. }) => key_or_inter(keyframe),
        // Coded frames of codecs inspection does not decode still start or continue GOPs.
        Ok(Header::Skip(Skipped::ClassicCodec(_))) if frame_type != 5 => key_or_inter(keyframe),
        // An unknown FourCC's packet type still says what it is.
        Ok(Header::Skip(Skipped::FourCc(_))) if frame_type != 5 => match first & 0x0F {
            0 => VideoFrameKind::SequenceHeader,
            1 | 3 => key_or_inter(keyframe),
            _ => VideoFrameKind::Other,
        },
        // Multitrack, ModEx and reserved types are not frames of one track.
        _ => VideoFrameKind::Other,
    }
}

/// Whether a video message uses Enhanced RTMP's ExVideoTagHeader (as opposed to a classic FLV
/// video tag header).
pub fn is_enhanced(payload: &[u8]) -> bool {
    payload.first().is_some_and(|b| b & 0x80 != 0)
}

/// What the relay needs to know of a video message before it forwards it, from the same
/// parse as [`parse_video_tag`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoForwarding {
    /// A coded frame stamped to be presented this many milliseconds after it is decoded.
    Frame {
        /// The composition time offset (signed, as FFmpeg reads it).
        composition_time: i32,
    },
    /// A video info/command frame (frame type 5): FFmpeg's demuxer skips it, nginx-rtmp's HLS
    /// muxes it as video and caches a sequence header sent in one.
    Command,
    /// A classic AVC/HEVC message of a packet type other than 0 and 1 that carries data:
    /// FFmpeg's demuxer decodes it as a frame, nginx-rtmp's HLS drops it.
    OddPacket(u8),
    /// Anything else (sequence headers and ends, codecs inspection does not decode, truncated
    /// bodies): inspection decides what it is.
    Other,
}

/// Reads what [`VideoForwarding`] says of a video message body. No copy, no allocation.
pub fn video_forwarding(payload: &[u8]) -> VideoForwarding {
    if let [first, packet_type, _, _, _, _, ..] = *payload {
        let classic_codec = first & 0x80 == 0 && matches!(first & 0x0F, 7 | 12);
        if classic_codec && first >> 4 != 5 && packet_type > 1 {
            return VideoForwarding::OddPacket(packet_type);
        }
    }
    match parse_header(payload) {
        Ok(Header::Frame {
            composition_time, ..
        }) => VideoForwarding::Frame { composition_time },
        Ok(Header::Skip(Skipped::Command)) => VideoForwarding::Command,
        _ => VideoForwarding::Other,
    }
}

/// What a video tag's header says, read over its bytes without copying or allocating; the
/// coded data starts at `at`. The one parse both [`parse_video_tag`] and [`video_frame_kind`]
/// answer from.
enum Header {
    SequenceStart {
        codec: VideoCodec,
        at: usize,
    },
    Frame {
        codec: VideoCodec,
        keyframe: bool,
        composition_time: i32,
        at: usize,
    },
    SequenceEnd,
    Skip(Skipped),
}

/// Why a message is not decoded.
enum Skipped {
    /// A classic FLV codec id other than AVC and HEVC.
    ClassicCodec(u8),
    /// An Enhanced RTMP FourCC inspection does not decode.
    FourCc([u8; 4]),
    /// Enhanced RTMP multitrack (6), ModEx (7), or a reserved packet type.
    Wrapped(u8),
    /// A video info/command frame.
    Command,
    /// An AVC/HEVC packet without data, of this type.
    EmptyPacket(u8),
    /// Enhanced RTMP metadata.
    Metadata,
}

impl Skipped {
    fn unsupported_codec(&self) -> bool {
        matches!(
            self,
            Skipped::ClassicCodec(_) | Skipped::FourCc(_) | Skipped::Wrapped(_)
        )
    }

    fn describe(&self) -> String {
        match self {
            Skipped::ClassicCodec(id) => format!("FLV video codec id {id}"),
            Skipped::FourCc(fourcc) => format!(
                "Enhanced RTMP video FourCC {:?}",
                String::from_utf8_lossy(fourcc)
            ),
            Skipped::Wrapped(6) => "Enhanced RTMP multitrack video".into(),
            Skipped::Wrapped(7) => "Enhanced RTMP ModEx video".into(),
            Skipped::Wrapped(other) => format!("Enhanced RTMP video packet type {other}"),
            Skipped::Command => "video info/command frame".into(),
            Skipped::EmptyPacket(kind) => format!("empty AVC packet of type {kind}"),
            Skipped::Metadata => "Enhanced RTMP video metadata".into(),
        }
    }
}

fn parse_header(payload: &[u8]) -> Result<Header, TruncatedTag> {
    let truncated = || TruncatedTag(payload.len());
    let first = *payload.first().ok_or_else(truncated)?;
    if first & 0x80 != 0 {
        return parse_enhanced(payload, first);
    }
    let frame_type = first >> 4;
    let codec = match first & 0x0F {
        7 => VideoCodec::H264,
        12 => VideoCodec::Hevc,
        other => return Ok(Header::Skip(Skipped::ClassicCodec(other))),
    };
    if frame_type == 5 {
        return Ok(Header::Skip(Skipped::Command));
    }
    let header = payload.get(..5).ok_or_else(truncated)?;
    // FFmpeg's FLV demuxer, and so every player built on it, decodes any packet type but 0
    // that carries data as a coded frame: so does inspection, whatever the type byte says.
    let has_data = payload.len() > 5;
    Ok(match header[1] {
        0 => Header::SequenceStart { codec, at: 5 },
        _ if has_data => Header::Frame {
            codec,
            keyframe: frame_type == 1 || frame_type == 4,
            composition_time: si24(&header[2..5]),
            at: 5,
        },
        2 => Header::SequenceEnd,
        other => Header::Skip(Skipped::EmptyPacket(other)),
    })
}

fn parse_enhanced(payload: &[u8], first: u8) -> Result<Header, TruncatedTag> {
    let truncated = || TruncatedTag(payload.len());
    let frame_type = (first >> 4) & 0x07;
    let packet_type = first & 0x0F;
    // Multitrack and ModEx wrap coded frames that players may show: never a silent skip.
    if matches!(packet_type, 6 | 7) {
        return Ok(Header::Skip(Skipped::Wrapped(packet_type)));
    }
    let fourcc: [u8; 4] = payload
        .get(1..5)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(truncated)?;
    let Some(codec) = VideoCodec::from_fourcc(fourcc) else {
        return Ok(Header::Skip(Skipped::FourCc(fourcc)));
    };
    if frame_type == 5 {
        return Ok(Header::Skip(Skipped::Command));
    }
    let keyframe = frame_type == 1 || frame_type == 4;
    Ok(match packet_type {
        0 => Header::SequenceStart { codec, at: 5 },
        // CodedFrames carries a composition time for the codecs that have B-frames.
        1 if matches!(codec, VideoCodec::H264 | VideoCodec::Hevc) => {
            let cts = payload.get(5..8).ok_or_else(truncated)?;
            Header::Frame {
                codec,
                keyframe,
                composition_time: si24(cts),
                at: 8,
            }
        }
        1 | 3 => Header::Frame {
            codec,
            keyframe,
            composition_time: 0,
            at: 5,
        },
        2 => Header::SequenceEnd,
        4 => Header::Skip(Skipped::Metadata),
        other => Header::Skip(Skipped::Wrapped(other)),
    })
}

/// Parses a video message body. Never copies the coded data.
pub fn parse_video_tag(payload: &Bytes) -> Result<VideoTag, TruncatedTag> {
    Ok(match parse_header(payload)? {
        Header::SequenceStart { codec, at } => VideoTag::SequenceStart {
            codec,
            config: payload.slice(at..),
        },
        Header::Frame {
            codec,
            keyframe,
            composition_time,
            at,
        } => VideoTag::Frame {
            codec,
            keyframe,
            composition_time,
            data: payload.slice(at..),
        },
        Header::SequenceEnd => VideoTag::SequenceEnd,
        Header::Skip(why) => VideoTag::Skip {
            what: why.describe(),
            unsupported_codec: why.unsupported_codec(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_avc() {
        let header = Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1F]);
        assert_eq!(
            parse_video_tag(&header),
            Ok(VideoTag::SequenceStart {
                codec: VideoCodec::H264,
                config: Bytes::from_static(&[1, 0x64, 0, 0x1F]),
            })
        );
        // Inter frame with composition time -33 (0xFFFFDF).
        let frame = Bytes::from_static(&[0x27, 1, 0xFF, 0xFF, 0xDF, 0, 0, 0, 2, 9, 9]);
        assert_eq!(
            parse_video_tag(&frame),
            Ok(VideoTag::Frame {
                codec: VideoCodec::H264,
                keyframe: false,
                composition_time: -33,
                data: Bytes::from_static(&[0, 0, 0, 2, 9, 9]),
            })
        );
        assert_eq!(
            parse_video_tag(&Bytes::from_static(&[0x17, 2, 0, 0, 0])),
            Ok(VideoTag::SequenceEnd)
        );
        // Any other packet type with data is a frame, as FFmpeg's demuxer reads it.
        for packet_type in [2u8, 3, 200] {
            let odd = Bytes::from(vec![0x27, packet_type, 0, 0, 0, 0, 0, 0, 1, 9]);
            assert!(
                matches!(
                    parse_video_tag(&odd),
                    Ok(VideoTag::Frame {
                        keyframe: false,
                        ..
                    })
                ),
                "AVC packet type {packet_type}"
            );
        }
        assert_eq!(
            parse_video_tag(&Bytes::from_static(&[0x17, 1])),
            Err(TruncatedTag(2))
        );
        assert_eq!(parse_video_tag(&Bytes::new()), Err(TruncatedTag(0)));
    }

    #[test]
    fn frame_kinds_come_from_the_same_parse() {
        let kind = video_frame_kind;
        assert_eq!(kind(&[0x17, 0, 0, 0, 0, 1]), VideoFrameKind::SequenceHeader);
        assert_eq!(kind(&[0x17, 1, 0, 0, 0, 9]), VideoFrameKind::Keyframe);
        assert_eq!(kind(&[0x27, 1, 0, 0, 0, 9]), VideoFrameKind::Interframe);
        assert_eq!(kind(&[0x17, 2]), VideoFrameKind::Other);
        // Enhanced RTMP: IsExHeader | frame type 1 | SequenceStart, FourCC hvc1.
        assert_eq!(kind(b"\x90hvc1"), VideoFrameKind::SequenceHeader);
        assert_eq!(kind(b"\x93av01"), VideoFrameKind::Keyframe);
        assert_eq!(kind(b"\xA1vp09"), VideoFrameKind::Interframe);
        assert_eq!(kind(b"\x94av01"), VideoFrameKind::Other);
        assert_eq!(kind(&[]), VideoFrameKind::Other);
        // Codecs inspection cannot decode are still coded frames to the relay: a VP6 keyframe
        // starts a GOP, an unknown FourCC's interframe does not; multitrack is not one track.
        assert_eq!(kind(&[0x14, 0, 0]), VideoFrameKind::Keyframe);
        assert_eq!(kind(b"\xA1vvc1\x00"), VideoFrameKind::Interframe);
        assert_eq!(kind(b"\x90vvc1\x01"), VideoFrameKind::SequenceHeader);
        assert_eq!(kind(b"\x96\x00av01"), VideoFrameKind::Other, "multitrack");
        assert_eq!(kind(&[0x54, 0, 0]), VideoFrameKind::Other, "command frame");
    }

    #[test]
    fn other_flv_codecs_are_skipped_as_unsupported() {
        let vp6 = Bytes::from_static(&[0x14, 0, 0]);
        assert!(matches!(
            parse_video_tag(&vp6),
            Ok(VideoTag::Skip {
                unsupported_codec: true,
                ..
            })
        ));
    }

    #[test]
    fn enhanced_rtmp() {
        let start = Bytes::from_static(b"\x90hvc1\x01\x02");
        assert_eq!(
            parse_video_tag(&start),
            Ok(VideoTag::SequenceStart {
                codec: VideoCodec::Hevc,
                config: Bytes::from_static(&[1, 2]),
            })
        );
        let coded = Bytes::from_static(b"\x91hvc1\x00\x00\x21\xAA");
        assert_eq!(
            parse_video_tag(&coded),
            Ok(VideoTag::Frame {
                codec: VideoCodec::Hevc,
                keyframe: true,
                composition_time: 33,
                data: Bytes::from_static(&[0xAA]),
            })
        );
        let av1 = Bytes::from_static(b"\xA1av01\x12\x00");
        assert_eq!(
            parse_video_tag(&av1),
            Ok(VideoTag::Frame {
                codec: VideoCodec::Av1,
                keyframe: false,
                composition_time: 0,
                data: Bytes::from_static(&[0x12, 0]),
            })
        );
        let vp9x = Bytes::from_static(b"\x93vp09\x82");
        assert!(matches!(
            parse_video_tag(&vp9x),
            Ok(VideoTag::Frame {
                codec: VideoCodec::Vp9,
                keyframe: true,
                ..
            })
        ));
        assert_eq!(
            parse_video_tag(&Bytes::from_static(b"\x92av01")),
            Ok(VideoTag::SequenceEnd)
        );
        assert!(matches!(
            parse_video_tag(&Bytes::from_static(b"\x91vvc1\x00")),
            Ok(VideoTag::Skip {
                unsupported_codec: true,
                ..
            })
        ));
        assert!(matches!(
            parse_video_tag(&Bytes::from_static(b"\x94av01\x02")),
            Ok(VideoTag::Skip {
                unsupported_codec: false,
                ..
            })
        ));
        assert_eq!(
            parse_video_tag(&Bytes::from_static(b"\x91hv")),
            Err(TruncatedTag(3))
        );
    }
}
