//! Broken video does not stop inspection: corrupt and truncated H.264, a resolution change
//! mid-stream (new sequence header), coded frames with no sequence header. Video tags are read
//! from FLV files made by the ffmpeg CLI and fed to the stream inspector as the relay would.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use common::*;
use hashgate::inspect::stream::{
    Finding, InspectSettings, InspectStats, SamplingMode, StreamInspector,
};
use hashgate::relay::tap::{video_frame_kind, VideoFrameKind};
use hashgate::relay::TappedVideo;

/// A video-only H.264 FLV clip of `seconds` at `size`, keyframe every second (30 frames).
fn clip(dir: &Path, name: &str, size: &str, seconds: u32) -> PathBuf {
    let path = dir.join(name);
    lavfi_clip(
        &path,
        &format!("testsrc2=size={size}:rate=30"),
        seconds,
        &["-g", "30", "-f", "flv"],
    );
    path
}

fn settings(fps: f64) -> InspectSettings {
    InspectSettings {
        fps,
        mode: SamplingMode::All,
        letterbox: None,
        ..InspectSettings::default()
    }
}

/// Feeds tags to a fresh inspector; returns (frame sizes of hashed frames, stats).
fn run(tags: &[(u32, Bytes)], fps: f64) -> (Vec<(i64, usize, usize)>, InspectStats) {
    let stats = InspectStats::default();
    let mut inspector = StreamInspector::new(settings(fps));
    let mut out = Vec::new();
    let now = Instant::now();
    for (ts, body) in tags {
        let video = TappedVideo {
            timestamp: *ts,
            payload: body.clone(),
            arrived: now,
            clock: Default::default(),
        };
        inspector.handle(&video, &stats, &mut |f| {
            if let Finding::Frame(f) = f {
                out.push((f.stream_time_ms, f.luma.width, f.luma.height))
            }
        });
    }
    inspector.flush(&stats, now, &mut |f| {
        if let Finding::Frame(f) = f {
            out.push((f.stream_time_ms, f.luma.width, f.luma.height))
        }
    });
    (out, stats)
}

#[test]
fn corrupt_and_truncated_frames_are_counted_and_decoding_resumes() {
    let dir = temp_dir();
    let tags = flv_video_tags(&clip(dir.path(), "a.flv", "640x360", 3));
    let (clean, clean_stats) = run(&tags, 0.0);
    assert_eq!(clean_stats.decode_errors.load(Ordering::Relaxed), 0);
    assert_eq!(clean.len(), 90);

    // Garble the middle of every coded frame in the first second, truncate a few in the second.
    let mut broken = tags.clone();
    for (i, (_, body)) in broken.iter_mut().enumerate() {
        let kind = video_frame_kind(body);
        if !matches!(kind, VideoFrameKind::Keyframe | VideoFrameKind::Interframe) {
            continue;
        }
        let mut bytes = body.to_vec();
        if (1..30).contains(&i) && bytes.len() > 40 {
            let len = bytes.len();
            for b in &mut bytes[len / 3..len / 3 + 24] {
                *b = !*b;
            }
        } else if (35..40).contains(&i) {
            bytes.truncate(bytes.len() / 2);
        }
        *body = Bytes::from(bytes);
    }
    let (frames, stats) = run(&broken, 0.0);
    assert!(
        stats.decode_errors.load(Ordering::Relaxed) > 0,
        "damage went unnoticed"
    );
    // The third second (from the keyframe at 2 s) decodes as cleanly as the original. (Frames
    // presented just after 2 s may belong to the damaged GOP through B-frame reordering.)
    let late = |v: &[(i64, usize, usize)]| v.iter().filter(|(t, _, _)| *t >= 2200).count();
    assert_eq!(
        late(&frames),
        late(&clean),
        "decoding did not resume at the next keyframe"
    );
}

#[test]
fn resolution_change_mid_stream_is_followed() {
    let dir = temp_dir();
    let first = flv_video_tags(&clip(dir.path(), "big.flv", "640x360", 2));
    let second = flv_video_tags(&clip(dir.path(), "small.flv", "320x240", 2));
    let mut tags = first.clone();
    tags.extend(second.iter().map(|(ts, body)| (ts + 2000, body.clone())));
    let (frames, stats) = run(&tags, 0.0);
    assert_eq!(stats.decode_errors.load(Ordering::Relaxed), 0);
    let sizes: Vec<(usize, usize)> = frames.iter().map(|(_, w, h)| (*w, *h)).collect();
    // Every frame of both halves, at its own size (a frame or two at the switch may go with
    // the old configuration's reordering delay).
    let big = sizes.iter().filter(|s| **s == (640, 360)).count();
    let small = sizes.iter().filter(|s| **s == (320, 240)).count();
    assert!(
        big >= 58 && small >= 58,
        "{big} + {small} frames of 60 + 60"
    );
    assert_eq!(big + small, sizes.len());
}

#[test]
fn frames_without_a_sequence_header_are_counted_not_decoded() {
    let dir = temp_dir();
    let tags: Vec<_> = flv_video_tags(&clip(dir.path(), "a.flv", "320x240", 1))
        .into_iter()
        .filter(|(_, body)| video_frame_kind(body) != VideoFrameKind::SequenceHeader)
        .collect();
    let (frames, stats) = run(&tags, 0.0);
    assert!(frames.is_empty());
    assert_eq!(
        stats.frames_without_config.load(Ordering::Relaxed),
        tags.len() as u64 - 1
    );
}

#[test]
fn garbage_sequence_header_and_random_bodies_do_not_panic() {
    let mut tags = vec![(0u32, Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 2, 3]))];
    let mut seed = 7u32;
    for i in 0..200u32 {
        let mut body = vec![if i % 30 == 0 { 0x17 } else { 0x27 }, 1, 0, 0, 0];
        for _ in 0..(i * 37 % 500) {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            body.push((seed >> 16) as u8);
        }
        tags.push((i * 33, Bytes::from(body)));
    }
    tags.push((9999, Bytes::from_static(&[0x17])));
    let (frames, _stats) = run(&tags, 0.0);
    assert!(frames.is_empty());
}
