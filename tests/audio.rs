//! Audio matching against real peers: fingerprints checked against `fpcalc`, and ffmpeg
//! publishing through hashgate into nginx-rtmp a re-stream whose picture no frame hash can see
//! (cropped 15 %, framed in a layout) but whose soundtrack is the known clip's.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::sound::*;
use common::*;
use hashgate::hash::chromaprint::{bit_error_rate, decode_compressed, parse_raw};

fn fpcalc(args: &[&str], file: &Path) -> String {
    require("fpcalc");
    let out = Command::new("fpcalc")
        .args(args)
        .arg(file)
        .output()
        .expect("fpcalc");
    // fpcalc 1.5 with FFmpeg 5 exits non-zero after printing a complete result ("Error
    // decoding audio frame (End of file)"): judge it by its output.
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("FINGERPRINT="),
        "fpcalc printed no fingerprint: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn fingerprint_line(text: &str) -> &str {
    text.lines()
        .find_map(|l| l.strip_prefix("FINGERPRINT="))
        .expect("a FINGERPRINT= line")
}

fn hashgate_items(file: &Path) -> Vec<u32> {
    let dir = file.parent().expect("dir");
    let list = dir.join("agreement.txt");
    audio_list(file, &list);
    let text = std::fs::read_to_string(&list).expect("list");
    parse_raw(fingerprint_line(&text)).expect("raw items")
}

#[test]
fn fingerprints_agree_with_fpcalc() {
    let dir = temp_dir();
    let soundtrack = known_soundtrack(dir.path());
    // The same samples: 11025 Hz mono, where neither resamples.
    let mono = dir.path().join("mono-11025.wav");
    ffmpeg(&[
        "-i",
        soundtrack.to_str().expect("utf-8"),
        "-ac",
        "1",
        "-ar",
        "11025",
        mono.to_str().expect("utf-8"),
    ]);
    let ours = hashgate_items(&mono);
    let theirs = parse_raw(fingerprint_line(&fpcalc(
        &["-raw", "-length", "600"],
        &mono,
    )))
    .expect("fpcalc -raw");
    assert!(ours.len() > 100, "{} items", ours.len());
    assert_eq!(ours, theirs, "sub-fingerprints differ from fpcalc -raw");
    // fpcalc's compressed form decodes to its raw one.
    let compressed = decode_compressed(fingerprint_line(&fpcalc(&["-length", "600"], &mono)))
        .expect("compressed");
    assert_eq!(compressed, theirs);
    // A 44.1 kHz stereo file: each side resamples with its own filter.
    let ours = hashgate_items(&soundtrack);
    let theirs = parse_raw(fingerprint_line(&fpcalc(
        &["-raw", "-length", "600"],
        &soundtrack,
    )))
    .expect("fpcalc -raw");
    let n = ours.len().min(theirs.len());
    let same = ours.iter().zip(&theirs).filter(|(a, b)| a == b).count();
    let ber = bit_error_rate(&ours[..n], &theirs[..n]);
    println!(
        "44.1 kHz stereo: {same}/{n} sub-fingerprints identical to fpcalc's, bit error rate {ber:.4}"
    );
    assert!(
        (ours.len() as i64 - theirs.len() as i64).abs() <= 2,
        "{} vs {} items",
        ours.len(),
        theirs.len()
    );
    assert!(ber < 0.05, "bit error rate against fpcalc {ber}");
}

struct Fixture {
    _dir: tempfile::TempDir,
    nginx: Nginx,
    hashgate: Hashgate,
    log: std::path::PathBuf,
    dir: std::path::PathBuf,
    soundtrack: std::path::PathBuf,
}

/// hashgate with a PDQ list of the known clip's frames and an audio list of its soundtrack
/// (made by `fpcalc` when `by_fpcalc`, in its compressed form; else by `hashgate hash --audio`).
fn fixture(by_fpcalc: bool, verdict: &str) -> Fixture {
    fixture_with(by_fpcalc, verdict, &[])
}

/// As `fixture`, the audio list made with `hash_args` (`--speeds ...`).
fn fixture_with(by_fpcalc: bool, verdict: &str, hash_args: &[&str]) -> Fixture {
    let dir = temp_dir();
    let path = dir.path().to_path_buf();
    let soundtrack = known_soundtrack(&path);
    let known = path.join("known.flv");
    clip_with_soundtrack(
        &known,
        &picture("mandelbrot"),
        "",
        &soundtrack,
        0.0,
        20.0,
        "128k",
    );
    let frame_list = path.join("known-frames.tsv");
    hash_list(&known, &frame_list);
    let audio = path.join("known-audio.txt");
    if by_fpcalc {
        let text = fpcalc(&["-length", "600"], &known);
        std::fs::write(&audio, format!("FILE=known.flv\n{text}")).expect("list");
    } else {
        audio_list_with(&known, &audio, hash_args);
    }
    let nginx = Nginx::start(&path);
    let log = path.join("events.jsonl");
    let hashgate = Hashgate::start(
        &path,
        &format!(
            "{}[[lists]]\npath = \"{}\"\n[[lists]]\npath = \"{}\"\nalgorithm = \"chromaprint\"\n[events]\nlog = \"{}\"\n[verdict]\n{verdict}",
            upstream(&nginx.url()),
            frame_list.display(),
            audio.display(),
            log.display()
        ),
    );
    Fixture {
        _dir: dir,
        nginx,
        hashgate,
        log,
        dir: path,
        soundtrack,
    }
}

#[test]
fn a_restream_no_frame_hash_can_see_is_cut_by_its_soundtrack() {
    for by_fpcalc in [false, true] {
        let f = fixture(by_fpcalc, "");
        // Its soundtrack from 3 s in, re-encoded to 48 kbit/s mono AAC.
        let all = publish_picture_proof(&f, "layout", 3.0, 14.0);
        let cut = of_kind(&all, "cut")[0];
        assert_eq!(cut["signal"], "audio", "{cut}");
        assert_eq!(cut["stream"], "layout");
        let ber = cut["ber"].as_f64().expect("ber");
        let stream_ms = cut["stream_ms"].as_i64().expect("stream_ms");
        println!(
            "lists by {}: cut at stream {stream_ms} ms, BER {ber}, clip offset {} s, latency {} ms",
            if by_fpcalc { "fpcalc" } else { "hashgate" },
            cut["clip_offset_s"],
            cut["latency_ms"]
        );
        assert!(ber <= hashgate::matcher::list::DEFAULT_MAX_BER);
        // Aligned where the re-stream's soundtrack starts: 3 s into the clip, or later.
        let offset = cut["clip_offset_s"].as_f64().expect("offset");
        assert!((2.5..12.0).contains(&offset), "clip offset {offset}");
        // Decided within min_seconds (5) + 1 s of the soundtrack reaching hashgate.
        assert!(stream_ms <= 6_000, "cut at stream {stream_ms} ms");
        let matches = of_kind(&all, "match");
        assert!(
            matches.iter().all(|m| m["signal"] == "audio"),
            "no frame of the layout should match: {matches:?}"
        );
        f.nginx.wait_closed("layout", Duration::from_secs(10));
        drop(f);
    }
}

/// The soundtrack through an FFmpeg audio filter, as a WAV file.
fn edited_soundtrack(f: &Fixture, name: &str, filter: &str) -> std::path::PathBuf {
    let out = f.dir.join(format!("{name}.wav"));
    ffmpeg(&[
        "-i",
        f.soundtrack.to_str().expect("utf-8"),
        "-af",
        filter,
        out.to_str().expect("utf-8"),
    ]);
    out
}

#[test]
fn a_soundtrack_sped_up_or_pitch_shifted_is_cut_by_references_at_other_speeds() {
    let f = fixture_with(false, "", &["--speeds", "0.90:1.10:0.01"]);
    let fast = edited_soundtrack(&f, "fast", "asetrate=47628,aresample=44100");
    let pitched = edited_soundtrack(&f, "pitched", "rubberband=pitch=1.059463");
    let mut publishers = Vec::new();
    // Beyond every frame hash (a turned tile of a layout), the soundtrack 8 % fast (pitch
    // up), or a semitone up at its own tempo; both from 3 s into the clip.
    for (name, audio) in [("fast", &fast), ("pitched", &pitched)] {
        let file = f.dir.join(format!("{name}.flv"));
        clip_with_soundtrack(&file, &in_layout("mandelbrot"), "", audio, 3.0, 14.0, "48k");
        publishers.push((name, ffmpeg_publish(&file, &f.hashgate.url(name))));
    }
    // Benign controls through the same list: the announcement in another voice, other words in
    // the known voice, music.
    for kind in ["samewords", "samevoice", "music"] {
        let audio = benign_soundtrack(&f.dir, kind);
        let file = f.dir.join(format!("benign-{kind}.flv"));
        clip_with_soundtrack(&file, &picture("testsrc2"), "", &audio, 0.0, 10.0, "64k");
        publishers.push((kind, ffmpeg_publish(&file, &f.hashgate.url(kind))));
    }
    for (name, mut p) in publishers {
        let status = p
            .wait_timeout(Duration::from_secs(60))
            .expect("publisher ended");
        let edited = name == "fast" || name == "pitched";
        assert_eq!(!status.success(), edited, "{name}: cut only if edited");
    }
    wait_until("the cut events", Duration::from_secs(10), || {
        of_kind(&read_events(&f.log), "cut").len() >= 2
    });
    let all = read_events(&f.log);
    for (name, speed_from, speed_to) in [("fast", 1.06, 1.10), ("pitched", 1.04, 1.08)] {
        let cut = of_kind(&all, "cut")
            .into_iter()
            .find(|c| c["stream"] == name)
            .unwrap_or_else(|| panic!("{name} was not cut: {all:?}"));
        assert_eq!(cut["signal"], "audio", "{cut}");
        // A reference at another speed lined up (as published, Chromaprint cannot).
        let speed = cut["speed"].as_f64().expect("speed");
        assert!((speed_from..=speed_to).contains(&speed), "{name}: {cut}");
        let stream_ms = cut["stream_ms"].as_i64().expect("stream_ms");
        println!(
            "{name}: cut at stream {stream_ms} ms by the reference at speed {speed}, BER {}",
            cut["ber"]
        );
        assert!(stream_ms <= 6_500, "{name}: cut at stream {stream_ms} ms");
    }
    let cuts = of_kind(&all, "cut");
    assert_eq!(cuts.len(), 2, "{cuts:?}");
    let benign_matches: Vec<_> = of_kind(&all, "match")
        .into_iter()
        .filter(|m| m["stream"] != "fast" && m["stream"] != "pitched")
        .collect();
    assert!(benign_matches.is_empty(), "{benign_matches:?}");
}

#[test]
fn an_audio_entry_that_floods_stops_cutting_short_sounds_but_not_a_soundtrack_playing_on() {
    let f = fixture(false, "flood_streams = 1\n");
    let publish = |name: &str, seconds: f64| {
        let file = f.dir.join(format!("{name}.flv"));
        clip_with_soundtrack(
            &file,
            &in_layout("mandelbrot"),
            "",
            &f.soundtrack,
            3.0,
            seconds,
            "48k",
        );
        ffmpeg_publish(&file, &f.hashgate.url(name))
    };
    let cut = |p: &mut Process| {
        !p.wait_timeout(Duration::from_secs(60))
            .expect("ended")
            .success()
    };
    // 7 s of the soundtrack: one sound, matched over overlapping windows only. The first
    // stream is cut; the second tips the entry over `flood_streams` (1), the third finds it
    // flooded: both only alert.
    assert!(cut(&mut publish("short1", 7.0)), "short1 is cut");
    let (mut two, mut three) = (publish("short2", 7.0), publish("short3", 7.0));
    assert!(
        !cut(&mut two) && !cut(&mut three),
        "a flooded entry must not cut"
    );
    let all = read_events(&f.log);
    assert_eq!(of_kind(&all, "flood").len(), 1, "{all:?}");
    // The soundtrack playing on: its first match only alerts, the one a whole window later
    // along the clip shows the clip and cuts.
    assert!(cut(&mut publish("long", 14.0)), "long is cut");
    wait_until("the cut event", Duration::from_secs(10), || {
        of_kind(&read_events(&f.log), "cut").len() >= 2
    });
    let all = read_events(&f.log);
    let cuts = of_kind(&all, "cut");
    let streams: Vec<_> = cuts.iter().map(|c| c["stream"].as_str()).collect();
    assert_eq!(streams, vec![Some("short1"), Some("long")], "{cuts:?}");
    let at = cuts[1]["stream_ms"].as_i64().expect("stream_ms");
    assert!((10_000..13_000).contains(&at), "cut at {at} ms");
    let alerted = of_kind(&all, "match")
        .into_iter()
        .filter(|m| m["stream"] == "long" && m["action"] == "alert")
        .count();
    assert!(alerted > 0, "the first matches of long only alert: {all:?}");
}

/// Publishes as `name` the known soundtrack from `from_s` seconds in, for `seconds`, under the
/// clip cropped 15 %, turned and shrunk into a tile of a layout (beyond every frame hash);
/// waits for the cut the broadcaster must see; returns every event.
fn publish_picture_proof(
    f: &Fixture,
    name: &str,
    from_s: f64,
    seconds: f64,
) -> Vec<serde_json::Value> {
    let restream = f.dir.join(format!("{name}.flv"));
    clip_with_soundtrack(
        &restream,
        &in_layout("mandelbrot"),
        "",
        &f.soundtrack,
        from_s,
        seconds,
        "48k",
    );
    let mut publisher = ffmpeg_publish(&restream, &f.hashgate.url(name));
    let status = publisher
        .wait_timeout(Duration::from_secs(60))
        .expect("publisher ended");
    assert!(
        !status.success(),
        "{name}: the broadcaster must see the cut"
    );
    wait_until("the cut event", Duration::from_secs(10), || {
        !of_kind(&read_events(&f.log), "cut").is_empty()
    });
    read_events(&f.log)
}

/// Publishes the known soundtrack from its start under a picture no frame hash sees, through
/// hashgate with `verdict`; returns the video tags the platform recorded.
fn aired_of_a_picture_proof_restream(verdict: &str) -> usize {
    let f = fixture(false, verdict);
    let all = publish_picture_proof(&f, "proof", 0.0, 12.0);
    assert_eq!(of_kind(&all, "cut")[0]["signal"], "audio", "{all:?}");
    f.nginx.wait_closed("proof", Duration::from_secs(20));
    let recording = f.nginx.recording("proof");
    if recording.exists() {
        flv_video_tags(&recording).len()
    } else {
        0
    }
}

#[test]
fn with_the_delay_waiting_for_audio_not_one_frame_of_a_picture_proof_restream_airs() {
    // The shipped 2 s delay: the audio cut (5 s into the clip) comes after the first seconds
    // aired. The contrast shows the recording would see them.
    let aired = aired_of_a_picture_proof_restream("");
    println!("delay 2 s: {aired} video tags aired");
    assert!(aired > 0, "with the shipped delay the first seconds air");
    // A delay past the audio decision time, waiting for audio inspection: nothing airs.
    let aired = aired_of_a_picture_proof_restream(
        "delay = \"7s\"\ndelay_waits_for = [\"video\", \"audio\"]\n",
    );
    println!("delay 7 s, waiting for audio: {aired} video tags aired");
    assert_eq!(aired, 0, "not one frame of the clip may reach the platform");
}

#[test]
fn audio_inspection_falling_behind_is_reported_and_never_cuts() {
    // One message of audio inbox, a burst faster than real time: inspection drops audio. That
    // is reported (once), but as an alert even with `on_audio_uninspectable = "cut"`: falling
    // behind is a capacity problem, not the broadcaster's doing.
    let f = fixture(
        false,
        "on_audio_uninspectable = \"cut\"\n[inspect]\naudio_queue = 1\n",
    );
    let audio = benign_soundtrack(&f.dir, "samevoice");
    let file = f.dir.join("burst.flv");
    clip_with_soundtrack(&file, &picture("testsrc2"), "", &audio, 0.0, 10.0, "64k");
    let publisher = Process::spawn(
        "ffmpeg burst publisher",
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-i"])
            .arg(&file)
            .args(["-c", "copy", "-f", "flv"])
            .arg(f.hashgate.url("burst"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped()),
    );
    publish_ok(publisher, Duration::from_secs(60));
    wait_until("the unpublish event", Duration::from_secs(20), || {
        !of_kind(&read_events(&f.log), "unpublish").is_empty()
    });
    let all = read_events(&f.log);
    assert!(of_kind(&all, "cut").is_empty(), "{all:?}");
    let behind: Vec<_> = of_kind(&all, "uninspectable")
        .into_iter()
        .filter(|e| {
            e["cause"]
                .as_str()
                .is_some_and(|c| c.contains("fell behind"))
        })
        .collect();
    assert_eq!(behind.len(), 1, "{all:?}");
    assert_eq!(behind[0]["action"], "alert", "{}", behind[0]);
}

#[test]
fn benign_speech_and_music_are_not_cut() {
    let f = fixture(false, "");
    let mut publishers = Vec::new();
    for kind in ["samewords", "samevoice", "music"] {
        let audio = benign_soundtrack(&f.dir, kind);
        let file = f.dir.join(format!("benign-{kind}.flv"));
        clip_with_soundtrack(&file, &picture("testsrc2"), "", &audio, 0.0, 10.0, "64k");
        publishers.push(ffmpeg_publish(&file, &f.hashgate.url(kind)));
    }
    for p in publishers {
        publish_ok(p, Duration::from_secs(60));
    }
    wait_until("the unpublish events", Duration::from_secs(10), || {
        of_kind(&read_events(&f.log), "unpublish").len() >= 3
    });
    let all = read_events(&f.log);
    assert!(of_kind(&all, "cut").is_empty(), "{all:?}");
    assert!(of_kind(&all, "match").is_empty(), "{all:?}");
}

#[test]
fn with_frames_an_audio_match_alone_does_not_cut() {
    let f = fixture(false, "audio = \"with_frames\"\n");
    let restream = f.dir.join("restream.flv");
    clip_with_soundtrack(
        &restream,
        &picture("testsrc2"),
        "",
        &f.soundtrack,
        3.0,
        10.0,
        "64k",
    );
    publish_ok(
        ffmpeg_publish(&restream, &f.hashgate.url("soundtrack")),
        Duration::from_secs(60),
    );
    wait_until("an audio match", Duration::from_secs(10), || {
        !of_kind(&read_events(&f.log), "match").is_empty()
    });
    let all = read_events(&f.log);
    assert!(of_kind(&all, "cut").is_empty(), "{all:?}");
    assert!(of_kind(&all, "match")
        .iter()
        .all(|m| m["signal"] == "audio"));
}

#[test]
fn scan_reports_audio_matches_on_the_timeline() {
    let dir = temp_dir();
    let soundtrack = known_soundtrack(dir.path());
    let known = dir.path().join("known.flv");
    clip_with_soundtrack(
        &known,
        &picture("mandelbrot"),
        "",
        &soundtrack,
        0.0,
        20.0,
        "128k",
    );
    let list = dir.path().join("known-audio.txt");
    audio_list(&known, &list);
    let restream = dir.path().join("restream.flv");
    clip_with_soundtrack(
        &restream,
        &picture("testsrc2"),
        "",
        &soundtrack,
        3.0,
        10.0,
        "48k",
    );
    let benign = dir.path().join("benign.flv");
    let other = benign_soundtrack(dir.path(), "samevoice");
    clip_with_soundtrack(&benign, &picture("testsrc2"), "", &other, 0.0, 10.0, "48k");
    let config = dir.path().join("scan.toml");
    std::fs::write(
        &config,
        format!(
            "[upstream]\nurl = \"rtmp://127.0.0.1:1/live\"\n[[lists]]\npath = \"{}\"\nalgorithm = \"chromaprint\"\n",
            list.display()
        ),
    )
    .expect("config");
    let scan = |file: &Path| hashgate_scan(&config, file, &[]);
    let text = scan(&restream);
    let cut = text
        .lines()
        .find_map(|l| l.strip_prefix("audio: CUT at "))
        .unwrap_or_else(|| panic!("no audio cut: {text}"));
    let at: f64 = cut.trim_end_matches('s').parse().expect("seconds");
    assert!(at <= 6.0, "audio cut at {at} s");
    assert!(text.contains("audio BER"), "{text}");
    let text = scan(&benign);
    assert!(text.contains("audio: no match"), "{text}");
}

#[test]
fn audio_inspection_cannot_decode_raises_an_event_and_the_video_goes_on() {
    let f = fixture(false, "");
    // Linear PCM in FLV (sound format 3): audio inspection does not decode it.
    let file = f.dir.join("pcm.flv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &picture("testsrc2"),
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=6",
        "-t",
        "6",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-g",
        "30",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "pcm_s16le",
        "-ar",
        "44100",
        "-f",
        "flv",
        file.to_str().expect("utf-8"),
    ]);
    publish_ok(
        ffmpeg_publish(&file, &f.hashgate.url("pcm")),
        Duration::from_secs(60),
    );
    wait_until("the unpublish event", Duration::from_secs(10), || {
        !of_kind(&read_events(&f.log), "unpublish").is_empty()
    });
    let all = read_events(&f.log);
    let reported = of_kind(&all, "uninspectable");
    assert_eq!(reported.len(), 1, "reported once: {all:?}");
    let cause = reported[0]["cause"].as_str().expect("cause");
    assert!(
        cause.starts_with("audio: ") && cause.contains("PCM"),
        "{cause}"
    );
    assert_eq!(reported[0]["action"], "alert");
    assert!(of_kind(&all, "cut").is_empty(), "{all:?}");
}
