//! A white-box attacker on PDQ, shared by `bench/whitebox.rs` and the tests: it pushes the
//! DCT coefficients of a frame nearest PDQ's median across it with a smooth pattern built on
//! PDQ's own basis (the 16 × 16 lowest frequencies of the 64 × 64 downsample, drawn at full
//! resolution), correcting for the blur and the moving median over a few rounds.

use hashgate::hash::pdq::{pdq, LumaImage};

const FREQS: usize = 16;

/// PDQ's 1-D basis function of frequency `f` (1..=16) at sample `t` of the 64-point grid.
fn basis(f: usize, t: f32) -> f32 {
    (2.0f32 / 64.0).sqrt() * (std::f32::consts::PI * f as f32 * (2.0 * t + 1.0) / 128.0).cos()
}

/// The full-resolution picture whose 64 × 64 downsample has `amplitudes[i][j]` of PDQ's
/// coefficient (i + 1, j + 1): vertical frequency i + 1, horizontal j + 1.
fn pattern(width: usize, height: usize, amplitudes: &[[f32; FREQS]; FREQS]) -> Vec<f32> {
    let grid = |n: usize, at: usize| (at as f32 + 0.5) * 64.0 / n as f32 - 0.5;
    let across: Vec<[f32; FREQS]> = (0..width)
        .map(|x| std::array::from_fn(|j| basis(j + 1, grid(width, x))))
        .collect();
    let mut out = Vec::with_capacity(width * height);
    for y in 0..height {
        let t = grid(height, y);
        let row: [f32; FREQS] = std::array::from_fn(|j| {
            (0..FREQS)
                .map(|i| basis(i + 1, t) * amplitudes[i][j])
                .sum::<f32>()
        });
        for bx in &across {
            out.push(row.iter().zip(bx).map(|(r, b)| r * b).sum::<f32>());
        }
    }
    out
}

fn median(values: &[f32]) -> f32 {
    let mut v = values.to_vec();
    v.sort_by(f32::total_cmp);
    (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
}

/// The frame with its `bits` coefficients nearest the median pushed `landing` across it.
pub fn attack(frame: &LumaImage, bits: usize, landing: f32) -> LumaImage {
    let clean = pdq(frame).coefficients();
    let flat: Vec<f32> = clean.iter().flatten().copied().collect();
    let mid = median(&flat);
    let spread = median(&flat.iter().map(|c| (c - mid).abs()).collect::<Vec<_>>());
    let mut order: Vec<usize> = (0..flat.len()).collect();
    order.sort_by(|&a, &b| (flat[a] - mid).abs().total_cmp(&(flat[b] - mid).abs()));
    let targets = &order[..bits];
    let mut amplitudes = [[0f32; FREQS]; FREQS];
    let mut attacked = frame.clone();
    for _ in 0..8 {
        let delta = pattern(frame.width, frame.height, &amplitudes);
        for (out, (p, d)) in attacked
            .pixels
            .iter_mut()
            .zip(frame.pixels.iter().zip(&delta))
        {
            *out = (p + d).clamp(0.0, 255.0).round();
        }
        let now = pdq(&attacked).coefficients();
        let now_flat: Vec<f32> = now.iter().flatten().copied().collect();
        let now_mid = median(&now_flat);
        for &k in targets {
            let side = if flat[k] > mid { -1.0 } else { 1.0 };
            let want = now_mid + side * landing * spread;
            let error = want - now_flat[k];
            amplitudes[k / FREQS][k % FREQS] += error * 1.2;
        }
    }
    attacked
}
