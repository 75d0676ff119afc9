//! What a broadcaster who has read hashgate's source would try, as transformations of a
//! sample's FLV tags: shared by the adversarial tests and the red-team bench.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;

use super::crafted::*;

/// A sample under `samples/`.
pub fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("samples")
        .join(name)
}

/// The flagged sample's tags: a synthetic stand-in for known content from 2 s to 5 s.
pub fn flagged() -> Vec<Tag> {
    read_flv(&sample("flagged.flv"))
}

/// The benign sample's tags.
pub fn benign() -> Vec<Tag> {
    read_flv(&sample("benign.flv"))
}

fn header_of(tags: &[Tag]) -> Tag {
    tags.iter()
        .find(|t| t.type_id == VIDEO && is_avc_header(&t.body))
        .cloned()
        .expect("a sequence header")
}

fn map_video(tags: &[Tag], f: impl Fn(&Tag) -> Option<Bytes>) -> Vec<Tag> {
    tags.iter()
        .map(|t| match (t.type_id, f(t)) {
            (VIDEO, Some(body)) => Tag { body, ..t.clone() },
            _ => t.clone(),
        })
        .collect()
}

/// A sequence header before every frame, alternating the original and a copy whose reserved
/// bits differ (the bytes change, the decoding configuration does not).
pub fn header_churn(tags: &[Tag]) -> Vec<Tag> {
    let header = header_of(tags);
    let variant = avc_header_reserved_bits_flipped(&header.body);
    let mut out = Vec::new();
    let mut flip = false;
    for t in tags {
        if t.type_id == VIDEO && is_avc_frame(&t.body) {
            flip = !flip;
            out.push(Tag {
                ts: t.ts,
                body: if flip {
                    variant.clone()
                } else {
                    header.body.clone()
                },
                ..header.clone()
            });
        }
        out.push(t.clone());
    }
    out
}

/// Every frame's last NAL unit shortened by 2 %: FFmpeg flags the pictures as damaged, players
/// conceal a few macroblock rows and show the rest.
pub fn concealable_damage(tags: &[Tag]) -> Vec<Tag> {
    map_video(tags, |t| {
        is_avc_frame(&t.body).then(|| shorten_last_nal(&t.body, 2))
    })
}

/// Sent in real time, with timestamps changed by `f(video frames so far, timestamp)`.
pub fn retimed(tags: &[Tag], f: impl Fn(usize, u32) -> u32) -> Vec<Send> {
    let mut video = 0usize;
    paced(tags)
        .into_iter()
        .map(|mut s| {
            if s.tag.type_id == VIDEO && is_avc_frame(&s.tag.body) {
                video += 1;
            }
            s.tag.ts = f(video, s.tag.ts);
            s
        })
        .collect()
}

/// The SPS rewritten to declare a `width`×`height` picture; the frames are unchanged.
pub fn declaring_size(tags: &[Tag], width: u32, height: u32) -> Vec<Tag> {
    map_video(tags, |t| {
        is_avc_header(&t.body).then(|| avc_header_declaring(&t.body, width, height))
    })
}

/// No frame flagged as a keyframe in its FLV tag (the H.264 inside is unchanged).
pub fn unflagged_keyframes(tags: &[Tag]) -> Vec<Tag> {
    map_video(tags, |t| {
        is_avc_frame(&t.body).then(|| {
            let mut body = t.body.to_vec();
            body[0] = 0x27;
            Bytes::from(body)
        })
    })
}

/// The same H.264 tags labelled with another FLV codec id (4 = VP6).
pub fn relabelled_codec(tags: &[Tag], codec_id: u8) -> Vec<Tag> {
    map_video(tags, |t| {
        let mut body = t.body.to_vec();
        body[0] = (body[0] & 0xF0) | codec_id;
        Some(Bytes::from(body))
    })
}

/// Each video tag wrapped as an Enhanced RTMP multitrack packet (one track, `avc1`).
pub fn multitrack(tags: &[Tag]) -> Vec<Tag> {
    map_video(tags, |t| {
        (t.body.len() > 5).then(|| {
            // ExVideoTagHeader: IsExHeader | frame type | PacketType Multitrack (6), then
            // OneTrack (0) | SequenceStart (0) or CodedFrames (1), FourCC, track id,
            // composition time for coded frames, data.
            let frame_type = (t.body[0] >> 4) & 0x07;
            let packet = u8::from(t.body[1] != 0);
            let mut body = vec![0x80 | frame_type << 4 | 6, packet];
            body.extend_from_slice(b"avc1");
            body.push(0);
            if packet == 1 {
                body.extend_from_slice(&t.body[2..5]);
            }
            body.extend_from_slice(&t.body[5..]);
            Bytes::from(body)
        })
    })
}

/// Coded frames with no sequence header ever sent.
pub fn without_sequence_header(tags: &[Tag]) -> Vec<Tag> {
    tags.iter()
        .filter(|t| !(t.type_id == VIDEO && is_avc_header(&t.body)))
        .cloned()
        .collect()
}

/// Paced like OBS: `onMetaData` at once, the first frame 0.7 s later with the same timestamp 0,
/// then frames in bursts of 200 ms as an encoder's lookahead releases them.
pub fn obs_paced(tags: &[Tag]) -> Vec<Send> {
    let mut sends = paced(tags);
    for s in sends.iter_mut().skip(1) {
        let burst = s.tag.ts / 200 * 200 + 200;
        s.at = Duration::from_millis(700 + u64::from(burst));
    }
    sends
}

/// `lead_ms` of benign video, then the flagged sample (its headers again, timestamps
/// continuing): a stream that has run a while before the clip starts.
pub fn after_lead(lead_ms: u32) -> Vec<Tag> {
    let mut tags: Vec<Tag> = benign().into_iter().filter(|t| t.ts < lead_ms).collect();
    let flagged = flagged();
    let first_header = flagged.iter().position(|t| t.type_id != DATA).unwrap_or(0);
    tags.extend(flagged[first_header..].iter().map(|t| Tag {
        ts: t.ts + lead_ms,
        ..t.clone()
    }));
    tags
}

/// The flagged sample re-encoded through an ffmpeg filter graph (`[0:v]` is the sample, `[1:v]`
/// the benign one; its output is labelled `[v]` here), audio kept: a re-broadcaster's edit.
pub fn reencoded(dir: &Path, name: &str, filter: &str) -> Vec<Tag> {
    let out = dir.join(format!("{name}.flv"));
    let filter = format!("{filter}[v]");
    let status = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
        .arg(sample("flagged.flv"))
        .arg("-i")
        .arg(sample("benign.flv"))
        .args(["-filter_complex", &filter, "-map", "[v]", "-map", "0:a"])
        .args(["-c:v", "libx264"])
        .args([
            "-preset", "veryfast", "-g", "30", "-pix_fmt", "yuv420p", "-c:a", "copy",
        ])
        .args(["-f", "flv"])
        .arg(&out)
        .status()
        .expect("ffmpeg");
    assert!(status.success(), "ffmpeg {filter}");
    read_flv(&out)
}

/// Benign frames exactly where fixed-rate sampling at 2 fps falls (every 15th frame of 30 fps,
/// 0 ms, 500 ms, ...), the clip in every other frame: a viewer sees the clip with a flicker.
pub fn decoys_at_sample_points(dir: &Path) -> Vec<Tag> {
    reencoded(
        dir,
        "decoys",
        "[0:v][1:v]overlay=enable='eq(mod(n\\,15)\\,0)'",
    )
}

/// The flagged sample with every other frame replaced by the benign one (no B-frames; the
/// keyframes benign), retimed so each benign frame is shown for 1 ms and each clip frame for
/// 65 ms after it: a viewer sees the clip, while a sample taken as the first frame after a
/// random point nearly always lands on a benign frame.
pub fn blinking(dir: &Path) -> Vec<Send> {
    // Frame n (from 1): the benign frames (odd n) at 66 ms steps, the clip 1 ms after each.
    retimed(&alternating(dir), |video, ts| match video {
        0 => ts,
        n => (n as u32 - 1) / 2 * 66 + (n as u32 - 1) % 2,
    })
}

/// [`blinking`] with the decode timestamps left evenly spaced (33 ms) and the flicker made by
/// composition time offsets alone: each benign frame presented 33 ms after it is decoded, the
/// clip frame after it 1 ms later (offset 1), so that on screen the benign frame lasts 1 ms
/// and the clip 65 ms.
pub fn cts_blinking(dir: &Path) -> Vec<Send> {
    let mut video = 0u32;
    let tags: Vec<Tag> = alternating(dir)
        .into_iter()
        .map(|t| {
            if t.type_id != VIDEO || !is_avc_frame(&t.body) {
                return t;
            }
            let n = video;
            video += 1;
            let (dts, pts) = (n * 33, n / 2 * 66 + 33 + n % 2);
            let mut body = t.body.to_vec();
            body[2..5].copy_from_slice(&(pts - dts).to_be_bytes()[1..]);
            Tag {
                ts: dts,
                body: body.into(),
                ..t
            }
        })
        .collect();
    paced(&tags)
}

/// The flagged sample, P-frames only, with a benign frame in every 30th place, retimed so that
/// FFmpeg's best-effort timestamp follows decode times: two repeated presentation times at the
/// start, then runs of 29 frames presented 33 ms apart but stamped for decoding 1 ms apart,
/// each followed by the benign frame decoded (and presented) after the whole run. A viewer sees
/// the flagged sample at 30 fps with a benign frame a second; an inspector that read a
/// picture's time from FFmpeg's guess credited every run's samples to its benign frame.
pub fn best_effort_collapse(dir: &Path) -> Vec<Send> {
    let out = dir.join("collapse.flv");
    let status = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
        .arg(sample("flagged.flv"))
        .arg("-i")
        .arg(sample("benign.flv"))
        .args([
            "-filter_complex",
            "[0:v][1:v]overlay=enable='eq(mod(n\\,30)\\,3)'[v]",
            "-map",
            "[v]",
        ])
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-bf", "0",
        ])
        .args(["-pix_fmt", "yuv420p", "-f", "flv"])
        .arg(&out)
        .status()
        .expect("ffmpeg");
    assert!(status.success(), "ffmpeg collapse");
    let preamble = [(0u32, 40u32), (33, 40), (66, 106), (99, 106)];
    let timing = |k: usize| -> (u32, u32) {
        if let Some(&t) = preamble.get(k) {
            return t;
        }
        let (run, i) = ((k - 4) / 30, ((k - 4) % 30) as u32);
        let presented = 1200 + 990 * run as u32;
        let decoded = if run == 0 { 200 } else { presented - 990 + 958 };
        if i < 29 {
            (decoded + i, presented + 33 * i)
        } else {
            (presented + 957, presented + 957)
        }
    };
    let mut video = 0usize;
    let mut sends = Vec::new();
    for t in read_flv(&out) {
        if t.type_id != VIDEO {
            sends.push(Send {
                at: Duration::ZERO,
                tag: if t.type_id == DATA {
                    set_data_frame(&t)
                } else {
                    t
                },
            });
            continue;
        }
        if !is_avc_frame(&t.body) {
            sends.push(Send {
                at: Duration::ZERO,
                tag: Tag { ts: 0, ..t },
            });
            continue;
        }
        let (dts, pts) = timing(video);
        video += 1;
        let mut body = t.body.to_vec();
        body[2..5].copy_from_slice(&(pts - dts).to_be_bytes()[1..]);
        sends.push(Send {
            at: Duration::from_millis(u64::from(pts)),
            tag: Tag {
                ts: dts,
                body: body.into(),
                ..t
            },
        });
    }
    sends
}

/// The flagged sample re-encoded with a keyframe every 30 frames (no scene-cut keyframes, no
/// B-frames), each keyframe replaced by the benign sample's frame: the clip lives only in the
/// frames between keyframes, where inspection that decodes keyframes alone never looks.
pub fn benign_keyframes(dir: &Path) -> Vec<Tag> {
    let out = dir.join("benign-keyframes.flv");
    let status = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
        .arg(sample("flagged.flv"))
        .arg("-i")
        .arg(sample("benign.flv"))
        .args([
            "-filter_complex",
            "[0:v][1:v]overlay=enable='eq(mod(n\\,30)\\,0)'[v]",
            "-map",
            "[v]",
            "-map",
            "0:a",
        ])
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-bf", "0",
        ])
        .args([
            "-sc_threshold",
            "0",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "copy",
            "-f",
            "flv",
        ])
        .arg(&out)
        .status()
        .expect("ffmpeg");
    assert!(status.success(), "ffmpeg benign keyframes");
    read_flv(&out)
}

/// A 1080p30 clip at 8 Mbit/s (x264 veryfast, GOPs of 2 s, 6 s long), costly to decode: what
/// an ordinary costly broadcaster sends, replayed in a loop. Made once per process.
pub fn costly_clip() -> &'static Path {
    static CLIP: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    CLIP.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("hashgate-costly-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("clip dir");
        let path = dir.join("costly.flv");
        let status = std::process::Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
            ])
            .arg("testsrc2=size=1920x1080:rate=30,noise=alls=12:allf=t")
            .args([
                "-t", "6", "-c:v", "libx264", "-preset", "veryfast", "-b:v", "8M",
            ])
            .args([
                "-maxrate", "8M", "-bufsize", "8M", "-g", "60", "-pix_fmt", "yuv420p",
            ])
            .args(["-f", "flv"])
            .arg(&path)
            .status()
            .expect("ffmpeg");
        assert!(status.success(), "ffmpeg costly clip");
        path
    })
}

/// `ffmpeg -re -stream_loop -1 -i FILE -c copy -f flv URL`: a broadcaster that sends `file`
/// again and again until stopped.
pub fn looping_publisher(file: &Path, url: &str) -> super::Process {
    super::Process::spawn(
        "looping ffmpeg publisher",
        std::process::Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-re",
                "-stream_loop",
                "-1",
                "-i",
            ])
            .arg(file)
            .args(["-c", "copy", "-f", "flv"])
            .arg(url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    )
}

/// The flagged sample's frames alternating with the benign sample's (the benign ones first,
/// keyframes benign), re-encoded without B-frames.
fn alternating(dir: &Path) -> Vec<Tag> {
    let out = dir.join("alternating.flv");
    let status = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
        .arg(sample("flagged.flv"))
        .arg("-i")
        .arg(sample("benign.flv"))
        .args([
            "-filter_complex",
            "[0:v][1:v]overlay=enable='eq(mod(n\\,2)\\,0)'[v]",
            "-map",
            "[v]",
            "-map",
            "0:a",
        ])
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-bf", "0",
        ])
        .args(["-pix_fmt", "yuv420p", "-c:a", "copy", "-f", "flv"])
        .arg(&out)
        .status()
        .expect("ffmpeg");
    assert!(status.success(), "ffmpeg alternating");
    read_flv(&out)
}

/// Audio and video tags packed `per` to an RTMP aggregate message (type 22), as FMS-style
/// servers send them; metadata stays a message of its own.
pub fn aggregated(tags: &[Tag], per: usize) -> Vec<Tag> {
    nested_aggregates(tags, per, 1, |_| true)
}

/// An aggregate's body holding `tags` as sub-messages, each stamped its own time plus `skew`
/// (a reader that takes sub-message timestamps as absolute is off by `skew`; one that takes
/// them relative to the first, as nginx-rtmp does, is not).
pub fn aggregate_body(tags: &[&Tag], skew: u32) -> Vec<u8> {
    let mut body = Vec::new();
    for t in tags {
        let size = t.body.len() as u32;
        let ts = t.ts.wrapping_add(skew);
        body.push(t.type_id);
        body.extend_from_slice(&size.to_be_bytes()[1..]);
        body.extend_from_slice(&ts.to_be_bytes()[1..]);
        body.push((ts >> 24) as u8);
        body.extend_from_slice(&[0, 0, 0]);
        body.extend_from_slice(&t.body);
        body.extend_from_slice(&(size + 11).to_be_bytes());
    }
    body
}

/// The audio and video tags `wrap` picks packed `per` to an aggregate, each aggregate wrapped
/// in `depth - 1` more; when nested, every sub-message is stamped 100 s off (read relative to
/// the first sub-message, as nginx-rtmp reads them, the stamps are the tags' own). Metadata and
/// the tags `wrap` leaves out stay messages of their own.
pub fn nested_aggregates(
    tags: &[Tag],
    per: usize,
    depth: usize,
    wrap: impl Fn(&Tag) -> bool,
) -> Vec<Tag> {
    let mut out = Vec::new();
    let mut pack: Vec<&Tag> = Vec::new();
    let flush = |pack: &mut Vec<&Tag>, out: &mut Vec<Tag>| {
        let Some(first) = pack.first() else {
            return;
        };
        let skew = if depth > 1 { 100_000 } else { 0 };
        let mut message = Tag {
            type_id: 22,
            ts: first.ts,
            body: aggregate_body(pack, skew).into(),
        };
        for _ in 1..depth {
            let body = aggregate_body(&[&message], skew);
            message = Tag {
                type_id: 22,
                ts: first.ts,
                body: body.into(),
            };
        }
        out.push(message);
        pack.clear();
    };
    for t in tags {
        if t.type_id == DATA || !wrap(t) {
            flush(&mut pack, &mut out);
            out.push(t.clone());
            continue;
        }
        pack.push(t);
        if pack.len() == per {
            flush(&mut pack, &mut out);
        }
    }
    flush(&mut pack, &mut out);
    out
}

/// One frame of the flagged sample (at `at_s` seconds) held still for 4 s, as H.264 in FLV: what
/// a poisoner shows to make one entry look like a bad hash (matched alone, again and again).
pub fn still_of_clip(dir: &Path, at_s: f64) -> Vec<Tag> {
    let png = dir.join("still.png");
    let out = dir.join("still.flv");
    let ok = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-ss",
            &at_s.to_string(),
            "-i",
        ])
        .arg(sample("flagged.flv"))
        .args(["-frames:v", "1"])
        .arg(&png)
        .status()
        .is_ok_and(|s| s.success())
        && std::process::Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-loop",
                "1",
                "-i",
            ])
            .arg(&png)
            .args([
                "-t", "4", "-r", "30", "-c:v", "libx264", "-preset", "veryfast",
            ])
            .args(["-g", "30", "-pix_fmt", "yuv420p", "-f", "flv"])
            .arg(&out)
            .status()
            .is_ok_and(|s| s.success());
    assert!(ok, "ffmpeg could not make the still");
    read_flv(&out)
}

fn keyframe_at(tags: &[Tag], ms: u32) -> usize {
    tags.iter()
        .position(|t| t.type_id == VIDEO && t.ts >= ms && t.body[0] == 0x17 && t.body[1] == 1)
        .expect("a keyframe")
}

/// A reconnect mid-clip: the first three tags (metadata and headers), one frame of the clip
/// (its keyframe at 4 s: the first frame, always sampled, matches; no second sample can,
/// however dense), then benign video from its keyframe at 5 s, timestamps continuous from 0.
pub fn back_mid_clip(flagged: &[Tag], benign: &[Tag]) -> Vec<Tag> {
    let start = keyframe_at(flagged, 4000);
    let mut tags: Vec<Tag> = flagged[..3].to_vec();
    let base = flagged[start].ts;
    for t in &flagged[start..] {
        if t.ts > base {
            break;
        }
        tags.push(Tag {
            ts: t.ts - base,
            ..t.clone()
        });
    }
    let resume = keyframe_at(benign, 5000);
    let offset = 100;
    tags.push(Tag {
        ts: offset,
        ..header_of(benign)
    });
    for t in &benign[resume..] {
        tags.push(Tag {
            ts: t.ts - benign[resume].ts + offset,
            ..t.clone()
        });
    }
    tags
}
