//! The image_hasher family (the maintained fork of img_hash), for hash lists that are not PDQ.
//!
//! Names as lists use them: `phash` (DCT-preprocessed mean hash), `dhash` (difference of
//! neighbours along rows, image_hasher's `Gradient`), `mean` (average hash), `gradient` (rows and
//! columns, image_hasher's `DoubleGradient`), `blockhash`. All 8×8 (64 bits), the common size of
//! published lists; hashes are written in image_hasher's base64.

use std::fmt;
use std::str::FromStr;

use image::GrayImage;
use image_hasher::{HashAlg, HasherConfig, ImageHash};
use serde::Deserialize;

/// A hash algorithm a list can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    /// PDQ, 256 bits.
    #[default]
    Pdq,
    /// Perceptual hash: DCT then mean.
    Phash,
    /// Difference hash.
    Dhash,
    /// Average hash.
    Mean,
    /// Double-gradient hash.
    Gradient,
    /// Blockhash.io.
    Blockhash,
    /// Chromaprint audio fingerprints (audio lists only; see [`super::chromaprint`]).
    Chromaprint,
}

impl Algorithm {
    /// All image algorithms, PDQ first.
    pub const ALL: [Algorithm; 6] = [
        Algorithm::Pdq,
        Algorithm::Phash,
        Algorithm::Dhash,
        Algorithm::Mean,
        Algorithm::Gradient,
        Algorithm::Blockhash,
    ];

    /// Lower-case name, as in config files.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Pdq => "pdq",
            Algorithm::Phash => "phash",
            Algorithm::Dhash => "dhash",
            Algorithm::Mean => "mean",
            Algorithm::Gradient => "gradient",
            Algorithm::Blockhash => "blockhash",
            Algorithm::Chromaprint => "chromaprint",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<Algorithm, String> {
        Algorithm::ALL
            .into_iter()
            .chain([Algorithm::Chromaprint])
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown algorithm {s:?} (pdq, phash, dhash, mean, gradient, blockhash, \
                     chromaprint)"
                )
            })
    }
}

/// Hashes a grey image with an image_hasher algorithm; `None` for PDQ (see [`super::pdq`]).
pub fn hash(algorithm: Algorithm, image: &GrayImage) -> Option<ImageHash> {
    let config = HasherConfig::new().hash_size(8, 8);
    let config = match algorithm {
        Algorithm::Pdq | Algorithm::Chromaprint => return None,
        Algorithm::Phash => config.hash_alg(HashAlg::Mean).preproc_dct(),
        Algorithm::Dhash => config.hash_alg(HashAlg::Gradient),
        Algorithm::Mean => config.hash_alg(HashAlg::Mean),
        Algorithm::Gradient => config.hash_alg(HashAlg::DoubleGradient),
        Algorithm::Blockhash => config.hash_alg(HashAlg::Blockhash),
    };
    Some(config.to_hasher().hash_image(image))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(shift: u32) -> GrayImage {
        GrayImage::from_fn(96, 64, |x, y| {
            image::Luma([((x * 3 + y * 5 + shift) % 256) as u8])
        })
    }

    #[test]
    fn every_algorithm_hashes_and_is_stable() {
        for algorithm in Algorithm::ALL.into_iter().skip(1) {
            let a = hash(algorithm, &pattern(0)).expect("image_hasher algorithm");
            let b = hash(algorithm, &pattern(0)).expect("image_hasher algorithm");
            assert_eq!(a, b, "{algorithm}");
            let text = a.to_base64();
            assert_eq!(
                ImageHash::<Box<[u8]>>::from_base64(&text).expect("base64"),
                a
            );
        }
        assert!(hash(Algorithm::Pdq, &pattern(0)).is_none());
        assert_eq!("dhash".parse::<Algorithm>(), Ok(Algorithm::Dhash));
        assert!("sha1".parse::<Algorithm>().is_err());
    }
}
