//! Screen-door overlays taken off before features are found: thin lines drawn across the whole
//! picture (a grid of 2-pixel lines every 24 pixels) run through every 31-pixel patch and turn
//! a third of each descriptor's comparisons into comparisons of the grid, so a re-stream under
//! such a grid pairs with nothing. Rows (and columns) where most of the line stands out from the
//! pixels a few rows above and below it, on both sides and the same way, are found and filled
//! in from those neighbours. Only whole lines are taken: a picture's own thin lines are rarely
//! straight across most of it, and filling them in loses only what they carried.

use super::image::Grey;

/// How far above and below (left and right of) a line its neighbours are read: a line up to
/// `2 * REACH - 1` pixels wide at the working size is found.
const REACH: usize = 3;
/// How far a line's pixel must stand out from both neighbours, grey levels.
const STANDS_OUT: u8 = 16;
/// The share of a line's pixels that must stand out, the same way, for it to be taken.
const SHARE: f64 = 0.5;

/// Finds the overlay's lines in `g` and fills them in. Returns how many rows and columns were
/// filled (0 for an ordinary picture).
pub fn erase_thin_lines(g: &mut Grey) -> usize {
    let rows = lines_across(g);
    fill_rows(g, &rows);
    let mut turned = transposed(g);
    let columns = lines_across(&turned);
    fill_rows(&mut turned, &columns);
    *g = transposed(&turned);
    count(&rows) + count(&columns)
}

fn count(marked: &[bool]) -> usize {
    marked.iter().filter(|&&m| m).count()
}

/// Per row, whether it is (part of) a thin line across the picture.
fn lines_across(g: &Grey) -> Vec<bool> {
    let (w, h) = (g.width, g.height);
    let mut marked = vec![false; h];
    if h <= 2 * REACH || w == 0 {
        return marked;
    }
    let needed = (w as f64 * SHARE).ceil() as usize;
    for (y, mark) in marked.iter_mut().enumerate().take(h - REACH).skip(REACH) {
        let row = |r: usize| &g.pixels[r * w..(r + 1) * w];
        let (above, here, below) = (row(y - REACH), row(y), row(y + REACH));
        let (mut brighter, mut darker) = (0usize, 0usize);
        for ((&a, &p), &b) in above.iter().zip(here).zip(below) {
            brighter += usize::from(p.saturating_sub(a.max(b)) > STANDS_OUT);
            darker += usize::from(a.min(b).saturating_sub(p) > STANDS_OUT);
        }
        *mark = brighter >= needed || darker >= needed;
    }
    marked
}

/// Each run of marked rows replaced by a blend of the rows just outside it.
fn fill_rows(g: &mut Grey, marked: &[bool]) {
    let (w, h) = (g.width, g.height);
    let mut y = 0;
    while y < h {
        if !marked[y] {
            y += 1;
            continue;
        }
        let start = y;
        while y < h && marked[y] {
            y += 1;
        }
        // Rows start..y are the line; the rows either side of it are kept.
        let top = start.saturating_sub(1);
        let bottom = y.min(h - 1);
        for (k, r) in (start..y).enumerate() {
            let t = (k + 1) as f32 / (y - start + 1) as f32;
            for x in 0..w {
                let (a, b) = (
                    f32::from(g.pixels[top * w + x]),
                    f32::from(g.pixels[bottom * w + x]),
                );
                g.pixels[r * w + x] = (a + (b - a) * t).round() as u8;
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
        let mut state = seed;
        let mut cell = vec![0u8; (w / 4 + 1) * (h / 4 + 1)];
        for c in cell.iter_mut() {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *c = (state >> 56) as u8;
        }
        let pixels = (0..w * h)
            .map(|i| cell[(i / w / 4) * (w / 4 + 1) + (i % w) / 4])
            .collect();
        Grey {
            width: w,
            height: h,
            pixels,
        }
    }

    fn mean_difference(a: &Grey, b: &Grey) -> f64 {
        let sum: u64 = a
            .pixels
            .iter()
            .zip(&b.pixels)
            .map(|(&x, &y)| u64::from(x.abs_diff(y)))
            .sum();
        sum as f64 / a.pixels.len() as f64
    }

    #[test]
    fn an_ordinary_picture_is_left_alone() {
        let original = blocks(320, 180, 7);
        let mut g = original.clone();
        assert_eq!(erase_thin_lines(&mut g), 0);
        assert_eq!(g, original);
    }

    #[test]
    fn a_grid_drawn_over_a_picture_is_taken_off() {
        let original = blocks(320, 180, 9);
        let mut gridded = original.clone();
        for y in 0..180 {
            for x in 0..320 {
                if y % 24 < 2 || x % 24 < 2 {
                    gridded.pixels[y * 320 + x] = 255;
                }
            }
        }
        let before = mean_difference(&gridded, &original);
        let filled = erase_thin_lines(&mut gridded);
        let after = mean_difference(&gridded, &original);
        // 8 rows and 14 columns of lines, 2 pixels each (the first at the edge is kept).
        assert!(filled >= 2 * (7 + 13), "{filled} lines filled");
        assert!(after < before / 2.0, "{before:.1} → {after:.1}");
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
