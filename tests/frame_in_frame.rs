//! Frame-in-frame through the relay: a known clip re-streamed inside a static layout (a framed
//! player over a test card, 56 % of the frame) is cut before any of it reaches nginx-rtmp, and
//! the same layout with benign video in the player and a moving element beside it is not.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

/// `inner` (the whole re-stream or the benign clip) scaled to 480x270 inside a 640x360 test
/// card, in a white 4-pixel frame at (96, 46); with `moving`, a small clip also slides along
/// the bottom of the layout.
fn in_layout(dir: &Path, inner: &Path, name: &str, moving: bool) -> PathBuf {
    let out = dir.join(name);
    let slider = if moving {
        "[2:v]scale=80:40[s];[framed][s]overlay=x='mod(t*60,560)':y=325:shortest=1[v]"
    } else {
        "[framed]null[v]"
    };
    let filter = format!(
        "[0:v]scale=480:270,setpts=PTS-STARTPTS[in];\
         [1:v]drawbox=x=96:y=46:w=488:h=278:color=white:t=4[bg];\
         [bg][in]overlay=100:50:shortest=1[framed];{slider}"
    );
    let (inner, target) = (inner.display().to_string(), out.display().to_string());
    sound::ffmpeg(&[
        "-i",
        &inner,
        "-f",
        "lavfi",
        "-i",
        "smptebars=size=640x360:rate=30",
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=160x80:rate=30",
        "-filter_complex",
        &filter,
        "-map",
        "[v]",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-pix_fmt",
        "yuv420p",
        "-r",
        "30",
        "-g",
        "30",
        "-f",
        "flv",
        &target,
    ]);
    out
}

fn config(nginx: &Nginx, list: &Path, log: &Path, sampling: &str) -> String {
    format!(
        "{}[sampling]\n{sampling}[[lists]]\npath = \"{}\"\n[events]\nlog = \"{}\"\n",
        upstream(&nginx.url()),
        list.display(),
        log.display()
    )
}

/// What `hashgate scan --nearest` says of `video` with `config`.
fn scan(config: &Path, video: &Path) -> String {
    hashgate_scan(config, video, &["--nearest"])
}

/// Writes `contents` to `name` in `dir`.
fn config_file(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("config");
    path
}

#[test]
fn a_clip_inside_a_static_layout_is_cut_before_it_airs() {
    let dir = temp_dir();
    let clip = known_clip_fixture(dir.path());
    let layout = in_layout(dir.path(), &clip.restream, "layout.flv", false);
    let nginx = Nginx::start(dir.path());

    // Without frame-in-frame (and without the windows, whose seams also find a framed
    // player), hashing the whole frame and its letterbox crop sees nothing.
    let unused_log = dir.path().join("unused.jsonl");
    let off = config_file(
        dir.path(),
        "off.toml",
        &config(
            &nginx,
            &clip.list,
            &unused_log,
            "frame_in_frame = false\nwindows = false\n",
        ),
    );
    let without = scan(&off, &layout);
    assert!(without.contains("verdict: pass (no match"), "{without}");

    // With it (the default), through the relay with the shipped delay.
    let log = dir.path().join("events.jsonl");
    let hashgate = Hashgate::start(dir.path(), &config(&nginx, &clip.list, &log, ""));
    let mut publisher = ffmpeg_publish(&layout, &hashgate.url("reaction"));
    let status = publisher
        .wait_timeout(Duration::from_secs(30))
        .expect("publisher closed");
    assert!(!status.success(), "the layout with the clip must be cut");
    wait_until("the cut event", Duration::from_secs(10), || {
        !of_kind(&read_events(&log), "cut").is_empty()
    });
    let events = read_events(&log);
    let matches = of_kind(&events, "match");
    assert!(!matches.is_empty(), "cut by a match");
    println!("first match: {}", matches[0]);

    // The platform got nothing of the clip: at most the layout's benign start. (The clip comes
    // 2 s in, the shipped delay is 2 s: when the cut is quick, no video aired at all and nginx
    // recorded a file with no video in it.)
    nginx.wait_closed("reaction", Duration::from_secs(20));
    let recording = nginx.recording("reaction");
    if hashgate::inspect::file::decode_file(&recording, |_| {}).is_err() {
        println!("the recording has no video: nothing aired");
        return;
    }
    let on = config_file(
        dir.path(),
        "on.toml",
        &config(&nginx, &clip.list, &unused_log, ""),
    );
    let aired = scan(&on, &recording);
    println!("the recording: {aired}");
    assert!(aired.contains("verdict: pass (no match"), "{aired}");
}

#[test]
fn a_benign_layout_with_moving_content_is_not_cut() {
    let dir = temp_dir();
    let clip = known_clip_fixture(dir.path());
    let layout = in_layout(dir.path(), &clip.benign, "benign-layout.flv", true);
    let nginx = Nginx::start(dir.path());
    let log = dir.path().join("events.jsonl");
    let settings = config(&nginx, &clip.list, &log, "");
    let hashgate = Hashgate::start(dir.path(), &settings);
    publish_ok(
        ffmpeg_publish(&layout, &hashgate.url("calm-layout")),
        Duration::from_secs(60),
    );
    wait_until("the unpublish event", Duration::from_secs(10), || {
        !of_kind(&read_events(&log), "unpublish").is_empty()
    });
    let events = read_events(&log);
    assert!(of_kind(&events, "match").is_empty(), "{events:?}");
    assert!(of_kind(&events, "cut").is_empty(), "{events:?}");

    // The nearest any hash of it (whole, letterbox crop, inset) comes to the list leaves a
    // margin of more than 20 bits over the threshold (31).
    let file = config_file(dir.path(), "scan.toml", &settings);
    let report = scan(&file, &layout);
    let nearest: u32 = report
        .lines()
        .find_map(|l| l.strip_prefix("nearest: distance "))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|d| d.parse().ok())
        .expect("a nearest distance");
    println!("{report}");
    assert!(nearest > 31 + 20, "benign margin under 20 bits: {nearest}");
    // ...with the player found and hashed on at least half the sampled frames (the first has
    // no history; testsrc2's flat areas and the slider touching the frame move the rectangle).
    let (found, hashed): (u32, u32) = report
        .lines()
        .find_map(|l| l.strip_prefix("insets: found in "))
        .and_then(|rest| {
            let mut words = rest.split(' ');
            Some((words.next()?.parse().ok()?, words.nth(1)?.parse().ok()?))
        })
        .expect("an inset count");
    assert!(
        found * 2 >= hashed && found > 0,
        "insets in {found} of {hashed} frames"
    );
}
