//! The command line's edges: `check-config` on the shipped and on broken files.

use std::process::Command;

fn check(path: &std::path::Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hashgate"))
        .arg("check-config")
        .arg(path)
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
