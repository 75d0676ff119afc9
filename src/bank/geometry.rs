//! Geometric verification: of the feature pairs two pictures share, how many one plane-to-plane
//! mapping (a homography: rotation, scale, crop, shift, a screen filmed at an angle) explains.
//! Similar scenes share descriptors by chance; only a copy shares them in one arrangement.
//!
//! RANSAC with a fixed seed: the same pairs give the same answer on every run and machine.

/// A point pair: where a feature sits in the reference picture and in the frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pair {
    /// Reference position.
    pub from: (f64, f64),
    /// Frame position.
    pub to: (f64, f64),
}

/// A 3×3 homography, row-major, `h[8] = 1`.
pub type Homography = [f64; 9];

/// What verification found: the mapping and how many pairs it explains.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    /// Reference to frame.
    pub mapping: Homography,
    /// Pairs within the tolerance of the mapping.
    pub inliers: usize,
}

/// Most RANSAC rounds.
const ROUNDS: usize = 800;

/// The homography (reference → frame) that explains the most `pairs` within `tolerance` pixels,
/// if any plausible one explains at least 4. `reference` is the reference picture's size: a
/// mapping that folds it over, or shrinks it below 1/64 of its area or beyond 64 times, is not
/// a copy however many pairs it explains.
pub fn verify(pairs: &[Pair], tolerance: f64, reference: (f64, f64)) -> Option<Fit> {
    if pairs.len() < 4 {
        return None;
    }
    let mut rng = 0x5EED_u64 ^ pairs.len() as u64;
    let mut pick = |n: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % n as u64) as usize
    };
    let mut best: Option<Fit> = None;
    let mut rounds = ROUNDS;
    let mut round = 0;
    while round < rounds {
        round += 1;
        let idx = [
            pick(pairs.len()),
            pick(pairs.len()),
            pick(pairs.len()),
            pick(pairs.len()),
        ];
        let sample = idx.map(|i| pairs[i]);
        if degenerate(&sample) {
            continue;
        }
        let Some(h) = from_four(&sample) else {
            continue;
        };
        if !plausible(&h, reference) {
            continue;
        }
        let inliers = count_inliers(&h, pairs, tolerance);
        if best.as_ref().is_none_or(|b| inliers > b.inliers) {
            rounds = rounds.min(enough_rounds(inliers, pairs.len()).max(round));
            best = Some(Fit {
                mapping: h,
                inliers,
            });
        }
    }
    best.filter(|b| b.inliers >= 4)
}

/// Rounds after which a better sample would have been drawn with 99.9 % confidence.
fn enough_rounds(inliers: usize, total: usize) -> usize {
    let share = inliers as f64 / total as f64;
    let all_good = share.powi(4);
    if all_good >= 1.0 {
        return 1;
    }
    if all_good <= 0.0 {
        return ROUNDS;
    }
    let n = (0.001f64).ln() / (1.0 - all_good).ln();
    (n.ceil() as usize).min(ROUNDS)
}

/// Pairs whose reference point the mapping carries within `tolerance` of their frame point.
pub fn count_inliers(h: &Homography, pairs: &[Pair], tolerance: f64) -> usize {
    let limit = tolerance * tolerance;
    pairs
        .iter()
        .filter(|p| {
            apply(h, p.from).is_some_and(|(x, y)| {
                let (dx, dy) = (x - p.to.0, y - p.to.1);
                dx * dx + dy * dy <= limit
            })
        })
        .count()
}

/// Where the mapping carries a point (None at infinity).
pub fn apply(h: &Homography, (x, y): (f64, f64)) -> Option<(f64, f64)> {
    let w = h[6] * x + h[7] * y + h[8];
    if w.abs() < 1e-9 {
        return None;
    }
    Some((
        (h[0] * x + h[1] * y + h[2]) / w,
        (h[3] * x + h[4] * y + h[5]) / w,
    ))
}

/// Four pairs of which three points (on either side) nearly line up, or that repeat a point,
/// fix no homography.
fn degenerate(sample: &[Pair; 4]) -> bool {
    let side = |pick: fn(&Pair) -> (f64, f64)| {
        let p: Vec<(f64, f64)> = sample.iter().map(pick).collect();
        let area = |a: (f64, f64), b: (f64, f64), c: (f64, f64)| {
            ((b.0 - a.0) * (c.1 - a.1) - (b.1 - a.1) * (c.0 - a.0)).abs()
        };
        [(0, 1, 2), (0, 1, 3), (0, 2, 3), (1, 2, 3)]
            .iter()
            .any(|&(i, j, k)| area(p[i], p[j], p[k]) < 4.0)
    };
    side(|p| p.from) || side(|p| p.to)
}

/// The mapping keeps the reference's corners in order (no fold, no point at infinity) and its
/// area within a factor of 64.
fn plausible(h: &Homography, (w, hgt): (f64, f64)) -> bool {
    let corners = [(0.0, 0.0), (w, 0.0), (w, hgt), (0.0, hgt)];
    let mut mapped = [(0.0, 0.0); 4];
    for (m, c) in mapped.iter_mut().zip(corners) {
        let Some(p) = apply(h, c) else {
            return false;
        };
        if h[6] * c.0 + h[7] * c.1 + h[8] <= 0.0 {
            return false;
        }
        *m = p;
    }
    let cross = |i: usize| {
        let (a, b, c) = (mapped[i], mapped[(i + 1) % 4], mapped[(i + 2) % 4]);
        (b.0 - a.0) * (c.1 - b.1) - (b.1 - a.1) * (c.0 - b.0)
    };
    let signs: Vec<bool> = (0..4).map(|i| cross(i) > 0.0).collect();
    if signs.iter().any(|&s| s != signs[0]) {
        return false;
    }
    let area = (0..4)
        .map(|i| mapped[i].0 * mapped[(i + 1) % 4].1 - mapped[(i + 1) % 4].0 * mapped[i].1)
        .sum::<f64>()
        .abs()
        / 2.0;
    let ratio = area / (w * hgt);
    (1.0 / 64.0..=64.0).contains(&ratio)
}

/// The homography through four pairs exactly (the direct linear transform with h₈ = 1), or
/// None when they fix none.
pub fn from_four(sample: &[Pair; 4]) -> Option<Homography> {
    let mut a = [[0.0f64; 9]; 8];
    for (i, p) in sample.iter().enumerate() {
        let ((x, y), (u, v)) = (p.from, p.to);
        a[2 * i] = [x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y, u];
        a[2 * i + 1] = [0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y, v];
    }
    let h = solve8(a)?;
    Some([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], 1.0])
}

/// Gaussian elimination with partial pivoting on an 8×8 system (last column the right side).
fn solve8(mut a: [[f64; 9]; 8]) -> Option<[f64; 8]> {
    for col in 0..8 {
        let pivot = (col..8).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-10 {
            return None;
        }
        a.swap(col, pivot);
        let pivot_row = a[col];
        for (row, line) in a.iter_mut().enumerate() {
            if row == col {
                continue;
            }
            let f = line[col] / pivot_row[col];
            if f != 0.0 {
                for (v, p) in line.iter_mut().zip(pivot_row).skip(col) {
                    *v -= f * p;
                }
            }
        }
    }
    Some(std::array::from_fn(|i| a[i][8] / a[i][i]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rotation_scale(angle: f64, scale: f64, shift: (f64, f64)) -> Homography {
        let (s, c) = angle.sin_cos();
        [
            scale * c,
            -scale * s,
            shift.0,
            scale * s,
            scale * c,
            shift.1,
            0.0,
            0.0,
            1.0,
        ]
    }

    fn grid_points() -> Vec<(f64, f64)> {
        (0..60)
            .map(|i| (17.0 + (i * 37 % 400) as f64, 11.0 + (i * 53 % 250) as f64))
            .collect()
    }

    #[test]
    fn four_pairs_give_back_the_mapping_that_made_them() {
        let h = [1.1, 0.05, 12.0, -0.03, 0.9, 7.0, 0.0004, -0.0002, 1.0];
        let pts = [(0.0, 0.0), (300.0, 10.0), (280.0, 200.0), (20.0, 190.0)];
        let sample = pts.map(|p| Pair {
            from: p,
            to: apply(&h, p).unwrap(),
        });
        let got = from_four(&sample).unwrap();
        for (a, b) in got.iter().zip(h) {
            assert!((a - b).abs() < 1e-6, "{got:?}");
        }
    }

    #[test]
    fn a_rotated_copy_among_random_pairs_is_found_and_random_pairs_alone_are_not() {
        let h = rotation_scale(0.15, 0.8, (40.0, -10.0));
        let mut pairs: Vec<Pair> = grid_points()
            .into_iter()
            .map(|p| Pair {
                from: p,
                to: apply(&h, p).unwrap(),
            })
            .collect();
        let noise: Vec<Pair> = (0..120)
            .map(|i| Pair {
                from: ((i * 71 % 450) as f64, (i * 29 % 260) as f64),
                to: ((i * 113 % 470) as f64, (i * 47 % 270) as f64),
            })
            .collect();
        pairs.extend(noise.iter().copied());
        let fit = verify(&pairs, 3.0, (480.0, 270.0)).unwrap();
        assert!(fit.inliers >= 60, "{}", fit.inliers);
        let chance = verify(&noise, 3.0, (480.0, 270.0)).map_or(0, |f| f.inliers);
        assert!(chance < 12, "{chance}");
    }

    #[test]
    fn a_folded_or_vanishing_mapping_is_not_plausible() {
        let mirror = [-1.0, 0.0, 400.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
        // A mirror keeps the corners in (reversed) order: plausible.
        assert!(plausible(&mirror, (400.0, 300.0)));
        let tiny = rotation_scale(0.0, 0.05, (0.0, 0.0));
        assert!(!plausible(&tiny, (400.0, 300.0)));
        let fine = rotation_scale(0.2, 0.7, (10.0, 10.0));
        assert!(plausible(&fine, (400.0, 300.0)));
        // The horizon crosses the picture: its far side would be drawn behind the camera.
        let folded = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, -0.004, 0.0, 1.0];
        assert!(!plausible(&folded, (400.0, 300.0)));
        let tilted = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.001, 0.0, 1.0];
        assert!(plausible(&tilted, (400.0, 300.0)));
    }
}
