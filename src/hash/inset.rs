//! Frame-in-frame: the rectangle where embedded video plays inside a layout (a "reaction" frame,
//! a picture-in-picture, a player window re-streamed with its surroundings).
//!
//! What gives the embedded picture away is that it changes while its surroundings do not. Each
//! sampled frame is reduced to a working picture at most 640 pixels wide; every
//! 0.4 s of stream time (whatever the sampling rate) the change of every working pixel
//! since the last such picture, less the change of the whole picture's brightness, is folded
//! into a motion map that fades within a few seconds, so the parts of the clip that moved
//! recently all count. On a coarse grid of that map, the inset is the rectangle with the most
//! moving cells net of the static cells it takes in (a maximum-sum subrectangle: a static patch
//! inside the clip does not split it, a static layout around it is left out). Each side, known
//! to a grid cell, is then set where the motion map steps from still (outside) to moving
//! (inside) along the side's length; moved out to the nearest straight edge when the picture
//! shows none there (a part of the clip that held still); and set at full resolution on the
//! strongest luma step: a drawn border or a player's frame is static, so it stays outside.
//!
//! Memory per stream is two working pictures of bytes (at most 640² each: the last
//! picture and the motion map); the cost per sampled frame is one pass over the frame, a grid
//! of a few thousand cells and short scans along the sides, next to the PDQ of the inset
//! itself, the one extra hash per sampled frame.

use super::letterbox::ContentArea;
use super::pdq::LumaImage;

/// Largest side of the working picture, in pixels.
const WORK: usize = 640;
/// Largest side of the motion grid, in cells.
const GRID: usize = 96;
/// Motion is measured between pictures at least this far apart in stream time, whatever the
/// sampling rate (2 fps, 8 fps after a match, every frame): in between, the map stands.
const INTERVAL_MS: i64 = 400;
/// ...or this many samples apart, when timestamps do not advance.
const BACKSTOP_SAMPLES: u32 = 4;
/// Per 500 ms of stream time, the motion map keeps this fraction of what it held; with changes
/// capped at [`MOTION_CAP`], a cell that stops moving is still after about 3 s.
const FADE: f32 = 0.7;
const MOTION_CAP: f32 = 32.0;
/// A cell or pixel whose luma changed by more than this between samples is moving.
const MOVING: f32 = 3.0;
/// A pixel whose motion stays at or below this is still (compression noise on a static layout).
const STILL: u8 = 2;
/// In the rectangle search a moving cell counts +1 and a static one −this: a rectangle of the
/// clip with a third of it static (sky, a still backdrop) is still taken whole.
const STATIC_COST: f32 = 0.5;
/// A side is moved onto a still-to-moving boundary only where at least this fraction of its
/// length shows one.
const BOUNDARY: f32 = 0.25;

/// Luma step (levels) across a side that counts towards an edge, and the fractions of a side's
/// length that make an edge, or make clearly none.
const EDGE_STEP: f32 = 10.0;
const EDGE: f32 = 0.6;
const NO_EDGE: f32 = 0.3;

/// Which insets are worth a hash.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InsetSettings {
    /// Smallest inset, as a fraction of the frame's area.
    pub min_area: f32,
    /// Largest: above it the whole frame's hash already sees the clip.
    pub max_area: f32,
}

impl Default for InsetSettings {
    fn default() -> Self {
        InsetSettings {
            min_area: 0.2,
            max_area: 0.9,
        }
    }
}

/// One stream's motion history, fed every sampled frame.
#[derive(Debug, Clone)]
pub struct InsetTracker {
    settings: InsetSettings,
    frame: (usize, usize),
    /// Frame pixels per working pixel, each way.
    scale: usize,
    work: (usize, usize),
    grid: (usize, usize),
    /// The picture motion is measured against, and its stream time.
    previous: Vec<u8>,
    previous_ms: i64,
    /// Samples since `previous` was taken.
    waiting: u32,
    motion: Vec<u8>,
    measured: bool,
}

impl InsetTracker {
    /// A tracker with no history.
    pub fn new(settings: InsetSettings) -> InsetTracker {
        InsetTracker {
            settings,
            frame: (0, 0),
            scale: 1,
            work: (0, 0),
            grid: (0, 0),
            previous: Vec::new(),
            previous_ms: 0,
            waiting: 0,
            motion: Vec::new(),
            measured: false,
        }
    }

    /// Folds `image` (at `stream_ms`) into the motion history and returns the inset it shows, if
    /// any. A frame of another size starts the history again.
    pub fn observe(&mut self, image: &LumaImage, stream_ms: i64) -> Option<ContentArea> {
        let (w, h) = (image.width, image.height);
        if w < 64 || h < 64 || image.pixels.len() != w * h {
            return None;
        }
        if self.frame != (w, h) {
            self.frame = (w, h);
            self.scale = w.max(h).div_ceil(WORK);
            self.work = (w / self.scale, h / self.scale);
            let cell = self.work.0.max(self.work.1).div_ceil(GRID);
            self.grid = (self.work.0 / cell, self.work.1 / cell);
            self.previous.clear();
            self.measured = false;
            self.motion = vec![0; self.work.0 * self.work.1];
        }
        // A picture of extreme proportions (90:1) leaves no grid to search.
        if self.grid.0 == 0 || self.grid.1 == 0 {
            return None;
        }
        self.waiting += 1;
        let elapsed = stream_ms.saturating_sub(self.previous_ms);
        // Timestamps that went back count as a new interval.
        let due = self.previous.is_empty()
            || !(0..INTERVAL_MS).contains(&elapsed)
            || self.waiting >= BACKSTOP_SAMPLES;
        if due {
            let now = shrink_image(image, self.scale, self.work);
            if !self.previous.is_empty() {
                let fade = FADE.powf(elapsed.clamp(INTERVAL_MS, 5000) as f32 / 500.0);
                // A change of the whole picture's brightness (a flicker laid over the layout)
                // is not motion.
                let shift = median_change(&now, &self.previous);
                for ((m, &a), &b) in self.motion.iter_mut().zip(&now).zip(&self.previous) {
                    let change = (f32::from(a) - f32::from(b) - shift).abs().min(MOTION_CAP);
                    *m = ((f32::from(*m) * fade) as u8).max(change as u8);
                }
                self.measured = true;
            }
            self.previous = now;
            self.previous_ms = stream_ms;
            self.waiting = 0;
        }
        if !self.measured {
            return None;
        }
        let coarse = self.moving_rectangle()?;
        let area = self.refine(image, coarse);
        let fraction = (area.width * area.height) as f32 / (w * h) as f32;
        (self.settings.min_area..=self.settings.max_area)
            .contains(&fraction)
            .then_some(area)
    }

    /// The rectangle of grid cells (left, top, right, bottom; exclusive) with the most moving
    /// cells net of static ones, in working pixels.
    fn moving_rectangle(&self) -> Option<[usize; 4]> {
        let (ww, wh) = self.work;
        let (gw, gh) = self.grid;
        let mut sums = vec![0u32; gw * gh];
        let mut counts = vec![0u32; gw * gh];
        let column_cell: Vec<usize> = (0..ww).map(|x| (x * gw / ww).min(gw - 1)).collect();
        for (y, row) in self.motion.chunks_exact(ww).enumerate() {
            let base = (y * gh / wh).min(gh - 1) * gw;
            for (&cell, &m) in column_cell.iter().zip(row) {
                sums[base + cell] += u32::from(m);
                counts[base + cell] += 1;
            }
        }
        let weight: Vec<f32> = sums
            .iter()
            .zip(&counts)
            .map(|(&s, &n)| {
                if n > 0 && s as f32 / n as f32 > MOVING {
                    1.0
                } else {
                    -STATIC_COST
                }
            })
            .collect();
        let mut best = (0.0f32, None);
        let mut columns = vec![0.0f32; gw];
        for top in 0..gh {
            columns.iter_mut().for_each(|c| *c = 0.0);
            for bottom in top..gh {
                for (c, w) in columns
                    .iter_mut()
                    .zip(&weight[bottom * gw..(bottom + 1) * gw])
                {
                    *c += w;
                }
                // Kadane over the column sums of rows top..=bottom.
                let (mut run, mut start) = (0.0f32, 0);
                for (x, &c) in columns.iter().enumerate() {
                    if run <= 0.0 {
                        run = 0.0;
                        start = x;
                    }
                    run += c;
                    if run > best.0 {
                        best = (run, Some([start, top, x + 1, bottom + 1]));
                    }
                }
            }
        }
        let [l, t, r, b] = best.1?;
        Some([l * ww / gw, t * wh / gh, r * ww / gw, b * wh / gh])
    }

    /// Moves each side of the coarse rectangle onto the still-to-moving boundary near it, then
    /// onto the strongest luma step at full resolution; returns frame pixels.
    fn refine(&self, image: &LumaImage, [l, t, r, b]: [usize; 4]) -> ContentArea {
        let (ww, wh) = self.work;
        // Search two cells inward, and outward far enough for a clip whose margins held still
        // (an eighth of the frame).
        let cell = ww.max(wh).div_ceil(GRID) * 2;
        let (reach_x, reach_y) = (ww / 8, wh / 8);
        let (span_x, span_y) = (inner(l, r), inner(t, b));
        let row = |y: usize, inside: usize| self.boundary(Side::Row(y, inside), span_x);
        let col = |x: usize, inside: usize| self.boundary(Side::Column(x, inside), span_y);
        // A side at p: the step is between p-1 and p; for top and left p is inside, for bottom
        // and right p-1 is.
        let top = best_boundary(
            t,
            t.saturating_sub(reach_y).max(1),
            (t + cell).min(wh - 1),
            |y| row(y, y),
        );
        let bottom = best_boundary(
            b,
            b.saturating_sub(cell).max(1),
            (b + reach_y).min(wh - 1),
            |y| row(y, y - 1),
        );
        let left = best_boundary(
            l,
            l.saturating_sub(reach_x).max(1),
            (l + cell).min(ww - 1),
            |x| col(x, x),
        );
        let right = best_boundary(
            r,
            r.saturating_sub(cell).max(1),
            (r + reach_x).min(ww - 1),
            |x| col(x, x - 1),
        );
        // A side the motion put where the picture shows no edge may be inside the clip, at the
        // end of a part that held still (a sky): it moves out, across still lines only, to the
        // nearest straight edge.
        let (span_x, span_y) = (inner(left, right), inner(top, bottom));
        let row_edge = |y: usize| self.straightness(image, Side::Row(y, y), span_x);
        let col_edge = |x: usize| self.straightness(image, Side::Column(x, x), span_y);
        let row_still = |y: usize| self.stillness(Side::Row(y, y), span_x) >= 0.5;
        let col_still = |x: usize| self.stillness(Side::Column(x, x), span_y) >= 0.5;
        let top = widen(top, (1..top).rev().take(reach_y), row_edge, |y| {
            row_still(y)
        });
        let bottom = widen(bottom, (bottom + 1..wh).take(reach_y), row_edge, |y| {
            row_still(y - 1)
        });
        let left = widen(left, (1..left).rev().take(reach_x), col_edge, |x| {
            col_still(x)
        });
        let right = widen(right, (right + 1..ww).take(reach_x), col_edge, |x| {
            col_still(x - 1)
        });

        let s = self.scale;
        let (w, h) = self.frame;
        let (fx, fy) = (inner(left * s, right * s), inner(top * s, bottom * s));
        let sharpen_row = |y: usize| sharpest(y * s, s, h, |p| step(image, Side::Row(p, p), fx));
        let sharpen_col = |x: usize| sharpest(x * s, s, w, |p| step(image, Side::Column(p, p), fy));
        let (top, bottom) = (sharpen_row(top), sharpen_row(bottom));
        let (left, right) = (sharpen_col(left), sharpen_col(right));
        ContentArea {
            left,
            top,
            width: right.saturating_sub(left),
            height: bottom.saturating_sub(top),
        }
    }

    /// The fraction of a side's length (working pixels) where the picture steps by more than
    /// [`EDGE_STEP`] across it, at full resolution.
    fn straightness(&self, image: &LumaImage, side: Side, (from, to): (usize, usize)) -> f32 {
        let (ww, wh) = self.work;
        match side {
            Side::Row(y, _) if y == 0 || y >= wh => return 0.0,
            Side::Column(x, _) if x == 0 || x >= ww => return 0.0,
            _ => {}
        }
        // The step between working pixels p-1 and p lies within scale-1 full-resolution pixels
        // of p*scale: any position there counts.
        let s = self.scale;
        let (w, h) = (image.width, image.height);
        let px = |x: usize, y: usize| image.pixels[y * w + x];
        let near =
            |p: usize, limit: usize| (p * s + 1).saturating_sub(s).max(1)..(p * s + s).min(limit);
        fraction((from, to), |along| match side {
            Side::Row(y, _) => {
                near(y, h).any(|fy| (px(along * s, fy) - px(along * s, fy - 1)).abs() > EDGE_STEP)
            }
            Side::Column(x, _) => {
                near(x, w).any(|fx| (px(fx, along * s) - px(fx - 1, along * s)).abs() > EDGE_STEP)
            }
        })
    }

    /// The fraction of line `.1` of `side`, over its span, whose motion is at most [`STILL`].
    fn stillness(&self, side: Side, span: (usize, usize)) -> f32 {
        let (ww, wh) = self.work;
        match side {
            Side::Row(_, i) if i >= wh => return 0.0,
            Side::Column(_, i) if i >= ww => return 0.0,
            _ => {}
        }
        fraction(span, |along| self.motion_inside(side, along) <= STILL)
    }

    /// The fraction of a side's length where the pixel inside is moving and the one outside
    /// (across the step) is still.
    fn boundary(&self, side: Side, span: (usize, usize)) -> f32 {
        let outside = match side {
            Side::Row(y, i) => Side::Row(y, if i == y { y - 1 } else { y }),
            Side::Column(x, i) => Side::Column(x, if i == x { x - 1 } else { x }),
        };
        fraction(span, |along| {
            f32::from(self.motion_inside(side, along)) > MOVING
                && self.motion_inside(outside, along) <= STILL
        })
    }

    /// The motion map on line `.1` of `side`, `along` it.
    fn motion_inside(&self, side: Side, along: usize) -> u8 {
        let ww = self.work.0;
        match side {
            Side::Row(_, i) => self.motion[i * ww + along],
            Side::Column(_, i) => self.motion[along * ww + i],
        }
    }
}

/// The fraction of the positions of `from..to` where `holds`.
fn fraction((from, to): (usize, usize), holds: impl Fn(usize) -> bool) -> f32 {
    let hits = (from..to).filter(|&along| holds(along)).count();
    hits as f32 / to.saturating_sub(from).max(1) as f32
}

/// `at`, or when the picture shows no edge there, the first position of `outward` with a
/// straight edge, provided every line crossed on the way is still.
fn widen(
    at: usize,
    outward: impl Iterator<Item = usize>,
    edge: impl Fn(usize) -> f32,
    still: impl Fn(usize) -> bool,
) -> usize {
    if edge(at) >= NO_EDGE {
        return at;
    }
    for p in outward {
        if !still(p) {
            break;
        }
        if edge(p) >= EDGE {
            return p;
        }
    }
    at
}

/// The median of the per-pixel change from `before` to `now`: what a brightness change of the
/// whole picture shifts every pixel by, whatever moves in part of it.
fn median_change(now: &[u8], before: &[u8]) -> f32 {
    let mut histogram = [0u32; 511];
    for (&a, &b) in now.iter().zip(before) {
        histogram[(i32::from(a) - i32::from(b) + 255) as usize] += 1;
    }
    let half = now.len().min(before.len()) as u32 / 2;
    let mut seen = 0;
    for (bin, &count) in histogram.iter().enumerate() {
        seen += count;
        if seen > half {
            return bin as f32 - 255.0;
        }
    }
    0.0
}

/// Mean luma of each `scale`×`scale` block, as bytes.
fn shrink_image(image: &LumaImage, scale: usize, (ww, wh): (usize, usize)) -> Vec<u8> {
    let w = image.width;
    let mut sums = vec![0.0f32; ww];
    let mut out = Vec::with_capacity(ww * wh);
    let n = (scale * scale) as f32;
    for rows in image
        .pixels
        .chunks_exact(w)
        .take(wh * scale)
        .collect::<Vec<_>>()
        .chunks_exact(scale)
    {
        sums.iter_mut().for_each(|s| *s = 0.0);
        for row in rows {
            for (sum, block) in sums.iter_mut().zip(row.chunks_exact(scale)) {
                *sum += block.iter().sum::<f32>();
            }
        }
        out.extend(sums.iter().map(|s| (s / n).round().clamp(0.0, 255.0) as u8));
    }
    out
}

/// The inner 80 % of a side's span, away from the corners.
fn inner(from: usize, to: usize) -> (usize, usize) {
    let margin = to.saturating_sub(from) / 10;
    (from + margin, to.saturating_sub(margin))
}

/// Among positions `from..=to`, the one with the clearest boundary (less a small pull towards
/// `start`, so that of two equal ones the nearer wins); `start` when none is clear.
fn best_boundary(start: usize, from: usize, to: usize, clarity: impl Fn(usize) -> f32) -> usize {
    let mut best = (0.0f32, start);
    for at in from..=to {
        let c = clarity(at);
        let score = c - 0.002 * at.abs_diff(start) as f32;
        if c >= BOUNDARY && score > best.0 {
            best = (score, at);
        }
    }
    best.1
}

/// Of the full-resolution positions where a step between working pixels can lie (within
/// `scale - 1` of `at`), the one with the largest luma step.
fn sharpest(at: usize, scale: usize, limit: usize, step: impl Fn(usize) -> f32) -> usize {
    if scale == 1 {
        return at;
    }
    let from = at.saturating_sub(scale - 1).max(1);
    let to = (at + scale - 1).min(limit.saturating_sub(1));
    (from..=to)
        .map(|p| (step(p), p))
        .fold(
            (f32::MIN, at),
            |best, (s, p)| if s > best.0 { (s, p) } else { best },
        )
        .1
}

/// The mean absolute luma step across a side at full resolution.
fn step(image: &LumaImage, side: Side, (from, to): (usize, usize)) -> f32 {
    let w = image.width;
    let px = |x: usize, y: usize| image.pixels[y * w + x];
    let mut sum = 0.0;
    let mut n = 0u32;
    for along in (from..to).step_by(2) {
        sum += match side {
            Side::Row(y, _) => (px(along, y) - px(along, y - 1)).abs(),
            Side::Column(x, _) => (px(x, along) - px(x - 1, along)).abs(),
        };
        n += 1;
    }
    if n == 0 {
        0.0
    } else {
        sum / n as f32
    }
}

/// A candidate side of the inset.
#[derive(Clone, Copy)]
enum Side {
    /// The step between row `.0 - 1` and row `.0`; row `.1` is the inside.
    Row(usize, usize),
    /// The step between column `.0 - 1` and column `.0`; column `.1` is the inside.
    Column(usize, usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A static layout (a fine, fixed texture) with a moving picture in `inset`, optionally
    /// framed by a flat border of `border` pixels; `t` moves the picture.
    fn layout(w: usize, h: usize, inset: ContentArea, border: usize, t: usize) -> LumaImage {
        layout_with_still_top(w, h, inset, border, t, 0)
    }

    /// The same, with the picture's top `still` rows not moving (a sky, a still backdrop).
    fn layout_with_still_top(
        w: usize,
        h: usize,
        inset: ContentArea,
        border: usize,
        t: usize,
        still: usize,
    ) -> LumaImage {
        let mut pixels = vec![0.0; w * h];
        for y in 0..h {
            for x in 0..w {
                pixels[y * w + x] = 90.0 + ((x / 9 + y / 7) % 3) as f32 * 20.0;
            }
        }
        let (l, top) = (inset.left, inset.top);
        let (r, b) = (l + inset.width, top + inset.height);
        for y in top.saturating_sub(border)..(b + border).min(h) {
            for x in l.saturating_sub(border)..(r + border).min(w) {
                pixels[y * w + x] = if x < l || x >= r || y < top || y >= b {
                    235.0
                } else {
                    // A wavy boundary, as skies and backdrops have: no straight edge at the
                    // end of the still part.
                    let wave = (6.0 + 6.0 * (x as f32 * 0.05).sin()) as usize;
                    let t = if still > 0 && y < top + still + wave {
                        0
                    } else {
                        t
                    };
                    let (u, v) = ((x + 7 * t) as f32, (y + 3 * t) as f32);
                    128.0 + 80.0 * ((u * 0.05).sin() * (v * 0.07).cos())
                };
            }
        }
        LumaImage {
            width: w,
            height: h,
            pixels,
        }
    }

    fn tracked(w: usize, h: usize, inset: ContentArea, border: usize) -> Option<ContentArea> {
        let mut tracker = InsetTracker::new(InsetSettings::default());
        let mut found = None;
        for t in 0..4 {
            found = tracker.observe(&layout(w, h, inset, border, t), 500 * t as i64);
        }
        found
    }

    fn close(a: ContentArea, b: ContentArea, tolerance: usize) -> bool {
        a.left.abs_diff(b.left) <= tolerance
            && a.top.abs_diff(b.top) <= tolerance
            && (a.left + a.width).abs_diff(b.left + b.width) <= tolerance
            && (a.top + a.height).abs_diff(b.top + b.height) <= tolerance
    }

    #[test]
    fn finds_an_off_centre_inset_to_the_pixel() {
        let inset = ContentArea {
            left: 203,
            top: 61,
            width: 640,
            height: 360,
        };
        let found = tracked(1280, 720, inset, 0).expect("an inset");
        assert!(close(found, inset, 1), "{found:?} vs {inset:?}");
    }

    #[test]
    fn a_still_band_at_the_top_of_the_picture_is_kept() {
        let inset = ContentArea {
            left: 120,
            top: 60,
            width: 400,
            height: 240,
        };
        let mut tracker = InsetTracker::new(InsetSettings::default());
        let mut found = None;
        for t in 0..4 {
            found = tracker.observe(
                &layout_with_still_top(640, 360, inset, 0, t, 40),
                500 * t as i64,
            );
        }
        let found = found.expect("an inset");
        assert!(close(found, inset, 1), "{found:?} vs {inset:?}");
    }

    #[test]
    fn a_border_is_left_out() {
        let inset = ContentArea {
            left: 100,
            top: 50,
            width: 400,
            height: 240,
        };
        let found = tracked(640, 360, inset, 6).expect("an inset");
        assert!(close(found, inset, 1), "{found:?} vs {inset:?}");
    }

    #[test]
    fn no_inset_in_a_still_frame_in_full_frame_motion_or_in_a_small_corner() {
        let mut tracker = InsetTracker::new(InsetSettings::default());
        let whole = ContentArea {
            left: 0,
            top: 0,
            width: 320,
            height: 180,
        };
        for t in 0..4 {
            assert_eq!(
                tracker.observe(&layout(320, 180, whole, 0, t), 500 * t as i64),
                None
            );
        }
        let still = layout(320, 180, whole, 0, 0);
        let mut tracker = InsetTracker::new(InsetSettings::default());
        for t in 0..4 {
            assert_eq!(tracker.observe(&still, 500 * t), None);
        }
        let corner = ContentArea {
            left: 10,
            top: 10,
            width: 80,
            height: 45,
        };
        assert_eq!(tracked(320, 180, corner, 0), None);
    }

    #[test]
    fn a_new_frame_size_restarts_the_history() {
        let inset = ContentArea {
            left: 40,
            top: 20,
            width: 360,
            height: 200,
        };
        let mut tracker = InsetTracker::new(InsetSettings::default());
        tracker.observe(&layout(320, 180, inset, 0, 0), 0);
        assert_eq!(tracker.observe(&layout(640, 360, inset, 0, 1), 500), None);
        assert!(tracker
            .observe(&layout(640, 360, inset, 0, 2), 1000)
            .is_some());
    }

    #[test]
    fn the_sampling_rate_does_not_change_what_is_found() {
        let inset = ContentArea {
            left: 203,
            top: 61,
            width: 640,
            height: 360,
        };
        // 8 samples a second (the rate after a match), every frame at 30 fps, frozen
        // timestamps: the picture moves a little between samples, as video does.
        // Also timestamps 100 s apart (a publisher stretching them).
        for (step_ms, moves_every) in [(125, 1), (33, 4), (0, 1), (100_000, 1)] {
            let mut tracker = InsetTracker::new(InsetSettings::default());
            let mut found = None;
            for i in 0..16 {
                let frame = layout(1280, 720, inset, 0, i / moves_every);
                found = tracker.observe(&frame, step_ms * i as i64);
            }
            let found = found.unwrap_or_else(|| panic!("no inset every {step_ms} ms"));
            assert!(
                close(found, inset, 2),
                "{step_ms} ms: {found:?} vs {inset:?}"
            );
        }
    }

    #[test]
    fn a_flicker_of_the_whole_picture_is_not_motion() {
        let inset = ContentArea {
            left: 100,
            top: 50,
            width: 400,
            height: 240,
        };
        let mut tracker = InsetTracker::new(InsetSettings::default());
        let mut found = None;
        for t in 0..6 {
            let mut frame = layout(640, 360, inset, 0, t);
            let flicker = if t % 2 == 0 { 5.0 } else { -5.0 };
            frame.pixels.iter_mut().for_each(|p| *p += flicker);
            found = tracker.observe(&frame, 500 * t as i64);
        }
        let found = found.expect("an inset");
        assert!(close(found, inset, 1), "{found:?} vs {inset:?}");
    }

    #[test]
    fn pictures_of_extreme_proportions_are_left_alone() {
        // No grid to search: nothing. One cell across: whatever it finds, no panic.
        for (w, h, none) in [(64, 6000, true), (6000, 64, true), (65, 5000, false)] {
            let mut tracker = InsetTracker::new(InsetSettings::default());
            for t in 0..3 {
                let frame = LumaImage {
                    width: w,
                    height: h,
                    pixels: (0..w * h)
                        .map(|i| ((i * 7 + t * 13) % 251) as f32)
                        .collect(),
                };
                let found = tracker.observe(&frame, 500 * t as i64);
                assert!(!none || found.is_none(), "{w}x{h}: {found:?}");
            }
        }
    }
}
