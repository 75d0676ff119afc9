//! `hashgate scan` on a synthetic re-stream: benign video, then a distinctive clip that stands in
//! for known content (its hashes made with `hashgate hash` into a list), then benign video again.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn hashgate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hashgate"))
        .args(args)
        .output()
        .expect("hashgate")
}

fn fixtures(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let f = known_clip_fixture(dir);
    std::fs::write(
        dir.join("scan.toml"),
        "[upstream]\nurl = \"rtmp://127.0.0.1:1/live\"\n[[lists]]\npath = \"known.tsv\"\nlabel = \"known-clips\"\n",
    )
    .expect("config");
    (f.restream, f.benign, dir.join("scan.toml"))
}

#[test]
fn scan_finds_the_clip_and_passes_benign_video() {
    let dir = temp_dir();
    let (restream, benign, config) = fixtures(dir.path());
    let config = config.display().to_string();

    let out = hashgate(&["scan", "--config", &config, &restream.display().to_string()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cut_line = text.lines().last().expect("verdict line");
    assert!(cut_line.starts_with("verdict: CUT at"), "{text}");
    let cut_at: f64 = cut_line["verdict: CUT at ".len()..]
        .split('s')
        .next()
        .expect("time")
        .parse()
        .expect("seconds");
    // The clip starts at 2 s; at 2 fps the second matching frame is 0.5 s later.
    assert!((2.0..=3.1).contains(&cut_at), "cut at {cut_at} s: {text}");
    let first_match: f64 = text
        .lines()
        .next()
        .expect("timeline")
        .trim()
        .split('s')
        .next()
        .expect("t")
        .parse()
        .expect("seconds");
    assert!((1.9..=2.6).contains(&first_match), "{text}");
    assert!(text.contains("known-clips"), "{text}");

    let out = hashgate(&["scan", "--config", &config, &benign.display().to_string()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("verdict: pass (no match"), "{text}");

    let out = hashgate(&[
        "scan",
        "--config",
        &config,
        "--fps",
        "0.5,1,2,4",
        &restream.display().to_string(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.starts_with("| 0.5")
                || l.starts_with("| 1 ")
                || l.starts_with("| 2 ")
                || l.starts_with("| 4 ")
        })
        .collect();
    assert_eq!(rows.len(), 4, "{text}");
    // Every rate finds the 3 s clip.
    assert!(
        rows.iter()
            .all(|r| !r.split('|').nth(3).unwrap_or("-").trim().starts_with('-')),
        "{text}"
    );
}

#[test]
fn bundled_samples_scan_as_documented() {
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let config = samples.join("demo.toml").display().to_string();
    let out = hashgate(&[
        "scan",
        "--config",
        &config,
        &samples.join("flagged.flv").display().to_string(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .last()
            .is_some_and(|l| l.starts_with("verdict: CUT at 2.")),
        "{text}"
    );
    let out = hashgate(&[
        "scan",
        "--config",
        &config,
        &samples.join("benign.flv").display().to_string(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("verdict: pass (no match"), "{text}");
}
