//! Evidence of cuts: the frames that decided, as JPEG (or for an audio cut the audio, as WAV),
//! and the cut event as a JSON sidecar, one
//! folder per cut under `[events] evidence_dir`, pruned by count and age. Written on a thread of
//! its own after the cut, never before it.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use image::GrayImage;

use crate::hash::pdq::LumaImage;

/// Where and how long evidence is kept.
#[derive(Debug, Clone)]
pub struct EvidenceSettings {
    /// The folder cuts are written under.
    pub dir: PathBuf,
    /// Most cut folders kept (oldest removed first).
    pub keep: usize,
    /// Cut folders older than this are removed.
    pub max_age: Duration,
}

/// Writes one cut's evidence and prunes old folders, on a new thread.
pub fn save(
    settings: EvidenceSettings,
    name: String,
    event_json: String,
    frames: Vec<(i64, LumaImage)>,
    audio: Option<Vec<i16>>,
) {
    let spawned = std::thread::Builder::new()
        .name("evidence".into())
        .spawn(move || {
            if let Err(e) = write(&settings, &name, &event_json, &frames, audio.as_deref()) {
                tracing::error!(
                    "cannot write evidence under {}: {e}",
                    settings.dir.display()
                );
            }
            prune(&settings);
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the evidence writer: {e}");
    }
}

fn write(
    settings: &EvidenceSettings,
    name: &str,
    event_json: &str,
    frames: &[(i64, LumaImage)],
    audio: Option<&[i16]>,
) -> std::io::Result<()> {
    let folder = settings.dir.join(name);
    std::fs::create_dir_all(&folder)?;
    if let Some(pcm) = audio {
        std::fs::write(folder.join("audio.wav"), wav(pcm))?;
    }
    for (stream_ms, luma) in frames {
        let gray = GrayImage::from_fn(luma.width as u32, luma.height as u32, |x, y| {
            let v = luma.pixels[y as usize * luma.width + x as usize];
            image::Luma([v.round().clamp(0.0, 255.0) as u8])
        });
        let file = std::fs::File::create(folder.join(format!("frame-{stream_ms:010}ms.jpg")))?;
        image::codecs::jpeg::JpegEncoder::new_with_quality(std::io::BufWriter::new(file), 90)
            .encode_image(&gray)
            .map_err(std::io::Error::other)?;
    }
    std::fs::write(folder.join("cut.json"), format!("{event_json}\n"))
}

/// A WAV file of 11025 Hz mono 16-bit audio.
fn wav(pcm: &[i16]) -> Vec<u8> {
    let rate = crate::hash::chromaprint::SAMPLE_RATE;
    let data_len = (pcm.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in pcm {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

fn prune(settings: &EvidenceSettings) {
    let Ok(entries) = std::fs::read_dir(&settings.dir) else {
        return;
    };
    let mut folders: Vec<(SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().join("cut.json").exists())
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    folders.sort();
    let now = SystemTime::now();
    let excess = folders.len().saturating_sub(settings.keep);
    for (i, (modified, path)) in folders.iter().enumerate() {
        let too_old = now.duration_since(*modified).unwrap_or_default() > settings.max_age;
        if i < excess || too_old {
            if let Err(e) = std::fs::remove_dir_all(path) {
                tracing::warn!("cannot prune evidence {}: {e}", path.display());
            }
        }
    }
}

/// A folder name for a cut: UTC time, then the (possibly redacted) stream name.
pub fn folder_name(stream: &str) -> String {
    let time = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    let safe: String = stream
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    format!("{}-{safe}", time.replace(':', ""))
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_jpegs_and_sidecar_and_prunes_by_count() {
        let dir = tempfile::tempdir().expect("tmp");
        let settings = EvidenceSettings {
            dir: dir.path().to_owned(),
            keep: 2,
            max_age: Duration::from_secs(3600),
        };
        let luma = LumaImage {
            width: 32,
            height: 16,
            pixels: (0..512).map(|i| (i % 256) as f32).collect(),
        };
        for i in 0..3 {
            write(
                &settings,
                &format!("cut-{i}"),
                "{\"event\":\"cut\"}",
                &[(1500, luma.clone())],
                None,
            )
            .expect("write");
            std::thread::sleep(Duration::from_millis(20));
        }
        prune(&settings);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, vec!["cut-1", "cut-2"]);
        let jpeg = dir.path().join("cut-2/frame-0000001500ms.jpg");
        let decoded = image::open(&jpeg).expect("a JPEG");
        assert_eq!((decoded.width(), decoded.height()), (32, 16));
        assert!(dir.path().join("cut-2/cut.json").is_file());
        assert!(folder_name("a/b:c").ends_with("-a_b_c"));
    }

    #[test]
    fn audio_evidence_is_a_wav_file() {
        let bytes = wav(&[0, 1000, -1000]);
        assert_eq!(&bytes[..4], b"RIFF");
        assert_eq!(&bytes[8..16], b"WAVEfmt ");
        assert_eq!(
            u32::from_le_bytes(bytes[24..28].try_into().expect("4")),
            11025
        );
        assert_eq!(u32::from_le_bytes(bytes[40..44].try_into().expect("4")), 6);
        assert_eq!(bytes.len(), 50);
    }
}
