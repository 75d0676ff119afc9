//! Screen-door overlays taken off before features are found: thin lines drawn across the whole
//! picture (a grid of 2-pixel lines every 24 pixels) run through every 31-pixel patch and turn
//! a third of each descriptor's comparisons into comparisons of the grid, so a re-stream under
//! such a grid pairs with nothing. Lines where most pixels stand out from the pixels a few rows
//! above and below them, on both sides and the same way, are found and filled in from those
//! neighbours: rows and columns, and, when the picture's strong gradients agree on one turned
//! orientation (a grid rotated with the picture), lines along it. Only long straight lines are
//! taken, and only their pixels that stand out: a picture's own thin lines are rarely straight
//! across most of it, and filling them in loses only what they carried. A direction where more
//! than a third of the positions qualify is a texture (stripes, scanlines), left as it is, so a
//! striped panel beside a clip cannot make the eraser wipe the clip.

use super::image::Grey;

/// How far above and below (left and right of) a line its neighbours are read: a line up to
/// `2 * REACH - 1` pixels wide at the working size is found.
const REACH: usize = 3;
/// How far a line's pixel must stand out from both neighbours, grey levels.
const STANDS_OUT: u8 = 16;
/// A pixel of a line found is filled in when it stands out by this much (the soft edge an
/// encoder gives a line), and only then: what a line crosses stays as it is.
const PART_OF_LINE: u8 = 6;
/// The share of a line's pixels that must stand out, the same way, for it to be taken.
const SHARE: f64 = 0.5;
/// A line must cross at least this share of the picture's width to be judged.
const MIN_LENGTH: f64 = 0.25;
/// A direction in which more than this share of line positions qualify is a texture (stripes,
/// scanlines, interlacing), not an overlay: left as it is.
const MOST_LINES: f64 = 0.35;
/// Gradients weaker than this (Sobel: 8 × grey levels per pixel) do not vote for the
/// orientation.
const WEAK_GRADIENT: i32 = 80;
/// How one-directional the picture's strong gradients must be (0-1, modulo 90°) before lines
/// along their orientation are looked for: a grid turned with the picture is, ordinary footage
/// mostly is not.
const MIN_COHERENCE: f64 = 0.15;
/// The orientation estimate is good to about a degree; a 2-pixel line drifts off its track by
/// a pixel over 512 at 0.1°. Slopes this far either side of it, this far apart, are scored on
/// every `SCORE_STEP`th column, and the best (with its neighbours) is used.
const SEARCH_DEGREES: f64 = 1.2;
const SEARCH_STEP: f64 = 0.1;
const SCORE_STEP: usize = 4;
/// Turned by less than this (degrees), a grid is left to the straight search.
const MIN_TURN: f64 = 0.5;

/// Which way a line stands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Polarity {
    Brighter,
    Darker,
}

/// Finds the overlay's lines in `g` — straight across, or turned with the picture — and fills
/// them in. Returns how many line positions (a pixel apart) were filled (0 for an ordinary
/// picture).
pub fn erase_thin_lines(g: &mut Grey) -> usize {
    let mut filled = erase_straight(g);
    let slopes = turned_slopes(g);
    if slopes.is_empty() {
        return filled;
    }
    for &slope in &slopes {
        filled += erase_along(g, slope);
    }
    // Columns, as rows of the turned picture (where a line turned by θ has slope −tan θ).
    let mut turned = transposed(g);
    for &slope in &slopes {
        filled += erase_along(&mut turned, -slope);
    }
    *g = transposed(&turned);
    filled
}

/// By how much `p` is brighter than both its neighbours `a` and `b`, and darker than both.
#[inline]
fn excess(a: u8, p: u8, b: u8) -> (u8, u8) {
    (p.saturating_sub(a.max(b)), a.min(b).saturating_sub(p))
}

/// How one row compares with the rows `REACH` above and below: how many of its pixels stand
/// out brighter (darker) than both by more than `STANDS_OUT`. (A loop the compiler vectorises.)
fn row_counts(above: &[u8], here: &[u8], below: &[u8]) -> (usize, usize) {
    let (mut brighter, mut darker) = (0u32, 0u32);
    for ((&a, &p), &b) in above.iter().zip(here).zip(below) {
        let (up, down) = excess(a, p, b);
        brighter += u32::from(up > STANDS_OUT);
        darker += u32::from(down > STANDS_OUT);
    }
    (brighter as usize, darker as usize)
}

/// Which way a line whose pixels stand out so many times each way, of `length`, stands out.
fn polarity(brighter: usize, darker: usize, length: usize) -> Option<Polarity> {
    let needed = (length as f64 * SHARE).ceil() as usize;
    if brighter >= needed {
        Some(Polarity::Brighter)
    } else if darker >= needed {
        Some(Polarity::Darker)
    } else {
        None
    }
}

/// The straight rows and columns that are lines, filled in (the common case, on rows of
/// memory, without turning the picture). Returns the lines taken.
fn erase_straight(g: &mut Grey) -> usize {
    let (w, h) = (g.width, g.height);
    if w <= 2 * REACH || h <= 2 * REACH {
        return 0;
    }
    // Rows.
    let mut rows = Vec::new();
    for y in REACH..h - REACH {
        let (a, p, b) = (
            &g.pixels[(y - REACH) * w..(y - REACH + 1) * w],
            &g.pixels[y * w..(y + 1) * w],
            &g.pixels[(y + REACH) * w..(y + REACH + 1) * w],
        );
        let (brighter, darker) = row_counts(a, p, b);
        if let Some(way) = polarity(brighter, darker, w) {
            rows.push((y, way));
        }
    }
    // Columns: each row's pixels against those `REACH` left and right, counted per column.
    let (mut brighter, mut darker) = (vec![0u32; w], vec![0u32; w]);
    for y in 0..h {
        let line = &g.pixels[y * w..(y + 1) * w];
        let (left, here, right) = (
            &line[..w - 2 * REACH],
            &line[REACH..w - REACH],
            &line[2 * REACH..],
        );
        let counts = brighter[REACH..w - REACH]
            .iter_mut()
            .zip(darker[REACH..w - REACH].iter_mut());
        for ((up, down), ((&a, &p), &b)) in counts.zip(left.iter().zip(here).zip(right)) {
            let (brighter, darker) = excess(a, p, b);
            *up += u32::from(brighter > STANDS_OUT);
            *down += u32::from(darker > STANDS_OUT);
        }
    }
    let columns: Vec<(usize, Polarity)> = (REACH..w - REACH)
        .filter_map(|x| Some((x, polarity(brighter[x] as usize, darker[x] as usize, h)?)))
        .collect();
    let rows_taken = if rows.len() as f64 > MOST_LINES * h as f64 {
        Vec::new()
    } else {
        rows
    };
    let columns_taken = if columns.len() as f64 > MOST_LINES * w as f64 {
        Vec::new()
    } else {
        columns
    };
    // An ordinary picture has no lines: nothing to mark, nothing to fill.
    if !rows_taken.is_empty() {
        let mut mask = vec![false; w * h];
        for &(y, way) in &rows_taken {
            for x in 0..w {
                mask[y * w + x] = stands_out_way(stand_out(g, x, y), way);
            }
        }
        fill_columns(g, &mask);
    }
    if !columns_taken.is_empty() {
        let mut mask = vec![false; w * h];
        for &(x, way) in &columns_taken {
            for y in 0..h {
                let line = &g.pixels[y * w..(y + 1) * w];
                let by = excess(line[x - REACH], line[x], line[x + REACH]);
                mask[y * w + x] = stands_out_way(by, way);
            }
        }
        fill_rows(g, &mask);
    }
    rows_taken.len() + columns_taken.len()
}

/// Whether a pixel that stands out `(brighter, darker)` by so much is part of a line that
/// stands out `way`.
fn stands_out_way((brighter, darker): (u8, u8), way: Polarity) -> bool {
    match way {
        Polarity::Brighter => brighter > PART_OF_LINE,
        Polarity::Darker => darker > PART_OF_LINE,
    }
}

/// Each row's runs of masked pixels (a line's width at most) replaced by a blend of the pixels
/// just left and right; longer runs are not a thin line and stay.
fn fill_rows(g: &mut Grey, mask: &[bool]) {
    let w = g.width;
    for (line, marks) in g.pixels.chunks_exact_mut(w).zip(mask.chunks_exact(w)) {
        let mut x = 0;
        while x < w {
            if !marks[x] {
                x += 1;
                continue;
            }
            let start = x;
            while x < w && marks[x] {
                x += 1;
            }
            if x - start > 2 * REACH - 1 {
                continue;
            }
            let left = f32::from(line[start.saturating_sub(1)]);
            let right = f32::from(line[x.min(w - 1)]);
            for (k, p) in line[start..x].iter_mut().enumerate() {
                let t = (k + 1) as f32 / (x - start + 1) as f32;
                *p = (left + (right - left) * t).round() as u8;
            }
        }
    }
}

/// Slopes (dy/dx) along which turned lines are looked for: when the picture's strong
/// gradients agree on a turned orientation, the slope near it whose lines stand out most
/// (rows and columns scored together), with its neighbours; else none.
fn turned_slopes(g: &Grey) -> Vec<f64> {
    let mut slopes = Vec::new();
    let Some(degrees) = orientation(g).filter(|d| d.abs() >= MIN_TURN) else {
        return slopes;
    };
    let turned = transposed(g);
    // Straight stripes are a texture; what a turned track finds across them is not a line.
    let count = |slope: f64| -> Option<usize> {
        Some(lines(g, slope, SCORE_STEP)?.len() + lines(&turned, -slope, SCORE_STEP)?.len())
    };
    if count(0.0).is_none() {
        return slopes;
    }
    let steps = (SEARCH_DEGREES / SEARCH_STEP).round() as i32;
    let mut best: Option<(usize, f64)> = None;
    for k in -steps..=steps {
        let d = degrees + f64::from(k) * SEARCH_STEP;
        match count(d.to_radians().tan()) {
            // A texture along the picture's own orientation: no overlay to look for.
            None => return slopes,
            Some(n) if n > 0 && best.is_none_or(|(m, _)| n > m) => best = Some((n, d)),
            Some(_) => {}
        }
    }
    if let Some((_, d)) = best {
        slopes.extend([d - SEARCH_STEP, d, d + SEARCH_STEP].map(|d| d.to_radians().tan()));
    }
    slopes
}

/// The dominant orientation of the picture's strong gradients modulo 90°, in degrees
/// (−45, 45], when they are coherent enough: the angle of the sum of their quadrupled angles.
fn orientation(g: &Grey) -> Option<f64> {
    let (w, h) = (g.width, g.height);
    if w < 3 || h < 3 {
        return None;
    }
    let at = |x: usize, y: usize| i32::from(g.pixels[y * w + x]);
    let (mut cos4, mut sin4, mut weight) = (0.0f64, 0.0f64, 0.0f64);
    // Every other pixel each way: the estimate only has to land within the slope search.
    for y in (1..h - 1).step_by(2) {
        for x in (1..w - 1).step_by(2) {
            // Sobel: central differences alone lean towards the axes on thin lines.
            let gx = at(x + 1, y - 1) + 2 * at(x + 1, y) + at(x + 1, y + 1)
                - at(x - 1, y - 1)
                - 2 * at(x - 1, y)
                - at(x - 1, y + 1);
            let gy = at(x - 1, y + 1) + 2 * at(x, y + 1) + at(x + 1, y + 1)
                - at(x - 1, y - 1)
                - 2 * at(x, y - 1)
                - at(x + 1, y - 1);
            let r2 = gx * gx + gy * gy;
            if r2 < WEAK_GRADIENT * WEAK_GRADIENT {
                continue;
            }
            let (gx, gy, r2) = (f64::from(gx), f64::from(gy), f64::from(r2));
            // cos 2φ·r², sin 2φ·r², then 4φ, weighted by r².
            let (c2, s2) = (gx * gx - gy * gy, 2.0 * gx * gy);
            cos4 += (c2 * c2 - s2 * s2) / r2;
            sin4 += 2.0 * c2 * s2 / r2;
            weight += r2;
        }
    }
    if weight == 0.0 || cos4.hypot(sin4) < MIN_COHERENCE * weight {
        return None;
    }
    Some(sin4.atan2(cos4).to_degrees() / 4.0)
}

/// Per column, the row offset of a line of slope `slope` through row 0.
fn offsets(w: usize, slope: f64) -> Vec<isize> {
    (0..w)
        .map(|x| (x as f64 * slope).round() as isize)
        .collect()
}

/// How the pixel at (x, y) compares with those `REACH` above and below: by how much it is
/// brighter than both, and darker than both.
#[inline]
fn stand_out(g: &Grey, x: usize, y: usize) -> (u8, u8) {
    let w = g.width;
    excess(
        g.pixels[(y - REACH) * w + x],
        g.pixels[y * w + x],
        g.pixels[(y + REACH) * w + x],
    )
}

/// The lines of slope `slope` across `g`, judged on every `step`th column: where they start
/// (the row at column 0) and which way they stand out. `None` when more than `MOST_LINES` of
/// the positions qualify (a texture, not an overlay).
fn lines(g: &Grey, slope: f64, step: usize) -> Option<Vec<(isize, Polarity)>> {
    let (w, h) = (g.width, g.height);
    if h <= 2 * REACH || w == 0 {
        return Some(Vec::new());
    }
    let offsets = offsets(w, slope);
    let (low, high) = (
        offsets.iter().copied().min().unwrap_or(0),
        offsets.iter().copied().max().unwrap_or(0),
    );
    let min_length = ((w as f64 * MIN_LENGTH / step as f64).ceil() as usize).max(1);
    let mut found = Vec::new();
    let positions = h as isize - low + high;
    for start in -high..h as isize - low {
        let (mut length, mut brighter, mut darker) = (0usize, 0usize, 0usize);
        for x in (0..w).step_by(step) {
            let y = start + offsets[x];
            if y < REACH as isize || y >= (h - REACH) as isize {
                continue;
            }
            let (up, down) = stand_out(g, x, y as usize);
            length += 1;
            brighter += usize::from(up > STANDS_OUT);
            darker += usize::from(down > STANDS_OUT);
        }
        if let Some(way) = polarity(brighter, darker, length).filter(|_| length >= min_length) {
            found.push((start, way));
        }
    }
    (found.len() as f64 <= MOST_LINES * positions as f64).then_some(found)
}

/// Fills in the lines of slope `slope` [`lines`] finds: in each column, each run (at most
/// `2 * REACH - 1` pixels) of line pixels that stand out the line's way, from the pixels just
/// outside it. Returns the lines taken.
fn erase_along(g: &mut Grey, slope: f64) -> usize {
    let found = lines(g, slope, 1).unwrap_or_default();
    if found.is_empty() {
        return 0;
    }
    let (w, h) = (g.width, g.height);
    let offsets = offsets(w, slope);
    let mut mask = vec![false; w * h];
    for &(start, way) in &found {
        for (x, off) in offsets.iter().enumerate() {
            let y = start + off;
            if y < REACH as isize || y >= (h - REACH) as isize {
                continue;
            }
            mask[y as usize * w + x] = stands_out_way(stand_out(g, x, y as usize), way);
        }
    }
    fill_columns(g, &mask);
    found.len()
}

/// Each column's runs of masked pixels (a line's width at most) replaced by a blend of the
/// pixels just above and below; longer runs are not a thin line and stay.
fn fill_columns(g: &mut Grey, mask: &[bool]) {
    let (w, h) = (g.width, g.height);
    for x in 0..w {
        let mut y = 0;
        while y < h {
            if !mask[y * w + x] {
                y += 1;
                continue;
            }
            let start = y;
            while y < h && mask[y * w + x] {
                y += 1;
            }
            if y - start > 2 * REACH - 1 {
                continue;
            }
            let top = f32::from(g.pixels[start.saturating_sub(1) * w + x]);
            let bottom = f32::from(g.pixels[y.min(h - 1) * w + x]);
            for (k, r) in (start..y).enumerate() {
                let t = (k + 1) as f32 / (y - start + 1) as f32;
                g.pixels[r * w + x] = (top + (bottom - top) * t).round() as u8;
            }
        }
    }
}

/// The picture turned about its diagonal (columns become rows).
fn transposed(g: &Grey) -> Grey {
    let (w, h) = (g.width, g.height);
    let mut pixels = vec![0u8; w * h];
    for y in 0..h {
        for x in 0..w {
            pixels[x * h + y] = g.pixels[y * w + x];
        }
    }
    Grey {
        width: h,
        height: w,
        pixels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A busy picture: blocks of pseudo-random grey, 4 pixels square.
    fn blocks(w: usize, h: usize, seed: u64) -> Grey {
        blocks_of(4, w, h, seed)
    }

    /// A smooth but busy picture (waves across both axes): where a line is filled in from
    /// its neighbours, what it covered comes back within a few grey levels.
    fn waves(w: usize, h: usize) -> Grey {
        let pixels = (0..w * h)
            .map(|i| {
                let (x, y) = ((i % w) as f64, (i / w) as f64);
                (128.0 + 60.0 * (x / 7.0).sin() + 50.0 * (y / 9.0 + x / 31.0).cos()) as u8
            })
            .collect();
        Grey {
            width: w,
            height: h,
            pixels,
        }
    }

    /// Blocks of pseudo-random grey, `side` pixels square.
    fn blocks_of(side: usize, w: usize, h: usize, seed: u64) -> Grey {
        let mut state = seed;
        let mut cell = vec![0u8; (w / side + 1) * (h / side + 1)];
        for c in cell.iter_mut() {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *c = (state >> 56) as u8;
        }
        let pixels = (0..w * h)
            .map(|i| cell[(i / w / side) * (w / side + 1) + (i % w) / side])
            .collect();
        Grey {
            width: w,
            height: h,
            pixels,
        }
    }

    /// Of the pixels where `drawn` differs from `original` by more than 40 grey levels (the
    /// overlay), the share that `erased` still differs from `original` by more than 40.
    fn overlay_left(original: &Grey, drawn: &Grey, erased: &Grey) -> f64 {
        let far = |a: u8, b: u8| a.abs_diff(b) > 40;
        let (mut overlay, mut left) = (0usize, 0usize);
        for i in 0..original.pixels.len() {
            if far(drawn.pixels[i], original.pixels[i]) {
                overlay += 1;
                left += usize::from(far(erased.pixels[i], original.pixels[i]));
            }
        }
        left as f64 / overlay.max(1) as f64
    }

    #[test]
    fn an_ordinary_picture_is_left_alone() {
        let original = blocks(320, 180, 7);
        let mut g = original.clone();
        assert_eq!(erase_thin_lines(&mut g), 0);
        assert_eq!(g, original);
    }

    /// `g` under a white grid of 2-pixel lines every 24 pixels, clear of the edges.
    fn with_grid(g: &Grey) -> Grey {
        let mut gridded = g.clone();
        for y in 0..g.height {
            for x in 0..g.width {
                if (y + 14) % 24 < 2 || (x + 14) % 24 < 2 {
                    gridded.pixels[y * g.width + x] = 255;
                }
            }
        }
        gridded
    }

    #[test]
    fn a_grid_drawn_over_a_picture_is_taken_off() {
        let original = waves(320, 180);
        let mut gridded = with_grid(&original);
        let drawn = gridded.clone();
        let filled = erase_thin_lines(&mut gridded);
        // 7 rows and 13 columns of lines, 2 pixels each.
        assert!(filled >= 2 * (7 + 13), "{filled} lines filled");
        let left = overlay_left(&original, &drawn, &gridded);
        assert!(left < 0.1, "{left:.2} of the grid left");
        // A dark grid too.
        let mut dark = original.clone();
        for y in 0..180 {
            for x in 0..320 {
                if y % 16 == 5 || x % 16 == 5 {
                    dark.pixels[y * 320 + x] = 0;
                }
            }
        }
        assert!(erase_thin_lines(&mut dark) >= 10 + 19);
    }

    /// `g` turned by `degrees` about its centre (bilinear, as a video filter turns it;
    /// outside: mid-grey).
    fn rotated(g: &Grey, degrees: f64) -> Grey {
        let (w, h) = (g.width as f64, g.height as f64);
        let (sin, cos) = degrees.to_radians().sin_cos();
        let at = |x: usize, y: usize| f64::from(g.pixels[y * g.width + x]);
        let pixels = (0..g.width * g.height)
            .map(|i| {
                let (x, y) = (
                    (i % g.width) as f64 - w / 2.0,
                    (i / g.width) as f64 - h / 2.0,
                );
                let (sx, sy) = (cos * x + sin * y + w / 2.0, -sin * x + cos * y + h / 2.0);
                if sx < 0.0 || sy < 0.0 || sx >= w - 1.0 || sy >= h - 1.0 {
                    return 128;
                }
                let (x0, y0) = (sx as usize, sy as usize);
                let (fx, fy) = (sx - x0 as f64, sy - y0 as f64);
                let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1, y0) * fx;
                let bottom = at(x0, y0 + 1) * (1.0 - fx) + at(x0 + 1, y0 + 1) * fx;
                (top * (1.0 - fy) + bottom * fy).round() as u8
            })
            .collect();
        Grey {
            width: g.width,
            height: g.height,
            pixels,
        }
    }

    #[test]
    fn a_grid_turned_with_the_picture_is_taken_off_and_a_turned_picture_alone_kept() {
        let original = waves(512, 288);
        let gridded = with_grid(&original);
        let (original, mut gridded) = (rotated(&original, 7.0), rotated(&gridded, 7.0));
        let drawn = gridded.clone();
        assert!(erase_thin_lines(&mut gridded) > 20);
        // Straight rows and columns alone take none of it; the turned search most (what is
        // left is mostly the soft edges resampling gives a turned line: 0.27 when written).
        let left = overlay_left(&original, &drawn, &gridded);
        assert!(left < 0.4, "{left:.2} of the grid left");
        // The turned picture without a grid: nothing taken.
        let mut plain = original.clone();
        assert_eq!(erase_thin_lines(&mut plain), 0);
    }

    #[test]
    fn stripes_are_a_texture_and_what_lies_beside_them_is_left_alone() {
        let original = blocks(320, 180, 17);
        // Fine stripes over the whole picture, and 3-pixel stripes every 6 over its left 55 %:
        // too many lines to be an overlay; nothing changes, least of all the right-hand side.
        for (period, thick, share) in [(2usize, 1usize, 1.0f64), (6, 3, 0.55)] {
            let mut striped = original.clone();
            for y in 0..180 {
                for x in 0..(320.0 * share) as usize {
                    striped.pixels[y * 320 + x] = if y % period < thick { 235 } else { 16 };
                }
            }
            let before = striped.clone();
            assert_eq!(erase_thin_lines(&mut striped), 0, "period {period}");
            assert_eq!(striped, before);
        }
        // Sparse lines over the left half only: taken, and the right half kept but for the
        // pixels the lines' track crosses that stand out the same way.
        let mut half = original.clone();
        for y in (10..180).step_by(24) {
            for x in 0..176 {
                half.pixels[y * 320 + x] = 255;
                half.pixels[(y + 1) * 320 + x] = 255;
            }
        }
        assert!(erase_thin_lines(&mut half) > 0);
        let changed = (0..180)
            .flat_map(|y| (176..320).map(move |x| y * 320 + x))
            .filter(|&i| half.pixels[i] != original.pixels[i])
            .count();
        assert!(
            changed < 180 * 144 / 20,
            "{changed} pixels of the clean half changed"
        );
    }

    #[test]
    fn a_step_is_not_a_line() {
        // A letterbox edge: brighter than one side only.
        let mut g = Grey {
            width: 64,
            height: 64,
            pixels: (0..64 * 64)
                .map(|i| if i / 64 < 32 { 0 } else { 200 })
                .collect(),
        };
        assert_eq!(erase_thin_lines(&mut g), 0);
    }
}
