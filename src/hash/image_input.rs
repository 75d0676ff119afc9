//! Still images into RGB, the way the reference tools read them, so hashes of the same file
//! agree with theirs.

use std::path::Path;

use image::{DynamicImage, RgbImage};

use super::pdq::LumaImage;

/// An image file that cannot be hashed.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ImageError {
    /// The file.
    pub path: String,
    /// What went wrong.
    pub reason: String,
}

/// Decodes an image file to 8-bit RGB.
///
/// 16-bit greyscale is clipped at 255 rather than scaled, as PIL converts it: python-threatexchange
/// (and so the hashes platforms exchange) read images through PIL.
pub fn load_rgb(path: &Path) -> Result<RgbImage, ImageError> {
    let bytes = std::fs::read(path).map_err(|e| ImageError {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    decode_rgb(&bytes, &path.display().to_string())
}

/// Largest picture side decoded; an image file is untrusted input, and a header may claim any
/// size (PDQ sees 64x64 of it in the end).
pub const MAX_IMAGE_SIDE: u32 = 16_384;
/// Most memory one image's decoding may take.
pub const MAX_IMAGE_ALLOC: u64 = 512 * 1024 * 1024;

/// Decodes an image held in memory (`name` names it in errors), within [`MAX_IMAGE_SIDE`] and
/// [`MAX_IMAGE_ALLOC`].
pub fn decode_rgb(bytes: &[u8], name: &str) -> Result<RgbImage, ImageError> {
    let error = |reason: String| ImageError {
        path: name.to_owned(),
        reason,
    };
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| error(e.to_string()))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_IMAGE_ALLOC);
    reader.limits(limits);
    let image = reader.decode().map_err(|e| error(e.to_string()))?;
    Ok(to_rgb(image))
}

/// Converts a decoded image to 8-bit RGB with PIL's conventions.
pub fn to_rgb(image: DynamicImage) -> RgbImage {
    match image {
        DynamicImage::ImageLuma16(grey) => {
            let (w, h) = grey.dimensions();
            RgbImage::from_fn(w, h, |x, y| {
                let v = grey.get_pixel(x, y).0[0].min(255) as u8;
                image::Rgb([v, v, v])
            })
        }
        DynamicImage::ImageLumaA16(grey) => {
            let (w, h) = grey.dimensions();
            RgbImage::from_fn(w, h, |x, y| {
                let v = grey.get_pixel(x, y).0[0].min(255) as u8;
                image::Rgb([v, v, v])
            })
        }
        other => other.to_rgb8(),
    }
}

/// PDQ's luminance of an RGB image.
pub fn luma(rgb: &RgbImage) -> LumaImage {
    LumaImage::from_rgb8(rgb.width() as usize, rgb.height() as usize, rgb.as_raw())
}
