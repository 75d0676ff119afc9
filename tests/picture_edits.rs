//! The picture edits re-uploaders make, through the relay into nginx-rtmp with the shipped
//! defaults and a hash-only list: a known clip (ffmpeg's mandelbrot zoom, 3 s, 2 s into a
//! stream of test footage) under each edit is cut with nothing of it recorded, and a benign
//! stream under the same edit (the same footage around the zoom at another point of the set: a
//! similar but different scene) plays through uncut.
//!
//! Each edit is applied to the whole stream, as a re-uploader's tool would. All the streams
//! are published at once to one hashgate: 16 streams of 360p.

mod common;
#[path = "common/steer.rs"]
mod steer;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::sound::ffmpeg;
use common::*;
use hashgate::hash::pdq::LumaImage;
use hashgate::inspect::file::decode_file;
use hashgate::matcher::list::ListSettings;
use hashgate::matcher::Matcher;

/// Moving footage for split screens: cellular automata, nothing like either scene.
const MOVING: &str = "cellauto=size=640x360:rate=30:rule=110:random_fill_ratio=0.5:seed=5";

/// (key, filtergraph from `[0:v]` to `[v]`).
fn edits() -> Vec<(&'static str, String)> {
    vec![
        ("negative", "[0:v]negate[v]".into()),
        ("contrast25", "[0:v]eq=contrast=0.25[v]".into()),
        (
            "colourplane",
            "[0:v]format=yuv444p,shuffleplanes=1:0:2,lutyuv=y=128[v]".into(),
        ),
        (
            "colourswap",
            "[0:v]format=yuv444p,shuffleplanes=1:0:2[v]".into(),
        ),
        (
            "split",
            format!("[0:v]scale=640:180[t];{MOVING},format=yuv420p,scale=640:180[b];[t][b]vstack=shortest=1[v]"),
        ),
        (
            "tiled",
            "[0:v]scale=320:180,split=4[a][b][c][d];[a][b]hstack[t];[c][d]hstack[u];[t][u]vstack[v]"
                .into(),
        ),
        (
            "mirrorpair",
            "[0:v]scale=320:360,split[a][b];[b]hflip[m];[a][m]hstack[v]".into(),
        ),
        (
            "blurfill",
            "[0:v]split[a][b];[b]gblur=sigma=20[bg];[a]scale=448:252[fg];[bg][fg]overlay=150:70[v]"
                .into(),
        ),
    ]
}

const ENCODE: [&str; 10] = [
    "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-r", "30", "-g", "30",
];

/// Test footage for 2 s, `scene` (a lavfi source) for 3 s, test footage for 2 s, as H.264.
fn stream_around(dir: &Path, scene: &str, name: &str) -> PathBuf {
    let out = dir.join(name);
    let graph = format!(
        "testsrc2=size=640x360:rate=30,trim=0:4,setpts=PTS-STARTPTS,split[f0][f1];\
         [f0]trim=0:2,setpts=PTS-STARTPTS[a];{scene},trim=0:3,setpts=PTS-STARTPTS[b];\
         [f1]trim=2:4,setpts=PTS-STARTPTS[c];[a][b][c]concat=n=3:v=1[v]"
    );
    let mut args = vec!["-filter_complex", &graph, "-map", "[v]", "-crf", "18"];
    args.extend(ENCODE);
    let target = out.display().to_string();
    args.push(&target);
    ffmpeg(&args);
    out
}

/// `input` through `graph`, as FLV for publishing.
fn edited(input: &Path, graph: &str, out: &Path) {
    let (input, target) = (input.display().to_string(), out.display().to_string());
    let mut args = vec!["-i", &input, "-filter_complex", graph, "-map", "[v]"];
    args.extend(ENCODE);
    args.extend(["-f", "flv", &target]);
    ffmpeg(&args);
}

#[test]
fn every_edit_of_the_clip_is_cut_before_it_airs_and_benign_streams_so_edited_pass() {
    require("ffmpeg");
    let dir = temp_dir();
    let known = "mandelbrot=size=640x360:rate=30";
    let similar = "mandelbrot=size=640x360:rate=30:start_x=-0.1011:start_y=0.9563";
    let clip = dir.path().join("known.mp4");
    lavfi_clip(&clip, known, 3, &["-r", "30"]);
    let list = dir.path().join("known.tsv");
    hash_list(&clip, &list);
    let restream = stream_around(dir.path(), known, "restream.mp4");
    let benign = stream_around(dir.path(), similar, "benign.mp4");

    let mut files = Vec::new();
    for (key, graph) in edits() {
        let clip_file = dir.path().join(format!("{key}.flv"));
        edited(&restream, &graph, &clip_file);
        let benign_file = dir.path().join(format!("benign-{key}.flv"));
        edited(&benign, &graph, &benign_file);
        files.push((key.to_owned(), clip_file, true));
        files.push((format!("benign-{key}"), benign_file, false));
    }

    let nginx = Nginx::start(dir.path());
    let log = dir.path().join("events.jsonl");
    let config = format!(
        "{}[[lists]]\npath = \"{}\"\n[events]\nlog = \"{}\"\n",
        upstream(&nginx.url()),
        list.display(),
        log.display()
    );
    let hashgate = Hashgate::start(dir.path(), &config);
    let keyed: Vec<(String, PathBuf)> = files
        .iter()
        .map(|(k, f, _)| (k.clone(), f.clone()))
        .collect();
    let outcomes = publish_all(&keyed, &hashgate, &nginx, &log);
    let matcher = Matcher::load(vec![ListSettings::for_path(&list)]).expect("list");
    let mut failures = Vec::new();
    for (published, (_, _, is_clip)) in outcomes.iter().zip(&files) {
        let (key, status, recording) = (&published.key, published.status, &published.recording);
        let cut = !published.of("cut").is_empty();
        let view = published
            .of("match")
            .first()
            .map(|m| format!("{} {}", m["view"], m["negative"]))
            .unwrap_or_default();
        let (seconds, frames, flagged) =
            hashgate::demo::count_flagged(recording, &matcher).expect("the platform's recording");
        println!(
            "{key}: cut {cut} ({view}); publisher {status}; the platform recorded {frames} frames \
             ({seconds:.2} s), {flagged} matching the list"
        );
        // The test footage before the clip (60 frames) reaches the platform; the clip must not.
        if *is_clip && (!cut || status.success() || flagged > 0 || !(1..90).contains(&frames)) {
            failures.push(format!("{key}: not cut before it aired"));
        }
        if !*is_clip && (cut || !status.success() || frames < 200) {
            failures.push(format!(
                "{key}: a benign stream was cut or not recorded whole"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:?}\n{}", hashgate.log());
}

/// `frame` mirrored left to right.
fn mirror(frame: &LumaImage) -> LumaImage {
    let w = frame.width;
    let pixels = frame
        .pixels
        .chunks(w)
        .flat_map(|row| row.iter().rev().copied())
        .collect();
    LumaImage { pixels, ..*frame }
}

/// Every frame of `video`, as luma.
fn frames_of(video: &Path) -> Vec<LumaImage> {
    let mut frames = Vec::new();
    decode_file(video, |f| frames.push(f.luma)).expect("decode");
    frames
}

/// `frames` (full-range grey) as H.264 at CRF 23 in FLV: what the platform's viewers get.
fn encode_grey(frames: &[LumaImage], out: &Path) {
    use std::io::Write;
    let (w, h) = (frames[0].width, frames[0].height);
    let mut child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo"])
        .args([
            "-pix_fmt",
            "gray",
            "-s",
            &format!("{w}x{h}"),
            "-r",
            "30",
            "-i",
            "-",
        ])
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-g", "30",
        ])
        .args(["-pix_fmt", "yuvj420p", "-f", "flv"])
        .arg(out)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("ffmpeg");
    let mut stdin = child.stdin.take().expect("stdin");
    for f in frames {
        let bytes: Vec<u8> = f.pixels.iter().map(|v| v.clamp(0.0, 255.0) as u8).collect();
        stdin.write_all(&bytes).expect("frames to ffmpeg");
    }
    drop(stdin);
    assert!(child.wait().expect("ffmpeg").success());
}

#[test]
fn a_clip_steered_off_its_hashes_is_cut_on_its_sure_bits() {
    require("ffmpeg");
    let dir = temp_dir();
    let clip = dir.path().join("known.mp4");
    lavfi_clip(&clip, "mandelbrot=size=640x360:rate=30", 3, &["-r", "30"]);
    let filler = dir.path().join("filler.mp4");
    lavfi_clip(&filler, "testsrc2=size=640x360:rate=30", 2, &["-r", "30"]);
    let list = dir.path().join("known.tsv");
    hash_list(&clip, &list);

    // 2 s of test footage, then every frame of the clip with its 72 coefficients nearest the
    // median pushed 0.2 of the median distance across it: invisible, and after x264 it slips
    // past a comparison of all 256 bits.
    let mut frames = frames_of(&filler);
    frames.extend(frames_of(&clip).iter().map(|f| steer::attack(f, 72, 0.2)));
    let steered = dir.path().join("steered.flv");
    encode_grey(&frames, &steered);

    let nginx = Nginx::start(dir.path());
    let unused = dir.path().join("unused.jsonl");
    let plain = dir.path().join("plain.toml");
    std::fs::write(
        &plain,
        format!(
            "{}[[lists]]\npath = \"{}\"\nweak_margin = 0.0\n[events]\nlog = \"{}\"\n",
            upstream(&nginx.url()),
            list.display(),
            unused.display()
        ),
    )
    .expect("config");
    let without = hashgate_scan(&plain, &steered, &[]);
    assert!(
        without.contains("verdict: pass"),
        "the attack must evade a comparison of all 256 bits: {without}"
    );

    // The attacker who read this test mirrors the clip first and steers the mirrored
    // picture's own hash: the sure bits are compared mirrored too.
    let mut frames = frames_of(&filler);
    frames.extend(
        frames_of(&clip)
            .iter()
            .map(|f| steer::attack(&mirror(f), 72, 0.2)),
    );
    let mirrored = dir.path().join("mirrored.flv");
    encode_grey(&frames, &mirrored);
    let without = hashgate_scan(&plain, &mirrored, &[]);
    assert!(
        without.contains("verdict: pass"),
        "mirrored and steered, the clip must evade all 256 bits: {without}"
    );
    let defaults = dir.path().join("defaults.toml");
    std::fs::write(
        &defaults,
        format!(
            "{}[[lists]]\npath = \"{}\"\n[events]\nlog = \"{}\"\n",
            upstream(&nginx.url()),
            list.display(),
            unused.display()
        ),
    )
    .expect("config");
    let with = hashgate_scan(&defaults, &mirrored, &[]);
    assert!(
        with.contains("verdict: CUT"),
        "mirrored and steered, the clip must be cut on its mirrored sure bits: {with}"
    );

    let log = dir.path().join("events.jsonl");
    let config = format!(
        "{}[[lists]]\npath = \"{}\"\n[events]\nlog = \"{}\"\n",
        upstream(&nginx.url()),
        list.display(),
        log.display()
    );
    let hashgate = Hashgate::start(dir.path(), &config);
    let mut publisher = ffmpeg_publish(&steered, &hashgate.url("steered"));
    let status = publisher
        .wait_timeout(Duration::from_secs(30))
        .expect("publisher finished");
    assert!(!status.success(), "the steered clip must be cut");
    wait_until("the cut event", Duration::from_secs(10), || {
        read_events(&log)
            .iter()
            .any(|e| e["stream"] == "steered" && e["event"] == "cut")
    });
    nginx.wait_closed("steered", Duration::from_secs(20));
    let matcher = Matcher::load(vec![ListSettings::for_path(&list)]).expect("list");
    let (seconds, frames, flagged) =
        hashgate::demo::count_flagged(&nginx.recording("steered"), &matcher)
            .expect("the platform's recording");
    println!(
        "steered: the platform recorded {frames} frames ({seconds:.2} s), {flagged} of the clip"
    );
    assert_eq!(flagged, 0, "frames of the clip reached the platform");
    assert!(
        (1..70).contains(&frames),
        "the test footage before the clip aired, the clip (from frame 60) not: {frames} frames"
    );
}
