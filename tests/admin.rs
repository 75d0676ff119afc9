//! The admin HTTP API against a running server: a real ffmpeg broadcaster through hashgate to
//! nginx-rtmp, driven over HTTP on loopback.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use common::*;

/// Parses `/metrics` with an independent Prometheus text parser; samples by name and labels.
fn scrape(port: u16) -> HashMap<String, f64> {
    let (status, text) = http(port, "GET", "/metrics", None);
    assert_eq!(status, 200, "{text}");
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scraped = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text");
    assert!(!scraped.samples.is_empty());
    let mut out = HashMap::new();
    for sample in scraped.samples {
        let mut labels: Vec<String> = sample
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        labels.sort();
        let value = match sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            // Histograms come back whole; their count is what the tests read.
            prometheus_parse::Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            prometheus_parse::Value::Summary(_) => continue,
        };
        let name = if labels.is_empty() {
            sample.metric
        } else {
            format!("{}{{{}}}", sample.metric, labels.join(","))
        };
        out.insert(name, value);
    }
    out
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// A 40 s clip: long enough to still be publishing when the test cuts it.
fn long_clip(dir: &Path) -> std::path::PathBuf {
    let clip = dir.join("long.flv");
    lavfi_clip(
        &clip,
        "testsrc2=size=320x240:rate=25",
        40,
        &["-g", "25", "-f", "flv"],
    );
    clip
}

#[test]
fn operator_lists_cuts_and_unblocks_a_live_stream() {
    let dir = temp_dir();
    let nginx = Nginx::start(dir.path());
    let events = dir.path().join("events.jsonl");
    let hashgate = Hashgate::start(
        dir.path(),
        &format!(
            "{}[verdict]\ndelay = \"0s\"\n[events]\nlog = \"{}\"\n",
            upstream(&nginx.url()),
            events.display()
        ),
    );
    let admin = hashgate.admin_port;
    assert_eq!(http(admin, "GET", "/healthz", None), (200, "ok\n".into()));
    let before = scrape(admin);
    assert_eq!(before["hashgate_streams_active"], 0.0);
    assert_eq!(before["hashgate_received_bytes_total"], 0.0);

    let clip = long_clip(dir.path());
    let publisher = ffmpeg_publish(&clip, &hashgate.url("cam1"));
    // The stream shows up with a bitrate and, once inspection has hashed a frame, a hash time.
    let mut row = serde_json::Value::Null;
    wait_until(
        "cam1 in /streams with a hashed frame",
        Duration::from_secs(20),
        || {
            let (status, body) = http(admin, "GET", "/streams", None);
            assert_eq!(status, 200, "{body}");
            row = json(&body)
                .as_array()
                .and_then(|rows| rows.iter().find(|r| r["key"] == "cam1").cloned())
                .unwrap_or_default();
            row["last_hash_at"].is_string() && row["seconds"].as_f64().unwrap_or(0.0) >= 2.0
        },
    );
    assert_eq!(row["app"], "live");
    assert!(row["peer"]
        .as_str()
        .is_some_and(|p| p.starts_with("127.0.0.1:")));
    assert!(row["since"].as_str().is_some_and(|s| s.ends_with('Z')));
    assert!(row["bitrate_bps"].as_u64().unwrap_or(0) > 10_000, "{row}");
    let fps = row["fps"].as_f64().unwrap_or(0.0);
    assert!((15.0..=40.0).contains(&fps), "published at 25 fps: {row}");
    assert_eq!(row["matches"], 0);
    assert_eq!(row["target_fps"], 2.0);
    assert_eq!(row["sampling_level"], 0);
    assert!(row["hashed_fps"].as_f64().unwrap_or(0.0) > 0.3, "{row}");
    assert!(
        row["blind_ms"]["wall"].as_u64().unwrap_or(u64::MAX) < 1500,
        "covered within the bound: {row}"
    );

    let flowing = scrape(admin);
    assert_eq!(flowing["hashgate_inspection_level"], 0.0);
    let ratio = flowing["hashgate_stream_sampling_ratio{stream=cam1}"];
    assert!(ratio > 0.15, "hashing near the target rate: {ratio}");
    assert!(flowing["hashgate_stream_blind_seconds{stream=cam1}"] < 1.5);
    assert_eq!(flowing["hashgate_streams_active"], 1.0);
    assert!(flowing["hashgate_received_bytes_total"] > 0.0);
    assert!(flowing["hashgate_forwarded_bytes_total"] > 0.0);
    assert!(flowing["hashgate_frames_decoded_total"] > 0.0);
    assert!(flowing["hashgate_frames_hashed_total"] > 0.0);
    assert!(flowing["hashgate_hash_duration_seconds"] > 0.0);

    let (status, body) = http(admin, "POST", "/streams/cam1/cut?block=soon", None);
    assert_eq!(status, 400, "a bad duration is refused: {body}");
    assert!(
        json(&body)["error"]
            .as_str()
            .is_some_and(|e| e.contains("block")),
        "{body}"
    );
    assert_eq!(
        http(admin, "GET", "/streams", None)
            .1
            .matches("cam1")
            .count(),
        1,
        "still live"
    );

    // Cut through the API: the broadcaster is refused, the platform's leg ends, the key blocks.
    let (status, body) = http(
        admin,
        "POST",
        "/streams/cam1/cut?reason=test%20cut&block=10m",
        None,
    );
    assert_eq!(status, 200, "{body}");
    let cut = json(&body);
    assert_eq!(
        (cut["cut"].clone(), cut["blocked_s"].clone()),
        (true.into(), 600.into())
    );
    nginx.wait_closed("cam1", Duration::from_secs(10));
    let mut publisher = publisher;
    let status = publisher
        .wait_timeout(Duration::from_secs(10))
        .expect("ffmpeg ends once cut");
    assert!(
        !status.success(),
        "the broadcaster sees the cut as an error"
    );
    let recorded = packets(&nginx.recording("cam1")).len();
    assert!(
        recorded > 0,
        "the stream reached the platform before the cut"
    );
    let (status, _) = http(admin, "POST", "/streams/cam1/cut", None);
    assert_eq!(status, 404, "nothing live under cam1 any more");

    let (status, body) = http(admin, "GET", "/blocks", None);
    assert_eq!(status, 200);
    let blocks = json(&body);
    assert_eq!(blocks[0]["key"], "cam1", "{body}");
    assert!((590..=600).contains(&blocks[0]["remaining_s"].as_u64().unwrap_or(0)));

    // Blocked: a new publish under the key is refused.
    let short = dir.path().join("short.flv");
    lavfi_clip(&short, "testsrc2=size=320x240:rate=25", 2, &["-f", "flv"]);
    let mut refused = ffmpeg_publish(&short, &hashgate.url("cam1"));
    let status = refused
        .wait_timeout(Duration::from_secs(15))
        .expect("refused publisher ends");
    assert!(!status.success(), "a blocked key cannot publish");

    // Lifted through the API: the key publishes again and arrives.
    let (status, body) = http(admin, "DELETE", "/blocks/cam1", None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(http(admin, "DELETE", "/blocks/cam1", None).0, 404);
    assert_eq!(http(admin, "GET", "/blocks", None).1.trim(), "[]");
    publish_ok(
        ffmpeg_publish(&short, &hashgate.url("cam1")),
        Duration::from_secs(20),
    );

    let after = scrape(admin);
    assert_eq!(after["hashgate_cuts_total{reason=operator}"], 1.0);
    assert_eq!(after["hashgate_connections_total{result=cut}"], 1.0);
    assert_eq!(after["hashgate_connections_total{result=blocked}"], 1.0);
    assert_eq!(after["hashgate_blocks_active"], 0.0);

    let events = read_events(&events);
    let operator: Vec<_> = events.iter().filter(|e| e["event"] == "operator").collect();
    assert_eq!(operator.len(), 2, "{events:?}");
    assert_eq!(
        (operator[0]["action"].clone(), operator[0]["reason"].clone()),
        ("cut".into(), "test cut".into())
    );
    assert_eq!(operator[1]["action"], "unblock");
}

#[test]
fn token_guards_mutations_on_loopback_and_everything_off_it() {
    let dir = temp_dir();
    let list = dir.path().join("list.txt");
    std::fs::write(&list, format!("{}\n", "ab".repeat(32))).expect("list");
    let extra = format!(
        "{}[[lists]]\npath = \"{}\"\n",
        upstream("rtmp://127.0.0.1:1/live"),
        list.display()
    );

    let local = Hashgate::start_with_admin(dir.path(), &extra, "127.0.0.1", "token = \"s3cret\"\n");
    let port = local.admin_port;
    assert_eq!(
        http(port, "GET", "/streams", None).0,
        200,
        "loopback reads are open"
    );
    assert_eq!(http(port, "GET", "/metrics", None).0, 200);
    assert_eq!(http(port, "POST", "/lists/reload", None).0, 401);
    assert_eq!(http(port, "POST", "/lists/reload", Some("guess")).0, 401);
    assert_eq!(http(port, "DELETE", "/blocks/x", None).0, 401);
    assert_eq!(http(port, "POST", "/streams/x/cut", None).0, 401);
    let (status, body) = http(port, "POST", "/lists/reload", Some("s3cret"));
    assert_eq!(status, 200, "{body}");

    // Listening beyond loopback: every call but /healthz needs the token.
    let open = Hashgate::start_with_admin(dir.path(), &extra, "0.0.0.0", "token = \"s3cret\"\n");
    let port = open.admin_port;
    assert_eq!(http(port, "GET", "/healthz", None).0, 200);
    for path in ["/streams", "/metrics", "/blocks"] {
        let (status, body) = http(port, "GET", path, None);
        assert_eq!(status, 401, "{path}: {body}");
        assert_eq!(http(port, "GET", path, Some("s3cret")).0, 200, "{path}");
    }
}

#[test]
fn lists_reload_through_the_api_and_a_broken_list_keeps_the_old_one() {
    let dir = temp_dir();
    let list = dir.path().join("list.txt");
    std::fs::write(&list, format!("{}\n", "ab".repeat(32))).expect("list");
    let hashgate = Hashgate::start(
        dir.path(),
        &format!(
            "{}[[lists]]\npath = \"{}\"\nlabel = \"known\"\n",
            upstream("rtmp://127.0.0.1:1/live"),
            list.display()
        ),
    );
    let admin = hashgate.admin_port;
    assert_eq!(scrape(admin)["hashgate_list_entries{list=known}"], 1.0);

    std::fs::write(&list, format!("{}\n{}\n", "ab".repeat(32), "cd".repeat(32))).expect("list");
    let (status, body) = http(admin, "POST", "/lists/reload", None);
    assert_eq!(status, 200, "{body}");
    let rows = json(&body);
    assert_eq!(rows[0]["list"], "known");
    assert_eq!(
        (rows[0]["result"].clone(), rows[0]["entries"].clone()),
        ("ok".into(), 2.into())
    );

    std::fs::write(&list, "not a hash\n").expect("list");
    let (status, body) = http(admin, "POST", "/lists/reload", None);
    assert_eq!(status, 422, "{body}");
    let rows = json(&body);
    assert_eq!(rows[0]["result"], "error");
    assert!(
        rows[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("list.txt:1")),
        "{body}"
    );
    let metrics = scrape(admin);
    assert_eq!(
        metrics["hashgate_list_entries{list=known}"], 2.0,
        "the old list stays in force"
    );
    assert!(metrics["hashgate_list_reloads_total{list=known,result=error}"] >= 1.0);
    assert!(metrics["hashgate_list_reloads_total{list=known,result=ok}"] >= 1.0);
}
