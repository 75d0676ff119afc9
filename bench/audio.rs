//! Audio matching: robustness, benign margin, index speed against brute force, and cost.
//!
//! The corpus is synthetic (tests/common/sound.rs): the known clip is espeak-ng reading an
//! announcement over a melody; benign audio is the same words in another voice, other words in
//! the same voice, music of tones, pink noise. Each transformation of the known soundtrack is
//! fingerprinted and every window of it (at `min_seconds` of 2.5, 5 and 7.5) is aligned by
//! brute force with the clip: the table gives the worst (highest) best-alignment BER over the
//! windows, and how many windows the index finds under the threshold. Excerpts start at random
//! sample offsets, so the sub-fingerprint grid of the excerpt and the clip differ in phase.
//!
//! Run with `bench/audio.sh` (Markdown on stdout, progress on stderr).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::Instant;

use common::sound::*;
use hashgate::hash::chromaprint::{fingerprint, ITEM_SAMPLES, SAMPLE_RATE};
use hashgate::inspect::audio::decode_file_audio;
use hashgate::matcher::audio::{AudioClip, AudioIndex};
use hashgate::matcher::list::{ListSettings, DEFAULT_MAX_BER};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Sub-fingerprints of a window resting on `seconds` of audio (as `min_seconds` sets it).
fn items_for(seconds: f64) -> usize {
    let mut list = ListSettings::for_path("bench");
    list.algorithm = hashgate::hash::imghash::Algorithm::Chromaprint;
    list.min_seconds = Some(seconds);
    list.window_items()
}

fn pcm(path: &Path) -> Vec<i16> {
    decode_file_audio(path).expect("decodable audio").0
}

fn rms(x: &[i16]) -> f64 {
    (x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

/// `signal` with `other` mixed in at `snr_db`.
fn mixed(signal: &[i16], other: &[i16], snr_db: f64) -> Vec<i16> {
    let gain = rms(signal) / rms(other) / 10f64.powf(snr_db / 20.0);
    signal
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            let o = f64::from(other[i % other.len()]) * gain;
            (f64::from(s) + o).clamp(-32768.0, 32767.0) as i16
        })
        .collect()
}

fn encoded(dir: &Path, source: &Path, name: &str, args: &[&str]) -> Vec<i16> {
    let out = dir.join(name);
    let mut all = vec!["-i", source.to_str().expect("utf-8")];
    all.extend_from_slice(args);
    all.push(out.to_str().expect("utf-8"));
    ffmpeg(&all);
    pcm(&out)
}

struct Windows {
    worst: f64,
    found: usize,
    brute: usize,
    total: usize,
}

/// Every `step`-th window of `items` sub-fingerprints of `variant`, against `index` (clip 0).
fn windows(index: &AudioIndex, variant: &[u32], items: usize, max_ber: f64) -> Windows {
    let mut w = Windows {
        worst: 0.0,
        found: 0,
        brute: 0,
        total: 0,
    };
    let mut start = 0;
    while start + items <= variant.len() {
        let window = &variant[start..start + items];
        let best = index
            .brute_force(window, 1.0)
            .first()
            .map_or(1.0, |h| h.ber);
        w.worst = w.worst.max(best);
        w.brute += usize::from(best <= max_ber);
        w.found += usize::from(!index.search(window, max_ber).is_empty());
        w.total += 1;
        start += 4;
    }
    w
}

fn robustness(dir: &Path) {
    let soundtrack = known_soundtrack(dir);
    let clean = pcm(&soundtrack);
    let reference = fingerprint(&clean);
    let index = AudioIndex::build(vec![AudioClip::new("known", "bench", reference.clone())]);
    let noise = pcm(&benign_soundtrack(dir, "noise"));
    let music = pcm(&benign_soundtrack(dir, "music"));
    let mut rng = StdRng::seed_from_u64(11);
    let sizes = [5.0, 7.5, 10.0];
    let mut variants: Vec<(String, Vec<i16>)> = vec![
        (
            "as published (44.1 kHz stereo → 11025 Hz)".into(),
            clean.clone(),
        ),
        (
            "AAC 48 kbit/s mono".into(),
            encoded(
                dir,
                &soundtrack,
                "aac48.m4a",
                &["-ac", "1", "-c:a", "aac", "-b:a", "48k"],
            ),
        ),
        (
            "MP3 48 kbit/s mono".into(),
            encoded(
                dir,
                &soundtrack,
                "mp348.mp3",
                &["-ac", "1", "-c:a", "libmp3lame", "-b:a", "48k"],
            ),
        ),
        (
            "volume +12 dB".into(),
            encoded(dir, &soundtrack, "up.wav", &["-af", "volume=12dB"]),
        ),
        (
            "volume -12 dB".into(),
            encoded(dir, &soundtrack, "down.wav", &["-af", "volume=-12dB"]),
        ),
        (
            "resampled to 48 kHz, AAC 96 kbit/s".into(),
            encoded(
                dir,
                &soundtrack,
                "r48.m4a",
                &["-ar", "48000", "-c:a", "aac", "-b:a", "96k"],
            ),
        ),
        (
            "pink noise at SNR 10 dB".into(),
            mixed(&clean, &noise, 10.0),
        ),
        ("music at SNR 10 dB".into(), mixed(&clean, &music, 10.0)),
        (
            "tempo +5 % (pitch kept)".into(),
            encoded(dir, &soundtrack, "tempo.wav", &["-af", "atempo=1.05"]),
        ),
        (
            "speed +5 % (pitch up)".into(),
            encoded(
                dir,
                &soundtrack,
                "fast.wav",
                &["-af", "asetrate=46305,aresample=44100"],
            ),
        ),
        (
            "speed -5 % (pitch down)".into(),
            encoded(
                dir,
                &soundtrack,
                "slow.wav",
                &["-af", "asetrate=41895,aresample=44100"],
            ),
        ),
    ];
    let benign: Vec<(String, Vec<i16>)> = vec![
        (
            "benign: the same words, another voice".into(),
            pcm(&benign_soundtrack(dir, "samewords")),
        ),
        (
            "benign: other words, the same voice".into(),
            pcm(&benign_soundtrack(dir, "samevoice")),
        ),
        ("benign: music (tones)".into(), music.clone()),
        ("benign: pink noise".into(), noise.clone()),
    ];
    println!(
        "Known clip: {:.1} s, {} sub-fingerprints; threshold max_ber = {DEFAULT_MAX_BER}. \
         Each cell: worst best-alignment BER over the windows; index found / brute force under \
         the threshold / windows.\n",
        clean.len() as f64 / f64::from(SAMPLE_RATE),
        reference.len()
    );
    print!("| audio |");
    for s in sizes {
        print!(" min_seconds {s} ({} items) |", items_for(s));
    }
    println!();
    println!("|---|{}", "---|".repeat(sizes.len()));
    let mut worst_benign = [1.0f64; 3];
    for (name, samples) in variants.drain(..).chain(benign) {
        // Start at a random sample: the excerpt's item grid is out of phase with the clip's.
        let phase = rng.gen_range(0..ITEM_SAMPLES as usize);
        let items = fingerprint(&samples[phase.min(samples.len())..]);
        print!("| {name} |");
        for (k, s) in sizes.iter().enumerate() {
            let w = windows(&index, &items, items_for(*s), DEFAULT_MAX_BER);
            if name.starts_with("benign") {
                let best = lowest(&index, &items, items_for(*s));
                worst_benign[k] = worst_benign[k].min(best);
                print!(" lowest {best:.3}; {}/{}/{} |", w.found, w.brute, w.total);
            } else {
                print!(" {:.3}; {}/{}/{} |", w.worst, w.found, w.brute, w.total);
            }
        }
        println!();
        eprintln!("{name}: done");
    }
    print!("\nMargin from the threshold to the closest benign window:");
    for (k, s) in sizes.iter().enumerate() {
        print!(
            " min_seconds {s}: {:.3} (lowest benign {:.3});",
            worst_benign[k] - DEFAULT_MAX_BER,
            worst_benign[k]
        );
    }
    println!("\n");
}

/// The lowest BER any window of `items` reaches against the clip (benign audio).
fn lowest(index: &AudioIndex, variant: &[u32], items: usize) -> f64 {
    let mut low = 1.0f64;
    let mut start = 0;
    while start + items <= variant.len() {
        if let Some(h) = index
            .brute_force(&variant[start..start + items], 1.0)
            .first()
        {
            low = low.min(h.ber);
        }
        start += 2;
    }
    low
}

fn speed() {
    let mut rng = StdRng::seed_from_u64(5);
    println!("| reference clips (30 s each) | sub-fingerprints | build s | index MB | index µs/window | brute force µs/window | speedup | windows/s per core (index) |");
    println!("|---|---|---|---|---|---|---|---|");
    // The last row: 10,000 clips at 21 speeds each (`--speeds 0.90:1.10:0.01`), whose
    // references cost what as many more clips cost.
    for (clips, speeds) in [
        (1_000usize, 1usize),
        (10_000, 1),
        (100_000, 1),
        (10_000, 21),
    ] {
        let clips = clips * speeds;
        let built = Instant::now();
        let list: Vec<AudioClip> = (0..clips)
            .map(|k| {
                AudioClip::new(
                    format!("clip{k}"),
                    format!("bench:{k}"),
                    (0..242).map(|_| rng.gen()).collect(),
                )
            })
            .collect();
        let index = AudioIndex::build(list);
        let build_s = built.elapsed().as_secs_f64();
        // Queries: a default window (min_seconds 5) of a random clip with 10 % of its bits
        // flipped, half of them unrelated audio.
        let w = items_for(5.0);
        let queries: Vec<Vec<u32>> = (0..200)
            .map(|q| {
                if q % 2 == 0 {
                    let c = &index.clips()[rng.gen_range(0..clips)].items;
                    let at = rng.gen_range(0..c.len() - w);
                    c[at..at + w]
                        .iter()
                        .map(|&v| {
                            let mut x = v;
                            for b in 0..32 {
                                if rng.gen_bool(0.1) {
                                    x ^= 1 << b;
                                }
                            }
                            x
                        })
                        .collect()
                } else {
                    (0..w).map(|_| rng.gen()).collect()
                }
            })
            .collect();
        let t = Instant::now();
        let mut found = 0;
        for q in &queries {
            found += index.search(q, DEFAULT_MAX_BER).len();
        }
        let index_us = t.elapsed().as_secs_f64() * 1e6 / queries.len() as f64;
        let brute_n = if clips >= 100_000 { 2 } else { 10 };
        let t = Instant::now();
        let mut brute_found = 0;
        for q in queries.iter().take(brute_n) {
            brute_found += index.brute_force(q, DEFAULT_MAX_BER).len();
        }
        let brute_us = t.elapsed().as_secs_f64() * 1e6 / brute_n as f64;
        let agree = queries.iter().take(brute_n).all(|q| {
            index.search(q, DEFAULT_MAX_BER).len() == index.brute_force(q, DEFAULT_MAX_BER).len()
        });
        let name = if speeds > 1 {
            format!("{} × {speeds} speeds", clips / speeds)
        } else {
            clips.to_string()
        };
        println!(
            "| {name} | {} | {build_s:.2} | {:.0} | {index_us:.1} | {brute_us:.0} | {:.0}x | {:.0} |",
            index.len(),
            index.memory_bytes() as f64 / 1e6,
            brute_us / index_us,
            1e6 / index_us
        );
        eprintln!(
            "{clips} clips: index found {found} matches in {} queries; brute force agrees on the first {brute_n}: {agree} ({brute_found})",
            queries.len()
        );
    }
    println!();
}

fn cost(dir: &Path) {
    // A minute of the known soundtrack as AAC, as a broadcaster sends it.
    let soundtrack = known_soundtrack(dir);
    let minute = dir.join("minute.m4a");
    ffmpeg(&[
        "-stream_loop",
        "3",
        "-i",
        soundtrack.to_str().expect("utf-8"),
        "-t",
        "60",
        "-c:a",
        "aac",
        "-b:a",
        "128k",
        minute.to_str().expect("utf-8"),
    ]);
    let t = Instant::now();
    let (samples, _) = decode_file_audio(&minute).expect("decode");
    let decode_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let items = fingerprint(&samples);
    let print_s = t.elapsed().as_secs_f64();
    let seconds = samples.len() as f64 / f64::from(SAMPLE_RATE);
    println!(
        "Cost per stream ({seconds:.0} s of 44.1 kHz stereo AAC 128 kbit/s, {} sub-fingerprints): \
         decoding and resampling {:.2} % of a core, fingerprinting {:.2} % of a core, together \
         {:.2} %.",
        items.len(),
        decode_s / seconds * 100.0,
        print_s / seconds * 100.0,
        (decode_s + print_s) / seconds * 100.0
    );
}

fn main() {
    let dir = tempfile::Builder::new()
        .prefix("hashgate-audio-bench-")
        .tempdir()
        .expect("temp dir");
    robustness(dir.path());
    speed();
    cost(dir.path());
}
