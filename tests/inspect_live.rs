//! Live inspection through the relay: ffmpeg publishes, the relay taps the video, the pool
//! decodes and hashes at the configured rate, and the hashes equal those of the same frames
//! hashed from the file.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use hashgate::config::Config;
use hashgate::hash::pdq::PdqHash;
use hashgate::inspect::pool::{FrameSink, Inspector, PoolSettings};
use hashgate::inspect::stream::{InspectStats, SampledFrame};
use hashgate::registry::StreamRegistry;
use hashgate::relay::{self, Relay, StreamInfo};

#[derive(Default)]
struct Collect {
    frames: Mutex<HashMap<String, Vec<(i64, PdqHash)>>>,
    ended: Mutex<Vec<String>>,
}

impl FrameSink for Collect {
    fn frame(&self, stream: &StreamInfo, frame: SampledFrame) {
        if let Ok(mut f) = self.frames.lock() {
            f.entry(stream.stream_key.clone())
                .or_default()
                .push((frame.stream_time_ms, frame.hashes.full.hash()));
        }
    }
    fn stream_ended(&self, stream: &StreamInfo, _stats: &InspectStats) {
        if let Ok(mut e) = self.ended.lock() {
            e.push(stream.stream_key.clone());
        }
    }
}

/// `hashgate hash --fps 0` of the clip (every frame): (milliseconds, hash).
fn file_hashes(clip: &Path) -> Vec<(i64, PdqHash)> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hashgate"))
        .args(["hash", "--fps", "0"])
        .arg(clip)
        .output()
        .expect("hashgate hash");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let seconds: f64 = f[3].parse().expect("seconds");
            (
                (seconds * 1000.0).round() as i64,
                f[0].parse().expect("hex"),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_streams_are_hashed_at_the_configured_rate() {
    let dir = temp_dir();
    let nginx = Nginx::start(dir.path());
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n{}[sampling]\nfps = 2.0\n[verdict]\nmax_blind = \"4s\"\n[[routes]]\nkey = \"keys\"\nmode = \"keyframes\"\n[[routes]]\nkey = \"all\"\nmode = \"all\"\n",
        upstream(&nginx.url())
    );
    let config = Config::parse(&text, Path::new("test.toml")).expect("config");
    let sink = Arc::new(Collect::default());
    let settings = config.clone();
    let inspector = Inspector::start(
        PoolSettings {
            threads: 2,
            ..PoolSettings::default()
        },
        Box::new(move |s: &StreamInfo| settings.inspect_settings(&s.stream_key)),
        sink.clone(),
    )
    .expect("pool");
    let relay = Arc::new(
        Relay::new(config.relay_settings(), Arc::new(StreamRegistry::new()))
            .expect("relay")
            .with_taps(Arc::new(inspector)),
    );
    let listener = relay::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let running = tokio::spawn(relay.clone().run(listener));

    let clip = source_clip();
    let (all, keys, hybrid) = (
        format!("rtmp://127.0.0.1:{port}/live/all"),
        format!("rtmp://127.0.0.1:{port}/live/keys"),
        format!("rtmp://127.0.0.1:{port}/live/hybrid"),
    );
    tokio::task::spawn_blocking(move || {
        let a = ffmpeg_publish(clip, &all);
        let b = ffmpeg_publish(clip, &keys);
        let c = ffmpeg_publish(clip, &hybrid);
        publish_ok(a, Duration::from_secs(60));
        publish_ok(b, Duration::from_secs(60));
        publish_ok(c, Duration::from_secs(60));
    })
    .await
    .expect("publishers");
    for _ in 0..100 {
        if sink.ended.lock().map(|e| e.len() >= 3).unwrap_or(false) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    relay.shutdown();
    running.await.expect("join").expect("relay");

    let frames = sink.frames.lock().expect("lock").clone();
    // 4 s at 2 fps: the first frame, then one frame at a random point of each 500 ms interval
    // (the last interval's point may fall after the last frame). Where exactly each falls is
    // the sampler's unit tests' business: here, the wall-clock backstop may move the schedule
    // when a loaded machine delays the publisher.
    let all = frames.get("all").cloned().unwrap_or_default();
    let times: Vec<i64> = all.iter().map(|(t, _)| *t).collect();
    assert!((7..=9).contains(&all.len()), "sampled {times:?}");
    for pair in times.windows(2) {
        assert!(pair[1] - pair[0] <= 1000 + 34, "gap {times:?}");
    }
    // The same frames hashed from the file give the same hashes.
    let reference = file_hashes(clip);
    assert_hashes_of_the_file("all", &all, &reference);
    // Keyframes mode hashes both keyframes (one per 2 s GOP), and at most one probe between
    // them per GOP, each hashed as the file's frame is.
    let keys = frames.get("keys").cloned().unwrap_or_default();
    let hashed: Vec<i64> = keys.iter().map(|(t, _)| *t).collect();
    let key_times: Vec<i64> = hashed
        .iter()
        .copied()
        .filter(|t| (t - hashed[0]) % 2000 == 0)
        .collect();
    assert_eq!(key_times.len(), 2, "keyframes sampled at {hashed:?}");
    assert!(hashed.len() <= 4, "keyframes mode hashed {hashed:?}");
    assert_hashes_of_the_file("keys", &keys, &reference);
    // Hybrid (the default mode) samples as `all` does, hashes both keyframes besides, and its
    // hashes are those of the file's frames although it decodes only what the samples need.
    let hybrid = frames.get("hybrid").cloned().unwrap_or_default();
    let times: Vec<i64> = hybrid.iter().map(|(t, _)| *t).collect();
    assert!((7..=11).contains(&hybrid.len()), "hybrid sampled {times:?}");
    for key in &key_times {
        let offset = key - key_times[0];
        assert!(
            times.iter().any(|t| (t - times[0] - offset).abs() <= 250),
            "hybrid hashed nothing near the keyframe at +{offset} ms: {times:?}"
        );
    }
    for pair in times.windows(2) {
        assert!(pair[1] - pair[0] <= 1000 + 34, "gap {times:?}");
    }
    assert_hashes_of_the_file("hybrid", &hybrid, &reference);
}

/// Each hashed frame of a live stream has the hash of the file's frame at the same time. (RTMP
/// time starts where the FLV muxer put the first timestamp, the file's at its start time:
/// offsets are compared from the first of each.)
fn assert_hashes_of_the_file(mode: &str, live: &[(i64, PdqHash)], reference: &[(i64, PdqHash)]) {
    let first = live.first().map_or(0, |(t, _)| *t);
    for (t, hash) in live {
        let offset = t - first;
        let (rt, want) = reference
            .iter()
            .find(|(rt, _)| (rt - reference[0].0 - offset).abs() <= 1)
            .unwrap_or_else(|| panic!("{mode}: no frame of the file at {offset} ms"));
        assert_eq!(hash.distance(want), 0, "{mode} at {t} ms (file {rt} ms)");
    }
}
