//! Inspection benchmark, in one run: PDQ per frame (luma path) next to the `pdqhash` Python
//! package on RGB; decode throughput in `all` and `keyframes` modes next to
//! `ffmpeg -threads 1 -f null`; each sampling mode and decoding shortcut side by side (CPU per
//! stream-second, streams per core, decision time, distance of the sampled hashes to a full
//! decode) on a 720p30 clip, then over a corpus (360p-1080p60, B-frames 0-3, GOP 1-4 s, and a
//! camera clip when ../shared/vectors is present); the frame-in-frame cost.
//!
//! `BENCH_ONLY=modes`, `windows`, `bank` or `corpus` runs one part.
//!
//! Run with `bench/inspect.sh` (or `cargo bench --bench inspect`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../tests/common/mod.rs"]
mod common;

use bytes::Bytes;
use hashgate::bank::build::add_media;
use hashgate::bank::live::{BankSettings, Banks};
use hashgate::bank::MediaBank;
use hashgate::hash::inset::{InsetSettings, InsetTracker};
use hashgate::hash::pdq::PdqHash;
use hashgate::hash::pdq::{pdq, LumaImage};
use hashgate::inspect::decoder::Shortcuts;
use hashgate::inspect::stream::{
    Finding, InspectSettings, InspectStats, SamplingMode, StreamInspector,
};
use hashgate::relay::TappedVideo;

const SECONDS: u32 = 20;

/// A 30 fps H.264 FLV clip with film-like noise (so it costs what camera video costs to decode),
/// a keyframe every 2 s and constant bitrate (a 1 s VBV buffer), as OBS sets x264.
fn make_clip(dir: &Path, size: &str, bitrate: &str) -> PathBuf {
    let path = dir.join(format!("clip-{size}.flv"));
    let source = format!("testsrc2=size={size}:rate=30");
    let extra = [
        "-vf",
        "noise=alls=12:allf=t",
        "-b:v",
        bitrate,
        "-maxrate",
        bitrate,
        "-bufsize",
        bitrate,
        "-g",
        "60",
        "-sc_threshold",
        "0",
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

/// What one run of a clip through a stream inspector measured.
struct Run {
    /// CPU seconds of the inspecting thread.
    cpu: f64,
    decoded: u64,
    hashed: u64,
    /// Presentation time and whole-frame PDQ of each hashed frame.
    sampled: Vec<(i64, PdqHash)>,
}

/// CPU time of the calling thread: the inspection runs on it alone, so other processes on
/// the shared box slow it less than they would a wall-clock figure.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Runs the clip through a stream inspector with `settings`.
fn run(tags: &[(u32, Bytes)], settings: InspectSettings) -> Run {
    run_checked(tags, settings, None)
}

/// As [`run`], and checks a sampled frame against `banks` once a second of stream time, on the
/// inspecting thread, as the verdict does with `[media_bank]` at its default rate.
fn run_checked(tags: &[(u32, Bytes)], settings: InspectSettings, banks: Option<&Banks>) -> Run {
    let stats = InspectStats::default();
    let mut inspector = StreamInspector::new(settings);
    // Messages "arrive" at their stream time, as from a live encoder, so that keyframes mode
    // decodes long GOPs the way it does live (the default coverage bound).
    let arrived = Instant::now();
    let started = thread_cpu();
    let mut sampled = Vec::new();
    let mut checked: Option<i64> = None;
    let mut sink = |finding| {
        if let Finding::Frame(frame) = finding {
            sampled.push((frame.stream_time_ms, frame.hashes.full.hash()));
            let due = checked.is_none_or(|at| frame.stream_time_ms - at >= 1000);
            if let Some(banks) = banks.filter(|_| due) {
                checked = Some(frame.stream_time_ms);
                std::hint::black_box(banks.check(&frame.luma));
            }
        }
    };
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
    let cpu = thread_cpu() - started;
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    Run {
        cpu,
        decoded: load(&stats.frames_decoded),
        hashed: load(&stats.frames_hashed),
        sampled,
    }
}

/// Runs the clip through a stream inspector; returns (seconds of CPU, frames decoded, hashed).
fn inspect(
    tags: &[(u32, Bytes)],
    mode: SamplingMode,
    fps: f64,
    max_blind: Duration,
    frame_in_frame: bool,
) -> (f64, u64, u64) {
    inspect_with(tags, mode, fps, max_blind, frame_in_frame, (true, true))
}

/// As [`inspect`], with the picture windows and the colour planes on or off.
fn inspect_with(
    tags: &[(u32, Bytes)],
    mode: SamplingMode,
    fps: f64,
    max_blind: Duration,
    frame_in_frame: bool,
    (windows, colour_planes): (bool, bool),
) -> (f64, u64, u64) {
    let r = run(
        tags,
        InspectSettings {
            fps,
            mode,
            letterbox: None,
            frame_in_frame: frame_in_frame.then(InsetSettings::default),
            windows,
            colour_planes,
            max_blind,
            ..InspectSettings::default()
        },
    );
    (r.cpu, r.decoded, r.hashed)
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

/// The reference: every frame decoded whole and hashed at full size, by presentation time.
fn full_decode(tags: &[(u32, Bytes)]) -> std::collections::BTreeMap<i64, PdqHash> {
    run(
        tags,
        InspectSettings {
            fps: 0.0,
            letterbox: None,
            frame_in_frame: None,
            shortcuts: Shortcuts::EXACT,
            ..InspectSettings::default()
        },
    )
    .sampled
    .into_iter()
    .collect()
}

fn percentile<T: Copy + PartialOrd>(values: &mut [T], p: f64) -> Option<T> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let i = ((values.len() - 1) as f64 * p).round() as usize;
    Some(values[i])
}

/// One way of inspecting, measured over interleaved runs.
struct Variant {
    name: &'static str,
    mode: SamplingMode,
    fps: f64,
    max_blind: Duration,
    shortcuts: Shortcuts,
}

/// What the variant's runs of a clip measured: CPU per stream-second (median run), frames
/// decoded and hashed per run, decision time p50/p95 in seconds, and the distance of each
/// sampled hash to the same frame decoded whole.
struct Measured {
    cpu_per_second: f64,
    decoded: u64,
    hashed: u64,
    decision: (f64, f64),
    distance: (u32, u32, u32),
}

const RUNS: usize = 3;

fn measure_variants(tags: &[(u32, Bytes)], seconds: f64, variants: &[Variant]) -> Vec<Measured> {
    let reference = full_decode(tags);
    let frame_times: Vec<i64> = reference.keys().copied().collect();
    let mut cpu = vec![Vec::new(); variants.len()];
    let mut last = Vec::new();
    let mut distances = vec![Vec::new(); variants.len()];
    let mut decisions = vec![Vec::new(); variants.len()];
    for round in 0..RUNS {
        for (i, v) in variants.iter().enumerate() {
            let r = run(
                tags,
                InspectSettings {
                    fps: v.fps,
                    mode: v.mode,
                    letterbox: None,
                    frame_in_frame: None,
                    max_blind: v.max_blind,
                    shortcuts: v.shortcuts,
                    ..InspectSettings::default()
                },
            );
            cpu[i].push(r.cpu);
            for (pts, hash) in &r.sampled {
                if let Some(full) = reference.get(pts) {
                    distances[i].push(hash.distance(full));
                }
            }
            // How long a clip starting at each frame waits for its first hashed frame.
            let mut times: Vec<i64> = r.sampled.iter().map(|(t, _)| *t).collect();
            times.sort_unstable();
            for &t in &frame_times {
                let at = times.partition_point(|&s| s < t);
                if let Some(&s) = times.get(at) {
                    decisions[i].push((s - t) as f64 / 1000.0);
                }
            }
            if round == RUNS - 1 {
                last.push((r.decoded, r.hashed));
            }
        }
    }
    (0..variants.len())
        .map(|i| Measured {
            cpu_per_second: percentile(&mut cpu[i], 0.5).unwrap_or(0.0) / seconds,
            decoded: last[i].0,
            hashed: last[i].1,
            decision: (
                percentile(&mut decisions[i], 0.5).unwrap_or(f64::NAN),
                percentile(&mut decisions[i], 0.95).unwrap_or(f64::NAN),
            ),
            distance: (
                percentile(&mut distances[i], 0.5).unwrap_or(0),
                percentile(&mut distances[i], 0.99).unwrap_or(0),
                distances[i].iter().copied().max().unwrap_or(0),
            ),
        })
        .collect()
}

fn print_modes(tags: &[(u32, Bytes)]) {
    let blind = InspectSettings::default().max_blind;
    let long_blind = Duration::from_secs(4);
    let full = Shortcuts::EXACT;
    let unref = Shortcuts {
        skip_unreferenced: true,
        ..full
    };
    let scaled = Shortcuts {
        hash_width: 640,
        ..full
    };
    let default = Shortcuts::default();
    let no_deblock = Shortcuts {
        skip_loop_filter: true,
        ..default
    };
    let all = |name, shortcuts| Variant {
        name,
        mode: SamplingMode::All,
        fps: 2.0,
        max_blind: blind,
        shortcuts,
    };
    let hybrid = |name, fps| Variant {
        name,
        mode: SamplingMode::Hybrid,
        fps,
        max_blind: blind,
        shortcuts: default,
    };
    let keyframes = |name, max_blind, shortcuts| Variant {
        name,
        mode: SamplingMode::Keyframes,
        fps: 2.0,
        max_blind,
        shortcuts,
    };
    let variants = [
        all("all, full decode, full-size hash (before)", full),
        all("all, unreferenced frames skipped", unref),
        all("all, hashed at 640 px", scaled),
        all("all, both (default)", default),
        all("all, default + no deblocking on unsampled", no_deblock),
        hybrid("hybrid (default shortcuts)", 2.0),
        hybrid("hybrid, fps 1", 1.0),
        keyframes(
            "keyframes, max_blind 1.5 s (decodes long GOPs)",
            blind,
            default,
        ),
        keyframes("keyframes, max_blind 4 s, full-size hash", long_blind, full),
        keyframes(
            "keyframes, max_blind 4 s (default shortcuts)",
            long_blind,
            default,
        ),
    ];
    println!(
        "\n| 720p30 H.264, one thread, fps 2 unless said | CPU s per stream-s | streams per core | decoded | hashed | decision p50 / p95 s | bits to full decode p50 / p99 / max |"
    );
    println!("|---|---|---|---|---|---|---|");
    let measured = measure_variants(tags, f64::from(SECONDS), &variants);
    for (v, m) in variants.iter().zip(&measured) {
        println!(
            "| {} | {:.4} | {:.0} | {} | {} | {:.2} / {:.2} | {} / {} / {} |",
            v.name,
            m.cpu_per_second,
            1.0 / m.cpu_per_second,
            m.decoded,
            m.hashed,
            m.decision.0,
            m.decision.1,
            m.distance.0,
            m.distance.1,
            m.distance.2
        );
    }
}

/// A corpus clip: lavfi source (or a file to re-encode), size, rate, B-frames, GOP seconds.
struct CorpusClip {
    name: String,
    tags: Vec<(u32, Bytes)>,
    seconds: f64,
}

const CORPUS_SECONDS: u32 = 10;

fn corpus(dir: &Path) -> Vec<CorpusClip> {
    let mut clips = Vec::new();
    let mut add = |name: String, source: String, input_is_file: bool, extra: Vec<String>| {
        let path = dir.join(format!("corpus-{}.flv", clips.len()));
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-hide_banner", "-loglevel", "error", "-y"]);
        if input_is_file {
            cmd.args(["-stream_loop", "-1"]);
        } else {
            cmd.args(["-f", "lavfi"]);
        }
        cmd.args(["-i", &source, "-t", &CORPUS_SECONDS.to_string(), "-an"])
            .args([
                "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
            ])
            .args(&extra)
            .args(["-f", "flv"])
            .arg(&path);
        let status = cmd.status().expect("ffmpeg");
        assert!(status.success(), "ffmpeg could not make {name}");
        clips.push(CorpusClip {
            name,
            tags: common::flv_video_tags(&path),
            seconds: f64::from(CORPUS_SECONDS),
        });
    };
    let noisy =
        |size: &str, rate: u32| format!("testsrc2=size={size}:rate={rate},noise=alls=12:allf=t");
    for (size, rate, bframes, gop_s, bitrate) in [
        ("640x360", 30, 2, 1, "800k"),
        ("1280x720", 30, 0, 2, "3M"),
        ("1280x720", 30, 2, 2, "3M"),
        ("1280x720", 30, 3, 4, "3M"),
        ("1920x1080", 60, 2, 2, "6M"),
    ] {
        add(
            format!("{size}@{rate}, noise, B {bframes}, GOP {gop_s} s"),
            noisy(size, rate),
            false,
            vec![
                "-bf".into(),
                bframes.to_string(),
                "-g".into(),
                (rate * gop_s).to_string(),
                "-b:v".into(),
                bitrate.into(),
                "-maxrate".into(),
                bitrate.into(),
                "-bufsize".into(),
                bitrate.into(),
                // Keyframes where the GOP says, none on scene cuts (as OBS sets x264).
                "-sc_threshold".into(),
                "0".into(),
            ],
        );
    }
    // Camera video: the vPDQ sample of a chair (see ../shared/vectors/SOURCES.md), at 720p30.
    let chair = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/vectors/vpdq/sample-videos/chair-19-sd-bar.mp4");
    if chair.exists() {
        add(
            "1280x720@30, camera (vPDQ chair sample), B 2, GOP 2 s".into(),
            chair.display().to_string(),
            true,
            [
                "-vf",
                "scale=1280:720",
                "-r",
                "30",
                "-bf",
                "2",
                "-g",
                "60",
                "-sc_threshold",
                "0",
                "-b:v",
                "3M",
                "-maxrate",
                "3M",
                "-bufsize",
                "3M",
            ]
            .map(String::from)
            .to_vec(),
        );
    } else {
        println!("(camera clip skipped: ../shared/vectors is absent)");
    }
    clips
}

fn print_corpus(dir: &Path) {
    let blind = InspectSettings::default().max_blind;
    let variant = |name, mode, shortcuts| Variant {
        name,
        mode,
        fps: 2.0,
        max_blind: blind,
        shortcuts,
    };
    let variants = [
        variant("all, full decode", SamplingMode::All, Shortcuts::EXACT),
        variant(
            "all, default shortcuts",
            SamplingMode::All,
            Shortcuts::default(),
        ),
        variant(
            "hybrid, default shortcuts",
            SamplingMode::Hybrid,
            Shortcuts::default(),
        ),
        variant(
            "hybrid, hashed at 640 px",
            SamplingMode::Hybrid,
            Shortcuts {
                hash_width: 640,
                ..Shortcuts::default()
            },
        ),
    ];
    println!(
        "\n| corpus clip ({CORPUS_SECONDS} s), fps 2, one thread | mode | streams per core | decoded | decision p95 s | bits to full decode p50 / p99 / max |"
    );
    println!("|---|---|---|---|---|---|");
    for clip in corpus(dir) {
        let measured = measure_variants(&clip.tags, clip.seconds, &variants);
        for (v, m) in variants.iter().zip(&measured) {
            println!(
                "| {} | {} | {:.1} | {} | {:.2} | {} / {} / {} |",
                clip.name,
                v.name,
                1.0 / m.cpu_per_second,
                m.decoded,
                m.decision.1,
                m.distance.0,
                m.distance.1,
                m.distance.2
            );
        }
    }
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    match std::env::var("BENCH_ONLY").as_deref() {
        Ok("modes") => {
            let clip = make_clip(dir.path(), "1280x720", "3M");
            return print_modes(&common::flv_video_tags(&clip));
        }
        Ok("corpus") => return print_corpus(dir.path()),
        Ok("windows") => {
            let clip = make_clip(dir.path(), "1280x720", "3M");
            return print_windows_cost(&common::flv_video_tags(&clip));
        }
        Ok("bank") => {
            let clip = make_clip(dir.path(), "1280x720", "3M");
            return print_bank_cost(dir.path(), &common::flv_video_tags(&clip));
        }
        Ok("profile-keyframes") => {
            // For `perf record`: keyframes mode alone, many times over.
            let tags = common::flv_video_tags(&make_clip(dir.path(), "1280x720", "3M"));
            for _ in 0..30 {
                inspect(
                    &tags,
                    SamplingMode::Keyframes,
                    2.0,
                    Duration::from_secs(4),
                    false,
                );
            }
            return;
        }
        _ => {}
    }
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
        // fps 0.001: decode as the mode says, hash almost nothing, so this is decoding alone;
        // every frame handed to FFmpeg, as the CLI does.
        let r = run(
            &tags,
            InspectSettings {
                fps: 0.001,
                mode,
                letterbox: None,
                frame_in_frame: None,
                max_blind: Duration::from_secs(4),
                shortcuts: Shortcuts::EXACT,
                ..InspectSettings::default()
            },
        );
        let (ours, decoded) = (r.cpu, r.decoded);
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

    print_modes(&tags);
    let default_blind = InspectSettings::default().max_blind;

    println!("\n| frame-in-frame per sampled 720p frame | ms |");
    println!("|---|---|");
    println!(
        "| motion map and inset search | {:.2} |",
        inset_search_ms(1280, 720)
    );
    println!("| PDQ of a 960x540 inset | {:.2} |", pdq_ms(960, 540));

    println!(
        "\n| frame-in-frame cost, 720p30, `hybrid`, 2 fps | CPU s per stream-s, off | on | extra |"
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
            let mode = SamplingMode::default();
            off.push(inspect_with(tags, mode, 2.0, default_blind, false, (false, false)).0);
            on.push(inspect_with(tags, mode, 2.0, default_blind, true, (false, false)).0);
        }
        off.sort_by(f64::total_cmp);
        on.sort_by(f64::total_cmp);
        let (off, on) = (off[1] / SECONDS as f64, on[1] / SECONDS as f64);
        println!(
            "| {name} | {off:.4} | {on:.4} | {:+.1} % |",
            (on / off - 1.0) * 100.0
        );
    }
    print_windows_cost(&tags);
    print_bank_cost(dir.path(), &tags);
    print_corpus(dir.path());
}

/// Streams per core in the default mode with the media bank off and on (a check a second of
/// stream time against a bank of 100 clips of other footage: 3 s of the game of life each,
/// mirrored too, 1,200 reference frames), side by side, interleaved, the median of five runs.
fn print_bank_cost(dir: &Path, tags: &[(u32, Bytes)]) {
    let mut bank = MediaBank::default();
    for seed in 0..100 {
        let clip = dir.join(format!("bank-{seed}.mp4"));
        let source = format!(
            "life=size=160x90:rate=2:mold=10:ratio=0.1:seed={seed}:life_color=white:\
             death_color=#802010:mold_color=#205080,scale=640:360:flags=neighbor"
        );
        common::lavfi_clip(&clip, &source, 3, &["-r", "30"]);
        add_media(
            &mut bank,
            &format!("clip-{seed}"),
            &clip,
            "bench",
            2.0,
            true,
        )
        .expect("clip");
    }
    let path = dir.join("bench.hgb");
    hashgate::bank::file::save(&bank, &path).expect("bank");
    let banks = Banks::load(BankSettings {
        paths: vec![path],
        ..BankSettings::default()
    })
    .expect("bank");
    println!(
        "\n| media bank, 720p30, `hybrid`, 2 fps, {} reference frames | CPU s per stream-s | extra | streams per core |",
        bank.frames.len()
    );
    println!("|---|---|---|---|");
    let mut cpu: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..5 {
        for (runs, on) in cpu.iter_mut().zip([false, true]) {
            let settings = InspectSettings {
                max_blind: Duration::from_millis(1500),
                ..InspectSettings::default()
            };
            let r = run_checked(tags, settings, on.then_some(&banks));
            runs.push(r.cpu / SECONDS as f64);
        }
    }
    let median = |runs: &mut Vec<f64>| {
        runs.sort_by(f64::total_cmp);
        runs[2]
    };
    let base = median(&mut cpu[0]);
    for (runs, name) in cpu.iter_mut().zip(["off", "on, a check a second"]) {
        let each = median(runs);
        println!(
            "| {name} | {each:.4} | {:+.1} % | {:.1} |",
            (each / base - 1.0) * 100.0,
            1.0 / each
        );
    }
}

/// The picture views' cost: the windows (halves, quadrants, centre, seams; every view's
/// negative is only a lookup) and the colour planes of every sample, side by side with both
/// off, interleaved, the median of five runs each.
fn print_windows_cost(tags: &[(u32, Bytes)]) {
    println!(
        "\n| picture views, 720p30, `hybrid`, 2 fps | CPU s per stream-s | extra over neither | streams per core |"
    );
    println!("|---|---|---|---|");
    let blind = Duration::from_millis(1500);
    let settings = [
        ("neither", (false, false)),
        ("windows", (true, false)),
        ("windows and colour planes (default)", (true, true)),
    ];
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); settings.len()];
    for _ in 0..5 {
        for (runs, (_, views)) in cpu.iter_mut().zip(settings) {
            let mode = SamplingMode::default();
            runs.push(inspect_with(tags, mode, 2.0, blind, true, views).0 / SECONDS as f64);
        }
    }
    let median = |runs: &mut Vec<f64>| {
        runs.sort_by(f64::total_cmp);
        runs[2]
    };
    let base = median(&mut cpu[0]);
    for (runs, (name, _)) in cpu.iter_mut().zip(settings) {
        let each = median(runs);
        println!(
            "| {name} | {each:.4} | {:+.1} % | {:.1} |",
            (each / base - 1.0) * 100.0,
            1.0 / each
        );
    }
}
