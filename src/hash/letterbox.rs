//! Letterbox and pillarbox detection: re-broadcasts often put the original picture inside black
//! (or grey) bars, and the PDQ of the padded frame is far from the original's. The bars are
//! found on the luma plane as rows and columns, scanned inward from each edge, whose samples all
//! stay within a tolerance of the corner's value.

use super::pdq::LumaImage;

/// Crop of the content inside the bars, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentArea {
    /// First content column.
    pub left: usize,
    /// First content row.
    pub top: usize,
    /// Content width.
    pub width: usize,
    /// Content height.
    pub height: usize,
}

/// How uniform a bar must be, in luma levels (0–255), and how much of the frame must remain.
#[derive(Debug, Clone, Copy)]
pub struct LetterboxSettings {
    /// Largest deviation from the corner's value a bar sample may have.
    pub tolerance: f32,
    /// The content must keep at least this fraction of each dimension; otherwise (a dark scene,
    /// a flat frame) nothing is cropped.
    pub min_content: f32,
}

impl Default for LetterboxSettings {
    fn default() -> Self {
        LetterboxSettings {
            tolerance: 15.0,
            min_content: 0.25,
        }
    }
}

/// The content area when the image has bars, `None` when it has none (or is all "bar").
pub fn detect(image: &LumaImage, settings: LetterboxSettings) -> Option<ContentArea> {
    let (w, h) = (image.width, image.height);
    if w == 0 || h == 0 {
        return None;
    }
    let px = |x: usize, y: usize| image.pixels[y * w + x];
    let reference = px(0, 0);
    let near = |v: f32| (v - reference).abs() <= settings.tolerance;
    let row_is_bar = |y: usize| (0..w).all(|x| near(px(x, y)));
    let col_is_bar = |x: usize, top: usize, bottom: usize| (top..bottom).all(|y| near(px(x, y)));

    let top = (0..h).find(|&y| !row_is_bar(y))?;
    let bottom = (top..h)
        .rev()
        .find(|&y| !row_is_bar(y))
        .map_or(h, |y| y + 1);
    let left = (0..w).find(|&x| !col_is_bar(x, top, bottom))?;
    let right = (left..w)
        .rev()
        .find(|&x| !col_is_bar(x, top, bottom))
        .map_or(w, |x| x + 1);

    let area = ContentArea {
        left,
        top,
        width: right - left,
        height: bottom - top,
    };
    let untouched = area.width == w && area.height == h;
    let too_small = (area.width as f32) < settings.min_content * w as f32
        || (area.height as f32) < settings.min_content * h as f32;
    (!untouched && !too_small).then_some(area)
}

/// The pixels inside `area`.
pub fn crop(image: &LumaImage, area: ContentArea) -> LumaImage {
    let mut pixels = Vec::with_capacity(area.width * area.height);
    for y in area.top..area.top + area.height {
        let start = y * image.width + area.left;
        pixels.extend_from_slice(&image.pixels[start..start + area.width]);
    }
    LumaImage {
        width: area.width,
        height: area.height,
        pixels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(w: usize, h: usize, bar: f32, content: ContentArea) -> LumaImage {
        let mut pixels = vec![bar; w * h];
        for y in content.top..content.top + content.height {
            for x in content.left..content.left + content.width {
                pixels[y * w + x] = 40.0 + ((x * 7 + y * 13) % 180) as f32;
            }
        }
        LumaImage {
            width: w,
            height: h,
            pixels,
        }
    }

    #[test]
    fn finds_letterbox_pillarbox_and_grey_bars() {
        let letterbox = ContentArea {
            left: 0,
            top: 60,
            width: 640,
            height: 360,
        };
        let img = framed(640, 480, 16.0, letterbox);
        assert_eq!(detect(&img, LetterboxSettings::default()), Some(letterbox));
        let pillar = ContentArea {
            left: 80,
            top: 0,
            width: 480,
            height: 360,
        };
        let img = framed(640, 360, 128.0, pillar);
        assert_eq!(detect(&img, LetterboxSettings::default()), Some(pillar));
        let cropped = crop(&img, pillar);
        assert_eq!((cropped.width, cropped.height), (480, 360));
    }

    #[test]
    fn leaves_plain_and_flat_frames_alone() {
        let full = ContentArea {
            left: 0,
            top: 0,
            width: 64,
            height: 48,
        };
        assert_eq!(
            detect(&framed(64, 48, 0.0, full), LetterboxSettings::default()),
            None
        );
        let flat = LumaImage {
            width: 64,
            height: 48,
            pixels: vec![10.0; 64 * 48],
        };
        assert_eq!(detect(&flat, LetterboxSettings::default()), None);
        let sliver = ContentArea {
            left: 0,
            top: 20,
            width: 64,
            height: 4,
        };
        assert_eq!(
            detect(&framed(64, 48, 0.0, sliver), LetterboxSettings::default()),
            None
        );
    }
}
