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

/// Parses a video message body. Never copies the coded data.
pub fn parse_video_tag(payload: &Bytes) -> Result<VideoTag, TruncatedTag> {
    let truncated = || TruncatedTag(payload.len());
    let first = *payload.first().ok_or_else(truncated)?;
    if first & 0x80 != 0 {
        return parse_enhanced(payload, first);
    }
    let frame_type = first >> 4;
    let codec_id = first & 0x0F;
    let codec = match codec_id {
        7 => VideoCodec::H264,
        12 => VideoCodec::Hevc,
        other => {
            return Ok(VideoTag::Skip {
                what: format!("FLV video codec id {other}"),
                unsupported_codec: true,
            })
        }
    };
    if frame_type == 5 {
        return Ok(skip("video info/command frame"));
    }
    let header = payload.get(..5).ok_or_else(truncated)?;
    let composition_time = si24(&header[2..5]);
    // FFmpeg's FLV demuxer, and so every player built on it, decodes any packet type but 0
    // that carries data as a coded frame: so does inspection, whatever the type byte says.
    let has_data = payload.len() > 5;
    Ok(match header[1] {
        0 => VideoTag::SequenceStart {
            codec,
            config: payload.slice(5..),
        },
        _ if has_data => VideoTag::Frame {
            codec,
            keyframe: frame_type == 1 || frame_type == 4,
            composition_time,
            data: payload.slice(5..),
        },
        2 => VideoTag::SequenceEnd,
        other => skip(&format!("empty AVC packet of type {other}")),
    })
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

/// Classifies a video tag body: [`parse_video_tag`]'s answer, with the frame type of coded
/// frames in codecs inspection does not decode. Cheap: the coded data is not touched.
pub fn video_frame_kind(payload: &Bytes) -> VideoFrameKind {
    let Some(&first) = payload.first() else {
        return VideoFrameKind::Other;
    };
    let frame_type = if first & 0x80 != 0 {
        (first >> 4) & 0x07
    } else {
        first >> 4
    };
    let keyframe_or_not = || {
        if frame_type == 1 || frame_type == 4 {
            VideoFrameKind::Keyframe
        } else {
            VideoFrameKind::Interframe
        }
    };
    match parse_video_tag(payload) {
        Ok(VideoTag::SequenceStart { .. }) => VideoFrameKind::SequenceHeader,
        Ok(VideoTag::Frame { keyframe: true, .. }) => VideoFrameKind::Keyframe,
        Ok(VideoTag::Frame { .. }) => VideoFrameKind::Interframe,
        Ok(VideoTag::Skip {
            unsupported_codec: true,
            ..
        }) if frame_type != 5 => {
            if first & 0x80 == 0 {
                return keyframe_or_not();
            }
            // Enhanced RTMP with a FourCC inspection does not decode: its packet type still
            // says what it is; multitrack, ModEx and reserved types are not frames of one track.
            match first & 0x0F {
                0 => VideoFrameKind::SequenceHeader,
                1 | 3 => keyframe_or_not(),
                _ => VideoFrameKind::Other,
            }
        }
        _ => VideoFrameKind::Other,
    }
}

fn skip(what: &str) -> VideoTag {
    VideoTag::Skip {
        what: what.to_owned(),
        unsupported_codec: false,
    }
}

fn parse_enhanced(payload: &Bytes, first: u8) -> Result<VideoTag, TruncatedTag> {
    let truncated = || TruncatedTag(payload.len());
    let frame_type = (first >> 4) & 0x07;
    let packet_type = first & 0x0F;
    // Multitrack and ModEx wrap coded frames that players may show: never a silent skip.
    let unsupported = |what: &str| VideoTag::Skip {
        what: what.to_owned(),
        unsupported_codec: true,
    };
    match packet_type {
        6 => return Ok(unsupported("Enhanced RTMP multitrack video")),
        7 => return Ok(unsupported("Enhanced RTMP ModEx video")),
        _ => {}
    }
    let fourcc: [u8; 4] = payload
        .get(1..5)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(truncated)?;
    let Some(codec) = VideoCodec::from_fourcc(fourcc) else {
        return Ok(VideoTag::Skip {
            what: format!(
                "Enhanced RTMP video FourCC {:?}",
                String::from_utf8_lossy(&fourcc)
            ),
            unsupported_codec: true,
        });
    };
    if frame_type == 5 {
        return Ok(skip("video info/command frame"));
    }
    let keyframe = frame_type == 1 || frame_type == 4;
    Ok(match packet_type {
        0 => VideoTag::SequenceStart {
            codec,
            config: payload.slice(5..),
        },
        // CodedFrames carries a composition time for the codecs that have B-frames.
        1 if matches!(codec, VideoCodec::H264 | VideoCodec::Hevc) => {
            let cts = payload.get(5..8).ok_or_else(truncated)?;
            VideoTag::Frame {
                codec,
                keyframe,
                composition_time: si24(cts),
                data: payload.slice(8..),
            }
        }
        1 | 3 => VideoTag::Frame {
            codec,
            keyframe,
            composition_time: 0,
            data: payload.slice(5..),
        },
        2 => VideoTag::SequenceEnd,
        4 => skip("Enhanced RTMP video metadata"),
        other => unsupported(&format!("Enhanced RTMP video packet type {other}")),
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
        let kind = |b: &[u8]| video_frame_kind(&Bytes::copy_from_slice(b));
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
