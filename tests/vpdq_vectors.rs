//! `hashgate hash --format vpdq --fps 0` against the reference vPDQ output in
//! ../shared/vectors/vpdq (skipped, loudly, when that folder is absent): same frames, same
//! numbering, and every frame both sides rate quality >= 50 within 30 bits.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;

use hashgate::hash::pdq::PdqHash;

struct VpdqLine {
    frame: u64,
    quality: u32,
    hash: PdqHash,
    seconds: f64,
}

fn parse(text: &str) -> Vec<VpdqLine> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.trim().split(',').collect();
            assert_eq!(f.len(), 4, "vPDQ line {l:?}");
            VpdqLine {
                frame: f[0].parse().expect("frame number"),
                quality: f[1].parse().expect("quality"),
                hash: f[2].parse().expect("hex"),
                seconds: f[3].parse().expect("seconds"),
            }
        })
        .collect()
}

#[test]
fn vpdq_of_every_sample_video_matches_the_reference() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/vectors/vpdq");
    if !dir.join("sample-videos").exists() {
        // Straight to stderr: libtest hides eprintln! output of passing tests.
        drop(writeln!(
            std::io::stderr(),
            "SKIPPED: {} is absent, vPDQ vector tests did not run",
            dir.display()
        ));
        return;
    }
    let mut videos: Vec<_> = std::fs::read_dir(dir.join("sample-videos"))
        .expect("sample-videos")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "mp4"))
        .collect();
    videos.sort();
    assert!(!videos.is_empty());
    let mut summary = Vec::new();
    for video in videos {
        let stem = video
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("name")
            .to_owned();
        let reference = dir.join("sample-hashes").join(format!("{stem}.txt"));
        let want = parse(&std::fs::read_to_string(&reference).expect("reference hashes"));
        let out = Command::new(env!("CARGO_BIN_EXE_hashgate"))
            .args(["hash", "--format", "vpdq", "--fps", "0"])
            .arg(&video)
            .output()
            .expect("run hashgate hash");
        assert!(
            out.status.success(),
            "{stem}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = parse(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(got.len(), want.len(), "{stem}: frame count");
        let (mut compared, mut worst, mut total) = (0u32, 0u32, 0u64);
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.frame, w.frame, "{stem}: frame numbering");
            assert!(
                (g.seconds - w.seconds).abs() < 0.0015,
                "{stem} frame {}: {} s vs {} s",
                g.frame,
                g.seconds,
                w.seconds
            );
            if g.quality >= 50 && w.quality >= 50 {
                let d = g.hash.distance(&w.hash);
                assert!(
                    d < 31,
                    "{stem} frame {}: {d} bits from the reference",
                    g.frame
                );
                compared += 1;
                worst = worst.max(d);
                total += d as u64;
            }
        }
        summary.push(format!(
            "{stem}: {} frames, {compared} compared, max {worst} bits, mean {:.2}",
            got.len(),
            total as f64 / compared.max(1) as f64
        ));
    }
    println!("{}", summary.join("\n"));
}
