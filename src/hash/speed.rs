//! Audio played faster or slower, pitch and all (a record at the wrong speed): the commonest
//! edit re-uploaders make to a soundtrack, and one that defeats Chromaprint past about 2 %.
//!
//! Audio lists can therefore carry each clip at several speeds (`hashgate hash --audio
//! --speeds`), the remedy Dan Ellis documents for audfprint: a reference a little off the
//! stream's speed still lines up. This module makes those references from the 11025 Hz mono
//! samples fingerprints are computed from.
//!
//! Resampling is Lanczos interpolation (`LOBES` lobes). It does not filter before speeding up:
//! for speeds up to [`MAX_SPEED`] what folds back lies above 3.7 kHz, and Chromaprint reads
//! only up to 3520 Hz.

use std::f64::consts::PI;

/// Lobes of the Lanczos kernel on each side.
const LOBES: i64 = 4;
/// The slowest speed a reference may be made at.
pub const MIN_SPEED: f64 = 0.5;
/// The fastest speed a reference may be made at (aliasing stays out of Chromaprint's band).
pub const MAX_SPEED: f64 = 1.5;

/// `samples` played at `speed` (1.1: 10 % faster and higher; the result is shorter).
pub fn at_speed(samples: &[i16], speed: f64) -> Vec<i16> {
    if samples.is_empty() || !(MIN_SPEED..=MAX_SPEED).contains(&speed) {
        return Vec::new();
    }
    if speed == 1.0 {
        return samples.to_vec();
    }
    let len = ((samples.len() - 1) as f64 / speed).floor() as usize + 1;
    (0..len)
        .map(|j| interpolate(samples, j as f64 * speed))
        .collect()
}

/// The signal at fractional sample `at`.
fn interpolate(samples: &[i16], at: f64) -> i16 {
    let base = at.floor() as i64;
    let frac = at - base as f64;
    if frac == 0.0 {
        return samples[base as usize];
    }
    let mut sum = 0.0;
    let mut weights = 0.0;
    for k in (base - LOBES + 1)..=(base + LOBES) {
        if k < 0 || k as usize >= samples.len() {
            continue;
        }
        let w = lanczos(at - k as f64);
        sum += w * f64::from(samples[k as usize]);
        weights += w;
    }
    // Normalised so that a constant stays constant near the ends too.
    (sum / weights).round().clamp(-32768.0, 32767.0) as i16
}

fn lanczos(x: f64) -> f64 {
    if x.abs() < 1e-12 {
        return 1.0;
    }
    let px = PI * x;
    let a = LOBES as f64;
    a * px.sin() * (px / a).sin() / (px * px)
}

/// A grid of speeds `from:to:step` (`0.90:1.10:0.01`), always with 1.0; the reason when it is
/// not one.
pub fn parse_speeds(text: &str) -> Result<Vec<f64>, String> {
    let parts: Vec<&str> = text.split(':').collect();
    let [from, to, step] = parts.as_slice() else {
        return Err(format!(
            "speeds {text:?}: expected FROM:TO:STEP, e.g. 0.90:1.10:0.01"
        ));
    };
    let number = |s: &str| {
        s.trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("speeds {text:?}: {s:?} is not a number"))
    };
    let (from, to, step) = (number(from)?, number(to)?, number(step)?);
    if !(MIN_SPEED..=MAX_SPEED).contains(&from) || !(MIN_SPEED..=MAX_SPEED).contains(&to) {
        return Err(format!(
            "speeds {text:?}: speeds must lie within {MIN_SPEED}..{MAX_SPEED}"
        ));
    }
    if from > to || step < 0.001 {
        return Err(format!(
            "speeds {text:?}: FROM must not exceed TO, and STEP must be at least 0.001"
        ));
    }
    let count = ((to - from) / step + 1e-9).floor() as usize + 1;
    if count > 201 {
        return Err(format!("speeds {text:?}: {count} speeds; at most 201"));
    }
    let mut speeds: Vec<f64> = (0..count)
        .map(|k| ((from + k as f64 * step) * 10_000.0).round() / 10_000.0)
        .collect();
    if !speeds.iter().any(|s| (s - 1.0).abs() < 1e-9) {
        speeds.push(1.0);
        speeds.sort_by(f64::total_cmp);
    }
    Ok(speeds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f64, rate: f64, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| (10_000.0 * (2.0 * PI * freq * i as f64 / rate).sin()) as i16)
            .collect()
    }

    /// The strongest frequency among 1 Hz steps in `lo..hi` (a direct DFT).
    fn peak(x: &[i16], rate: f64, lo: u32, hi: u32) -> u32 {
        (lo..hi)
            .max_by_key(|&f| {
                let (mut re, mut im) = (0.0, 0.0);
                for (i, &v) in x.iter().enumerate() {
                    let t = 2.0 * PI * f64::from(f) * i as f64 / rate;
                    re += f64::from(v) * t.cos();
                    im += f64::from(v) * t.sin();
                }
                (re * re + im * im) as u64
            })
            .unwrap_or(0)
    }

    #[test]
    fn a_faster_record_is_shorter_and_higher() {
        let x = sine(440.0, 11025.0, 11025);
        let fast = at_speed(&x, 1.1);
        assert_eq!(fast.len(), 10022);
        assert_eq!(peak(&fast[..4000], 11025.0, 430, 500), 484);
        let slow = at_speed(&x, 0.9);
        assert_eq!(slow.len(), 12249);
        assert_eq!(peak(&slow[..4000], 11025.0, 380, 450), 396);
        // Not attenuated in Chromaprint's band.
        let top = sine(3000.0, 11025.0, 11025);
        let rms = |v: &[i16]| {
            (v.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
        };
        let ratio = rms(&at_speed(&top, 1.07)) / rms(&top);
        assert!((0.97..1.03).contains(&ratio), "{ratio}");
    }

    #[test]
    fn speed_one_and_out_of_range_speeds() {
        let x = sine(100.0, 11025.0, 100);
        assert_eq!(at_speed(&x, 1.0), x);
        assert!(at_speed(&x, 3.0).is_empty());
        assert!(at_speed(&[], 1.1).is_empty());
    }

    #[test]
    fn speed_grids_parse_and_always_hold_one() {
        let grid = parse_speeds("0.90:1.10:0.01").expect("grid");
        assert_eq!(grid.len(), 21);
        assert_eq!(grid[0], 0.9);
        assert_eq!(grid[20], 1.1);
        assert!(grid.contains(&1.0));
        assert_eq!(
            parse_speeds("0.95:1.05:0.04").expect("grid"),
            vec![0.95, 0.99, 1.0, 1.03]
        );
        assert_eq!(parse_speeds("1:1:0.01").expect("grid"), vec![1.0]);
        for bad in [
            "0.9:1.1",
            "a:1:0.1",
            "0.9:1.1:0",
            "1.1:0.9:0.01",
            "0.1:1:0.1",
            "0.5:1.5:0.001",
        ] {
            assert!(parse_speeds(bad).is_err(), "{bad}");
        }
    }
}
