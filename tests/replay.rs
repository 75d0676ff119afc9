//! `hashgate replay`: the bundled samples published with the project's own RTMP client, through
//! hashgate, into nginx-rtmp.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::*;

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("samples")
        .join(name)
}

fn replay(args: &[&str]) -> Output {
    Command::new("timeout")
        .arg("60")
        .arg(env!("CARGO_BIN_EXE_hashgate"))
        .arg("replay")
        .args(args)
        .output()
        .expect("run hashgate replay")
}

/// The same frames (bytes, order, composition offsets and spacing) as `source`, timestamps
/// within `tolerance_ms` (a remuxed file's time base rounds differently from FLV's milliseconds).
/// A replay starts the timeline at the earliest decoding time, so the sample's B-frame offset
/// below zero shows up as one constant shift.
fn assert_same_frames_within(source: &Path, recording: &Path, tolerance_ms: i64) {
    let (want, got) = (packets(source), packets(recording));
    let stream = |all: &[Packet], index: u32| -> Vec<Packet> {
        all.iter().filter(|p| p.stream == index).cloned().collect()
    };
    // Interleaving across streams is the demuxer's business; each stream must arrive whole.
    let shift = stream(&got, 0)[0].dts - stream(&want, 0)[0].dts;
    assert!((0..=100).contains(&shift), "shift {shift} ms");
    for index in [0, 1] {
        let (want, got) = (stream(&want, index), stream(&got, index));
        assert!(!want.is_empty());
        assert_eq!(
            got.len(),
            want.len(),
            "stream {index}: packet count differs"
        );
        for (i, (w, g)) in want.iter().zip(&got).enumerate() {
            assert_eq!(
                (w.size, &w.md5),
                (g.size, &g.md5),
                "stream {index} packet {i} differs"
            );
            let off = |a: i64, b: i64| (a + shift - b).abs();
            assert!(
                off(w.dts, g.dts) <= tolerance_ms && off(w.pts, g.pts) <= tolerance_ms,
                "stream {index} packet {i}: timestamps {:?} vs {:?} (shift {shift})",
                (w.dts, w.pts),
                (g.dts, g.pts)
            );
        }
    }
}

fn assert_same_frames(source: &Path, recording: &Path) {
    assert_same_frames_within(source, recording, 0);
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn replayed_sample_arrives_complete_through_hashgate() {
    let dir = temp_dir();
    let nginx = Nginx::start(dir.path());
    let hashgate = Hashgate::start(dir.path(), &upstream(&nginx.url()));
    let benign = sample("benign.flv");
    let benign_arg = benign.to_str().expect("path");
    let out = replay(&[benign_arg, &hashgate.url("benign"), "--linger", "0s"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "one summary line: {stdout}");
    let sent = stdout
        .strip_prefix("benign: complete, ")
        .and_then(|s| s.strip_suffix(" s sent\n"));
    assert!(
        sent.is_some_and(|s| s == "8.0" || s == "8.1"),
        "the whole 8 s sample: {stdout}"
    );
    nginx.wait_closed("benign", Duration::from_secs(15));
    assert_same_frames(&benign, &nginx.recording("benign"));
}

#[test]
fn concurrent_publishers_as_fast_as_possible_each_arrive_complete() {
    let dir = temp_dir();
    let nginx = Nginx::start(dir.path());
    let hashgate = Hashgate::start(dir.path(), &upstream(&nginx.url()));
    let benign = sample("benign.flv");
    let out = replay(&[
        benign.to_str().expect("path"),
        &hashgate.url("many"),
        "--count",
        "3",
        "--as-fast-as-possible",
        "--linger",
        "0s",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("3 publishers: 3 complete, 0 cut or refused, 0 failed"),
        "{}",
        text(&out.stdout)
    );
    for i in 0..3 {
        let key = format!("many-{i}");
        nginx.wait_closed(&key, Duration::from_secs(15));
        assert_same_frames(&benign, &nginx.recording(&key));
    }
}

#[test]
fn flagged_sample_is_cut_and_replay_says_so() {
    let dir = temp_dir();
    let nginx = Nginx::start(dir.path());
    let hashgate = Hashgate::start(
        dir.path(),
        &format!(
            "{}[[lists]]\npath = \"{}\"\nlabel = \"demo\"\n",
            upstream(&nginx.url()),
            sample("flagged.pdq").display()
        ),
    );
    let flagged = sample("flagged.flv");
    let out = replay(&[flagged.to_str().expect("path"), &hashgate.url("flagged")]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.starts_with("flagged: cut by the server at ")
            && stdout.contains("NetStream.Publish.Rejected")
            && stdout.contains("demo"),
        "{stdout}"
    );
    // The clip starts at 2 s; the cut comes within seconds of it, long before the file's end.
    let at: f64 = stdout
        .split("cut by the server at ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .expect("cut time");
    assert!((2.0..6.0).contains(&at), "{stdout}");

    // The key is blocked now: a second replay is refused at publish.
    let out = replay(&[flagged.to_str().expect("path"), &hashgate.url("flagged")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stdout).starts_with("flagged: refused by the server"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn unusable_files_fail_with_one_line_before_connecting() {
    let dir = temp_dir();
    let junk = dir.path().join("junk.mp4");
    std::fs::write(&junk, b"not a video at all").expect("write");
    // Nothing listens on port 9: a file error must come before any connection attempt.
    let out = replay(&[junk.to_str().expect("path"), "rtmp://127.0.0.1:9/live/k"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("junk.mp4") && stderr.trim_end().lines().count() == 1,
        "{stderr}"
    );

    let mpeg4 = dir.path().join("mpeg4.mkv");
    lavfi_clip(
        &mpeg4,
        "testsrc2=size=160x120:rate=10",
        1,
        &["-c:v", "mpeg4"],
    );
    let out = replay(&[mpeg4.to_str().expect("path"), "rtmp://127.0.0.1:9/live/k"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("H.264 only"),
        "{}",
        text(&out.stderr)
    );

    let out = replay(&[
        sample("benign.flv").to_str().expect("path"),
        "rtmp://127.0.0.1:9/live",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("app/KEY"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn mp4_and_mkv_files_replay_frame_for_frame() {
    let dir = temp_dir();
    let nginx = Nginx::start(dir.path());
    let hashgate = Hashgate::start(dir.path(), &upstream(&nginx.url()));
    for container in ["mp4", "mkv"] {
        let file = dir.path().join(format!("benign.{container}"));
        let status = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
            .arg(sample("benign.flv"))
            .args(["-c", "copy"])
            .arg(&file)
            .status()
            .expect("ffmpeg remux");
        assert!(status.success());
        let out = replay(&[
            file.to_str().expect("path"),
            &hashgate.url(container),
            "--as-fast-as-possible",
            "--linger",
            "0s",
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        nginx.wait_closed(container, Duration::from_secs(15));
        // Compared with the file it was remuxed from: the same frames arrive.
        assert_same_frames_within(&sample("benign.flv"), &nginx.recording(container), 1);
    }
}
