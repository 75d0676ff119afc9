//! The command line's edges: `check-config` on the shipped and on broken files.

use std::process::Command;

fn check(path: &std::path::Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hashgate"))
        .arg("check-config")
        .arg(path)
        .env_remove("HASHGATE_ADMIN_TOKEN")
        .output()
        .expect("hashgate");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_accepts_the_shipped_file_and_names_key_and_line_otherwise() {
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
    let (ok, stdout, _) = check(&shipped);
    assert!(ok && stdout.ends_with("config.toml: ok\n"), "{stdout}");

    let dir = tempfile::tempdir().expect("tmp");
    let cases = [
        (
            "[upstream]\nurl = \"rtmp://h/a\"\n[limits]\nidle_timout = \"5s\"\n",
            "idle_timout",
            "line 4",
        ),
        (
            "[upstream]\nurl = \"rtmp://h/a\"\n[verdict]\ndelay = \"soon\"\n",
            "soon",
            "line 4",
        ),
        (
            "[upstream]\nurl = \"rtmp://h/a\"\n[[lists]]\npath = \"missing.txt\"\n",
            "lists[0].path",
            ":4:",
        ),
        (
            "[upstream]\nurl = \"rtmp://h/a\"\n[events]\nwebhook = \"https://x/\"\n",
            "events.webhook",
            ":4:",
        ),
        (
            "[upstream]\nurl = \"rtmp://h/a\"\n[admin]\nlisten = \"0.0.0.0:8935\"\n",
            "admin.listen",
            ":4:",
        ),
    ];
    for (i, (text, key, line)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad-{i}.toml"));
        std::fs::write(&path, text).expect("write");
        let (ok, _, stderr) = check(&path);
        assert!(!ok, "{text}");
        assert!(stderr.contains(key) && stderr.contains(line), "{stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    }
}

#[test]
fn serve_logs_json_lines_on_request() {
    let dir = tempfile::tempdir().expect("tmp");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!("[server]\nlisten = \"127.0.0.1:{port}\"\n[upstream]\nurl = \"rtmp://127.0.0.1:1/live\"\n[events]\nlog = \"e.jsonl\"\n[admin]\nenabled = false\n"),
    )
    .expect("write");
    let log = dir.path().join("log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hashgate"))
        .args(["--log-format", "json", "serve", "--config"])
        .arg(&config)
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("serve");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut text = String::new();
    while std::time::Instant::now() < deadline && !text.contains("listening") {
        std::thread::sleep(std::time::Duration::from_millis(50));
        text = std::fs::read_to_string(&log).unwrap_or_default();
    }
    let _ = child.kill();
    let _ = child.wait();
    let first = text.lines().next().expect("a log line");
    let value: serde_json::Value = serde_json::from_str(first).expect("JSON log line");
    assert!(
        value["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("listening")),
        "{first}"
    );
    assert_eq!(value["level"], "INFO");
}
