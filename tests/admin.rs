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
    let position = |pred: &dyn Fn(&serde_json::Value) -> bool| {
        events.iter().position(pred).expect("event present")
    };
    let cut_at = position(&|e| e["event"] == "operator" && e["action"] == "cut");
    let ended_at = position(&|e| e["event"] == "unpublish" && e["reason"] == "cut");
    assert!(
        cut_at < ended_at,
        "the cut is logged before the unpublish it causes: {events:?}"
    );
    let times: Vec<&str> = events.iter().filter_map(|e| e["at"].as_str()).collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "in time order: {times:?}"
    );
}

const TOKEN: &str = "0123456789abcdef-s3cret";

#[test]
fn token_guards_every_call_but_health_and_browsers_are_kept_out() {
    let dir = temp_dir();
    let list = dir.path().join("list.txt");
    std::fs::write(&list, format!("{}\n", "ab".repeat(32))).expect("list");
    let extra = format!(
        "{}[[lists]]\npath = \"{}\"\n",
        upstream("rtmp://127.0.0.1:1/live"),
        list.display()
    );
    let token_line = format!("token = \"{TOKEN}\"\n");

    // An empty HASHGATE_ADMIN_TOKEN (an unset secret in a template) does not erase the token.
    let local = Hashgate::start_with_admin_env(
        dir.path(),
        &extra,
        "127.0.0.1",
        &token_line,
        &[("HASHGATE_ADMIN_TOKEN", "")],
    );
    let port = local.admin_port;
    assert_eq!(http(port, "GET", "/healthz", None).0, 200);
    for (method, path) in [
        ("GET", "/streams"),
        ("GET", "/blocks"),
        ("GET", "/metrics"),
        ("POST", "/lists/reload"),
        ("DELETE", "/blocks/x"),
        ("POST", "/streams/x/cut"),
    ] {
        let (status, body) = http(port, method, path, None);
        assert_eq!(status, 401, "{method} {path} without the token: {body}");
        assert_eq!(http(port, method, path, Some("guess")).0, 401);
    }
    let (status, body) = http(port, "POST", "/lists/reload", Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    assert_eq!(http(port, "GET", "/streams", Some(TOKEN)).0, 200);

    // A page in a browser on this host: a cross-origin write is refused even with a token
    // (a browser could hold one in a page's script), and a DNS-rebound name is refused.
    let auth = format!("Authorization: Bearer {TOKEN}\r\n");
    let (status, body) = http_with(
        port,
        "POST",
        "/lists/reload",
        &format!("Host: 127.0.0.1:{port}\r\nOrigin: http://evil.example\r\n{auth}"),
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("cross-origin"), "{body}");
    let (status, body) = http_with(
        port,
        "GET",
        "/streams",
        &format!("Host: rebound.evil.example:{port}\r\n{auth}"),
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("unexpected Host"), "{body}");
    for host in ["localhost", "[::1]:8935", "127.0.0.1:1"] {
        let (status, body) = http_with(port, "GET", "/streams", &format!("Host: {host}\r\n{auth}"));
        assert_eq!(status, 200, "Host: {host}: {body}");
    }
    drop(local);

    // Without a token on loopback, the browser rules are all that guards it.
    let open_local = Hashgate::start_with_admin(dir.path(), &extra, "127.0.0.1", "");
    let port = open_local.admin_port;
    assert_eq!(http(port, "POST", "/lists/reload", None).0, 200);
    let (status, _) = http_with(
        port,
        "POST",
        "/lists/reload",
        "Host: 127.0.0.1\r\nOrigin: null\r\n",
    );
    assert_eq!(
        status, 403,
        "a sandboxed page's Origin: null is a browser too"
    );
    let (status, _) = http_with(
        port,
        "POST",
        "/lists/reload",
        "Host: 127.0.0.1\r\nSec-Fetch-Site: cross-site\r\n",
    );
    assert_eq!(
        status, 403,
        "a page's write without Origin, by its fetch metadata"
    );
    let (status, _) = http_with(port, "DELETE", "/blocks/x", "Host: attacker.example\r\n");
    assert_eq!(status, 403);
    drop(open_local);

    // Listening beyond loopback: every call but /healthz needs the token, under any host name.
    let open = Hashgate::start_with_admin(dir.path(), &extra, "0.0.0.0", &token_line);
    let port = open.admin_port;
    assert_eq!(http(port, "GET", "/healthz", None).0, 200);
    for path in ["/streams", "/metrics", "/blocks"] {
        let (status, body) = http(port, "GET", path, None);
        assert_eq!(status, 401, "{path}: {body}");
        assert_eq!(http(port, "GET", path, Some(TOKEN)).0, 200, "{path}");
        let (status, _) = http_with(
            port,
            "GET",
            path,
            &format!("Host: ingest-7.internal\r\n{auth}"),
        );
        assert_eq!(status, 200, "{path} by the host's name");
    }
}

#[test]
fn short_or_blank_tokens_are_refused_at_startup() {
    let dir = temp_dir();
    let config = dir.path().join("admin.toml");
    for (token, env) in [
        ("\"s3cret\"", None),
        ("\"                        \"", None),
        (&format!("\"{TOKEN}\"") as &str, Some("short")),
        (&format!("\"{TOKEN} x\""), None),
        ("\"0123456789abcdéf-s3cret\"", None),
    ] {
        std::fs::write(
            &config,
            format!("[upstream]\nurl = \"rtmp://127.0.0.1:1/live\"\n[admin]\ntoken = {token}\n"),
        )
        .expect("config");
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_hashgate"));
        command.arg("check-config").arg(&config);
        if let Some(env) = env {
            command.env("HASHGATE_ADMIN_TOKEN", env);
        } else {
            command.env_remove("HASHGATE_ADMIN_TOKEN");
        }
        let out = command.output().expect("run hashgate");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "token {token} accepted: {stderr}");
        let named = if env.is_some() {
            "HASHGATE_ADMIN_TOKEN"
        } else {
            "admin.token"
        };
        assert!(stderr.contains(named), "{token}: {stderr}");
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

    // Truncated to nothing, as a non-atomic writer leaves it for a moment: neither the API's
    // reload nor the file watcher applies it; the operator can force it.
    std::fs::write(&list, "").expect("truncate");
    let (status, body) = http(admin, "POST", "/lists/reload", None);
    assert_eq!(status, 422, "{body}");
    assert!(
        json(&body)[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("from 2 to 0 entries")),
        "{body}"
    );
    std::fs::write(&list, "\n\n").expect("blank lines");
    wait_until(
        "the file watcher to see the change",
        Duration::from_secs(10),
        || hashgate.log().matches("from 2 to 0 entries").count() >= 2,
    );
    assert_eq!(scrape(admin)["hashgate_list_entries{list=known}"], 2.0);
    let (status, body) = http(admin, "POST", "/lists/reload?force=true", None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)[0]["entries"], 0);
    assert_eq!(scrape(admin)["hashgate_list_entries{list=known}"], 0.0);
}

#[test]
fn redacted_keys_stay_hidden_in_the_log_the_api_and_the_metrics() {
    let dir = temp_dir();
    let nginx = Nginx::start(dir.path());
    let events = dir.path().join("events.jsonl");
    let hashgate = Hashgate::start(
        dir.path(),
        &format!(
            "{}[verdict]\ndelay = \"0s\"\n[events]\nlog = \"{}\"\nredact_keys = true\n",
            upstream(&nginx.url()),
            events.display()
        ),
    );
    let admin = hashgate.admin_port;
    let key = "cam-S3CRET-k3y";
    let hashed = {
        use sha2::Digest;
        sha2::Sha256::digest(key.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let publisher = ffmpeg_publish(&long_clip(dir.path()), &hashgate.url(key));
    wait_until("the stream in /streams", Duration::from_secs(20), || {
        http(admin, "GET", "/streams", None).1.contains(&hashed)
    });
    let metrics = scrape(admin);
    assert!(
        metrics.contains_key(&format!("hashgate_stream_blind_seconds{{stream={hashed}}}")),
        "metrics label the stream by its hash"
    );

    // The operator cuts by the only name they see; the block is listed under it.
    let (status, body) = http(
        admin,
        "POST",
        &format!("/streams/{hashed}/cut?block=60s"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["key"], hashed.as_str());
    let mut publisher = publisher;
    publisher
        .wait_timeout(Duration::from_secs(10))
        .expect("ffmpeg ends once cut");

    // A new publish is refused; the refusal's remaining seconds and /blocks' follow one rule.
    let short = dir.path().join("short.flv");
    lavfi_clip(&short, "testsrc2=size=320x240:rate=25", 2, &["-f", "flv"]);
    let mut refused = ffmpeg_publish(&short, &hashgate.url(key));
    refused
        .wait_timeout(Duration::from_secs(15))
        .expect("refused publisher ends");
    let (_, body) = http(admin, "GET", "/blocks", None);
    let blocks = json(&body);
    assert_eq!(blocks[0]["key"], hashed.as_str(), "{body}");
    let listed = blocks[0]["remaining_s"].as_u64().expect("remaining_s");
    let logged = read_events(&events);
    let blocked = of_kind(&logged, "blocked");
    assert_eq!(blocked.len(), 1, "{logged:?}");
    let told = blocked[0]["remaining_s"].as_u64().expect("remaining_s");
    assert!(
        told >= listed && told - listed <= 1 && (55..=60).contains(&told),
        "refusal said {told} s, /blocks {listed} s later"
    );
    let (status, _) = http(admin, "DELETE", &format!("/blocks/{hashed}"), None);
    assert_eq!(status, 200, "unblocked by the hash");

    let log = hashgate.log();
    assert!(
        log.contains(&hashed),
        "the log names the stream by its hash"
    );
    for (name, text) in [
        ("text log", log),
        (
            "event log",
            std::fs::read_to_string(&events).unwrap_or_default(),
        ),
        ("/streams", http(admin, "GET", "/streams", None).1),
    ] {
        assert!(!text.contains(key), "{name} shows the key: {text}");
    }
}
