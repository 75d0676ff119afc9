//! `hashgate hash FILE...`: PDQ (or an image_hasher algorithm) of images and videos, or with
//! `--audio` the Chromaprint fingerprint of their soundtracks (an audio list, `fpcalc`'s format).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use crate::hash::image_input::{self, load_rgb};
use crate::hash::imghash::{self, Algorithm};
use crate::hash::letterbox::{self, LetterboxSettings};
use crate::hash::pdq::{self, LumaImage};
use crate::inspect::file::{decode_file, duration_seconds};
use crate::inspect::sampler::Sampler;

/// Output format for videos.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VideoFormat {
    /// `<hash>\t<quality>\t<file>\t<seconds>`, one line per sampled frame.
    Tsv,
    /// ThreatExchange vPDQ: `frameNumber,quality,pdqHex,timestampSec`.
    Vpdq,
}

/// Arguments of `hashgate hash`.
#[derive(Debug, Args)]
pub struct HashArgs {
    /// Images (PNG, JPEG, …) and videos (anything FFmpeg reads).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Output format for videos.
    #[arg(long, value_enum, default_value = "tsv")]
    pub format: VideoFormat,
    /// Frames per second of video time to hash; 0 hashes every frame.
    #[arg(long, default_value_t = 1.0)]
    pub fps: f64,
    /// Hash algorithm: pdq, phash, dhash, mean, gradient, blockhash.
    #[arg(long, default_value = "pdq")]
    pub algorithm: Algorithm,
    /// Hash the picture inside letterbox/pillarbox bars instead of the whole frame.
    #[arg(long)]
    pub unletterbox: bool,
    /// Fingerprint the soundtrack (Chromaprint, as `fpcalc -raw` computes it) instead of the
    /// picture: one `FILE=`/`DURATION=`/`FINGERPRINT=` block per file, an audio list.
    #[arg(long)]
    pub audio: bool,
    /// With `--audio`: also fingerprint the soundtrack played at these speeds (`FROM:TO:STEP`,
    /// e.g. `0.90:1.10:0.01`; pitch moves with speed, as a record at the wrong speed), one
    /// `SPEED=` block each, so re-streams sped up or slowed down still line up.
    #[arg(long, value_name = "FROM:TO:STEP")]
    pub speeds: Option<String>,
    /// Also hash each sampled frame at crops (`crops`): a list that matches re-streams cropped
    /// by up to the largest `--crops` percentage. TSV only; a fifth column names the crop.
    #[arg(long, value_enum)]
    pub augment: Option<Augment>,
    /// Crop sizes for `--augment crops`, in percent of the width and height taken off each
    /// side (centred), or off two sides (towards a corner).
    #[arg(long, value_delimiter = ',', default_value = "5,10,15,20")]
    pub crops: Vec<f64>,
}

/// Extra variants of each frame hashed into a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Augment {
    /// Centred crops and crops towards the top-left and bottom-right corners.
    Crops,
}

/// The crops of `luma` for `--augment crops`: (name, picture) per percentage, centred and
/// towards two corners (the same size: a re-streamer's crop need not be centred).
pub fn crops_of(luma: &LumaImage, percents: &[f64]) -> Vec<(String, LumaImage)> {
    let mut out = Vec::new();
    for &p in percents {
        let fx = (luma.width as f64 * p / 100.0).round() as usize;
        let fy = (luma.height as f64 * p / 100.0).round() as usize;
        if fx == 0 || fy == 0 || 2 * fx >= luma.width || 2 * fy >= luma.height {
            continue;
        }
        let width = luma.width - 2 * fx;
        let height = luma.height - 2 * fy;
        for (name, left, top) in [("c", fx, fy), ("tl", 0, 0), ("br", 2 * fx, 2 * fy)] {
            let area = letterbox::ContentArea {
                left,
                top,
                width,
                height,
            };
            out.push((format!("crop={name}{p}"), letterbox::crop(luma, area)));
        }
    }
    out
}

/// Runs `hash`; returns how many files failed.
pub fn run(args: &HashArgs) -> anyhow::Result<usize> {
    if args.format == VideoFormat::Vpdq && args.algorithm != Algorithm::Pdq {
        anyhow::bail!("--format vpdq needs --algorithm pdq");
    }
    if args.augment.is_some() && args.format != VideoFormat::Tsv {
        anyhow::bail!("--augment needs --format tsv (a fifth column names each variant)");
    }
    if args.crops.iter().any(|p| !(*p > 0.0 && *p < 50.0)) {
        anyhow::bail!("--crops: percentages must be above 0 and below 50");
    }
    let audio = args.audio || args.algorithm == Algorithm::Chromaprint;
    let speeds = match &args.speeds {
        Some(_) if !audio => anyhow::bail!("--speeds needs --audio"),
        Some(grid) => crate::hash::speed::parse_speeds(grid).map_err(anyhow::Error::msg)?,
        None => vec![1.0],
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut failed = 0;
    for file in &args.files {
        let result = if audio {
            hash_audio(file, &speeds, &mut out)
        } else if is_image(file) {
            hash_image(args, file, &mut out)
        } else {
            hash_video(args, file, &mut out)
        };
        if let Err(e) = result {
            // A closed pipe (`| head`) means the reader has what it wanted.
            let broken_pipe = e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            });
            if broken_pipe {
                return Ok(failed);
            }
            failed += 1;
            out.flush().ok();
            eprintln!("hashgate: {e:#}");
        }
    }
    match out.flush() {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(failed),
        other => other.context("writing output").map(|_| failed),
    }
}

/// Writes the audio list blocks of `file`: one per speed (`SPEED=` unless 1).
fn hash_audio(file: &Path, speeds: &[f64], out: &mut impl Write) -> anyhow::Result<()> {
    use crate::hash::chromaprint::{fingerprint, SAMPLE_RATE};
    let (samples, errors) = crate::inspect::audio::decode_file_audio(file)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    if errors > 0 {
        eprintln!(
            "hashgate: {}: {errors} audio packets could not be decoded",
            file.display()
        );
    }
    let original = fingerprint(&samples);
    if original.is_empty() {
        anyhow::bail!(
            "{}: too little audio to fingerprint (under 3 s)",
            file.display()
        );
    }
    let label = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.display().to_string());
    for &speed in speeds {
        let (played, items) = if speed == 1.0 {
            (samples.len(), original.clone())
        } else {
            let played = crate::hash::speed::at_speed(&samples, speed);
            (played.len(), fingerprint(&played))
        };
        if items.is_empty() {
            continue;
        }
        let values: Vec<String> = items.iter().map(u32::to_string).collect();
        writeln!(out, "FILE={label}")?;
        writeln!(
            out,
            "DURATION={:.2}",
            played as f64 / f64::from(SAMPLE_RATE)
        )?;
        if speed != 1.0 {
            writeln!(out, "SPEED={speed}")?;
        }
        writeln!(out, "FINGERPRINT={}\n", values.join(","))?;
    }
    Ok(())
}

fn is_image(path: &Path) -> bool {
    image::ImageFormat::from_path(path).is_ok_and(|f| f.can_read())
}

/// The text and quality of one frame's hash under the chosen algorithm.
fn hash_luma(args: &HashArgs, luma: &LumaImage) -> (String, String) {
    let content = args
        .unletterbox
        .then(|| letterbox::detect(luma, LetterboxSettings::default()))
        .flatten()
        .map(|area| letterbox::crop(luma, area));
    let luma = content.as_ref().unwrap_or(luma);
    match args.algorithm {
        Algorithm::Pdq => {
            let result = pdq::pdq(luma);
            (result.hash().to_string(), result.quality.to_string())
        }
        other => {
            let gray = image::GrayImage::from_fn(luma.width as u32, luma.height as u32, |x, y| {
                let v = luma.pixels[y as usize * luma.width + x as usize];
                image::Luma([v.round().clamp(0.0, 255.0) as u8])
            });
            let hash = imghash::hash(other, &gray)
                .map(|h| h.to_base64())
                .unwrap_or_default();
            (hash, "-".to_owned())
        }
    }
}

fn hash_image(args: &HashArgs, path: &Path, out: &mut impl Write) -> anyhow::Result<()> {
    let rgb = load_rgb(path)?;
    let luma = image_input::luma(&rgb);
    let (hash, quality) = hash_luma(args, &luma);
    writeln!(out, "{hash}\t{quality}\t{}", path.display())?;
    if args.augment == Some(Augment::Crops) {
        for (name, crop) in crops_of(&luma, &args.crops) {
            let (hash, quality) = hash_luma(args, &crop);
            writeln!(out, "{hash}\t{quality}\t{}\t\t{name}", path.display())?;
        }
    }
    Ok(())
}

fn hash_video(args: &HashArgs, path: &Path, out: &mut impl Write) -> anyhow::Result<()> {
    let duration = duration_seconds(path);
    let progress = match duration {
        Some(d) if d > 5.0 && std::io::stderr().is_terminal() => {
            let bar = ProgressBar::new((d * 1000.0) as u64);
            bar.set_style(
                ProgressStyle::with_template("{msg} [{bar:30}] {percent}% {elapsed}<{eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_message(path.display().to_string());
            Some(bar)
        }
        _ => None,
    };
    let mut sampler = Sampler::new(args.fps);
    let mut write_error = None;
    let errors = decode_file(path, |frame| {
        if let Some(bar) = &progress {
            bar.set_position((frame.seconds.max(0.0) * 1000.0) as u64);
        }
        if write_error.is_some()
            || !sampler.take_in_stream_time((frame.seconds * 1000.0).round() as i64)
        {
            return;
        }
        let (hash, quality) = hash_luma(args, &frame.luma);
        if args.augment == Some(Augment::Crops) {
            for (name, crop) in crops_of(&frame.luma, &args.crops) {
                let (hash, quality) = hash_luma(args, &crop);
                let line = format!(
                    "{hash}\t{quality}\t{}\t{:.3}\t{name}",
                    path.display(),
                    frame.seconds
                );
                if let Err(e) = writeln!(out, "{line}") {
                    write_error = Some(e);
                    return;
                }
            }
        }
        let line = match args.format {
            VideoFormat::Vpdq => {
                format!("{},{quality},{hash},{:.3}", frame.number, frame.seconds)
            }
            VideoFormat::Tsv => {
                format!(
                    "{hash}\t{quality}\t{}\t{:.3}",
                    path.display(),
                    frame.seconds
                )
            }
        };
        if let Err(e) = writeln!(out, "{line}") {
            write_error = Some(e);
        }
    })?;
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    if let Some(e) = write_error {
        return Err(e.into());
    }
    if errors > 0 {
        eprintln!(
            "hashgate: {}: {errors} corrupt packets skipped",
            path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_are_centred_and_towards_two_corners() {
        let luma = LumaImage {
            width: 100,
            height: 50,
            pixels: (0..5000).map(|i| i as f32).collect(),
        };
        let crops = crops_of(&luma, &[10.0, 60.0]);
        let names: Vec<&str> = crops.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["crop=c10", "crop=tl10", "crop=br10"],
            "60 % is skipped"
        );
        for (_, c) in &crops {
            assert_eq!((c.width, c.height), (80, 40));
        }
        assert_eq!(crops[0].1.pixels[0], (5 * 100 + 10) as f32);
        assert_eq!(crops[1].1.pixels[0], 0.0);
        assert_eq!(crops[2].1.pixels[0], (10 * 100 + 20) as f32);
    }
}
