//! PDQ, Meta's 256-bit perceptual image hash, written from the published algorithm
//! (pdqhash-2017-10-09.pdf and the facebook/ThreatExchange reference), one step per function:
//!
//! 1. luminance (`0.299 R + 0.587 G + 0.114 B`, or a decoded luma plane directly);
//! 2. two passes of a Jarosz tent filter (box filters along rows then columns);
//! 3. decimation to 64×64 at pixel centres;
//! 4. the quality metric (quantised gradient sum of the 64×64 image);
//! 5. the 16×16 low-frequency block of the 2-D DCT, without the DC row and column;
//! 6. one bit per coefficient: above the median (Torben's algorithm) or not.
//!
//! The eight dihedral hashes (rotations and flips of the image) come from sign changes and a
//! transpose of the DCT block, so they cost one DCT, not eight.
//!
//! Arithmetic is `f32` in the reference's order of operations, so hashes are bit-identical to it.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

/// Images smaller than this in either dimension hash to zero with quality 0, as in the reference.
pub const MIN_DIMENSION: usize = 5;
const JAROSZ_PASSES: usize = 2;
const BLOCK: usize = 64;
const FREQS: usize = 16;

/// A 256-bit PDQ hash. Bit `16 * i + j` is DCT coefficient (i + 1, j + 1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct PdqHash(pub [u64; 4]);

impl PdqHash {
    /// Number of differing bits.
    pub fn distance(&self, other: &PdqHash) -> u32 {
        self.0
            .iter()
            .zip(other.0.iter())
            .map(|(a, b)| (a ^ b).count_ones())
            .sum()
    }

    fn set_bit(&mut self, k: usize) {
        self.0[k / 64] |= 1u64 << (k % 64);
    }

    /// The sixteen 16-bit words of the reference's `Hash256`, word `m` holding bits 16m..16m+15.
    fn word(&self, m: usize) -> u16 {
        (self.0[m / 4] >> ((m % 4) * 16)) as u16
    }
}

impl fmt::Display for PdqHash {
    /// 64 hex digits, most significant word (DCT row 16) first: the reference's format.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for m in (0..16).rev() {
            write!(f, "{:04x}", self.word(m))?;
        }
        Ok(())
    }
}

impl fmt::Debug for PdqHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PdqHash({self})")
    }
}

/// A string that is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a PDQ hash (64 hex digits): {0:?}")]
pub struct BadPdqHex(pub String);

impl FromStr for PdqHash {
    type Err = BadPdqHex;

    fn from_str(text: &str) -> Result<PdqHash, BadPdqHex> {
        let bad = || BadPdqHex(text.chars().take(80).collect());
        if text.len() != 64 || !text.is_ascii() {
            return Err(bad());
        }
        let mut hash = PdqHash::default();
        for (i, chunk) in text.as_bytes().chunks(4).enumerate() {
            let digits = std::str::from_utf8(chunk).map_err(|_| bad())?;
            let word = u16::from_str_radix(digits, 16).map_err(|_| bad())? as u64;
            let m = 15 - i;
            hash.0[m / 4] |= word << ((m % 4) * 16);
        }
        Ok(hash)
    }
}

/// The eight dihedral transforms, in the reference's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dihedral {
    /// As is.
    Original,
    /// Rotated 90° counter-clockwise.
    Rotate90,
    /// Rotated 180°.
    Rotate180,
    /// Rotated 270° counter-clockwise.
    Rotate270,
    /// Mirrored top to bottom.
    FlipX,
    /// Mirrored left to right.
    FlipY,
    /// Transposed about the main diagonal.
    FlipPlus1,
    /// Transposed about the anti-diagonal.
    FlipMinus1,
}

impl Dihedral {
    /// All eight, original first.
    pub const ALL: [Dihedral; 8] = [
        Dihedral::Original,
        Dihedral::Rotate90,
        Dihedral::Rotate180,
        Dihedral::Rotate270,
        Dihedral::FlipX,
        Dihedral::FlipY,
        Dihedral::FlipPlus1,
        Dihedral::FlipMinus1,
    ];

    /// Short name, as the reference tools print it.
    pub fn name(self) -> &'static str {
        match self {
            Dihedral::Original => "orig",
            Dihedral::Rotate90 => "rot90",
            Dihedral::Rotate180 => "rot180",
            Dihedral::Rotate270 => "rot270",
            Dihedral::FlipX => "flipx",
            Dihedral::FlipY => "flipy",
            Dihedral::FlipPlus1 => "flipp",
            Dihedral::FlipMinus1 => "flipm",
        }
    }

    /// Coefficient (i, j) of the transformed image's DCT block, from the original's block `a`.
    /// Coefficient indices start at frequency 1, so the parity that flips a sign is the
    /// opposite of the textbook one.
    fn coefficient(self, a: &[[f32; FREQS]; FREQS], i: usize, j: usize) -> f32 {
        let odd = |n: usize| n & 1 == 1;
        match self {
            Dihedral::Original => a[i][j],
            Dihedral::Rotate90 => sign(odd(i), a[j][i]),
            Dihedral::Rotate180 => sign(!odd(i + j), a[i][j]),
            Dihedral::Rotate270 => sign(odd(j), a[j][i]),
            Dihedral::FlipX => sign(odd(i), a[i][j]),
            Dihedral::FlipY => sign(odd(j), a[i][j]),
            Dihedral::FlipPlus1 => a[j][i],
            Dihedral::FlipMinus1 => sign(!odd(i + j), a[j][i]),
        }
    }
}

fn sign(keep: bool, value: f32) -> f32 {
    if keep {
        value
    } else {
        -value
    }
}

/// A PDQ result: the low-frequency DCT block it was thresholded from, and the quality metric.
#[derive(Clone)]
pub struct PdqDct {
    block: [[f32; FREQS]; FREQS],
    /// Quality 0–100, as the reference computes it; below ~50 the image is too flat for its
    /// hash to mean much.
    pub quality: u32,
    /// The quality of the same picture with its contrast stretched to the full range (see
    /// `stretched_quality`): what the live gate judges, so that a clip played at a quarter of
    /// its contrast is not skipped as featureless. The hash is the same either way.
    pub stretched_quality: u32,
}

impl PdqDct {
    /// The hash of the image as given.
    pub fn hash(&self) -> PdqHash {
        threshold_at_median(&self.block)
    }

    /// The hash the image would have after `transform`.
    pub fn dihedral(&self, transform: Dihedral) -> PdqHash {
        threshold_at_median(&self.transformed(transform).block)
    }

    /// The coefficients of the picture rotated or mirrored by `transform` (qualities kept):
    /// for its hash, and for its sure bits ([`PdqDct::sure_bits`]).
    pub fn transformed(&self, transform: Dihedral) -> PdqDct {
        let mut block = [[0f32; FREQS]; FREQS];
        for (i, row) in block.iter_mut().enumerate() {
            for (j, value) in row.iter_mut().enumerate() {
                *value = transform.coefficient(&self.block, i, j);
            }
        }
        PdqDct { block, ..*self }
    }

    /// The 16 × 16 DCT coefficients the hash thresholds: row `i` is vertical frequency
    /// `i + 1`, column `j` horizontal frequency `j + 1`; bit `16 * i + j`.
    pub fn coefficients(&self) -> [[f32; FREQS]; FREQS] {
        self.block
    }

    /// The bits of [`PdqDct::hash`] whose coefficients lie at least `margin` times the block's
    /// median distance to the median away from it: the bits a small change of the picture
    /// cannot flip. A perturbation steering the hash pushes exactly the coefficients nearest
    /// the median across it, and lands them near it.
    pub fn sure_bits(&self, margin: f32) -> PdqHash {
        let flat: Vec<f32> = self.block.iter().flatten().copied().collect();
        let median = torben_median(&flat);
        let distances: Vec<f32> = flat.iter().map(|c| (c - median).abs()).collect();
        let spread = torben_median(&distances);
        let mut sure = PdqHash::default();
        for (k, d) in distances.iter().enumerate() {
            if *d >= margin * spread {
                sure.set_bit(k);
            }
        }
        sure
    }

    /// All eight dihedral hashes, in [`Dihedral::ALL`] order.
    pub fn dihedrals(&self) -> [PdqHash; 8] {
        Dihedral::ALL.map(|t| self.dihedral(t))
    }
}

/// A grey image as `f32` samples, row-major.
#[derive(Debug, Clone)]
pub struct LumaImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width * height` luminance values, nominally 0–255.
    pub pixels: Vec<f32>,
}

impl LumaImage {
    /// Luminance of packed 8-bit RGB (`width * height * 3` bytes).
    pub fn from_rgb8(width: usize, height: usize, rgb: &[u8]) -> LumaImage {
        const R: f32 = 0.299;
        const G: f32 = 0.587;
        const B: f32 = 0.114;
        let pixels = rgb
            .chunks_exact(3)
            .take(width * height)
            .map(|p| R * p[0] as f32 + G * p[1] as f32 + B * p[2] as f32)
            .collect();
        LumaImage {
            width,
            height,
            pixels,
        }
    }

    /// A luma plane as a decoder gives it (with row stride). Limited-range ("TV", 16–235)
    /// video luma is stretched to 0–255 so quality figures match those of RGB frames; the
    /// stretch itself changes no hash bit (PDQ ignores offset and scale).
    pub fn from_luma_plane(
        width: usize,
        height: usize,
        stride: usize,
        plane: &[u8],
        limited_range: bool,
    ) -> LumaImage {
        let (scale, offset) = if limited_range {
            (255.0f32 / 219.0, -16.0f32 * 255.0 / 219.0)
        } else {
            (1.0, 0.0)
        };
        let mut pixels = Vec::with_capacity(width * height);
        for row in plane.chunks(stride.max(1)).take(height) {
            pixels.extend(row.iter().take(width).map(|&y| y as f32 * scale + offset));
        }
        pixels.resize(width * height, 0.0);
        LumaImage {
            width,
            height,
            pixels,
        }
    }
}

/// Computes the PDQ DCT block and quality of a luminance image. Images under
/// [`MIN_DIMENSION`] give an all-zero block and quality 0.
pub fn pdq(image: &LumaImage) -> PdqDct {
    if image.width < MIN_DIMENSION || image.height < MIN_DIMENSION {
        return PdqDct {
            block: [[0.0; FREQS]; FREQS],
            quality: 0,
            stretched_quality: 0,
        };
    }
    let small = downsample_64(image);
    PdqDct {
        quality: quality(&small, 1.0),
        stretched_quality: stretched_quality(&small),
        block: dct_16(&small),
    }
}

/// Jarosz filter and decimation to 64×64 (skipped for an image that already is 64×64).
///
/// Only the 64×64 decimated samples are kept, so the second pass computes only what reaches
/// them: its row filter divides at the 64 sampled columns only, its column filter runs on those
/// 64 columns only. Every running sum still adds and subtracts in the reference's order, so the
/// result is bit-identical to filtering the whole image twice.
fn downsample_64(image: &LumaImage) -> Vec<f32> {
    let (rows, cols) = (image.height, image.width);
    if rows == BLOCK && cols == BLOCK {
        return image.pixels.clone();
    }
    let along_rows = jarosz_window(cols, BLOCK);
    let along_cols = jarosz_window(rows, BLOCK);
    let sample_at = |n: usize| -> Vec<usize> {
        (0..BLOCK)
            .map(|i| (((i as f64 + 0.5) * n as f64) / BLOCK as f64) as usize)
            .collect()
    };
    let (row_samples, col_samples) = (sample_at(rows), sample_at(cols));
    // Below 64 pixels a sample position repeats; such images are tiny, filter them whole.
    if rows < BLOCK || cols < BLOCK {
        return downsample_64_whole(image, along_rows, along_cols, &row_samples, &col_samples);
    }
    const NONE: usize = usize::MAX;
    let slots = |n: usize, samples: &[usize]| {
        let mut slot = vec![NONE; n];
        for (k, &at) in samples.iter().enumerate() {
            slot[at] = k;
        }
        slot
    };
    let (row_slot, col_slot) = (slots(rows, &row_samples), slots(cols, &col_samples));

    // Pass 1, whole image: rows into `b`, then all columns at once into `a`.
    let mut a = vec![0f32; rows * cols];
    let mut b = vec![0f32; rows * cols];
    box_rows(&image.pixels, rows, cols, along_rows, |r, p, sum, n| {
        b[r * cols + p] = sum / n as f32
    });
    box_columns(&b, rows, cols, along_cols, |p, sums, n| {
        for (o, s) in a[p * cols..(p + 1) * cols].iter_mut().zip(sums) {
            *o = s / n as f32;
        }
    });
    // Pass 2: rows, kept at the 64 sampled columns; then those columns, kept at sampled rows.
    let mut picked = vec![0f32; rows * BLOCK];
    box_rows(&a, rows, cols, along_rows, |r, p, sum, n| {
        if col_slot[p] != NONE {
            picked[r * BLOCK + col_slot[p]] = sum / n as f32;
        }
    });
    let mut out = vec![0f32; BLOCK * BLOCK];
    box_columns(&picked, rows, BLOCK, along_cols, |p, sums, n| {
        if row_slot[p] != NONE {
            let i = row_slot[p];
            for (o, s) in out[i * BLOCK..(i + 1) * BLOCK].iter_mut().zip(sums) {
                *o = s / n as f32;
            }
        }
    });
    out
}

/// The plain two-pass filter over the whole image, then decimation.
fn downsample_64_whole(
    image: &LumaImage,
    along_rows: usize,
    along_cols: usize,
    row_samples: &[usize],
    col_samples: &[usize],
) -> Vec<f32> {
    let (rows, cols) = (image.height, image.width);
    let mut a = image.pixels.clone();
    let mut b = vec![0f32; a.len()];
    for _ in 0..JAROSZ_PASSES {
        box_rows(&a, rows, cols, along_rows, |r, p, sum, n| {
            b[r * cols + p] = sum / n as f32
        });
        box_columns(&b, rows, cols, along_cols, |p, sums, n| {
            for (o, s) in a[p * cols..(p + 1) * cols].iter_mut().zip(sums) {
                *o = s / n as f32;
            }
        });
    }
    let mut out = vec![0f32; BLOCK * BLOCK];
    for (i, &ii) in row_samples.iter().enumerate() {
        for (j, &jj) in col_samples.iter().enumerate() {
            out[i * BLOCK + j] = a[ii * cols + jj];
        }
    }
    out
}

/// Half of the window that takes `old` samples to `new` (two passes make the full window).
fn jarosz_window(old: usize, new: usize) -> usize {
    old.div_ceil(2 * new)
}

/// The four phases of the reference's box filter over `len` positions: accumulate, write while
/// the window grows, write with a full window, write while it shrinks. Near the ends the
/// average is over the part of the window inside the data.
fn box_phases(len: usize, window: usize) -> [usize; 4] {
    let half = (window + 2) / 2;
    [
        half - 1,
        window - half + 1,
        len.saturating_sub(window),
        half - 1,
    ]
}

/// A box filter along one row; `emit(position, sum, count)` for every output position.
fn box_row(input: &[f32], window: usize, mut emit: impl FnMut(usize, f32, usize)) {
    let [lead_in, first_writes, steady, tail] = box_phases(input.len(), window);
    let (mut left, mut right, mut out) = (0usize, 0usize, 0usize);
    let mut sum = 0f32;
    let mut count = 0usize;
    for _ in 0..lead_in {
        sum += input[right];
        count += 1;
        right += 1;
    }
    for _ in 0..first_writes {
        sum += input[right];
        count += 1;
        emit(out, sum, count);
        right += 1;
        out += 1;
    }
    for _ in 0..steady {
        sum += input[right];
        sum -= input[left];
        emit(out, sum, count);
        left += 1;
        right += 1;
        out += 1;
    }
    for _ in 0..tail {
        sum -= input[left];
        count -= 1;
        emit(out, sum, count);
        left += 1;
        out += 1;
    }
}

/// [`box_row`] over every row of a `rows × cols` matrix, eight rows at a time: eight running
/// sums advance together, so the additions of different rows overlap in the pipeline instead of
/// each waiting for the previous one. Each row's own additions keep their order.
/// `emit(row, position, sum, count)`.
fn box_rows(
    input: &[f32],
    rows: usize,
    cols: usize,
    window: usize,
    mut emit: impl FnMut(usize, usize, f32, usize),
) {
    const GROUP: usize = 8;
    let full_groups = rows / GROUP;
    for g in 0..full_groups {
        let base = g * GROUP * cols;
        let at = |k: usize, p: usize| input[base + k * cols + p];
        let [lead_in, first_writes, steady, tail] = box_phases(cols, window);
        let mut sums = [0f32; GROUP];
        let (mut left, mut right, mut out) = (0usize, 0usize, 0usize);
        let mut count = 0usize;
        for _ in 0..lead_in {
            for (k, s) in sums.iter_mut().enumerate() {
                *s += at(k, right);
            }
            count += 1;
            right += 1;
        }
        for _ in 0..first_writes {
            for (k, s) in sums.iter_mut().enumerate() {
                *s += at(k, right);
            }
            count += 1;
            for (k, s) in sums.iter().enumerate() {
                emit(g * GROUP + k, out, *s, count);
            }
            right += 1;
            out += 1;
        }
        for _ in 0..steady {
            for (k, s) in sums.iter_mut().enumerate() {
                *s += at(k, right);
                *s -= at(k, left);
            }
            for (k, s) in sums.iter().enumerate() {
                emit(g * GROUP + k, out, *s, count);
            }
            left += 1;
            right += 1;
            out += 1;
        }
        for _ in 0..tail {
            for (k, s) in sums.iter_mut().enumerate() {
                *s -= at(k, left);
            }
            count -= 1;
            for (k, s) in sums.iter().enumerate() {
                emit(g * GROUP + k, out, *s, count);
            }
            left += 1;
            out += 1;
        }
    }
    for r in full_groups * GROUP..rows {
        box_row(&input[r * cols..(r + 1) * cols], window, |p, sum, n| {
            emit(r, p, sum, n)
        });
    }
}

/// The same filter down every column of a `rows × lanes` matrix at once: one running sum per
/// column, rows read in order (cache-friendly, vectorisable), each column's additions in the
/// same order as a column-by-column filter. `emit(row, sums, count)` per output row.
fn box_columns(
    input: &[f32],
    rows: usize,
    lanes: usize,
    window: usize,
    mut emit: impl FnMut(usize, &[f32], usize),
) {
    let [lead_in, first_writes, steady, tail] = box_phases(rows, window);
    let row = |r: usize| &input[r * lanes..(r + 1) * lanes];
    let add = |sums: &mut [f32], r: usize| sums.iter_mut().zip(row(r)).for_each(|(s, x)| *s += x);
    let sub = |sums: &mut [f32], r: usize| sums.iter_mut().zip(row(r)).for_each(|(s, x)| *s -= x);
    let mut sums = vec![0f32; lanes];
    let (mut left, mut right, mut out) = (0usize, 0usize, 0usize);
    let mut count = 0usize;
    for _ in 0..lead_in {
        add(&mut sums, right);
        count += 1;
        right += 1;
    }
    for _ in 0..first_writes {
        add(&mut sums, right);
        count += 1;
        emit(out, &sums, count);
        right += 1;
        out += 1;
    }
    for _ in 0..steady {
        add(&mut sums, right);
        sub(&mut sums, left);
        emit(out, &sums, count);
        left += 1;
        right += 1;
        out += 1;
    }
    for _ in 0..tail {
        sub(&mut sums, left);
        count -= 1;
        emit(out, &sums, count);
        left += 1;
        out += 1;
    }
}

/// Sum of quantised vertical and horizontal gradients of the 64×64 image, scaled to 0–100.
/// Luma range (1st to 99th percentile of the 64×64 samples) below which a picture is not
/// stretched: a flat frame stays flat, whatever its noise.
pub const MIN_STRETCH_RANGE: f32 = 8.0;

/// The quality metric of the 64×64 samples with their 1st–99th percentile range stretched to
/// 0–255 (never shrunk). A linear change of contrast moves no hash bit, so it must not move the
/// gate either: a clip at 25 % contrast has the quality of the clip.
fn stretched_quality(small: &[f32]) -> u32 {
    let mut sorted = small.to_vec();
    let n = sorted.len();
    let (low_at, high_at) = (n / 100, n - 1 - n / 100);
    let (_, low, rest) = sorted.select_nth_unstable_by(low_at, f32::total_cmp);
    let low = *low;
    let high = *rest
        .select_nth_unstable_by(high_at - low_at - 1, f32::total_cmp)
        .1;
    let range = high - low;
    if !(MIN_STRETCH_RANGE..255.0).contains(&range) {
        return quality(small, 1.0);
    }
    quality(small, 255.0 / range)
}

/// The reference's quality metric (a quantised sum of gradients), over samples scaled by
/// `gain` (1.0: the reference's figure, bit for bit).
fn quality(small: &[f32], gain: f32) -> u32 {
    let step = |u: f32, v: f32| (((((u - v) * gain) * 100.0) / 255.0) as i32).unsigned_abs();
    let mut sum = 0u32;
    for i in 0..BLOCK - 1 {
        for j in 0..BLOCK {
            sum += step(small[i * BLOCK + j], small[(i + 1) * BLOCK + j]);
        }
    }
    for i in 0..BLOCK {
        for j in 0..BLOCK - 1 {
            sum += step(small[i * BLOCK + j], small[i * BLOCK + j + 1]);
        }
    }
    (sum / 90).min(100)
}

/// Rows 1..=16 of the 64-point DCT-II matrix, scaled by sqrt(2/64).
fn dct_matrix() -> &'static [f32] {
    static MATRIX: OnceLock<Vec<f32>> = OnceLock::new();
    MATRIX.get_or_init(|| {
        let scale = (2.0f64 / BLOCK as f64).sqrt() as f32;
        let mut m = Vec::with_capacity(FREQS * BLOCK);
        for i in 0..FREQS {
            for j in 0..BLOCK {
                let angle = (std::f64::consts::PI / 2.0 / BLOCK as f64)
                    * (i + 1) as f64
                    * (2 * j + 1) as f64;
                m.push((scale as f64 * angle.cos()) as f32);
            }
        }
        m
    })
}

/// B = D · A · Dᵀ for the 16 lowest non-DC frequencies.
fn dct_16(a: &[f32]) -> [[f32; FREQS]; FREQS] {
    let d = dct_matrix();
    let mut t = [[0f32; BLOCK]; FREQS];
    for (i, t_row) in t.iter_mut().enumerate() {
        let d_row = &d[i * BLOCK..(i + 1) * BLOCK];
        for (j, t_ij) in t_row.iter_mut().enumerate() {
            let mut sum = 0f32;
            for (k, d_ik) in d_row.iter().enumerate() {
                sum += d_ik * a[k * BLOCK + j];
            }
            *t_ij = sum;
        }
    }
    let mut b = [[0f32; FREQS]; FREQS];
    for (i, b_row) in b.iter_mut().enumerate() {
        for (j, b_ij) in b_row.iter_mut().enumerate() {
            let d_row = &d[j * BLOCK..(j + 1) * BLOCK];
            let mut sum = 0f32;
            for (t_ik, d_jk) in t[i].iter().zip(d_row) {
                sum += t_ik * d_jk;
            }
            *b_ij = sum;
        }
    }
    b
}

/// One bit per coefficient: set when above the median.
fn threshold_at_median(block: &[[f32; FREQS]; FREQS]) -> PdqHash {
    let flat: Vec<f32> = block.iter().flatten().copied().collect();
    let median = torben_median(&flat);
    let mut hash = PdqHash::default();
    for (k, value) in flat.iter().enumerate() {
        if *value > median {
            hash.set_bit(k);
        }
    }
    hash
}

/// Torben Mogensen's median: no sorting, no allocation, exact for floats.
fn torben_median(values: &[f32]) -> f32 {
    let n = values.len();
    let half = n.div_ceil(2);
    let mut min = values.iter().copied().fold(f32::INFINITY, f32::min);
    let mut max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    loop {
        let guess = (min + max) / 2.0;
        let (mut less, mut greater, mut equal) = (0usize, 0usize, 0usize);
        let (mut max_below, mut min_above) = (min, max);
        for &v in values {
            if v < guess {
                less += 1;
                if v > max_below {
                    max_below = v;
                }
            } else if v > guess {
                greater += 1;
                if v < min_above {
                    min_above = v;
                }
            } else {
                equal += 1;
            }
        }
        if less <= half && greater <= half {
            return if less >= half {
                max_below
            } else if less + equal >= half {
                guess
            } else {
                min_above
            };
        }
        if less > greater {
            max = max_below;
        } else {
            min = min_above;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flips_are_the_picture_mirrored() {
        let (w, h) = (96usize, 96usize);
        let at =
            |x: usize, y: usize| ((x * 7 + y * 3) % 23) as f32 * 9.0 + (x / 12 * 31 % 50) as f32;
        let image = |f: &dyn Fn(usize, usize) -> (usize, usize)| LumaImage {
            width: w,
            height: h,
            pixels: (0..w * h)
                .map(|i| {
                    let (x, y) = f(i % w, i / w);
                    at(x, y)
                })
                .collect(),
        };
        let original = pdq(&image(&|x, y| (x, y)));
        let left_right = pdq(&image(&|x, y| (w - 1 - x, y)));
        let top_bottom = pdq(&image(&|x, y| (x, h - 1 - y)));
        assert!(
            original
                .dihedral(Dihedral::FlipY)
                .distance(&left_right.hash())
                <= 2
        );
        assert!(
            original
                .dihedral(Dihedral::FlipX)
                .distance(&top_bottom.hash())
                <= 2
        );
        assert!(original.hash().distance(&left_right.hash()) > 32);
    }

    #[test]
    fn hex_round_trips_in_reference_order() {
        let text = "f8f8f0cce0f4e84d0e370a22028f67f0b36e2ed596623e1d33e6339c4e9c9b22";
        let hash: PdqHash = text.parse().expect("valid hex");
        assert_eq!(hash.to_string(), text);
        // The last four hex digits are word 0: DCT row 1.
        assert_eq!(hash.word(0), 0x9b22);
        assert_eq!(hash.distance(&hash), 0);
        assert!("xyz".parse::<PdqHash>().is_err());
        assert!(text[..63].parse::<PdqHash>().is_err());
    }

    #[test]
    fn box_filter_matches_the_worked_example() {
        // The reference's comment: window 7 over 0..15 gives these sums before dividing.
        let input: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let mut out = vec![0f32; 16];
        box_row(&input, 7, |p, sum, n| out[p] = sum / n as f32);
        let mut columns = vec![0f32; 16];
        box_columns(&input, 16, 1, 7, |p, sums, n| {
            columns[p] = sums[0] / n as f32
        });
        assert_eq!(out, columns);
        let sums = [
            6, 10, 15, 21, 28, 35, 42, 49, 56, 63, 70, 77, 84, 75, 65, 54,
        ];
        let counts = [4, 5, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 5, 4];
        for i in 0..16 {
            assert!(
                (out[i] - sums[i] as f32 / counts[i] as f32).abs() < 1e-5,
                "at {i}"
            );
        }
    }

    #[test]
    fn torben_is_the_lower_median() {
        let values: Vec<f32> = (0..256).map(|v| ((v * 37) % 256) as f32).collect();
        assert_eq!(torben_median(&values), 127.0);
        assert_eq!(torben_median(&[3.0, 1.0, 2.0]), 2.0);
    }

    #[test]
    fn flat_images_have_zero_quality_and_tiny_ones_zero_hash() {
        let flat = LumaImage {
            width: 100,
            height: 80,
            pixels: vec![128.0; 8000],
        };
        assert_eq!(pdq(&flat).quality, 0);
        let tiny = LumaImage {
            width: 4,
            height: 40,
            pixels: vec![1.0; 160],
        };
        let r = pdq(&tiny);
        assert_eq!((r.hash(), r.quality), (PdqHash::default(), 0));
    }

    #[test]
    fn luma_plane_stride_and_range() {
        let plane = [16u8, 235, 99, 16, 235, 99];
        let img = LumaImage::from_luma_plane(2, 2, 3, &plane, true);
        assert_eq!(img.pixels.len(), 4);
        assert!(img.pixels[0].abs() < 1e-3 && (img.pixels[1] - 255.0).abs() < 1e-3);
    }
}
