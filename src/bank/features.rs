//! Local features, ORB-style (Rublee et al., ICCV 2011): FAST-9 corners on a scale pyramid,
//! ranked by the Harris response and spread over the picture, each with its orientation
//! (the intensity centroid) and a 256-bit steered BRIEF descriptor of the smoothed patch.
//!
//! The descriptor is a binary string compared by Hamming distance, like PDQ, and is rotated
//! with the patch, so a rotated, scaled or partly covered copy of a picture keeps most of its
//! features. The sampling pattern is drawn from a fixed seed by this file's own generator
//! ([`pattern`]): a bank built today matches tomorrow's build, and [`DESCRIPTOR_KIND`] names it
//! in bank files.

use super::image::{BoxSums, Grey};

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
/// A grid over each level; cells take turns to give their best corner, so busy texture in one
/// part of the picture (a moving pattern around a picture-in-picture, a logo) cannot take the
/// features of the rest.
const GRID: usize = 8;

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
    let turned = turned_patterns();
    let shares = level_shares(budget);
    let mut level = picture.clone();
    let mut out = Vec::with_capacity(budget);
    for (index, &share) in shares.iter().enumerate() {
        if index > 0 {
            // Each level from the one above: cheaper than from the picture, and as sharp.
            level = level.shrunk(SCALE_STEP);
        }
        // Each axis by its own ratio (rounding makes them differ), pixel centres to centres.
        let sx = picture.width as f64 / level.width as f64;
        let sy = picture.height as f64 / level.height as f64;
        if level.width <= 2 * BORDER || level.height <= 2 * BORDER {
            break;
        }
        let corners = strongest(&level, share);
        let smooth = BoxSums::of(&level);
        for (x, y) in corners {
            let angle = orientation(&level, x, y);
            let descriptor = describe(&smooth, x, y, &turned[angle_bin(angle)]);
            out.push(Feature {
                x: ((x as f64 + 0.5) * sx - 0.5) as f32,
                y: ((y as f64 + 0.5) * sy - 0.5) as f32,
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

/// FAST-9 score of the pixel at `index` (which passed [`compass_row`]'s test) of a picture
/// whose circle offsets are `ring`: 0 when it is not a corner, else how far past the threshold
/// the brighter (or darker) arc is, summed.
#[inline]
fn fast_score(pixels: &[u8], ring: &[isize; 16], index: usize) -> u32 {
    let centre = i16::from(pixels[index]);
    let circle: [i16; 16] =
        std::array::from_fn(|i| i16::from(pixels[(index as isize + ring[i]) as usize]));
    // Lane by lane, so the compiler keeps the sixteen in two vector registers.
    let over: [i16; 16] = std::array::from_fn(|i| (circle[i] - centre - FAST_THRESHOLD).max(0));
    let under: [i16; 16] = std::array::from_fn(|i| (centre - circle[i] - FAST_THRESHOLD).max(0));
    let mask = |v: &[i16; 16]| (0..16).fold(0u32, |m, i| m | u32::from(v[i] > 0) << i);
    let sum = |v: &[i16; 16]| v.iter().map(|&x| x as u32).sum::<u32>();
    if has_arc(mask(&over)) {
        sum(&over)
    } else if has_arc(mask(&under)) {
        sum(&under)
    } else {
        0
    }
}

/// FAST's quick test for a whole row, in a form the compiler vectorises: a pixel can be a
/// corner only when four consecutive of the circle's eight even points are all brighter, or
/// all darker, than it by the threshold (any arc of 9 of the 16 covers four or five of them).
fn compass_row(g: &Grey, y: usize, candidate: &mut [bool]) {
    let w = g.width;
    let t = FAST_THRESHOLD as u8;
    let row = |(dx, dy): (i32, i32)| {
        let start = ((y as isize + dy as isize) * w as isize + dx as isize) as usize + BORDER;
        &g.pixels[start..start + (w - 2 * BORDER)]
    };
    let centre = row((0, 0));
    let even: [&[u8]; 8] = std::array::from_fn(|i| row(CIRCLE[2 * i]));
    let out = &mut candidate[BORDER..w - BORDER];
    for i in 0..out.len() {
        let c = centre[i];
        let (mut bright, mut dark) = ([0u8; 8], [0u8; 8]);
        for k in 0..8 {
            bright[k] = u8::from(even[k][i].saturating_sub(c) > t);
            dark[k] = u8::from(c.saturating_sub(even[k][i]) > t);
        }
        out[i] = four_in_a_row(&bright) | four_in_a_row(&dark);
    }
}

/// Whether four cyclically consecutive of eight flags (0 or 1) are all set.
#[inline(always)]
fn four_in_a_row(f: &[u8; 8]) -> bool {
    let pair: [u8; 8] = std::array::from_fn(|k| f[k] & f[(k + 1) % 8]);
    (0..8).fold(0u8, |any, k| any | (pair[k] & pair[(k + 2) % 8])) != 0
}

/// The circle's pixels as offsets from the centre's index in a picture `w` wide.
fn ring_offsets(w: usize) -> [isize; 16] {
    CIRCLE.map(|(dx, dy)| dy as isize * w as isize + dx as isize)
}

/// The level's best corners: FAST-9 with 3×3 non-maximum suppression, ranked by the Harris
/// response, at most `share`, no grid cell more than an eighth of them.
fn strongest(g: &Grey, share: usize) -> Vec<(usize, usize)> {
    let (w, h) = (g.width, g.height);
    let mut scores = vec![0u32; w * h];
    let ring = ring_offsets(w);
    let mut candidate = vec![false; w];
    for y in BORDER..h - BORDER {
        compass_row(g, y, &mut candidate);
        for x in BORDER..w - BORDER {
            if candidate[x] {
                scores[y * w + x] = fast_score(&g.pixels, &ring, y * w + x);
            }
        }
    }
    let mut fast: Vec<(u32, usize, usize)> = Vec::new();
    for y in BORDER..h - BORDER {
        for x in BORDER..w - BORDER {
            let s = scores[y * w + x];
            if s != 0 && local_maximum(&scores, w, x, y) {
                fast.push((s, x, y));
            }
        }
    }
    // Harris ranks each cell's strongest FAST corners only (the response is the costly
    // part): enough for the cell to give twice an even share.
    fast.sort_by_key(|&(s, x, y)| (std::cmp::Reverse(s), y, x));
    let per_cell_max = (2 * share).div_ceil(GRID * GRID).max(1);
    let mut cells: Vec<Vec<(f64, usize, usize)>> = vec![Vec::new(); GRID * GRID];
    for (_, x, y) in fast {
        let cell = &mut cells[(y * GRID / h) * GRID + x * GRID / w];
        if cell.len() < per_cell_max {
            cell.push((harris(g, x, y), x, y));
        }
    }
    take_turns(cells, share)
}

/// Up to `share` corners, the cells taking turns to give their best (within a turn the
/// strongest first), so every cell with corners is represented.
fn take_turns(mut cells: Vec<Vec<(f64, usize, usize)>>, share: usize) -> Vec<(usize, usize)> {
    for cell in cells.iter_mut() {
        // Weakest first, so the best is popped.
        cell.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let mut kept = Vec::with_capacity(share);
    while kept.len() < share {
        let mut turn: Vec<(f64, usize, usize)> = cells.iter_mut().filter_map(Vec::pop).collect();
        if turn.is_empty() {
            break;
        }
        turn.sort_by(|a, b| b.0.total_cmp(&a.0));
        let room = share - kept.len();
        kept.extend(turn.into_iter().take(room).map(|(_, x, y)| (x, y)));
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
    for (row, &half) in disc_halves().iter().enumerate() {
        let dy = row as i64 - i64::from(PATCH_RADIUS);
        let start = (y as i64 + dy) as usize * g.width + x - half;
        let line = &g.pixels[start..=start + 2 * half];
        // At most 31 pixels of 255: a row's sums fit 32 bits, which the compiler vectorises.
        let (mut sum, mut moment) = (0i32, 0i32);
        for (i, &v) in line.iter().enumerate() {
            sum += i32::from(v);
            moment += i as i32 * i32::from(v);
        }
        // Σ dx·v with dx = i − half.
        m10 += i64::from(moment) - half as i64 * i64::from(sum);
        m01 += dy * i64::from(sum);
    }
    (m01 as f64).atan2(m10 as f64)
}

/// Half the width of each row of the patch's disc, top to bottom (made once).
fn disc_halves() -> &'static [usize; 2 * PATCH_RADIUS as usize + 1] {
    static HALVES: std::sync::OnceLock<[usize; 2 * PATCH_RADIUS as usize + 1]> =
        std::sync::OnceLock::new();
    HALVES.get_or_init(|| {
        std::array::from_fn(|row| {
            let dy = row as i32 - PATCH_RADIUS;
            f64::from(PATCH_RADIUS * PATCH_RADIUS - dy * dy).sqrt() as usize
        })
    })
}

/// The pattern is turned in this many steps of the full circle (as ORB does: a descriptor
/// steered to the nearest step loses little against one turned exactly, and costs no trigonometry).
const ANGLE_STEPS: usize = 32;

/// The pattern's pixel offsets turned by one step.
type Turned = [([i8; 2], [i8; 2]); 256];

/// The pattern turned to each of the [`ANGLE_STEPS`], made once.
fn turned_patterns() -> &'static [Turned; ANGLE_STEPS] {
    static TABLES: std::sync::OnceLock<Box<[Turned; ANGLE_STEPS]>> = std::sync::OnceLock::new();
    TABLES.get_or_init(|| {
        let base = pattern();
        Box::new(std::array::from_fn(|step| {
            let angle = step as f64 * std::f64::consts::TAU / ANGLE_STEPS as f64;
            let (sin, cos) = angle.sin_cos();
            let turn = |(px, py): (f32, f32)| {
                let (px, py) = (f64::from(px), f64::from(py));
                [
                    (px * cos - py * sin).round() as i8,
                    (px * sin + py * cos).round() as i8,
                ]
            };
            std::array::from_fn(|i| (turn(base[i].0), turn(base[i].1)))
        }))
    })
}

/// The step nearest an angle (radians).
fn angle_bin(angle: f64) -> usize {
    let steps = (angle / std::f64::consts::TAU * ANGLE_STEPS as f64).round() as i64;
    steps.rem_euclid(ANGLE_STEPS as i64) as usize
}

/// Steered BRIEF: each pair of the turned pattern one bit (first point's box darker).
fn describe(smooth: &BoxSums, x: usize, y: usize, turned: &Turned) -> [u64; 4] {
    let at = |[dx, dy]: [i8; 2]| {
        smooth.box5(
            (x as isize + isize::from(dx)) as usize,
            (y as isize + isize::from(dy)) as usize,
        )
    };
    // A word at a time, each comparison a bit shifted in (no branch on a coin toss).
    std::array::from_fn(|word| {
        turned[word * 64..(word + 1) * 64]
            .iter()
            .enumerate()
            .fold(0u64, |bits, (i, &(a, b))| {
                bits | u64::from(at(a) < at(b)) << i
            })
    })
}

/// 256 point pairs of the descriptor, in patch coordinates.
type Pattern = [((f32, f32), (f32, f32)); 256];

/// The sampling pattern: BRIEF's second geometry (both points drawn from an isotropic Gaussian
/// with σ² = S²/25 for the 31-pixel patch), points outside `PATTERN_RADIUS` redrawn, from a
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
        let (px, py) = (
            r * (std::f64::consts::TAU * v).cos(),
            r * (std::f64::consts::TAU * v).sin(),
        );
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
pub(crate) mod tests {
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
    fn the_quick_test_never_turns_away_a_corner() {
        // Noise and blocks: every pixel FAST-9 scores must pass the row test, which only
        // saves work (a corner it turned away would be lost silently).
        let mut s = 0x1234_5678u64;
        let noise = Grey {
            width: 96,
            height: 64,
            pixels: (0..96 * 64)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    (s % 256) as u8
                })
                .collect(),
        };
        for g in [noise, blocks(96, 64, 5)] {
            let ring = ring_offsets(g.width);
            let mut candidate = vec![false; g.width];
            let (mut corners, mut turned_away) = (0, 0);
            for y in BORDER..g.height - BORDER {
                compass_row(&g, y, &mut candidate);
                for (x, &passed) in candidate
                    .iter()
                    .enumerate()
                    .take(g.width - BORDER)
                    .skip(BORDER)
                {
                    let corner = fast_score(&g.pixels, &ring, y * g.width + x) > 0;
                    corners += usize::from(corner);
                    turned_away += usize::from(!passed);
                    assert!(!corner || passed, "({x}, {y})");
                }
            }
            assert!(corners > 0 && turned_away > 0, "{corners} {turned_away}");
        }
        assert!(four_in_a_row(&[1, 1, 0, 0, 0, 0, 1, 1]));
        assert!(!four_in_a_row(&[1, 1, 1, 0, 1, 1, 1, 0]));
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
        assert!(
            left > found.len() / 4 && left < found.len() * 3 / 4,
            "{left}"
        );
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
        let mut rot = g.clone();
        for y in 0..160 {
            for x in 0..160 {
                rot.pixels[x * 160 + (159 - y)] = g.at(x, y);
            }
        }
        let (s, t) = (BoxSums::of(&g), BoxSums::of(&rot));
        let turned = turned_patterns();
        let corners = strongest(&g, 40);
        assert!(!corners.is_empty());
        let mut close = 0;
        for &(x, y) in &corners {
            let (tx, ty) = (159 - y, x);
            if tx < BORDER || ty < BORDER || tx >= 160 - BORDER || ty >= 160 - BORDER {
                continue;
            }
            let a = describe(&s, x, y, &turned[angle_bin(orientation(&g, x, y))]);
            let b = describe(&t, tx, ty, &turned[angle_bin(orientation(&rot, tx, ty))]);
            let d: u32 = (0..4).map(|i| (a[i] ^ b[i]).count_ones()).sum();
            if d < 50 {
                close += 1;
            }
        }
        assert!(close * 2 > corners.len(), "{close} of {}", corners.len());
    }

    #[test]
    fn angles_fall_in_their_nearest_step() {
        use std::f64::consts::TAU;
        assert_eq!(angle_bin(0.0), 0);
        assert_eq!(angle_bin(TAU / 32.0 * 0.4), 0);
        assert_eq!(angle_bin(TAU / 32.0 * 0.6), 1);
        assert_eq!(angle_bin(-TAU / 32.0), 31);
        assert_eq!(angle_bin(TAU / 2.0), 16);
        assert_eq!(angle_bin(-TAU / 2.0), 16);
    }
}
