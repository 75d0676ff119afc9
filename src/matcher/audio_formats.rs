//! Audio list files: `fpcalc`'s output, as the tool writes it and as `hashgate hash --audio`
//! writes it.
//!
//! Blocks of `KEY=value` lines, one clip per `FINGERPRINT=` line; `FILE=` (the clip's name in
//! reports), `DURATION=` and `SPEED=` (the clip played at another speed, written by `hashgate
//! hash --audio --speeds`) apply to the next fingerprint. Blocks of one `FILE=` that follow each
//! other at rising speeds are one clip: they take the first block's source. The fingerprint is
//! either the compressed base64 form (`fpcalc`'s default) or the comma-separated
//! sub-fingerprints of `fpcalc -raw`. Blank lines and `#` comments are skipped; anything else is an error naming the
//! line, and the list is refused whole.

use std::path::Path;

use super::audio::AudioClip;
use super::formats::ListError;
use crate::hash::chromaprint::{decode_compressed, parse_raw};

/// Reads an audio list's text; `file` names it in errors and sources.
pub fn parse_audio_list(file: &Path, text: &str) -> Result<Vec<AudioClip>, ListError> {
    let name = file.display().to_string();
    let err = |line: usize, reason: String| ListError {
        file: name.clone(),
        line: line as u32,
        reason,
    };
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut clips: Vec<AudioClip> = Vec::new();
    let mut label: Option<String> = None;
    let mut speed: Option<f64> = None;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(err(
                n,
                "expected KEY=value (FILE=, DURATION=, FINGERPRINT=)".into(),
            ));
        };
        match key.trim() {
            "FILE" | "LABEL" => {
                let path = value.trim();
                let base = Path::new(path)
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_else(|| path.to_owned());
                label = Some(base);
                // A SPEED= belongs to its own block, never to the next file's.
                speed = None;
            }
            "SPEED" => {
                let value = value.trim();
                let parsed = value.parse::<f64>().ok().filter(|s| {
                    (crate::hash::speed::MIN_SPEED..=crate::hash::speed::MAX_SPEED).contains(s)
                });
                speed = Some(parsed.ok_or_else(|| {
                    err(
                        n,
                        format!(
                            "SPEED is not a speed within {}..{}: {value:?}",
                            crate::hash::speed::MIN_SPEED,
                            crate::hash::speed::MAX_SPEED
                        ),
                    )
                })?);
            }
            "DURATION" => {
                value
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|d| d.is_finite() && *d >= 0.0)
                    .ok_or_else(|| {
                        err(n, format!("DURATION is not a number: {:?}", value.trim()))
                    })?;
            }
            "FINGERPRINT" => {
                let value = value.trim();
                let items = if value.contains(',') || value.parse::<i64>().is_ok() {
                    parse_raw(value)
                } else {
                    decode_compressed(value)
                }
                .map_err(|e| err(n, format!("fingerprint: {e}")))?;
                let label = label.take().unwrap_or_else(|| stem.clone());
                let speed = speed.take().unwrap_or(1.0);
                // One clip's blocks at several speeds follow each other, slowest first (as
                // `hash --speeds` writes them): a block of the same name at a speed no faster
                // than the one before starts another clip.
                let source = match clips.last() {
                    Some(last) if last.label == label && speed > last.speed => last.source.clone(),
                    _ => format!("{name}:{n}"),
                };
                clips.push(AudioClip {
                    label,
                    source,
                    speed,
                    items,
                });
            }
            other => {
                return Err(err(
                    n,
                    format!("unknown key {other:?} (FILE=, DURATION=, SPEED=, FINGERPRINT=)"),
                ))
            }
        }
    }
    Ok(clips)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::chromaprint::encode_compressed;

    #[test]
    fn reads_fpcalc_output_in_both_forms() {
        let compressed = encode_compressed(&[1, 2, 3, 0xDEAD_BEEF]);
        let text = format!(
            "FILE=/clips/one.mp4\nDURATION=16\nFINGERPRINT={compressed}\n\n# raw\nFILE=two.wav\nDURATION=1\nFINGERPRINT=1,-2,3\nFINGERPRINT=5\n"
        );
        let clips = parse_audio_list(Path::new("known.txt"), &text).expect("parsed");
        assert_eq!(clips.len(), 3);
        assert_eq!(clips[0].label, "one.mp4");
        assert_eq!(clips[0].items, vec![1, 2, 3, 0xDEAD_BEEF]);
        assert_eq!(clips[0].source, "known.txt:3");
        assert_eq!(clips[1].label, "two.wav");
        assert_eq!(clips[1].items, vec![1, (-2i32) as u32, 3]);
        assert_eq!(clips[2].label, "known", "no FILE=: the list's name");
        assert!(clips.iter().all(|c| c.speed == 1.0));
    }

    #[test]
    fn a_clip_at_other_speeds_keeps_one_source() {
        let text = "FILE=a.mp4\nFINGERPRINT=1,2\nFILE=a.mp4\nSPEED=1.05\nFINGERPRINT=3,4\n\
                    FILE=b.mp4\nSPEED=0.95\nFINGERPRINT=5\nFILE=b.mp4\nFINGERPRINT=6\n\
                    FILE=b.mp4\nFINGERPRINT=7\nSPEED=1.1\nFILE=c.mp4\nFINGERPRINT=8\n";
        let clips = parse_audio_list(Path::new("l.txt"), text).expect("parsed");
        let seen: Vec<(&str, f64)> = clips.iter().map(|c| (c.source.as_str(), c.speed)).collect();
        assert_eq!(
            seen,
            vec![
                ("l.txt:2", 1.0),
                ("l.txt:2", 1.05),
                ("l.txt:8", 0.95),
                ("l.txt:8", 1.0),
                ("l.txt:12", 1.0), // b.mp4 again, no faster: another clip of that name
                ("l.txt:15", 1.0), // a SPEED= before FILE= is not carried to the next file
            ]
        );
        assert!((clips[1].clip_seconds(10) - 10.0 * 1.05 * 1365.0 / 11025.0).abs() < 1e-9);
    }

    #[test]
    fn malformed_lines_name_their_line() {
        for (text, line, says) in [
            ("FILE=a\nnonsense\n", 2, "KEY=value"),
            ("FINGERPRINT=1,2,x\n", 1, "sub-fingerprint"),
            ("\nFINGERPRINT=AQ!!\n", 2, "base64"),
            ("DURATION=long\n", 1, "DURATION"),
            ("HASH=1\n", 1, "unknown key"),
            ("SPEED=fast\n", 1, "SPEED"),
            ("SPEED=3\n", 1, "SPEED"),
            ("FINGERPRINT=AQAAAA\n", 1, "empty"),
        ] {
            let e = parse_audio_list(Path::new("l.txt"), text).expect_err(text);
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.reason.contains(says), "{text:?}: {e}");
        }
    }
}
