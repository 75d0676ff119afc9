//! Windows of a frame where a known clip may sit when everything around it moves too: a split
//! screen over other footage, the clip tiled 2 × 2, squeezed beside its own mirror image, or
//! over a blurred enlarged copy of itself (the vertical-video "fill"). The frame-in-frame lookup
//! (`inset`) needs still surroundings; these do not.
//!
//! Two kinds of window, all hashed from one shared downsample of the frame so that the cost
//! stays bounded (about one and a half full-frame PDQs at 720p, whatever the layout):
//! - **fixed**: the four halves, the four quadrants, the centre at 75 % and 50 % of each side;
//! - **seams**: rectangles bounded by straight lines where the picture jumps far more than just
//!   beside them (two unrelated pictures meeting, a sharp clip over its blurred copy), a line
//!   found over the whole frame's height or width, or over part of it.
//!
//! PDQ resizes any window to a square, so a squeezed copy of the clip hashes as the clip.

use super::letterbox::{crop, ContentArea};
use super::pdq::{pdq, LumaImage, PdqDct};

/// The shared downsample is this many pixels high or more (below twice this: it averages by a
/// whole factor): quadrants keep 64 rows or more, which PDQ needs to decimate without
/// repeating samples.
const SHARED_HEIGHT: usize = 144;
/// ... and this many wide or more, however tall the frame.
const MIN_SHARED_WIDTH: usize = 64;
/// ... and never more pixels than this (a 16:9 frame's shared image has 37k to 147k).
const MAX_SHARED_PIXELS: usize = 288 * 512;
/// At most this many seam rectangles are hashed per frame.
pub const MAX_SEAM_WINDOWS: usize = 4;
/// How many times the jump at a seam must exceed the jumps just beside it.
const SEAM_CONTRAST: f32 = 2.5;
/// How many times more a picture must jump on one side of a seam than on the other, for a
/// change of texture to count as a seam (scaled to [`SEAM_CONTRAST`]).
const TEXTURE_CONTRAST: f32 = 1.6;
/// The smallest mean jump across a seam, in luma levels.
const SEAM_MIN_JUMP: f32 = 3.0;
/// Seams within this share of a frame's edge are ignored (borders, letterbox edges).
const SEAM_MARGIN: f32 = 0.05;
/// A seam window covers at least this share of each side of the frame.
const SEAM_MIN_SIDE: f32 = 0.25;
/// Seams kept per axis, strongest first.
const SEAMS_PER_AXIS: usize = 6;

/// Which rule a window came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// A half, a quadrant or a centred window.
    Fixed,
    /// A rectangle bounded by seams (and the frame's edges).
    Seams,
}

impl WindowKind {
    /// Short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            WindowKind::Fixed => "window",
            WindowKind::Seams => "seams",
        }
    }
}

/// A window of a frame and the PDQ of what it shows.
#[derive(Clone)]
pub struct Window {
    /// Where, in the frame's pixels.
    pub area: ContentArea,
    /// Which rule found it.
    pub kind: WindowKind,
    /// The PDQ of the window's picture.
    pub dct: PdqDct,
}

/// Every window of `image` (fixed ones, then seam rectangles), hashed. Frames too small to
/// split give none.
pub fn hash_windows(image: &LumaImage) -> Vec<Window> {
    let shared = shrink(image, SHARED_HEIGHT);
    if shared.image.width < 32 || shared.image.height < 32 {
        return Vec::new();
    }
    let mut areas: Vec<(ContentArea, WindowKind)> =
        fixed_windows(shared.image.width, shared.image.height)
            .into_iter()
            .map(|a| (a, WindowKind::Fixed))
            .collect();
    for area in seam_windows(&shared.image) {
        if !areas.iter().any(|(a, _)| overlap(a, &area) > 0.9) {
            areas.push((area, WindowKind::Seams));
        }
    }
    areas
        .into_iter()
        .map(|(area, kind)| Window {
            area: shared.to_frame(area),
            kind,
            dct: pdq(&crop(&shared.image, area)),
        })
        .collect()
}

/// The frame averaged down by a whole factor, and that factor.
struct Shared {
    image: LumaImage,
    factor: usize,
}

impl Shared {
    fn to_frame(&self, a: ContentArea) -> ContentArea {
        let f = self.factor;
        ContentArea {
            left: a.left * f,
            top: a.top * f,
            width: a.width * f,
            height: a.height * f,
        }
    }
}

/// Box-averages `image` by the largest whole factor that keeps it at least `height` rows high
/// and [`MIN_SHARED_WIDTH`] columns wide (a frame made very tall keeps its windows), or the
/// smallest that brings it within [`MAX_SHARED_PIXELS`].
fn shrink(image: &LumaImage, height: usize) -> Shared {
    let mut factor = (image.height / height.max(1))
        .min(image.width / MIN_SHARED_WIDTH)
        .max(1);
    // A frame made extremely tall and narrow would keep its full size: bound the work.
    while (image.width / factor) * (image.height / factor) > MAX_SHARED_PIXELS {
        factor += 1;
    }
    if factor == 1 {
        return Shared {
            image: image.clone(),
            factor,
        };
    }
    let (w, h) = (image.width / factor, image.height / factor);
    let mut pixels = vec![0f32; w * h];
    let scale = 1.0 / (factor * factor) as f32;
    for (y, row) in pixels.chunks_mut(w.max(1)).enumerate() {
        for dy in 0..factor {
            let source = &image.pixels[(y * factor + dy) * image.width..][..w * factor];
            for (x, value) in row.iter_mut().enumerate() {
                *value += source[x * factor..][..factor].iter().sum::<f32>();
            }
        }
        row.iter_mut().for_each(|v| *v *= scale);
    }
    Shared {
        image: LumaImage {
            width: w,
            height: h,
            pixels,
        },
        factor,
    }
}

/// `image` box-averaged by a whole factor to at least `height` rows (and 64 columns): what a
/// PDQ of a large picture reads anyway, at a fraction of the cost.
pub fn reduced(image: &LumaImage, height: usize) -> LumaImage {
    shrink(image, height).image
}

/// Halves, quadrants and the centre at 75 % and 50 %, for a `w` × `h` picture.
fn fixed_windows(w: usize, h: usize) -> Vec<ContentArea> {
    let area = |left, top, width, height| ContentArea {
        left,
        top,
        width,
        height,
    };
    let (hw, hh) = (w / 2, h / 2);
    let mut out = vec![
        area(0, 0, w, hh),
        area(0, hh, w, h - hh),
        area(0, 0, hw, h),
        area(hw, 0, w - hw, h),
        area(0, 0, hw, hh),
        area(hw, 0, w - hw, hh),
        area(0, hh, hw, h - hh),
        area(hw, hh, w - hw, h - hh),
    ];
    for share in [0.75f32, 0.5] {
        let (cw, ch) = ((w as f32 * share) as usize, (h as f32 * share) as usize);
        out.push(area((w - cw) / 2, (h - ch) / 2, cw, ch));
    }
    out
}

/// A straight line across the picture where it jumps: at `at` (between `at - 1` and `at`),
/// spanning `from..to` of the other axis, `strength` times the jumps beside it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Seam {
    at: usize,
    from: usize,
    to: usize,
    strength: f32,
}

/// Rectangles whose sides are seams or the frame's edges, with at least one seam side, each
/// side at least [`SEAM_MIN_SIDE`] of the frame's, the strongest first.
fn seam_windows(image: &LumaImage) -> Vec<ContentArea> {
    let (w, h) = (image.width, image.height);
    let columns = seams(w, h, |x, y| image.pixels[y * w + x]);
    let rows = seams(h, w, |y, x| image.pixels[y * w + x]);
    let edge = |at| Seam {
        at,
        from: 0,
        to: 0,
        strength: 0.0,
    };
    let xs: Vec<Seam> = [edge(0), edge(w)].into_iter().chain(columns).collect();
    let ys: Vec<Seam> = [edge(0), edge(h)].into_iter().chain(rows).collect();
    let mut found: Vec<(f32, ContentArea)> = Vec::new();
    for (i, a) in xs.iter().enumerate() {
        for b in &xs[i + 1..] {
            let (left, right) = if a.at < b.at { (a, b) } else { (b, a) };
            for (j, c) in ys.iter().enumerate() {
                for d in &ys[j + 1..] {
                    let (top, bottom) = if c.at < d.at { (c, d) } else { (d, c) };
                    let (width, height) = (right.at - left.at, bottom.at - top.at);
                    let strength = side(left, top.at, bottom.at)
                        + side(right, top.at, bottom.at)
                        + side(top, left.at, right.at)
                        + side(bottom, left.at, right.at);
                    let small = (width as f32) < SEAM_MIN_SIDE * w as f32
                        || (height as f32) < SEAM_MIN_SIDE * h as f32;
                    if strength == 0.0 || small || (width == w && height == h) {
                        continue;
                    }
                    let area = ContentArea {
                        left: left.at,
                        top: top.at,
                        width,
                        height,
                    };
                    found.push((strength, area));
                }
            }
        }
    }
    found.sort_by(|a, b| b.0.total_cmp(&a.0));
    found
        .into_iter()
        .map(|(_, a)| a)
        .take(MAX_SEAM_WINDOWS)
        .collect()
}

/// What a seam adds to a rectangle whose side runs `from..to` along it: its strength when it
/// covers at least half of the side, else nothing.
fn side(seam: &Seam, from: usize, to: usize) -> f32 {
    let covered = seam.to.min(to).saturating_sub(seam.from.max(from));
    if 2 * covered >= to - from {
        seam.strength
    } else {
        0.0
    }
}

/// Seams across an axis of `len` positions, each a line over `across` positions of the other
/// axis (`px(position, other)`): the strongest [`SEAMS_PER_AXIS`] positions whose mean jump,
/// over their longest stretch, is [`SEAM_CONTRAST`] times the mean jump four to six positions
/// away on its smoother side.
fn seams(len: usize, across: usize, px: impl Fn(usize, usize) -> f32) -> Vec<Seam> {
    if len < 16 || across < 16 {
        return Vec::new();
    }
    let jump = |at: usize, k: usize| (px(at, k) - px(at - 1, k)).abs();
    let margin = ((len as f32 * SEAM_MARGIN) as usize).max(7);
    let mut found: Vec<Seam> = Vec::new();
    for at in margin..len.saturating_sub(margin) {
        if let Some(seam) = seam_at(at, across, &jump) {
            found.push(seam);
        }
    }
    found.sort_by(|a, b| b.strength.total_cmp(&a.strength));
    let mut kept: Vec<Seam> = Vec::new();
    for seam in found {
        if kept.iter().all(|k| k.at.abs_diff(seam.at) > 3) {
            kept.push(seam);
        }
        if kept.len() == SEAMS_PER_AXIS {
            break;
        }
    }
    kept
}

/// The seam at `at`, when there is one: the longest run of the other axis (in eighths) where
/// the jump at `at` stands out from the jumps beside it.
fn seam_at(at: usize, across: usize, jump: &impl Fn(usize, usize) -> f32) -> Option<Seam> {
    const PARTS: usize = 8;
    let part = across / PARTS;
    let stands_out = |p: usize| -> Option<f32> {
        let ks = p * part..(p + 1) * part;
        let here: f32 = ks.clone().map(|k| jump(at, k)).sum::<f32>() / part as f32;
        let mean = |positions: [usize; 2]| -> f32 {
            positions
                .iter()
                .map(|&b| ks.clone().map(|k| jump(b, k)).sum::<f32>())
                .sum::<f32>()
                / (2 * part) as f32
        };
        // The smoother side: a sharp picture over a blurred one (or a flat one) has its seam
        // stand out from the blur even when its own texture jumps as much.
        let beside = mean([at - 6, at - 4]).min(mean([at + 4, at + 6]));
        let step = (here >= SEAM_MIN_JUMP).then_some(here / (beside + 0.5));
        // Or the texture changes there: a sharp picture whose edge happens to match its blurred
        // copy's shade jumps little at the seam, but jumps on one side of it and not the other.
        let before = (1..=5).map(|d| mean([at - d, at - d])).sum::<f32>() / 5.0;
        let after = (1..=5).map(|d| mean([at + d, at + d])).sum::<f32>() / 5.0;
        let (smooth, rough) = (before.min(after), before.max(after));
        let texture = (rough >= SEAM_MIN_JUMP).then_some(rough / (smooth + 0.5) / TEXTURE_CONTRAST);
        let strength = step.into_iter().chain(texture).fold(0.0f32, f32::max);
        (strength >= SEAM_CONTRAST).then_some(strength)
    };
    let mut best: Option<(usize, usize, f32)> = None;
    let mut run: Option<(usize, f32)> = None;
    for p in 0..=PARTS {
        match (p < PARTS).then(|| stands_out(p)).flatten() {
            Some(s) => {
                let (start, total) = run.unwrap_or((p, 0.0));
                run = Some((start, total + s));
            }
            None => {
                if let Some((start, total)) = run.take() {
                    if best.is_none_or(|(s, e, _)| p - start > e - s) {
                        best = Some((start, p, total));
                    }
                }
            }
        }
    }
    let (start, end, total) = best?;
    // A seam shorter than a quarter of the frame is texture, not a layout.
    (end - start >= PARTS / 4).then(|| Seam {
        at,
        from: start * part,
        to: if end == PARTS { across } else { end * part },
        strength: total / PARTS as f32,
    })
}

/// Intersection over union of two rectangles.
fn overlap(a: &ContentArea, b: &ContentArea) -> f32 {
    let x = (a.left + a.width).min(b.left + b.width) as i64 - a.left.max(b.left) as i64;
    let y = (a.top + a.height).min(b.top + b.height) as i64 - a.top.max(b.top) as i64;
    if x <= 0 || y <= 0 {
        return 0.0;
    }
    let both = x * y;
    let union = (a.width * a.height + b.width * b.height) as i64 - both;
    both as f32 / union.max(1) as f32
}

#[cfg(test)]
mod tests;
