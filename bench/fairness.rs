//! Fairness: a flagged stream's verdict must not wait behind other streams. Through hashgate
//! (shipped defaults) into nginx-rtmp, the flagged sample is published alone, then alongside
//! N benign 720p30 streams and two streams whose SPS claims a huge picture for 640x360 frames
//! (8192x8192: over `inspect.max_pixels`; 3840x2160: under it, so FFmpeg conceals a 4K picture
//! per frame, at many times the cost). For each setting, several runs: from the clip's first
//! frame (2 s into the stream) to the broadcaster seeing the cut, p50 and p95, and the ratio of
//! the p95 to the p95 alone.
//!
//! Run with `bench/fairness.sh [RUNS] [N]`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::attacks::*;
use common::crafted::*;
use common::*;

/// The picture size two costly publishers' SPS claims, if there are any.
type Claim = Option<(u32, u32)>;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn benign_720p(dir: &Path) -> PathBuf {
    let path = dir.join("benign-720p.flv");
    lavfi_clip(
        &path,
        "testsrc2=size=1280x720:rate=30",
        20,
        &["-g", "60", "-f", "flv"],
    );
    path
}

/// One setting: `n` benign 720p publishers and two heavy ones claiming `claim`, then `runs`
/// flagged publishes; returns the clip-start-to-cut seconds of each.
fn setting(dir: &Path, runs: usize, n: usize, claim: Option<(u32, u32)>, label: &str) -> Vec<f64> {
    let nginx = Nginx::start(dir);
    let log = dir.join(format!("events-{label}.jsonl"));
    let hashgate = Hashgate::start(
        dir,
        &format!(
            "{}[[lists]]\npath = \"{}\"\n[events]\nlog = \"{}\"\n",
            upstream(&nginx.url()),
            sample("flagged.pdq").display(),
            log.display()
        ),
    );
    let load = (n > 0).then(|| {
        Process::spawn(
            "benign publishers",
            Command::new(env!("CARGO_BIN_EXE_hashgate"))
                .arg("replay")
                .arg(benign_720p(dir))
                .arg(hashgate.url("load"))
                .args(["--count", &n.to_string(), "--loop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
    });
    let port = hashgate.port;
    let heavies: Vec<_> = claim
        .map(|(w, h)| {
            let tags = declaring_size(&benign(), w, h);
            (0..2)
                .map(|i| {
                    let tags = tags.clone();
                    std::thread::spawn(move || {
                        // Looped for as long as the runs take (the key is refused after a cut).
                        for round in 0..30 {
                            publish(
                                port,
                                &format!("heavy-{i}-{round}"),
                                &paced(&tags),
                                Duration::ZERO,
                            );
                        }
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    std::thread::sleep(Duration::from_secs(3));
    let mut out = Vec::new();
    for run in 0..runs {
        let published = publish(
            port,
            &format!("flagged-{label}-{run}"),
            &paced(&flagged()),
            Duration::from_secs(3),
        );
        match published.ending {
            Ending::Refused { .. } => {
                let seen = published
                    .ended
                    .duration_since(published.started)
                    .as_secs_f64();
                out.push(seen - 2.0);
            }
            other => eprintln!("{label} run {run}: not cut: {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let levels = hashgate.log().matches("sampling level changed").count();
    let shed = hashgate
        .log()
        .matches("over inspect.max_stream_cost")
        .count();
    eprintln!("{label}: pool level changes {levels}, streams shed for cost {shed}");
    drop(load);
    drop(heavies);
    out
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    let n: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(8);
    require("ffmpeg");
    let dir = temp_dir();
    let mut rows = Vec::new();
    let settings: [(&str, usize, Claim); 3] = [
        ("flagged stream alone", 0, None),
        (
            "+ N benign 720p + 2 claiming 8192x8192",
            n,
            Some((8192, 8192)),
        ),
        (
            "+ N benign 720p + 2 claiming 3840x2160",
            n,
            Some((3840, 2160)),
        ),
    ];
    let mut alone_p95 = None;
    for (i, (name, n, claim)) in settings.into_iter().enumerate() {
        let sub = dir.path().join(format!("s{i}"));
        std::fs::create_dir_all(&sub).expect("dir");
        let mut seconds = setting(&sub, runs, n, claim, &format!("s{i}"));
        seconds.sort_by(f64::total_cmp);
        if seconds.is_empty() {
            rows.push(format!("| {name} | {n} | 0/{runs} cut | - | - | - |"));
            continue;
        }
        let (p50, p95) = (percentile(&seconds, 0.5), percentile(&seconds, 0.95));
        let base = *alone_p95.get_or_insert(p95);
        rows.push(format!(
            "| {name} | {n} | {}/{runs} | {:.0} | {:.0} | {:.2}x |",
            seconds.len(),
            p50 * 1000.0,
            p95 * 1000.0,
            p95 / base
        ));
    }
    println!("| setting | N | cut | clip start → cut p50 ms | p95 ms | p95 / alone |");
    println!("|---|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
}
