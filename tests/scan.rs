//! `hashgate scan` on a synthetic re-stream: benign video, then a distinctive clip that stands in
//! for known content (its hashes made with `hashgate hash` into a list), then benign video again.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn ffmpeg(args: &[&str]) {
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .status()
        .expect("ffmpeg");
    assert!(status.success(), "ffmpeg {args:?}");
}

fn hashgate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hashgate"))
        .args(args)
        .output()
        .expect("hashgate")
}

/// (restream with the clip in the middle, benign-only video, list of the clip's hashes, config)
fn fixtures(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    require("ffmpeg");
    let p = |name: &str| dir.join(name).display().to_string();
    let enc = [
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-r", "30",
    ];
    let mut known = vec![
        "-f",
        "lavfi",
        "-i",
        "mandelbrot=size=640x360:rate=30",
        "-t",
        "3",
    ];
    known.extend(enc);
    let known_path = p("known.mp4");
    known.push(&known_path);
    ffmpeg(&known);
    let mut benign = vec![
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=640x360:rate=30",
        "-t",
        "6",
    ];
    benign.extend(enc);
    let benign_path = p("benign.mp4");
    benign.push(&benign_path);
    ffmpeg(&benign);
    // benign 0-2 s, known 2-5 s, benign again.
    let filter = "[0:v]trim=0:2,setpts=PTS-STARTPTS[a];[1:v]setpts=PTS-STARTPTS[b];[0:v]trim=2:4,setpts=PTS-STARTPTS[c];[a][b][c]concat=n=3:v=1[v]";
    let mut cat = vec![
        "-i",
        &benign_path,
        "-i",
        &known_path,
        "-filter_complex",
        filter,
        "-map",
        "[v]",
    ];
    cat.extend(enc);
    let restream = p("restream.mp4");
    cat.push(&restream);
    ffmpeg(&cat);

    let out = hashgate(&["hash", "--fps", "2", &known_path]);
    assert!(out.status.success());
    std::fs::write(dir.join("known.tsv"), &out.stdout).expect("list");
    std::fs::write(
        dir.join("scan.toml"),
        "[upstream]\nurl = \"rtmp://127.0.0.1:1/live\"\n[[lists]]\npath = \"known.tsv\"\nlabel = \"known-clips\"\n",
    )
    .expect("config");
    (
        PathBuf::from(restream),
        PathBuf::from(benign_path),
        dir.join("scan.toml"),
    )
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
fn serve_matches_a_live_restream_and_reaches_the_cut_policy() {
    let dir = temp_dir();
    let (restream, _benign, _config) = fixtures(dir.path());
    let nginx = Nginx::start(dir.path());
    let list = dir.path().join("known.tsv");
    let config = format!(
        "{}[[lists]]\npath = \"{}\"\nlabel = \"known-clips\"\n",
        upstream(&nginx.url()),
        list.display()
    );
    let hashgate = Hashgate::start(dir.path(), &config);
    publish_ok(
        ffmpeg_publish(&restream, &hashgate.url("restream")),
        std::time::Duration::from_secs(60),
    );
    wait_until(
        "the cut policy in the log",
        std::time::Duration::from_secs(10),
        || hashgate.log().contains("cut policy reached"),
    );
    let log = hashgate.log();
    let matches: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" match ") || l.ends_with(" match"))
        .collect();
    assert!(matches.len() >= 2, "{log}");
    assert!(
        matches
            .iter()
            .all(|l| l.contains("known-clips") && l.contains("key=restream")),
        "{log}"
    );
    assert!(log.contains("hash list loaded"), "{log}");
}
