//! Cut latency, end to end with real peers: ffmpeg publishes (in real time) a re-stream with a
//! known clip starting 2 s in, through hashgate, to nginx-rtmp. For each sampling rate and mode:
//! the time from the clip's first frame reaching hashgate to the cut (p50/p95 over several runs;
//! the stream's start is the `publish` event, the clip arrives 2 s later), the part of that spent
//! after the first matching frame (`latency_ms` of the `cut` event), and how many seconds of the
//! clip reached the platform with no delay buffer and with the delay set to that p95.
//!
//! Run with `bench/cut_latency.sh [RUNS]`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

fn at(event: &serde_json::Value) -> Option<std::time::SystemTime> {
    humantime::parse_rfc3339(event["at"].as_str()?).ok()
}

/// One run: (clip start to cut ms, first match to cut ms, seconds of the clip the platform
/// recorded).
fn run(
    dir: &Path,
    nginx: &Nginx,
    clip: &KnownClip,
    fps: f64,
    mode: &str,
    delay_ms: u64,
    key: &str,
) -> Option<(u64, u64, f64)> {
    let log = dir.join(format!("events-{key}.jsonl"));
    // The coverage bound must allow the sampling interval (random sample points: over two
    // intervals apart, the config's `min_blind_bound`) and, in keyframes mode, the 1 s GOP;
    // otherwise the stream is cut as uninspectable before the clip, which is not what this
    // measures.
    let shortest = hashgate::inspect::sampler::min_blind_bound(fps).map_or(0, |d| d.as_millis());
    let blind_ms = ((2000.0 / fps) as u64 + 500).max(shortest as u64);
    let config = format!(
        "{}[[lists]]\npath = \"{}\"\n[sampling]\nfps = {fps}\nmode = \"{mode}\"\n[events]\nlog = \"{}\"\n[verdict]\ndelay = \"{delay_ms}ms\"\ncooldown = \"0s\"\nmax_blind = \"{blind_ms}ms\"\nmax_blind_degraded = \"{}ms\"\n",
        upstream(&nginx.url()),
        clip.list.display(),
        log.display(),
        blind_ms.max(4000)
    );
    let hashgate = Hashgate::start(dir, &config);
    let mut publisher = ffmpeg_publish(&clip.restream, &hashgate.url(key));
    publisher.wait_timeout(Duration::from_secs(30));
    for _ in 0..100 {
        if read_events(&log).iter().any(|e| e["event"] == "unpublish") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let all = read_events(&log);
    let cut = all.iter().find(|e| e["event"] == "cut")?.clone();
    let publish = all.iter().find(|e| e["event"] == "publish")?;
    let since_publish = at(&cut)?.duration_since(at(publish)?).ok()?.as_millis() as u64;
    let from_clip = since_publish.saturating_sub((CLIP_START_S * 1000.0) as u64);
    nginx.wait_closed(key, Duration::from_secs(20));
    // A recording nginx never got a frame for cannot even be opened: nothing aired.
    let until = try_packets(&nginx.recording(key))
        .unwrap_or_default()
        .iter()
        .filter(|p| p.stream == 0)
        .map(|p| p.pts)
        .max()
        .unwrap_or(0) as f64
        / 1000.0;
    Some((
        from_clip,
        cut["latency_ms"].as_u64()?,
        (until - CLIP_START_S).max(0.0),
    ))
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let runs: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().expect("tmp");
    let clip = known_clip_fixture(dir.path());
    let nginx = Nginx::start(dir.path());
    println!("cut latency ({runs} runs each; clip from {CLIP_START_S} s; keyframe every 1 s)\n");
    println!("| mode | fps | clip start → cut p50 ms | p95 ms | first match → cut p50 ms | clip s aired, delay 0 (max) | delay | clip s aired with it |");
    println!("|---|---|---|---|---|---|---|---|");
    let mut n = 0;
    for mode in ["all", "keyframes"] {
        for fps in [0.5, 1.0, 2.0, 4.0] {
            let (mut latencies, mut detection, mut aired) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..runs {
                n += 1;
                if let Some((from_clip, from_match, seconds)) =
                    run(dir.path(), &nginx, &clip, fps, mode, 0, &format!("r{n}"))
                {
                    latencies.push(from_clip);
                    detection.push(from_match);
                    aired.push(seconds);
                }
            }
            if latencies.is_empty() {
                println!("| {mode} | {fps} | no cut | | | | | |");
                continue;
            }
            latencies.sort_unstable();
            detection.sort_unstable();
            let p95 = percentile(&latencies, 0.95);
            n += 1;
            // Held for the measured p95 from the clip's start, plus 100 ms of slack.
            let delay = p95 + 100;
            let with_delay = run(
                dir.path(),
                &nginx,
                &clip,
                fps,
                mode,
                delay,
                &format!("r{n}"),
            )
            .map(|(_, _, s)| s);
            let max_aired = aired.iter().cloned().fold(0.0, f64::max);
            println!(
                "| {mode} | {fps} | {} | {p95} | {} | {max_aired:.2} | {delay} ms | {} |",
                percentile(&latencies, 0.5),
                percentile(&detection, 0.5),
                with_delay.map_or("no cut".into(), |s| format!("{s:.2}"))
            );
        }
    }
}
