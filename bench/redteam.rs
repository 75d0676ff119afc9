//! Red team: everything a broadcaster who has read hashgate's source might try to get a known
//! clip on air, each published through hashgate (shipped defaults: 2 s delay, 2 fps, `all`
//! mode) into nginx-rtmp, one after the other. For each: how hashgate decided (cut by match,
//! cut as uninspectable, refused at publish, or passed), how many frames of the clip the
//! platform's recording holds (every frame decoded and hashed), and when the broadcaster saw
//! the decision (seconds from its publish; the clip starts at 2 s).
//!
//! Run with `bench/redteam.sh` (prints a Markdown table).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::attacks::*;
use common::crafted::*;
use common::*;
use hashgate::matcher::list::ListSettings;
use hashgate::matcher::Matcher;

struct Bench {
    dir: tempfile::TempDir,
    nginx: Nginx,
    hashgate: Hashgate,
    log: PathBuf,
    matcher: Matcher,
}

impl Bench {
    fn start(extra: &str) -> Bench {
        let dir = temp_dir();
        let nginx = Nginx::start(dir.path());
        let log = dir.path().join("events.jsonl");
        let hashgate = Hashgate::start(
            dir.path(),
            &format!(
                "{}[[lists]]\npath = \"{}\"\n[events]\nlog = \"{}\"\n{extra}",
                upstream(&nginx.url()),
                sample("flagged.pdq").display(),
                log.display()
            ),
        );
        let matcher = Matcher::load(vec![ListSettings::for_path(sample("flagged.pdq"))])
            .expect("the sample list");
        Bench {
            dir,
            nginx,
            hashgate,
            log,
            matcher,
        }
    }

    /// How `key` was decided, once its unpublish event is written.
    fn decision(&self, key: &str) -> &'static str {
        let ended = |e: &serde_json::Value| e["stream"] == key && e["event"] == "unpublish";
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && !read_events(&self.log).iter().any(ended) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let all = read_events(&self.log);
        let of = |kind: &str| all.iter().any(|e| e["stream"] == key && e["event"] == kind);
        if of("cut") {
            "cut by match"
        } else if all
            .iter()
            .any(|e| e["stream"] == key && e["event"] == "uninspectable" && e["action"] == "cut")
        {
            "cut: uninspectable"
        } else if of("blocked") {
            "refused: key blocked"
        } else if of("at_capacity") {
            "refused at publish: at capacity"
        } else if all
            .iter()
            .any(|e| e["stream"] == key && e["event"] == "unpublish" && e["reason"] == "refused")
        {
            "refused: unreadable"
        } else {
            "passed"
        }
    }

    /// Frames of the clip in the platform's recording of `key`.
    fn aired(&self, key: &str) -> u64 {
        std::thread::sleep(Duration::from_millis(300));
        if !self
            .nginx
            .error_log()
            .contains(&format!("publish: name='{key}'"))
        {
            return 0;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let published = format!("publish: name='{key}'");
        while Instant::now() < deadline {
            let log = self.nginx.error_log();
            let conn = log.lines().find(|l| l.contains(&published)).and_then(|l| {
                l.split_whitespace()
                    .find(|w| w.starts_with('*'))
                    .map(str::to_owned)
            });
            if conn.is_some_and(|c| log.contains(&format!("{c} disconnect"))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        hashgate::demo::count_flagged(&self.nginx.recording(key), &self.matcher)
            .map(|(_, _, flagged)| flagged)
            .unwrap_or(0)
    }

    /// Publishes `sends` under `key`; returns the table row's cells after the attack.
    fn run(&self, key: &str, sends: &[Send]) -> (String, u64, String) {
        let published = publish(self.hashgate.port, key, sends, Duration::from_secs(3));
        let decided = match &published.ending {
            Ending::Refused { .. } => format!(
                "{:.2}",
                published
                    .ended
                    .duration_since(published.started)
                    .as_secs_f64()
            ),
            _ => "-".into(),
        };
        let outcome = self.decision(key).to_owned();
        (outcome, self.aired(key), decided)
    }
}

/// The attacks on how the gate and the platform read the stream (`relay::reading`).
fn reading_attacks(attack: &mut impl FnMut(&str, &str, Vec<Send>), clip: &[Tag]) {
    let in_clip = |t: &Tag| (2000..5000).contains(&t.ts);
    for depth in [2, 3] {
        attack(
            &format!("the clip's video in aggregates nested {depth} deep"),
            &format!("nest{depth}-clip"),
            paced(&nested_aggregates(clip, 4, depth, in_clip)),
        );
        attack(
            &format!("all video in aggregates nested {depth} deep"),
            &format!("nest{depth}-all"),
            paced(&nested_aggregates(clip, 4, depth, |_| true)),
        );
    }
    attack(
        "aggregates nested 9 deep (past the bound of 8)",
        "nest9",
        paced(&nested_aggregates(clip, 4, 9, in_clip)),
    );
    let mut chunk = clip.to_vec();
    if let Some(at) = chunk
        .iter()
        .position(|t| t.type_id == VIDEO && t.ts >= 1000)
    {
        let carried = Tag {
            type_id: 1,
            ts: chunk[at].ts,
            body: Bytes::from_static(&[0, 0, 0, 64]),
        };
        let body = aggregate_body(&[&chunk[at], &carried], 0);
        chunk[at] = Tag {
            type_id: AGGREGATE,
            ts: chunk[at].ts,
            body: body.into(),
        };
    }
    attack(
        "Set Chunk Size inside an aggregate (nginx-rtmp would read later chunks at 64 bytes)",
        "chunk-size",
        paced(&chunk),
    );
    let relabel = |byte: usize, value: u8| -> Vec<Tag> {
        clip.iter()
            .map(|t| match t.body.first() {
                Some(0x27) if t.type_id == VIDEO => {
                    let mut body = t.body.to_vec();
                    body[byte] = value;
                    Tag {
                        body: body.into(),
                        ..t.clone()
                    }
                }
                _ => t.clone(),
            })
            .collect()
    };
    attack(
        "every interframe as a video command frame (type 5; nginx-rtmp's HLS muxes it)",
        "type5",
        paced(&relabel(0, 0x57)),
    );
    attack(
        "every interframe under AVC packet type 3 (FFmpeg decodes it, nginx-rtmp's HLS drops it)",
        "packet3",
        paced(&relabel(1, 3)),
    );
    let mut early = clip.to_vec();
    if let Some(f) = early
        .iter_mut()
        .find(|t| t.type_id == VIDEO && t.ts >= 1000 && is_avc_frame(&t.body))
    {
        let mut body = f.body.to_vec();
        body[2..5].copy_from_slice(&[0xFF, 0xFF, 0xDF]);
        f.body = body.into();
    }
    attack(
        "a negative composition time (nginx-rtmp's HLS reads it as +4.6 h)",
        "negative-cts",
        paced(&early),
    );
    let mut switched = clip.to_vec();
    if let Some(header) = switched
        .iter()
        .find(|t| t.type_id == VIDEO && is_avc_header(&t.body))
        .cloned()
    {
        let mut body = vec![0x90];
        body.extend_from_slice(b"avc1");
        body.extend_from_slice(&header.body[5..]);
        if let Some(at) = switched.iter().position(|t| t.ts >= 1000) {
            let ts = switched[at].ts;
            switched.insert(
                at,
                Tag {
                    ts,
                    body: body.into(),
                    ..header
                },
            );
        }
    }
    attack(
        "an Enhanced RTMP avc1 sequence header after classic ones (nginx-rtmp ignores it)",
        "ertmp-switch",
        paced(&switched),
    );
}

/// Ten tries of a blinking stream (the clip on screen 65 ms of every 66): how many were cut,
/// and the most clip frames any aired.
fn blinking_tries(
    _dir: &std::path::Path,
    how: &str,
    key: &str,
    sends: &[Send],
) -> (String, String, u64, String) {
    let bench = Bench::start("");
    let mut cut = 0;
    let mut aired = 0;
    for i in 0..10 {
        let k = format!("{key}-blink-{i}");
        let (outcome, a, _) = bench.run(&k, sends);
        cut += usize::from(outcome == "cut by match");
        aired = aired.max(a);
    }
    (
        format!("benign frame shown 1 ms after each clip frame, by {how} (10 tries)"),
        format!("{cut} of 10 cut by match"),
        aired,
        "-".into(),
    )
}

/// Benign keyframes with the clip between them, published behind `costly` broadcasters of a
/// 1080p 8 Mbit/s clip in a loop, shipped defaults (capacity 0.8 core per worker).
fn behind_costly_broadcasters(
    dir: &std::path::Path,
    costly: usize,
) -> (String, String, u64, String) {
    let bench = Bench::start("");
    let mut publishers: Vec<_> = (0..costly)
        .map(|i| {
            let p = looping_publisher(costly_clip(), &bench.hashgate.url(&format!("costly-{i}")));
            std::thread::sleep(Duration::from_millis(300));
            p
        })
        .collect();
    std::thread::sleep(Duration::from_secs(6));
    let (outcome, aired, decided) = bench.run("behind", &paced(&benign_keyframes(dir)));
    std::thread::sleep(Duration::from_secs(2));
    for p in &mut publishers {
        p.terminate(Duration::from_secs(5));
    }
    std::thread::sleep(Duration::from_secs(1));
    let events = read_events(&bench.log);
    let count = |pred: &dyn Fn(&serde_json::Value) -> bool| {
        (0..costly)
            .filter(|i| {
                let key = format!("costly-{i}");
                events
                    .iter()
                    .any(|e| e["stream"] == key.as_str() && pred(e))
            })
            .count()
    };
    for e in events.iter().filter(|e| {
        e["event"] == "cut"
            || e["event"] == "uninspectable"
            || e["event"] == "anomaly"
            || e["event"] == "overload"
            || e["event"] == "at_capacity"
    }) {
        eprintln!("behind {costly}: {e}");
    }
    let refused = count(&|e| e["event"] == "at_capacity");
    let cut =
        count(&|e| e["event"] == "cut" || (e["event"] == "uninspectable" && e["action"] == "cut"));
    (
        format!("benign keyframes, the clip between, behind {costly} costly broadcasters (1080p, 8 Mbit/s, looped)"),
        format!("{outcome}; costly: {} taken on, {refused} refused at publish, {cut} cut", costly - refused),
        aired,
        decided,
    )
}

fn main() {
    require("ffmpeg");
    // `REDTEAM_ONLY=costly bench/redteam.sh`: the overload rows alone.
    if std::env::var("REDTEAM_ONLY").as_deref() == Ok("costly") {
        let dir = temp_dir();
        println!("| attack | outcome | clip frames aired | decided at s |");
        println!("|---|---|---|---|");
        let counts: Vec<usize> = std::env::var("REDTEAM_COSTLY")
            .ok()
            .and_then(|v| v.split(',').map(|n| n.parse().ok()).collect())
            .unwrap_or_else(|| vec![6, 8, 10]);
        for costly in counts {
            let (name, outcome, aired, decided) = behind_costly_broadcasters(dir.path(), costly);
            println!("| {name} | {outcome} | {aired} | {decided} |");
        }
        return;
    }
    let bench = Bench::start("");
    let dir = bench.dir.path().to_owned();
    let mut rows: Vec<(String, String, u64, String)> = Vec::new();
    // Each attack on a fresh hashgate: what one attack leaves behind (blocks, flood counts)
    // must not decide the next.
    let mut attack = |name: &str, key: &str, sends: Vec<Send>| {
        let fresh = Bench::start("");
        let (outcome, aired, decided) = fresh.run(key, &sends);
        eprintln!("{name}: {outcome}, {aired} flagged frames aired, decided at {decided} s");
        rows.push((name.to_owned(), outcome, aired, decided));
    };
    let clip = flagged();
    attack("none: the sample replayed as is", "plain", paced(&clip));
    attack(
        "sequence header before every frame, reserved bits alternating",
        "churn",
        paced(&header_churn(&clip)),
    );
    attack(
        "last NAL of every frame shortened 2 % (players conceal it)",
        "damage",
        paced(&concealable_damage(&clip)),
    );
    attack(
        "timestamps x200",
        "x200",
        retimed(&clip, |_, ts| ts.wrapping_mul(200)),
    );
    attack(
        "timestamps +1 h per frame",
        "hours",
        retimed(&clip, |f, ts| {
            ts.wrapping_add((f as u32).wrapping_mul(3_600_000))
        }),
    );
    attack("every timestamp 0", "zero", retimed(&clip, |_, _| 0));
    attack(
        "SPS claims 8192x8192 (frames 640x360)",
        "claim8k",
        paced(&declaring_size(&clip, 8192, 8192)),
    );
    attack(
        "SPS claims 3840x2160 (frames 640x360)",
        "claim4k",
        paced(&declaring_size(&clip, 3840, 2160)),
    );
    attack(
        "no frame flagged as a keyframe",
        "unflagged",
        paced(&unflagged_keyframes(&clip)),
    );
    attack(
        "H.264 labelled as VP6 (FLV codec id 4)",
        "vp6",
        paced(&relabelled_codec(&clip, 4)),
    );
    attack(
        "wrapped in Enhanced RTMP multitrack packets",
        "multitrack",
        paced(&multitrack(&clip)),
    );
    attack(
        "packed 4 to an RTMP aggregate message",
        "aggregate",
        paced(&aggregated(&clip, 4)),
    );
    attack(
        "no sequence header",
        "headless",
        paced(&without_sequence_header(&clip)),
    );
    attack(
        "OBS pacing: first frame 0.7 s after metadata, lookahead bursts",
        "obs",
        obs_paced(&clip),
    );
    attack(
        "benign decoy frames where 2 fps sampling falls (every 15th frame), clip between",
        "decoys",
        paced(&decoys_at_sample_points(&dir)),
    );
    reading_attacks(&mut attack, &clip);
    attack(
        "picture times steered off FFmpeg's best-effort timestamp (runs of clip frames decoded 1 ms apart)",
        "collapse",
        best_effort_collapse(&dir),
    );
    for (name, key, filter) in [
        ("mirrored (hflip)", "hflip", "[0:v]hflip"),
        ("letterboxed to 4:3", "pad", "[0:v]pad=640:480:0:60"),
        ("played 1.25x faster", "fast", "[0:v]setpts=0.8*PTS"),
        ("grey", "grey", "[0:v]format=gray,format=yuv420p"),
        ("noise added", "noise", "[0:v]noise=alls=20:allf=t"),
        ("cropped 10 % each side", "crop", "[0:v]crop=iw*0.8:ih*0.8,scale=640:360"),
        (
            "in a framed player over a still test card, 56 % of the area",
            "player",
            "smptebars=size=640x360:rate=30,drawbox=x=96:y=46:w=488:h=278:color=white:t=4[bg];[0:v]scale=480:270[fg];[bg][fg]overlay=100:50:shortest=1",
        ),
        (
            "picture-in-picture, half size over a test pattern",
            "pip",
            "testsrc2=size=640x360:rate=30[bg];[0:v]scale=320:180[fg];[bg][fg]overlay=160:90:shortest=1",
        ),
    ] {
        let tags = reencoded(&dir, key, filter);
        attack(&format!("re-encoded: {name}"), key, paced(&tags));
    }

    rows.push(blinking_tries(
        &dir,
        "composition times",
        "cts",
        &cts_blinking(&dir),
    ));
    rows.push(blinking_tries(&dir, "decode times", "dts", &blinking(&dir)));
    for costly in [6, 8, 10] {
        rows.push(behind_costly_broadcasters(&dir, costly));
    }

    // Two costly streams (4K claimed, 360p sent) 1.5 s ahead of the clip.
    let heavy = declaring_size(&benign(), 3840, 2160);
    let port = bench.hashgate.port;
    let heavies: Vec<_> = (0..2)
        .map(|i| {
            let tags = heavy.clone();
            std::thread::spawn(move || {
                publish(
                    port,
                    &format!("costly-{i}"),
                    &paced(&tags),
                    Duration::from_secs(1),
                )
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let (outcome, aired, decided) = bench.run("behind-costly", &paced(&clip));
    rows.push((
        "the clip behind two streams costly to decode (SPS 4K, 360p frames)".into(),
        outcome,
        aired,
        decided,
    ));
    for h in heavies {
        let _ = h.join();
    }

    // Flood-guard poisoning: six throwaway keys show one still frame of the clip, again and
    // again (a bad entry's signature), to demote its entries; then the clip plays.
    let poisoned = Bench::start("");
    let still = still_of_clip(&dir, 3.0);
    for i in 0..6 {
        poisoned.run(&format!("poison-{i}"), &paced(&still));
    }
    let flooded = read_events(&poisoned.log)
        .iter()
        .filter(|e| e["event"] == "flood")
        .count();
    let (outcome, aired, decided) = poisoned.run("after-poison", &paced(&clip));
    rows.push((
        format!(
            "flood guard poisoned first: 6 keys show one still frame of the clip ({flooded} entries demoted), then the clip plays"
        ),
        outcome,
        aired,
        decided,
    ));

    // A blocked key coming back with a suffix ingest servers strip.
    bench.run("banned", &paced(&clip));
    for (name, key) in [
        ("blocked key + \"?x=1\"", "banned?x=1"),
        ("blocked key + NUL byte", "banned\0"),
    ] {
        let published = publish(
            bench.hashgate.port,
            key,
            &paced(&clip),
            Duration::from_secs(1),
        );
        let outcome = match published.ending {
            Ending::Refused { code, .. } => format!("refused ({code})"),
            other => format!("{other:?}"),
        };
        rows.push((name.to_owned(), outcome, 0, "0.00".into()));
    }

    // Benign controls: manipulations that hide nothing must not cut.
    let calm = benign();
    let (outcome, _, _) = bench.run("calm", &paced(&concealable_damage(&header_churn(&calm))));
    rows.push((
        "control: benign sample with header churn and concealable damage".into(),
        outcome,
        0,
        "-".into(),
    ));

    // Probation: the block lapses after 1 s and the key comes back mid-clip.
    let probation = Bench::start("[verdict]\ncooldown = \"1s\"\n");
    probation.run("back", &paced(&clip));
    std::thread::sleep(Duration::from_millis(1500));
    let (outcome, aired, decided) = probation.run("back", &paced(&back_mid_clip(&clip, &calm)));
    rows.push((
        "reconnect mid-clip after the block lapsed (one matching sample)".into(),
        format!("{outcome} (probation)"),
        aired,
        decided,
    ));

    // A wave: 16 concurrent re-streams of the clip.
    let out = Command::new(env!("CARGO_BIN_EXE_hashgate"))
        .arg("replay")
        .arg(sample("flagged.flv"))
        .arg(bench.hashgate.url("wave"))
        .args(["--count", "16", "--linger", "2s"])
        .output()
        .expect("replay");
    let summary = String::from_utf8_lossy(&out.stdout);
    let summary = summary
        .split(" (")
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    let aired: u64 = (0..16).map(|i| bench.aired(&format!("wave-{i}"))).sum();
    rows.push((
        "16 concurrent re-streams of the clip (flood_streams = 5)".into(),
        summary,
        aired,
        "-".into(),
    ));

    println!("| attack | outcome | clip frames aired | decided at s |");
    println!("|---|---|---|---|");
    for (name, outcome, aired, decided) in rows {
        println!("| {name} | {outcome} | {aired} | {decided} |");
    }
}
