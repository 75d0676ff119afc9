//! hashgate side of bench/media_bank.sh: the cost of checking a frame against a media bank on
//! one core. Finds the features of every 15th frame of the video given (the "frame" cost),
//! then searches banks of 1, 10 and 100 clips built from the videos given, the first among them
//! (the "search" cost: every reference frame paired, and the vote index's frames only), and
//! prints Markdown rows: medians over the frames, milliseconds, and what a check costs in all
//! (the features' median plus the voted search's).

use std::time::Instant;

use hashgate::bank::{
    CheckSettings, Clip, FrameFeatures, IndexedBank, MediaBank, DEFAULT_FEATURES,
};
use hashgate::inspect::file::decode_file;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    let videos: Vec<Vec<hashgate::hash::pdq::LumaImage>> = args[1..]
        .iter()
        .map(|path| {
            let mut frames = Vec::new();
            decode_file(std::path::Path::new(path), |f| {
                if f.number % 15 == 0 {
                    frames.push(f.luma);
                }
            })
            .expect("decode");
            frames
        })
        .collect();
    let frames = &videos[0];
    let settings = CheckSettings::default();
    let mut features = Vec::new();
    let mut took = Vec::new();
    // Five rounds over the frames: the median of 30 rather than 6 on a noisy machine.
    for round in 0..5 {
        for luma in frames {
            let t = Instant::now();
            let found = FrameFeatures::of(luma, DEFAULT_FEATURES);
            took.push(t.elapsed().as_secs_f64() * 1000.0);
            if round == 0 {
                features.push(found);
            }
        }
    }
    // A fingerprint of every feature found (position, level, angle, descriptor): a change
    // meant to find the same features faster must leave it as it was.
    let mut fingerprint = std::collections::hash_map::DefaultHasher::new();
    for f in features.iter().flat_map(|f| &f.features) {
        use std::hash::Hash;
        (
            f.x.to_bits(),
            f.y.to_bits(),
            f.level,
            f.angle.to_bits(),
            f.descriptor,
        )
            .hash(&mut fingerprint);
    }
    eprintln!(
        "features fingerprint {:016x}",
        std::hash::Hasher::finish(&fingerprint)
    );
    let (w, h) = (frames[0].width, frames[0].height);
    println!(
        "| step | bank frames | bank features | ms per checked frame (median of {}; features {}) |",
        frames.len(),
        took.len()
    );
    println!("|---|---|---|---|");
    let features_ms = median(took);
    println!("| features of a {w}x{h} frame | - | - | {features_ms:.2} |");
    for copies in [1usize, 10, 100] {
        let mut bank = MediaBank::default();
        for c in 0..copies {
            // Each clip its own footage (the first is the one checked): identical copies
            // would split the vote index's votes evenly and flatter nothing.
            let which = c % videos.len();
            let clip = Clip {
                name: format!("clip-{c}"),
                source: args[1 + which].clone(),
            };
            bank.add_clip(
                clip,
                videos[which]
                    .iter()
                    .enumerate()
                    .map(|(i, l)| (i as u32 * 500, l.clone())),
                DEFAULT_FEATURES,
            );
        }
        let (frames, count) = (bank.frames.len(), bank.feature_count());
        let mut exhaustive = Vec::new();
        for f in &features {
            let t = Instant::now();
            std::hint::black_box(bank.best(f, &settings));
            exhaustive.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let indexed = IndexedBank::new(bank);
        let mut voted = Vec::new();
        for f in &features {
            let t = Instant::now();
            std::hint::black_box(indexed.best(f, &settings));
            voted.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        println!(
            "| search, every frame paired | {frames} | {count} | {:.2} |",
            median(exhaustive)
        );
        let voted_ms = median(voted);
        println!(
            "| search, voted frames paired ({} MiB index) | {frames} | {count} | {voted_ms:.2} |",
            indexed.index_bytes() >> 20,
        );
        println!(
            "| **a checked frame: features + voted search** | {frames} | {count} | **{:.2}** |",
            features_ms + voted_ms
        );
    }
}
