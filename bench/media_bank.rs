//! hashgate side of bench/media_bank.sh: the cost of checking a frame against a media bank on
//! one core. Finds the features of every 15th frame of the video given (the "frame" cost),
//! then searches banks of growing size built from the same frames (the "search" cost), and
//! prints Markdown rows: medians over the frames, milliseconds.

use std::time::Instant;

use hashgate::bank::{CheckSettings, Clip, FrameFeatures, MediaBank, DEFAULT_FEATURES};
use hashgate::inspect::file::decode_file;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    let mut frames = Vec::new();
    decode_file(std::path::Path::new(&args[1]), |f| {
        if f.number % 15 == 0 {
            frames.push(f.luma);
        }
    })
    .expect("decode");
    let settings = CheckSettings::default();
    let mut features = Vec::new();
    let mut took = Vec::new();
    for luma in &frames {
        let t = Instant::now();
        features.push(FrameFeatures::of(luma, DEFAULT_FEATURES));
        took.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (w, h) = (frames[0].width, frames[0].height);
    println!(
        "| step | bank frames | bank features | ms per checked frame (median of {}) |",
        frames.len()
    );
    println!("|---|---|---|---|");
    println!(
        "| features of a {w}x{h} frame | - | - | {:.2} |",
        median(took)
    );
    for copies in [1usize, 10, 100] {
        let mut bank = MediaBank::default();
        for c in 0..copies {
            let clip = Clip {
                name: format!("clip-{c}"),
                source: args[1].clone(),
            };
            bank.add_clip(
                clip,
                frames
                    .iter()
                    .enumerate()
                    .map(|(i, l)| (i as u32 * 500, l.clone())),
                DEFAULT_FEATURES,
            );
        }
        let mut took = Vec::new();
        for f in &features {
            let t = Instant::now();
            std::hint::black_box(bank.best(f, &settings));
            took.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        println!(
            "| search (pairs, verification) | {} | {} | {:.2} |",
            bank.frames.len(),
            bank.feature_count(),
            median(took)
        );
    }
}
