//! The verdict against real peers: ffmpeg publishes a re-stream with a known clip in the middle
//! (a synthetic stand-in, hashed into a list by the test) through hashgate to nginx-rtmp.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

fn config(nginx: &Nginx, clip: &KnownClip, log: &Path, verdict: &str) -> String {
    format!(
        "{}[[lists]]\npath = \"{}\"\nlabel = \"known-clips\"\n[events]\nlog = \"{}\"\n[verdict]\n{verdict}",
        upstream(&nginx.url()),
        clip.list.display(),
        log.display()
    )
}

/// Seconds of the last video packet in a recording.
fn recorded_until(recording: &Path) -> f64 {
    packets(recording)
        .iter()
        .filter(|p| p.stream == 0)
        .map(|p| p.pts)
        .max()
        .unwrap_or(0) as f64
        / 1000.0
}

#[test]
fn known_clip_is_cut_recorded_and_its_key_blocked() {
    let dir = temp_dir();
    let clip = known_clip_fixture(dir.path());
    let nginx = Nginx::start(dir.path());
    let log = dir.path().join("events.jsonl");
    let hashgate = Hashgate::start(
        dir.path(),
        &config(&nginx, &clip, &log, "cooldown = \"10m\"\ndelay = \"0s\"\n").replace(
            "[events]\n",
            &format!(
                "[events]\nevidence_dir = \"{}\"\n",
                dir.path().join("evidence").display()
            ),
        ),
    );

    let started = Instant::now();
    let mut publisher = ffmpeg_publish(&clip.restream, &hashgate.url("attacker"));
    let status = publisher
        .wait_timeout(Duration::from_secs(30))
        .expect("publisher closed");
    assert!(
        !status.success(),
        "the broadcaster must see the stream refused"
    );
    // The clip starts 2 s in; the cut must come well before the 7 s file ends.
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "cut only after {:?}",
        started.elapsed()
    );

    wait_until(
        "the cut and unpublish events",
        Duration::from_secs(10),
        || {
            let e = read_events(&log);
            !of_kind(&e, "cut").is_empty() && !of_kind(&e, "unpublish").is_empty()
        },
    );
    let all = read_events(&log);
    let cut = of_kind(&all, "cut")[0];
    assert_eq!(cut["stream"], "attacker");
    assert_eq!(cut["list"], "known-clips");
    assert!(
        cut["source"]
            .as_str()
            .is_some_and(|s| s.contains("known.tsv:")),
        "{cut}"
    );
    assert!(cut["latency_ms"].as_u64().is_some(), "{cut}");
    assert!(cut["at"].as_str().is_some() && cut["peer"].as_str().is_some());
    assert!(of_kind(&all, "match").len() >= 2);
    assert_eq!(of_kind(&all, "unpublish")[0]["reason"], "cut");

    // The platform's recording stops within 2 s of the clip's start (stated bound; the policy
    // needs two matching frames 0.5 s apart at 2 fps, plus decoding and the relay's pacing).
    nginx.wait_closed("attacker", Duration::from_secs(20));
    let until = recorded_until(&nginx.recording("attacker"));
    println!(
        "cut latency {} ms; platform recorded until {until:.3} s (clip from {CLIP_START_S} s)",
        cut["latency_ms"]
    );
    assert!(
        until < CLIP_START_S + 2.0,
        "platform recorded until {until} s"
    );
    assert!(
        until > CLIP_START_S - 0.5,
        "recording too short to be this stream: {until} s"
    );

    // Evidence: the deciding frames as JPEG and the cut event beside them.
    let evidence = dir.path().join("evidence");
    wait_until("the evidence folder", Duration::from_secs(10), || {
        std::fs::read_dir(&evidence)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
    });
    let folder = std::fs::read_dir(&evidence)
        .expect("dir")
        .filter_map(Result::ok)
        .next()
        .expect("a cut")
        .path();
    wait_until("the sidecar", Duration::from_secs(10), || {
        folder.join("cut.json").exists()
    });
    let sidecar: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(folder.join("cut.json")).expect("read"))
            .expect("json");
    assert_eq!(sidecar["event"], "cut");
    assert_eq!(sidecar["stream"], "attacker");
    let jpegs: Vec<_> = std::fs::read_dir(&folder)
        .expect("dir")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "jpg"))
        .collect();
    assert_eq!(jpegs.len(), 2, "the two matching frames the policy counted");
    for jpeg in jpegs {
        let image = image::open(jpeg.path()).expect("decodable JPEG");
        assert_eq!((image.width(), image.height()), (640, 360));
    }

    // The key is blocked: a reconnect is refused at publish time.
    let mut again = ffmpeg_publish(&clip.benign, &hashgate.url("attacker"));
    let status = again
        .wait_timeout(Duration::from_secs(20))
        .expect("refused");
    assert!(!status.success());
    wait_until("the blocked event", Duration::from_secs(5), || {
        !of_kind(&read_events(&log), "blocked").is_empty()
    });
    assert!(hashgate.log().contains("blocked"));
}

#[test]
fn benign_streams_pass_and_shadow_mode_only_raises_events() {
    let dir = temp_dir();
    let clip = known_clip_fixture(dir.path());
    let nginx = Nginx::start(dir.path());
    let log = dir.path().join("events.jsonl");
    let hashgate = Hashgate::start(
        dir.path(),
        &config(&nginx, &clip, &log, "mode = \"shadow\"\n"),
    );

    let benign = ffmpeg_publish(&clip.benign, &hashgate.url("benign"));
    let shadowed = ffmpeg_publish(&clip.restream, &hashgate.url("shadowed"));
    publish_ok(benign, Duration::from_secs(60));
    publish_ok(shadowed, Duration::from_secs(60));
    wait_until("both unpublish events", Duration::from_secs(10), || {
        of_kind(&read_events(&log), "unpublish").len() >= 2
    });
    let all = read_events(&log);
    assert!(of_kind(&all, "cut").is_empty(), "shadow mode must not cut");
    let matches = of_kind(&all, "match");
    assert!(matches.len() >= 2);
    assert!(
        matches.iter().all(|m| m["stream"] == "shadowed"),
        "benign stream matched: {matches:?}"
    );
    assert!(hashgate.log().contains("shadow mode: would cut"));
    nginx.wait_closed("benign", Duration::from_secs(20));
    nginx.wait_closed("shadowed", Duration::from_secs(20));
    // Shadow mode forwarded every frame of the stream.
    assert_eq!(
        video_md5s(&nginx.recording("shadowed")),
        video_md5s(&clip.restream)
    );
}

#[test]
fn with_the_delay_buffer_no_flagged_frame_reaches_the_platform() {
    let dir = temp_dir();
    let clip = known_clip_fixture(dir.path());
    let nginx = Nginx::start(dir.path());
    let log = dir.path().join("events.jsonl");
    // The cut comes within ~0.5 s of the clip's first frame at 2 fps: 1.5 s of delay covers it.
    let settings = "delay = \"1500ms\"\n";
    let hashgate = Hashgate::start(dir.path(), &config(&nginx, &clip, &log, settings));
    let mut publisher = ffmpeg_publish(&clip.restream, &hashgate.url("delayed"));
    let status = publisher
        .wait_timeout(Duration::from_secs(30))
        .expect("publisher closed");
    assert!(!status.success(), "cut");
    wait_until("the cut event", Duration::from_secs(10), || {
        !of_kind(&read_events(&log), "cut").is_empty()
    });
    nginx.wait_closed("delayed", Duration::from_secs(20));
    let recording = nginx.recording("delayed");
    let until = recorded_until(&recording);
    println!(
        "with a 1.5 s delay the platform recorded until {until:.3} s (clip from {CLIP_START_S} s)"
    );
    // How much of the benign start aired depends on when the cut came (as early as the clip's
    // first frame, 2 s, with the random sample point) and on the machine's load; that some of
    // it aired shows the buffer delays rather than withholds.
    let video_frames = packets(&recording).iter().filter(|p| p.stream == 0).count();
    assert!(
        video_frames >= 2 && until > 0.0,
        "the benign start must still have been forwarded: {video_frames} frames until {until} s"
    );
    assert!(
        until < CLIP_START_S,
        "a frame of the clip reached the platform: {until} s"
    );
    // And hashing what the platform received finds nothing of the list.
    let scan_config = dir.path().join("scan.toml");
    std::fs::write(
        &scan_config,
        format!(
            "[upstream]\nurl = \"rtmp://127.0.0.1:1/live\"\n[[lists]]\npath = \"{}\"\n",
            clip.list.display()
        ),
    )
    .expect("config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hashgate"))
        .args(["scan", "--fps", "0", "--config"])
        .arg(&scan_config)
        .arg(&recording)
        .output()
        .expect("scan");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("verdict: pass (no match"), "{text}");
}

#[test]
fn with_the_delay_buffer_a_benign_stream_arrives_whole() {
    let dir = temp_dir();
    let clip = known_clip_fixture(dir.path());
    let nginx = Nginx::start(dir.path());
    let log = dir.path().join("events.jsonl");
    let hashgate = Hashgate::start(
        dir.path(),
        &config(&nginx, &clip, &log, "delay = \"1500ms\"\n"),
    );
    publish_ok(
        ffmpeg_publish(&clip.benign, &hashgate.url("calm")),
        Duration::from_secs(60),
    );
    nginx.wait_closed("calm", Duration::from_secs(20));
    assert_eq!(
        video_md5s(&nginx.recording("calm")),
        video_md5s(&clip.benign),
        "the held tail must be released, not dropped"
    );
}

#[test]
fn mirrored_clip_is_cut_through_the_dihedral_lookup() {
    let dir = temp_dir();
    let clip = known_clip_fixture_with(dir.path(), "hflip");
    let nginx = Nginx::start(dir.path());
    let log = dir.path().join("events.jsonl");
    let hashgate = Hashgate::start(dir.path(), &config(&nginx, &clip, &log, "delay = \"0s\"\n"));
    let mut publisher = ffmpeg_publish(&clip.restream, &hashgate.url("mirror"));
    let status = publisher
        .wait_timeout(Duration::from_secs(30))
        .expect("publisher closed");
    assert!(!status.success(), "the mirrored clip must be cut");
    wait_until("the cut event", Duration::from_secs(10), || {
        !of_kind(&read_events(&log), "cut").is_empty()
    });

    // Without mirror lookups the same stream passes: the flip is what the lookup undid.
    let log2 = dir.path().join("events-nomirror.jsonl");
    let config = format!(
        "{}[[lists]]\npath = \"{}\"\nmirror = false\n[events]\nlog = \"{}\"\n[verdict]\ndelay = \"0s\"\n",
        upstream(&nginx.url()),
        clip.list.display(),
        log2.display()
    );
    let plain = Hashgate::start(dir.path(), &config);
    publish_ok(
        ffmpeg_publish(&clip.restream, &plain.url("mirror2")),
        Duration::from_secs(60),
    );
    assert!(
        of_kind(&read_events(&log2), "cut").is_empty(),
        "cut without mirror lookups"
    );
}

#[test]
fn flood_guard_stops_an_entry_that_matches_many_streams() {
    let dir = temp_dir();
    let nginx = Nginx::start(dir.path());
    let log = dir.path().join("events.jsonl");
    // Streams showing a test card, and a list holding the card: a bad entry (think: a logo
    // every stream shows). One hex hash, no clip position, so no timeline can vouch for it.
    let card = dir.path().join("card.flv");
    lavfi_clip(
        &card,
        "smptebars=size=640x360:rate=30",
        4,
        &["-g", "30", "-f", "flv"],
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hashgate"))
        .args(["hash", "--fps", "1"])
        .arg(&card)
        .output()
        .expect("hash");
    let first_hash = String::from_utf8_lossy(&out.stdout)
        .split('\t')
        .next()
        .expect("a hash")
        .to_owned();
    let list = dir.path().join("card.hex");
    std::fs::write(&list, format!("{first_hash}\n")).expect("write");
    let clip = KnownClip {
        restream: card.clone(),
        benign: card,
        list,
    };
    // One stream is plausible; a second within the window means the entry is suspect.
    let settings = "delay = \"0s\"\nmin_matches = 1\nflood_streams = 1\nflood_window = \"10m\"\n";
    let hashgate = Hashgate::start(dir.path(), &config(&nginx, &clip, &log, settings));
    let mut first = ffmpeg_publish(&clip.restream, &hashgate.url("first"));
    let status = first.wait_timeout(Duration::from_secs(30)).expect("closed");
    assert!(!status.success(), "the first stream is cut");
    publish_ok(
        ffmpeg_publish(&clip.restream, &hashgate.url("second")),
        Duration::from_secs(60),
    );
    wait_until("the flood event", Duration::from_secs(10), || {
        !of_kind(&read_events(&log), "flood").is_empty()
    });
    let all = read_events(&log);
    let cuts = of_kind(&all, "cut");
    assert_eq!(cuts.len(), 1, "{cuts:?}");
    assert_eq!(cuts[0]["stream"], "first");
    let flood = of_kind(&all, "flood")[0];
    assert_eq!(flood["stream"], "second");
    assert_eq!(flood["streams"], 2);
    assert!(of_kind(&all, "match")
        .iter()
        .filter(|m| m["stream"] == "second")
        .all(|m| m["action"] == "alert"));
}

/// (signature header, body) of each POST a receiver got.
type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;

/// A webhook receiver: records (signature header, body) of each POST and answers 200.
fn webhook_receiver() -> (u16, Received) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let store = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let (mut length, mut signature) = (0usize, String::new());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if lower.starts_with("x-hashgate-signature:") {
                    signature = line["x-hashgate-signature:".len()..].trim().to_owned();
                }
            }
            let mut body = vec![0u8; length];
            if reader.read_exact(&mut body).is_ok() {
                if let Ok(mut g) = store.lock() {
                    g.push((signature, String::from_utf8_lossy(&body).into_owned()));
                }
            }
            let _ = reader
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        }
    });
    (port, got)
}

#[test]
fn webhook_gets_signed_events_and_a_silent_webhook_delays_no_cut() {
    let dir = temp_dir();
    let clip = known_clip_fixture(dir.path());
    let nginx = Nginx::start(dir.path());

    let (port, received) = webhook_receiver();
    let log = dir.path().join("events.jsonl");
    let settings = format!(
        "delay = \"0s\"\n[events]\nlog = \"{}\"\nwebhook = \"http://127.0.0.1:{port}/hook\"\nwebhook_secret = \"s3cret\"\n",
        log.display()
    );
    let text = config(&nginx, &clip, &log, "")
        .replace(&format!("[events]\nlog = \"{}\"\n", log.display()), "");
    let hashgate = Hashgate::start(dir.path(), &format!("{text}{settings}"));
    let mut publisher = ffmpeg_publish(&clip.restream, &hashgate.url("hooked"));
    assert!(!publisher
        .wait_timeout(Duration::from_secs(30))
        .expect("closed")
        .success());
    wait_until(
        "the cut to reach the webhook",
        Duration::from_secs(10),
        || {
            received
                .lock()
                .map(|g| g.iter().any(|(_, b)| b.contains("\"event\":\"cut\"")))
                .unwrap_or(false)
        },
    );
    let got = received.lock().expect("lock").clone();
    assert!(got.iter().any(|(_, b)| b.contains("\"event\":\"match\"")));
    for (signature, body) in &got {
        assert_eq!(
            signature,
            &hashgate::events::webhook::signature("s3cret", body)
        );
    }

    // An endpoint that accepts and never answers: the cut is as quick as ever.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_port = silent.local_addr().expect("addr").port();
    let _hold = std::thread::spawn(move || silent.incoming().flatten().collect::<Vec<_>>());
    let log2 = dir.path().join("events2.jsonl");
    let settings = format!(
        "delay = \"0s\"\n[events]\nlog = \"{}\"\nwebhook = \"http://127.0.0.1:{silent_port}/\"\nwebhook_timeout = \"10s\"\n",
        log2.display()
    );
    let text = config(&nginx, &clip, &log2, "")
        .replace(&format!("[events]\nlog = \"{}\"\n", log2.display()), "");
    let slow = Hashgate::start(dir.path(), &format!("{text}{settings}"));
    let started = Instant::now();
    let mut publisher = ffmpeg_publish(&clip.restream, &slow.url("unhooked"));
    assert!(!publisher
        .wait_timeout(Duration::from_secs(30))
        .expect("closed")
        .success());
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "cut delayed to {:?}",
        started.elapsed()
    );
    wait_until("the cut event", Duration::from_secs(10), || {
        !of_kind(&read_events(&log2), "cut").is_empty()
    });
}

#[test]
fn a_cropped_restream_is_cut_with_a_crop_augmented_list() {
    let dir = temp_dir();
    // 15 % off each side, scaled back to 640x360: far from every whole-frame hash of the clip
    // (the game of life in 4-pixel cells: a fractal would survive the crop, being alike at
    // every scale, smooth gradients have no PDQ quality, 1-pixel cells do not survive scaling;
    // two generations a second, so any sampled frame has its entry).
    let clip = known_clip_fixture_from(
        dir.path(),
        "life=size=160x90:rate=2:mold=10:ratio=0.1:seed=7:life_color=white:death_color=#802010:\
         mold_color=#205080,scale=640:360:flags=neighbor",
        "crop=iw*0.7:ih*0.7,scale=640:360",
    );
    let augmented = dir.path().join("known-crops.tsv");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hashgate"))
        .args(["hash", "--fps", "2", "--augment", "crops"])
        .arg(dir.path().join("known.mp4"))
        .output()
        .expect("hashgate hash --augment crops");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().any(|l| l.ends_with("\tcrop=c15")), "{text}");
    std::fs::write(&augmented, &out.stdout).expect("list");

    // The plain list does not see it (the file through the same pipeline)...
    let scan_config = dir.path().join("scan.toml");
    std::fs::write(
        &scan_config,
        format!(
            "[upstream]\nurl = \"rtmp://127.0.0.1:1/live\"\n[[lists]]\npath = \"{}\"\n",
            clip.list.display()
        ),
    )
    .expect("config");
    let scan = std::process::Command::new(env!("CARGO_BIN_EXE_hashgate"))
        .arg("scan")
        .arg("--config")
        .arg(&scan_config)
        .arg(&clip.restream)
        .output()
        .expect("scan");
    let scanned = String::from_utf8_lossy(&scan.stdout);
    assert!(scanned.contains("verdict: pass"), "{scanned}");

    // ...the augmented list cuts it through the relay.
    let nginx = Nginx::start(dir.path());
    let log = dir.path().join("events.jsonl");
    let augmented_clip = KnownClip {
        restream: clip.restream.clone(),
        benign: clip.benign.clone(),
        list: augmented,
    };
    let hashgate = Hashgate::start(dir.path(), &config(&nginx, &augmented_clip, &log, ""));
    let mut publisher = ffmpeg_publish(&clip.restream, &hashgate.url("cropped"));
    let status = publisher
        .wait_timeout(Duration::from_secs(30))
        .expect("publisher closed");
    assert!(
        !status.success(),
        "the broadcaster must see the cut: {:?}",
        of_kind(&read_events(&log), "match")
    );
    wait_until("the cut event", Duration::from_secs(10), || {
        !of_kind(&read_events(&log), "cut").is_empty()
    });
    let all = read_events(&log);
    let cut = of_kind(&all, "cut")[0];
    println!("cropped 15 %: cut {cut}");
    assert_eq!(cut["stream"], "cropped");
}
