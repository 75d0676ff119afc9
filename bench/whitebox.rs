//! A white-box attacker on PDQ, and what each defence makes it pay.
//!
//! PDQ and hashgate are public, so a re-uploader can compute exactly which of a frame's 256 DCT
//! coefficients lie nearest the median and push them across it with a smooth low-frequency
//! pattern built on PDQ's own basis (the 16 × 16 lowest frequencies of the 64 × 64 downsample,
//! drawn at full resolution). Each attack here takes one frame of a known clip, picks the `bits`
//! coefficients nearest the median, and lands each one `landing` beyond the median on the
//! other side (in units of the frame's median distance of a coefficient to the median),
//! correcting for the blur and the moving median over a few rounds. The perturbed frame is then
//! encoded with x264 at CRF 23 and decoded, as a platform would receive it, and matched with
//! hashgate's own matcher (every view: whole frame, dihedrals, windows, negatives).
//!
//! For each defence the table gives, over the frames, the best PSNR (luma, against the clean
//! frame) of an attack that evades it after encoding: the quality of picture an attacker keeps.
//! Higher is worse for the defence; "none" means no attack tried evaded.
//!
//! Run with `bench/whitebox.sh` (prints Markdown; ~4 minutes on 2 cores).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[path = "../tests/common/steer.rs"]
mod steer;

use hashgate::hash::pdq::{pdq, LumaImage};
use hashgate::hash::{hash_frame, Views};
use hashgate::inspect::file::decode_file;
use hashgate::matcher::list::ListSettings;
use hashgate::matcher::Matcher;
use steer::attack;

/// Bits pushed across the median, per attack.
const BITS: [usize; 4] = [32, 49, 72, 96];
/// Where pushed coefficients land beyond the median, in units of the frame's median distance
/// of a coefficient to the median.
const LANDINGS: [f32; 7] = [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2];

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clips = [
        ("zoom", "mandelbrot=size=640x360:rate=30"),
        (
            "life",
            "life=size=160x90:rate=2:mold=10:ratio=0.1:seed=7:life_color=white:death_color=#802010:mold_color=#205080,scale=640:360:flags=neighbor",
        ),
    ];
    let defences = defences(dir.path());
    println!(
        "| clip | frames | defence | best PSNR of an evading attack, dB (median over frames) | frames evadable at ≥ 35 dB | plain PSNR of the weakest evading attack's bits/landing |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, source) in clips {
        let frames = clip_frames(dir.path(), name, source);
        let list = write_list(dir.path(), name, &frames);
        let mut outcomes: Vec<Vec<Option<(f64, usize, f32)>>> = vec![Vec::new(); defences.len()];
        for (n, frame) in frames.iter().enumerate() {
            let attempts = attempts(dir.path(), frame, &format!("{name}-{n}"));
            for (d, (_, settings)) in defences.iter().enumerate() {
                let mut s = settings(list.clone());
                s.label = Some(name.into());
                let matcher = Matcher::load(vec![s]).expect("list");
                let best = attempts
                    .iter()
                    .filter(|a| evades(&matcher, &a.received))
                    .map(|a| (a.psnr, a.bits, a.landing))
                    .max_by(|a, b| a.0.total_cmp(&b.0));
                outcomes[d].push(best);
            }
        }
        for ((defence, _), results) in defences.iter().zip(&outcomes) {
            report(name, defence, results);
        }
    }
    println!(
        "\nAttacks per frame, on the frame and on its mirror image: bits pushed {BITS:?} × landing {LANDINGS:?}; x264 CRF 23 after each. \
         Frames: one every 0.5 s of each 3 s clip, hashed as the list (`hashgate hash --fps 2`)."
    );
}

type Settings = Box<dyn Fn(PathBuf) -> ListSettings>;

/// The matcher configurations compared: the full 256 bits only (as before the defence), the
/// shipped default (sure bits at a weak margin of 0.8 too), and narrower and wider margins.
fn defences(_dir: &Path) -> Vec<(&'static str, Settings)> {
    let margin = |m: f32| {
        Box::new(move |path: PathBuf| ListSettings {
            weak_margin: Some(m),
            ..ListSettings::for_path(path)
        }) as Settings
    };
    vec![
        ("all 256 bits only (weak_margin = 0)", margin(0.0)),
        ("sure bits too, weak_margin = 0.4", margin(0.4)),
        ("sure bits too, weak_margin = 0.8 (default)", margin(0.8)),
        ("sure bits too, weak_margin = 1.2", margin(1.2)),
    ]
}

fn report(clip: &str, defence: &str, results: &[Option<(f64, usize, f32)>]) {
    let mut psnrs: Vec<f64> = results.iter().map(|r| r.map_or(0.0, |r| r.0)).collect();
    psnrs.sort_by(f64::total_cmp);
    let median = psnrs[psnrs.len() / 2];
    let over_35 = psnrs.iter().filter(|p| **p >= 35.0).count();
    let weakest = results
        .iter()
        .flatten()
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map_or("-".to_owned(), |(p, b, l)| {
            format!("{p:.1} dB: {b} bits at {l}")
        });
    let median = if median == 0.0 {
        "none".to_owned()
    } else {
        format!("{median:.1}")
    };
    println!(
        "| {clip} | {} | {defence} | {median} | {over_35} of {} | {weakest} |",
        results.len(),
        results.len()
    );
}

/// One attack on a frame: the picture as received after encoding, and its PSNR.
struct Attempt {
    bits: usize,
    landing: f32,
    psnr: f64,
    received: LumaImage,
}

/// Every attack on `frame`, and on its mirror image (an attacker who read the matcher mirrors
/// first when that helps; the PSNR is then against the mirrored clean frame).
fn attempts(dir: &Path, frame: &LumaImage, name: &str) -> Vec<Attempt> {
    let mut out = Vec::new();
    for clean in [frame.clone(), mirror(frame)] {
        for bits in BITS {
            for landing in LANDINGS {
                let attacked = attack(&clean, bits, landing);
                let received = x264(dir, &attacked, name);
                let psnr = psnr(&clean, &received);
                out.push(Attempt {
                    bits,
                    landing,
                    psnr,
                    received,
                });
            }
        }
    }
    out
}

fn mirror(frame: &LumaImage) -> LumaImage {
    let pixels = frame
        .pixels
        .chunks(frame.width)
        .flat_map(|row| row.iter().rev().copied())
        .collect();
    LumaImage { pixels, ..*frame }
}

/// Whether no list entry matches any view of `image` (what the live path hashes of a frame).
fn evades(matcher: &Matcher, image: &LumaImage) -> bool {
    let views = Views {
        windows: true,
        ..Views::default()
    };
    let hashes = hash_frame(image, views);
    matcher.match_frame(&hashes, image).matches.is_empty()
}

fn psnr(a: &LumaImage, b: &LumaImage) -> f64 {
    let mse: f64 = a
        .pixels
        .iter()
        .zip(&b.pixels)
        .map(|(x, y)| f64::from(x - y).powi(2))
        .sum::<f64>()
        / a.pixels.len() as f64;
    10.0 * (255.0f64 * 255.0 / mse.max(1e-9)).log10()
}

/// The picture as a platform receives it: x264 at CRF 23 (full-range grey, chroma neutral), decoded.
fn x264(dir: &Path, image: &LumaImage, name: &str) -> LumaImage {
    let path = dir.join(format!("{name}.mp4"));
    let mut child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo"])
        .args(["-pix_fmt", "gray", "-s"])
        .arg(format!("{}x{}", image.width, image.height))
        .args([
            "-i", "-", "-c:v", "libx264", "-preset", "veryfast", "-crf", "23",
        ])
        .args(["-pix_fmt", "yuvj420p"])
        .arg(&path)
        .stdin(Stdio::piped())
        .spawn()
        .expect("ffmpeg");
    let bytes: Vec<u8> = image.pixels.iter().map(|v| *v as u8).collect();
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&bytes)
        .expect("write");
    assert!(child.wait().expect("ffmpeg").success());
    let mut decoded = None;
    decode_file(&path, |f| {
        decoded.get_or_insert(f.luma);
    })
    .expect("decode");
    decoded.expect("a frame")
}

/// One frame every 0.5 s of the 3 s clip `source`, as decoded from a CRF 18 encode.
fn clip_frames(dir: &Path, name: &str, source: &str) -> Vec<LumaImage> {
    let path = dir.join(format!("{name}.mp4"));
    let status = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg(source)
        .args(["-t", "3", "-r", "30", "-c:v", "libx264", "-crf", "18"])
        .args(["-pix_fmt", "yuv420p"])
        .arg(&path)
        .status()
        .expect("ffmpeg");
    assert!(status.success());
    let mut frames = Vec::new();
    decode_file(&path, |f| {
        if f.number % 15 == 0 {
            frames.push(f.luma);
        }
    })
    .expect("decode");
    frames
}

/// The clean frames' hashes as a TSV list.
fn write_list(dir: &Path, name: &str, frames: &[LumaImage]) -> PathBuf {
    let path = dir.join(format!("{name}.tsv"));
    let text: String = frames
        .iter()
        .enumerate()
        .map(|(n, f)| {
            let d = pdq(f);
            format!("{}\t{}\t{name}-{n}\n", d.hash(), d.quality)
        })
        .collect();
    std::fs::write(&path, text).expect("list");
    path
}
