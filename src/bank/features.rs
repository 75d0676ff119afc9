//! Local features, ORB-style (Rublee et al., ICCV 2011): FAST-9 corners on a scale pyramid,
//! ranked by the Harris response and spread over the picture, each with its orientation
//! (the intensity centroid) and a 256-bit steered BRIEF descriptor of the smoothed patch.
//!
//! The descriptor is a binary string compared by Hamming distance, like PDQ, and is rotated
//! with the patch, so a rotated, scaled or partly covered copy of a picture keeps most of its
//! features. The sampling pattern is drawn from a fixed seed by this file's own generator
//! ([`pattern`]): a bank built today matches tomorrow's build, and [`DESCRIPTOR_KIND`] names it
//! in bank files.

use super::image::Grey;

/// The descriptor a bank file holds: this file's pattern, its seed and its patch.
pub const DESCRIPTOR_KIND: u32 = 1;

/// Radius of the patch the orientation and descriptor read (a 31-pixel disc).
const PATCH_RADIUS: i32 = 15;
/// Pattern points lie within this radius, so they stay in the patch whatever the rotation.
const PATTERN_RADIUS: f64 = 13.0;
/// Corners closer than this to a level's edge are skipped (the patch must fit).
const BORDER: usize = PATCH_RADIUS as usize + 1;
/// FAST's intensity threshold (0–255).
const FAST_THRESHOLD: i16 = 12;
/// The pyramid's scale step and depth: 1.3⁴ ≈ 2.9, so a copy shown at a third of the size
/// still meets the reference at some level.
const SCALE_STEP: f64 = 1.3;
const LEVELS: usize = 5;
/// A grid over each level; one cell keeps at most an eighth of the level's features, so a
/// logo's corners cannot take the whole budget.
const GRID: usize = 4;

/// One feature: where it is (working-picture pixels), how it is turned, and its descriptor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Feature {
    /// Position in the working picture (level 0 coordinates).
    pub x: f32,
    /// Position in the working picture (level 0 coordinates).
    pub y: f32,
    /// Pyramid level it was found at.
    pub level: u8,
    /// Orientation, radians.
    pub angle: f32,
    /// Steered BRIEF: 256 comparisons of smoothed pixel pairs.
    pub descriptor: [u64; 4],
}

/// The features of a picture, at most `budget`, best first within each level.
pub fn detect(picture: &Grey, budget: usize) -> Vec<Feature> {
    let pattern = pattern();
    let shares = level_shares(budget);
    let mut level = picture.clone();
    let mut scale = 1.0f64;
    let mut out = Vec::with_capacity(budget);
    for (index, &share) in shares.iter().enumerate() {
        if index > 0 {
            scale *= SCALE_STEP;
            level = picture.shrunk(scale);
        }
        if level.width <= 2 * BORDER || level.height <= 2 * BORDER {
            break;
        }
        let corners = strongest(&level, share);
        let smooth = level.smoothed();
        for (x, y) in corners {
            let angle = orientation(&level, x, y);
            let descriptor = describe(&smooth, x, y, angle, &pattern);
            out.push(Feature {
                x: (x as f64 * scale) as f32,
                y: (y as f64 * scale) as f32,
                level: index as u8,
                angle: angle as f32,
                descriptor,
            });
        }
    }
    out
}

/// How many features each level may keep: in proportion to its area.
fn level_shares(budget: usize) -> Vec<usize> {
    let factor = 1.0 / (SCALE_STEP * SCALE_STEP);
    let total: f64 = (0..LEVELS).map(|l| factor.powi(l as i32)).sum();
    (0..LEVELS)
        .map(|l| ((budget as f64 * factor.powi(l as i32) / total).round() as usize).max(1))
        .collect()
}

/// The 16 pixels of FAST's circle (radius 3), in order around it.
const CIRCLE: [(i32, i32); 16] = [
    (0, -3),
    (1, -3),
    (2, -2),
    (3, -1),
    (3, 0),
    (3, 1),
    (2, 2),
    (1, 3),
    (0, 3),
    (-1, 3),
    (-2, 2),
    (-3, 1),
    (-3, 0),
    (-3, -1),
    (-2, -2),
    (-1, -3),
];

/// Whether a 16-bit circular mask has 9 set bits in a row.
fn has_arc(mask: u32) -> bool {
    let mut run = mask | (mask << 16);
    for _ in 0..8 {
        run &= run >> 1;
    }
    run != 0
}

/// FAST-9 score of (x, y): 0 when it is not a corner, else how far past the threshold the
/// brighter (or darker) arc is, summed.
fn fast_score(g: &Grey, x: usize, y: usize) -> u32 {
    let centre = i16::from(g.at(x, y));
    let ring = |i: usize| {
        let (dx, dy) = CIRCLE[i];
        i16::from(g.at((x as i32 + dx) as usize, (y as i32 + dy) as usize))
    };
    // Any arc of 9 covers at least two of the four compass points.
    let compass = [ring(0), ring(4), ring(8), ring(12)];
    let bright_points = compass
        .iter()
        .filter(|&&v| v > centre + FAST_THRESHOLD)
        .count();
    let dark_points = compass
        .iter()
        .filter(|&&v| v < centre - FAST_THRESHOLD)
        .count();
    if bright_points < 2 && dark_points < 2 {
        return 0;
    }
    let (mut bright, mut dark, mut bright_sum, mut dark_sum) = (0u32, 0u32, 0u32, 0u32);
    for i in 0..16 {
        let d = ring(i) - centre;
        if d > FAST_THRESHOLD {
            bright |= 1 << i;
            bright_sum += (d - FAST_THRESHOLD) as u32;
        } else if d < -FAST_THRESHOLD {
            dark |= 1 << i;
            dark_sum += (-d - FAST_THRESHOLD) as u32;
        }
    }
    match (has_arc(bright), has_arc(dark)) {
        (true, _) => bright_sum,
        (false, true) => dark_sum,
        _ => 0,
    }
}

/// The level's best corners: FAST-9 with 3×3 non-maximum suppression, ranked by the Harris
/// response, at most `share`, no grid cell more than an eighth of them.
fn strongest(g: &Grey, share: usize) -> Vec<(usize, usize)> {
    let (w, h) = (g.width, g.height);
    let mut scores = vec![0u32; w * h];
    for y in BORDER..h - BORDER {
        for x in BORDER..w - BORDER {
            scores[y * w + x] = fast_score(g, x, y);
        }
    }
    let mut corners: Vec<(f64, usize, usize)> = Vec::new();
    for y in BORDER..h - BORDER {
        for x in BORDER..w - BORDER {
            let s = scores[y * w + x];
            if s == 0 || !local_maximum(&scores, w, x, y) {
                continue;
            }
            corners.push((harris(g, x, y), x, y));
        }
    }
    corners.sort_by(|a, b| b.0.total_cmp(&a.0));
    let cap = share.div_ceil(8).max(1);
    let mut per_cell = [0usize; GRID * GRID];
    let mut kept = Vec::with_capacity(share);
    for (_, x, y) in corners {
        let cell = (y * GRID / h) * GRID + x * GRID / w;
        if per_cell[cell] >= cap {
            continue;
        }
        per_cell[cell] += 1;
        kept.push((x, y));
        if kept.len() == share {
            break;
        }
    }
    kept
}

/// Whether the score at (x, y) beats its 8 neighbours (ties go to the earlier pixel).
fn local_maximum(scores: &[u32], w: usize, x: usize, y: usize) -> bool {
    let s = scores[y * w + x];
    for dy in -1i32..=1 {
        for dx in -1i32..=1 {
            if dx == 0 && dy == 0 {
                continue;
            }
            let n = scores[(y as i32 + dy) as usize * w + (x as i32 + dx) as usize];
            let earlier = dy < 0 || (dy == 0 && dx < 0);
            if n > s || (n == s && earlier) {
                return false;
            }
        }
    }
    true
}

/// The Harris corner response (k = 0.04) over a 7×7 block of central-difference gradients.
fn harris(g: &Grey, x: usize, y: usize) -> f64 {
    let (mut xx, mut yy, mut xy) = (0.0f64, 0.0f64, 0.0f64);
    for dy in -3i32..=3 {
        for dx in -3i32..=3 {
            let (px, py) = ((x as i32 + dx) as usize, (y as i32 + dy) as usize);
            let gx = f64::from(g.at(px + 1, py)) - f64::from(g.at(px - 1, py));
            let gy = f64::from(g.at(px, py + 1)) - f64::from(g.at(px, py - 1));
            xx += gx * gx;
            yy += gy * gy;
            xy += gx * gy;
        }
    }
    xx * yy - xy * xy - 0.04 * (xx + yy) * (xx + yy)
}

/// The patch's orientation: the angle from (x, y) to its intensity centroid over the disc.
fn orientation(g: &Grey, x: usize, y: usize) -> f64 {
    let (mut m10, mut m01) = (0i64, 0i64);
    for dy in -PATCH_RADIUS..=PATCH_RADIUS {
        let half = ((PATCH_RADIUS * PATCH_RADIUS - dy * dy) as f64).sqrt() as i32;
        for dx in -half..=half {
            let v = i64::from(g.at((x as i32 + dx) as usize, (y as i32 + dy) as usize));
            m10 += i64::from(dx) * v;
            m01 += i64::from(dy) * v;
        }
    }
    (m01 as f64).atan2(m10 as f64)
}

/// Steered BRIEF: the pattern turned by `angle`, each pair one bit (first point darker).
fn describe(smooth: &Grey, x: usize, y: usize, angle: f64, pattern: &Pattern) -> [u64; 4] {
    let (sin, cos) = angle.sin_cos();
    let at = |(px, py): (f32, f32)| {
        let (px, py) = (f64::from(px), f64::from(py));
        let rx = (px * cos - py * sin).round() as i32;
        let ry = (px * sin + py * cos).round() as i32;
        smooth.at((x as i32 + rx) as usize, (y as i32 + ry) as usize)
    };
    let mut bits = [0u64; 4];
    for (i, (a, b)) in pattern.iter().enumerate() {
        if at(*a) < at(*b) {
            bits[i / 64] |= 1 << (i % 64);
        }
    }
    bits
}

/// 256 point pairs of the descriptor, in patch coordinates.
type Pattern = [((f32, f32), (f32, f32)); 256];

/// The sampling pattern: BRIEF's second geometry (both points drawn from an isotropic Gaussian
/// with σ² = S²/25 for the 31-pixel patch), points outside [`PATTERN_RADIUS`] redrawn, from a
/// fixed seed with SplitMix64 and Box–Muller (ours, so no dependency can change it).
pub fn pattern() -> Pattern {
    let mut state = 0x6861_7368_6761_7465u64; // "hashgate"
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    let sigma = 31.0 / 5.0;
    let mut point = move || loop {
        let (u, v) = (next().max(f64::MIN_POSITIVE), next());
        let r = (-2.0 * u.ln()).sqrt() * sigma;
        let (px, py) = (r * (std::f64::consts::TAU * v).cos(), r * (std::f64::consts::TAU * v).sin());
        if px.hypot(py) <= PATTERN_RADIUS {
            return (px as f32, py as f32);
        }
    };
    let mut out = [((0.0, 0.0), (0.0, 0.0)); 256];
    for pair in out.iter_mut() {
        *pair = (point(), point());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A picture of scattered bright rectangles on a dark ground, from a seed.
    pub(crate) fn blocks(width: usize, height: usize, seed: u64) -> Grey {
        let mut pixels = vec![30u8; width * height];
        let mut s = seed;
        let mut rnd = |n: usize| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % n as u64) as usize
        };
        for _ in 0..60 {
            let (bw, bh) = (8 + rnd(40), 8 + rnd(40));
            let (x0, y0) = (rnd(width - bw), rnd(height - bh));
            let v = 80 + rnd(170) as u8;
            for y in y0..y0 + bh {
                for x in x0..x0 + bw {
                    pixels[y * width + x] = v;
                }
            }
        }
        Grey {
            width,
            height,
            pixels,
        }
    }

    #[test]
    fn an_arc_of_nine_is_a_corner_and_eight_is_not() {
        assert!(has_arc(0b1_1111_1111));
        assert!(!has_arc(0b1111_1111));
        // Wrapping round the circle: bits 12..15 and 0..4.
        assert!(has_arc(0b1111_0000_0001_1111));
        assert!(!has_arc(0b0101_0101_0101_0101));
    }

    #[test]
    fn a_flat_picture_has_no_features_and_a_busy_one_fills_its_budget_spread_out() {
        let flat = Grey {
            width: 200,
            height: 120,
            pixels: vec![90; 200 * 120],
        };
        assert!(detect(&flat, 300).is_empty());
        let busy = blocks(480, 270, 7);
        let found = detect(&busy, 300);
        assert!(found.len() > 150, "{}", found.len());
        assert!(found.len() <= 310);
        let left = found.iter().filter(|f| f.x < 240.0).count();
        assert!(left > found.len() / 4 && left < found.len() * 3 / 4, "{left}");
    }

    #[test]
    fn the_pattern_is_fixed_and_inside_the_patch() {
        let p = pattern();
        assert_eq!(p, pattern());
        for (a, b) in p.iter() {
            assert!(f64::from(a.0).hypot(f64::from(a.1)) <= PATTERN_RADIUS);
            assert!(f64::from(b.0).hypot(f64::from(b.1)) <= PATTERN_RADIUS);
        }
        // Not degenerate: the points spread over the patch.
        let far = p.iter().filter(|(a, _)| a.0.abs() > 6.0).count();
        assert!(far > 30 && far < 200, "{far}");
    }

    #[test]
    fn a_rotated_patch_keeps_its_descriptor_close() {
        // The same picture and its 90° turn: a corner's descriptor, steered by its own
        // orientation, should land within a few dozen bits of the original.
        let g = blocks(160, 160, 3);
        let mut turned = g.clone();
        for y in 0..160 {
            for x in 0..160 {
                turned.pixels[x * 160 + (159 - y)] = g.at(x, y);
            }
        }
        let (s, t) = (g.smoothed(), turned.smoothed());
        let p = pattern();
        let corners = strongest(&g, 40);
        assert!(!corners.is_empty());
        let mut close = 0;
        for &(x, y) in &corners {
            let (tx, ty) = (159 - y, x);
            if tx < BORDER || ty < BORDER || tx >= 160 - BORDER || ty >= 160 - BORDER {
                continue;
            }
            let a = describe(&s, x, y, orientation(&g, x, y), &p);
            let b = describe(&t, tx, ty, orientation(&turned, tx, ty), &p);
            let d: u32 = (0..4).map(|i| (a[i] ^ b[i]).count_ones()).sum();
            if d < 50 {
                close += 1;
            }
        }
        assert!(close * 2 > corners.len(), "{close} of {}", corners.len());
    }
}
