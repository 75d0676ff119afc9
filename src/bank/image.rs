//! The 8-bit grey pictures local features are found in: a frame's luma brought to a working
//! size (its long side at most [`WORKING_SIDE`]), the scale pyramid, and the smoothing the
//! descriptor samples.

use crate::hash::pdq::LumaImage;

/// The long side of the working picture: features are found at this size whatever the stream's
/// resolution, so a 4K stream costs what a 480p one does and positions compare across both.
pub const WORKING_SIDE: usize = 512;

/// An 8-bit grey picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grey {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width * height` values, row by row.
    pub pixels: Vec<u8>,
}

impl Grey {
    /// The value at (x, y), which must be inside.
    #[inline]
    pub fn at(&self, x: usize, y: usize) -> u8 {
        self.pixels[y * self.width + x]
    }

    /// A frame's luma at the working size: box-averaged down when larger (never enlarged).
    pub fn working(luma: &LumaImage) -> Grey {
        let long = luma.width.max(luma.height).max(1);
        let scale = (WORKING_SIDE as f64 / long as f64).min(1.0);
        let width = ((luma.width as f64 * scale).round() as usize).max(1);
        let height = ((luma.height as f64 * scale).round() as usize).max(1);
        resample(
            luma.width,
            luma.height,
            |y, out| out.copy_from_slice(&luma.pixels[y * luma.width..(y + 1) * luma.width]),
            width,
            height,
        )
    }

    /// This picture shrunk by `factor` (> 1) with area averaging.
    pub fn shrunk(&self, factor: f64) -> Grey {
        let width = ((self.width as f64 / factor).round() as usize).max(1);
        let height = ((self.height as f64 / factor).round() as usize).max(1);
        resample(
            self.width,
            self.height,
            |y, out| {
                let line = &self.pixels[y * self.width..(y + 1) * self.width];
                for (o, &v) in out.iter_mut().zip(line) {
                    *o = f32::from(v);
                }
            },
            width,
            height,
        )
    }
}

/// Every 5×5 box sum of a picture: the descriptor compares box sums rather than pixels, so
/// one noisy pixel cannot flip a bit (the smoothing BRIEF needs). Made once per pyramid level
/// (rows then columns), so each comparison reads two values.
#[derive(Debug, Clone)]
pub struct BoxSums {
    width: usize,
    /// The sum of the box centred on each pixel at least 2 pixels inside (0 on the rim):
    /// at most 25 × 255, so a `u16` holds it.
    sums: Vec<u16>,
}

impl BoxSums {
    /// The box sums of a picture.
    pub fn of(g: &Grey) -> BoxSums {
        let (w, h) = (g.width, g.height);
        let mut sums = vec![0u16; w * h];
        if w < 5 || h < 5 {
            return BoxSums { width: w, sums };
        }
        // Five-pixel sums along each row, at each row's centre pixels.
        let mut across = vec![0u16; w * h];
        for (line, out) in g.pixels.chunks_exact(w).zip(across.chunks_exact_mut(w)) {
            for x in 2..w - 2 {
                out[x] = line[x - 2..=x + 2].iter().map(|&v| u16::from(v)).sum();
            }
        }
        // Then five of those down each column, a whole row at a time.
        for y in 2..h - 2 {
            let out = &mut sums[y * w..(y + 1) * w];
            for dy in 0..5 {
                let from = &across[(y + dy - 2) * w..(y + dy - 1) * w];
                for (o, &v) in out.iter_mut().zip(from) {
                    *o += v;
                }
            }
        }
        BoxSums { width: w, sums }
    }

    /// The sum of the 5×5 box centred on (x, y), which must lie 2 pixels inside the picture.
    #[inline]
    pub fn box5(&self, x: usize, y: usize) -> u16 {
        self.sums[y * self.width + x]
    }
}

/// Area-averaged resampling of a `sw × sh` picture read through `row` (one source row as
/// `f32`) to `dw × dh` (down only: each destination pixel averages the source pixels its
/// footprint covers, weighted by overlap), rows first, then columns.
fn resample(sw: usize, sh: usize, row: impl Fn(usize, &mut [f32]), dw: usize, dh: usize) -> Grey {
    let xs = Taps::across(&spans(sw, dw));
    let ys = spans(sh, dh);
    let mut source = vec![0.0f32; sw];
    let mut narrow = vec![0.0f32; dw * sh];
    for (y, out) in narrow.chunks_exact_mut(dw).enumerate() {
        row(y, &mut source);
        xs.weigh(&source, out);
    }
    // Columns a whole row at a time, so the loop runs along memory.
    let mut pixels = Vec::with_capacity(dw * dh);
    let mut sum = vec![0.0f32; dw];
    for span in &ys {
        sum.fill(0.0);
        for (p, w) in span.taps() {
            for (s, &v) in sum.iter_mut().zip(&narrow[p * dw..(p + 1) * dw]) {
                *s += v * w;
            }
        }
        pixels.extend(sum.iter().map(|&v| (v + 0.5).clamp(0.0, 255.0) as u8));
    }
    Grey {
        width: dw,
        height: dh,
        pixels,
    }
}

/// The source pixels one destination cell covers: `first` and the weights from it on.
struct Span {
    first: usize,
    weights: Vec<f32>,
}

impl Span {
    /// (source index, weight) pairs.
    fn taps(&self) -> impl Iterator<Item = (usize, f32)> + '_ {
        self.weights
            .iter()
            .enumerate()
            .map(|(i, &w)| (self.first + i, w))
    }
}

/// Spans padded to the longest with weight 0 (adding 0 changes no sum), cell by cell, so a
/// line is weighed with a fixed number of taps per cell: no branch on a span's length, and
/// each cell's sum stays in a register.
struct Taps {
    /// Taps per cell.
    taps: usize,
    /// `[c * taps + k]`: the source index of cell `c`'s `k`-th tap.
    index: Vec<u32>,
    /// `[c * taps + k]`: its weight.
    weight: Vec<f32>,
}

impl Taps {
    fn across(spans: &[Span]) -> Taps {
        let taps = spans.iter().map(|s| s.weights.len()).max().unwrap_or(0);
        let mut index = Vec::with_capacity(taps * spans.len());
        let mut weight = Vec::with_capacity(taps * spans.len());
        for s in spans {
            for k in 0..taps {
                index.push((s.first + k.min(s.weights.len() - 1)) as u32);
                weight.push(s.weights.get(k).copied().unwrap_or(0.0));
            }
        }
        Taps {
            taps,
            index,
            weight,
        }
    }

    /// Each cell's weighted sum of `line`, taps in order.
    fn weigh(&self, line: &[f32], out: &mut [f32]) {
        match self.taps {
            2 => self.weigh_fixed::<2>(line, out),
            3 => self.weigh_fixed::<3>(line, out),
            4 => self.weigh_fixed::<4>(line, out),
            taps => {
                let cells = self
                    .index
                    .chunks_exact(taps)
                    .zip(self.weight.chunks_exact(taps));
                for (o, (index, weight)) in out.iter_mut().zip(cells) {
                    *o = index
                        .iter()
                        .zip(weight)
                        .fold(0.0, |sum, (&i, &w)| sum + line[i as usize] * w);
                }
            }
        }
    }

    /// [`Taps::weigh`] for `N` taps a cell, unrolled.
    fn weigh_fixed<const N: usize>(&self, line: &[f32], out: &mut [f32]) {
        let cells = self.index.chunks_exact(N).zip(self.weight.chunks_exact(N));
        for (o, (index, weight)) in out.iter_mut().zip(cells) {
            let mut sum = 0.0;
            for k in 0..N {
                sum += line[index[k] as usize] * weight[k];
            }
            *o = sum;
        }
    }
}

/// For each of `dst` cells over `src` pixels, the source pixels it covers and their weights
/// (the share of the cell each covers, summing to 1).
fn spans(src: usize, dst: usize) -> Vec<Span> {
    let step = src as f64 / dst as f64;
    (0..dst)
        .map(|i| {
            let (a, b) = (i as f64 * step, ((i + 1) as f64 * step).min(src as f64));
            let first = (a.floor() as usize).min(src - 1);
            let last = (b.ceil() as usize).clamp(first + 1, src);
            let covers: Vec<f64> = (first..last)
                .map(|p| (b.min(p as f64 + 1.0) - a.max(p as f64)).max(0.0))
                .collect();
            let total: f64 = covers.iter().sum();
            Span {
                first,
                weights: covers.iter().map(|&c| (c / total) as f32).collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_frame_is_brought_to_the_working_side_and_a_small_one_kept() {
        let big = LumaImage {
            width: 1920,
            height: 1080,
            pixels: vec![100.0; 1920 * 1080],
        };
        let g = Grey::working(&big);
        assert_eq!((g.width, g.height), (512, 288));
        assert!(g.pixels.iter().all(|&v| v == 100));
        let small = LumaImage {
            width: 320,
            height: 180,
            pixels: (0..320 * 180).map(|i| (i % 256) as f32).collect(),
        };
        let g = Grey::working(&small);
        assert_eq!((g.width, g.height), (320, 180));
        assert_eq!(g.at(5, 0), 5);
    }

    #[test]
    fn shrinking_averages_by_area() {
        let g = Grey {
            width: 4,
            height: 2,
            pixels: vec![0, 100, 200, 200, 0, 100, 200, 200],
        };
        let s = g.shrunk(2.0);
        assert_eq!((s.width, s.height), (2, 1));
        assert_eq!(s.pixels, vec![50, 200]);
    }

    #[test]
    fn a_box_sum_is_the_sum_of_its_pixels() {
        let g = Grey {
            width: 9,
            height: 7,
            pixels: (0..63).map(|i| (i * 7 % 251) as u8).collect(),
        };
        let boxes = BoxSums::of(&g);
        for (x, y) in [(2, 2), (4, 3), (6, 4), (6, 2), (2, 4)] {
            let mut want = 0u32;
            for yy in y - 2..=y + 2 {
                for xx in x - 2..=x + 2 {
                    want += u32::from(g.at(xx, yy));
                }
            }
            assert_eq!(u32::from(boxes.box5(x, y)), want, "({x}, {y})");
        }
    }
}
