//! `hashgate demo`, as `make demo` runs it: exits 0 and reports the flagged stream cut, the
//! benign one passed, and no flagged frame at the platform with the delay buffer.

use std::path::Path;
use std::process::Command;

#[test]
fn demo_cuts_the_flagged_sample_and_passes_the_benign_one() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().expect("tmp");
    let run = Command::new("timeout")
        .arg("120")
        .arg(env!("CARGO_BIN_EXE_hashgate"))
        .args(["demo", "--samples"])
        .arg(root.join("samples"))
        .arg("--out")
        .arg(out.path())
        .output()
        .expect("run hashgate demo");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.ends_with("demo: ok\n"), "{stdout}");
    assert!(
        stdout.contains("known clip in flagged.flv starts at 2.00 s"),
        "{stdout}"
    );
    let row = |key: &str| {
        stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(key))
            .unwrap_or_else(|| panic!("no row for {key}: {stdout}"))
            .to_owned()
    };
    let flagged_frames = |line: &str| -> u64 {
        line.split_whitespace()
            .last()
            .and_then(|n| n.parse().ok())
            .expect("flagged frames column")
    };
    let benign = row("benign");
    assert!(benign.contains("complete"), "{benign}");
    assert_eq!(flagged_frames(&benign), 0);
    let flagged = row("flagged");
    assert!(flagged.contains("cut at"), "{flagged}");
    assert_eq!(
        flagged_frames(&flagged),
        0,
        "the delay buffer held every flagged frame back"
    );
    let no_delay = row("flagged-no-delay");
    assert!(no_delay.contains("cut at"), "{no_delay}");
    assert!(
        flagged_frames(&no_delay) > 0,
        "without the delay some flagged frames reach the platform: {no_delay}"
    );
    // The recordings the report was made from are kept with --out.
    for key in ["benign", "flagged", "flagged-no-delay"] {
        assert!(out.path().join(format!("{key}.flv")).is_file(), "{key}.flv");
    }
}
