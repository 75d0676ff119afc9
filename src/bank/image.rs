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
            |x, y| luma.pixels[y * luma.width + x],
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
            |x, y| f32::from(self.at(x, y)),
            width,
            height,
        )
    }

    /// A Gaussian-smoothed copy (σ = 2, a 9-tap kernel): the descriptor compares smoothed
    /// pixels so one noisy pixel cannot flip a bit.
    pub fn smoothed(&self) -> Grey {
        const KERNEL: [u32; 9] = [2, 7, 16, 27, 32, 27, 16, 7, 2]; // σ ≈ 2, sums to 136
        const SUM: u32 = 136;
        let (w, h) = (self.width, self.height);
        let clamp = |v: isize, n: usize| v.clamp(0, n as isize - 1) as usize;
        let mut rows = vec![0u8; w * h];
        for y in 0..h {
            for x in 0..w {
                let mut acc = 0;
                for (k, weight) in KERNEL.iter().enumerate() {
                    acc += weight * u32::from(self.at(clamp(x as isize + k as isize - 4, w), y));
                }
                rows[y * w + x] = ((acc + SUM / 2) / SUM) as u8;
            }
        }
        let mut out = vec![0u8; w * h];
        for y in 0..h {
            for x in 0..w {
                let mut acc = 0;
                for (k, weight) in KERNEL.iter().enumerate() {
                    acc += weight * u32::from(rows[clamp(y as isize + k as isize - 4, h) * w + x]);
                }
                out[y * w + x] = ((acc + SUM / 2) / SUM) as u8;
            }
        }
        Grey {
            width: w,
            height: h,
            pixels: out,
        }
    }
}

/// Area-averaged resampling of a `sw × sh` picture read through `at` to `dw × dh` (down only:
/// each destination pixel averages the source pixels its footprint covers, weighted by overlap).
fn resample(
    sw: usize,
    sh: usize,
    at: impl Fn(usize, usize) -> f32,
    dw: usize,
    dh: usize,
) -> Grey {
    let xs = spans(sw, dw);
    let ys = spans(sh, dh);
    let mut pixels = Vec::with_capacity(dw * dh);
    for row in &ys {
        for col in &xs {
            let mut acc = 0.0f64;
            let mut weight = 0.0f64;
            for &(y, wy) in row {
                for &(x, wx) in col {
                    acc += f64::from(at(x, y)) * wy * wx;
                    weight += wy * wx;
                }
            }
            let v = if weight > 0.0 { acc / weight } else { 0.0 };
            pixels.push(v.round().clamp(0.0, 255.0) as u8);
        }
    }
    Grey {
        width: dw,
        height: dh,
        pixels,
    }
}

/// For each of `dst` cells over `src` pixels, the source pixels it covers and by how much.
fn spans(src: usize, dst: usize) -> Vec<Vec<(usize, f64)>> {
    let step = src as f64 / dst as f64;
    (0..dst)
        .map(|i| {
            let (a, b) = (i as f64 * step, ((i + 1) as f64 * step).min(src as f64));
            let first = a.floor() as usize;
            let last = (b.ceil() as usize).clamp(first + 1, src);
            (first..last)
                .map(|p| {
                    let cover = (b.min(p as f64 + 1.0) - a.max(p as f64)).max(0.0);
                    (p, cover)
                })
                .filter(|&(_, c)| c > 0.0)
                .collect()
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
    fn smoothing_keeps_a_flat_picture_and_softens_a_step() {
        let mut g = Grey {
            width: 20,
            height: 5,
            pixels: vec![0; 100],
        };
        for y in 0..5 {
            for x in 10..20 {
                g.pixels[y * 20 + x] = 200;
            }
        }
        let s = g.smoothed();
        assert_eq!(s.at(0, 2), 0);
        assert_eq!(s.at(19, 2), 200);
        assert!(s.at(9, 2) > 0 && s.at(9, 2) < 100, "{}", s.at(9, 2));
        assert!(s.at(10, 2) > 100 && s.at(10, 2) < 200, "{}", s.at(10, 2));
    }
}
