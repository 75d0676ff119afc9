//! Inspection benchmark, in one run: PDQ per frame (luma path) next to the `pdqhash` Python
//! package on RGB; decode throughput in `all` and `keyframes` modes next to
//! `ffmpeg -threads 1 -f null`; and what that makes in live 720p30 streams per core.
//!
//! Run with `bench/inspect.sh` (or `cargo bench --bench inspect`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../tests/common/mod.rs"]
mod common;

use bytes::Bytes;
use hashgate::hash::inset::{InsetSettings, InsetTracker};
use hashgate::hash::pdq::{pdq, LumaImage};
use hashgate::inspect::stream::{InspectSettings, InspectStats, SamplingMode, StreamInspector};
use hashgate::relay::TappedVideo;

const SECONDS: u32 = 20;

/// A 30 fps H.264 FLV clip with film-like noise (so it costs what camera video costs to decode),
/// a keyframe every 2 s, as streaming encoders are set.
fn make_clip(dir: &Path, size: &str, bitrate: &str) -> PathBuf {
    let path = dir.join(format!("clip-{size}.flv"));
    let source = format!("testsrc2=size={size}:rate=30");
    let extra = [
        "-vf",
        "noise=alls=12:allf=t",
        "-b:v",
        bitrate,
        "-g",
        "60",
        "-f",
        "flv",
    ];
    common::lavfi_clip(&path, &source, SECONDS, &extra);
    path
}

/// The same clip scaled to 960x540 (56 % of the area) inside a static 720p layout: the frame-in-frame
/// lookup finds an inset on every sampled frame and pays its extra hash.
fn make_layout_clip(dir: &Path, bitrate: &str) -> PathBuf {
    let path = dir.join("layout-720p.flv");
    let source = "testsrc2=size=960x540:rate=30,noise=alls=12:allf=t[in];\
                  smptebars=size=1280x720:rate=30[bg];[bg][in]overlay=100:60[out0]";
    let extra = ["-b:v", bitrate, "-g", "60", "-f", "flv"];
    common::lavfi_clip(&path, source, SECONDS, &extra);
    path
}

/// Runs the clip through a stream inspector; returns (seconds of CPU, frames decoded, hashed).
fn inspect(
    tags: &[(u32, Bytes)],
    mode: SamplingMode,
    fps: f64,
    max_blind: Duration,
    frame_in_frame: bool,
) -> (f64, u64, u64) {
    let stats = InspectStats::default();
    let mut inspector = StreamInspector::new(InspectSettings {
        fps,
        mode,
        letterbox: None,
        frame_in_frame: frame_in_frame.then(InsetSettings::default),
        max_blind,
        ..InspectSettings::default()
    });
    // Messages "arrive" at their stream time, as from a live encoder, so that keyframes mode
    // decodes long GOPs the way it does live (the default coverage bound).
    let arrived = Instant::now();
    let started = Instant::now();
    let mut sink = |_frame| {};
    for (ts, payload) in tags {
        let video = TappedVideo {
            timestamp: *ts,
            payload: payload.clone(),
            arrived: arrived + std::time::Duration::from_millis(u64::from(*ts)),
            clock: Default::default(),
        };
        inspector.handle(&video, &stats, &mut sink);
    }
    inspector.flush(&stats, arrived, &mut sink);
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    (
        started.elapsed().as_secs_f64(),
        load(&stats.frames_decoded),
        load(&stats.frames_hashed),
    )
}

fn ffmpeg_null(path: &Path, keyframes: bool) -> f64 {
    let started = Instant::now();
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-threads", "1"]);
    if keyframes {
        cmd.args(["-skip_frame", "nokey"]);
    }
    let status = cmd
        .arg("-i")
        .arg(path)
        .args(["-an", "-f", "null", "-"])
        .stdout(Stdio::null())
        .status()
        .expect("ffmpeg");
    assert!(status.success());
    started.elapsed().as_secs_f64()
}

fn pdq_ms(width: usize, height: usize) -> f64 {
    let pixels: Vec<f32> = (0..width * height)
        .map(|i| ((i * 7 + i / width * 13) % 251) as f32)
        .collect();
    let image = LumaImage {
        width,
        height,
        pixels,
    };
    let runs = 40;
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(pdq(std::hint::black_box(&image)));
            t.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2].as_secs_f64() * 1000.0
}

/// The median time of one `InsetTracker::observe` on alternating 720p frames.
fn inset_search_ms(width: usize, height: usize) -> f64 {
    let frame = |t: usize| LumaImage {
        width,
        height,
        pixels: (0..width * height)
            .map(|i| ((i * 7 + i / width * 13 + t * 31) % 251) as f32)
            .collect(),
    };
    let frames = [frame(0), frame(1)];
    let mut tracker = InsetTracker::new(InsetSettings::default());
    let runs = 40;
    let mut times: Vec<Duration> = (0..runs)
        .map(|i| {
            let t = Instant::now();
            std::hint::black_box(tracker.observe(&frames[i % 2], 500 * i as i64));
            t.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2].as_secs_f64() * 1000.0
}

fn pdqhash_ms(width: usize, height: usize) -> Option<f64> {
    let script = format!(
        "import time, numpy as np, pdqhash\n\
         a = (np.arange({width}*{height}*3) % 251).astype(np.uint8).reshape({height},{width},3)\n\
         pdqhash.compute(a)\n\
         ts = []\n\
         for _ in range(20):\n    t = time.perf_counter(); pdqhash.compute(a); ts.append(time.perf_counter() - t)\n\
         ts.sort(); print(ts[len(ts)//2] * 1000)\n"
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    println!("inspection benchmark ({SECONDS} s clips, 30 fps, keyframe every 2 s, one thread)\n");

    println!("| PDQ per frame | hashgate (luma) ms | pdqhash (PyPI, RGB) ms | ratio |");
    println!("|---|---|---|---|");
    for (name, w, h) in [("1080p", 1920, 1080), ("720p", 1280, 720)] {
        let ours = pdq_ms(w, h);
        match pdqhash_ms(w, h) {
            Some(theirs) => println!(
                "| {name} | {ours:.2} | {theirs:.2} | {:.1}x faster |",
                theirs / ours
            ),
            None => println!("| {name} | {ours:.2} | - (pip install pdqhash numpy) | - |"),
        }
    }

    let clip = make_clip(dir.path(), "1280x720", "3M");
    let tags = common::flv_video_tags(&clip);
    let frames = SECONDS as f64 * 30.0;
    println!("\n| 720p30 decode | hashgate fps | ffmpeg -threads 1 -f null fps | hashgate / ffmpeg time |");
    println!("|---|---|---|---|");
    for (mode, keyframes) in [(SamplingMode::All, false), (SamplingMode::Keyframes, true)] {
        // fps 0.001: decode as the mode says, hash almost nothing, so this is decoding alone.
        let (ours, decoded, _) = inspect(&tags, mode, 0.001, Duration::from_secs(4), false);
        let theirs = ffmpeg_null(&clip, keyframes);
        println!(
            "| {mode:?} | {:.0} ({decoded} frames) | {:.0} | {:.2} |",
            decoded as f64 / ours,
            if keyframes {
                decoded as f64 / theirs
            } else {
                frames / theirs
            },
            ours / theirs
        );
    }

    println!("\n| live 720p30 streams per core | max_blind | sampling fps | CPU s per stream-s | streams per core | frames hashed |");
    println!("|---|---|---|---|---|---|");
    let default_blind = InspectSettings::default().max_blind;
    for (mode, max_blind) in [
        (SamplingMode::All, default_blind),
        (SamplingMode::Keyframes, default_blind),
        (SamplingMode::Keyframes, Duration::from_secs(4)),
    ] {
        for fps in [1.0, 2.0] {
            let (cpu, _, hashed) = inspect(&tags, mode, fps, max_blind, false);
            let per_stream_second = cpu / SECONDS as f64;
            println!(
                "| {mode:?} | {:.1}s | {fps} | {per_stream_second:.4} | {:.0} | {hashed} |",
                max_blind.as_secs_f64(),
                1.0 / per_stream_second
            );
        }
    }

    println!("\n| frame-in-frame per sampled 720p frame | ms |");
    println!("|---|---|");
    println!(
        "| motion map and inset search | {:.2} |",
        inset_search_ms(1280, 720)
    );
    println!("| PDQ of a 960x540 inset | {:.2} |", pdq_ms(960, 540));

    println!(
        "\n| frame-in-frame cost, 720p30, `all`, 2 fps | CPU s per stream-s, off | on | extra |"
    );
    println!("|---|---|---|---|");
    let layout = make_layout_clip(dir.path(), "3M");
    for (name, tags) in [
        ("full-frame video (no inset found)", &tags),
        (
            "video in a layout (an inset every frame)",
            &common::flv_video_tags(&layout),
        ),
    ] {
        // Interleaved runs, the median of each: the box is shared and noisy.
        let (mut off, mut on) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            off.push(inspect(tags, SamplingMode::All, 2.0, default_blind, false).0);
            on.push(inspect(tags, SamplingMode::All, 2.0, default_blind, true).0);
        }
        off.sort_by(f64::total_cmp);
        on.sort_by(f64::total_cmp);
        let (off, on) = (off[1] / SECONDS as f64, on[1] / SECONDS as f64);
        println!(
            "| {name} | {off:.4} | {on:.4} | {:+.1} % |",
            (on / off - 1.0) * 100.0
        );
    }
}
