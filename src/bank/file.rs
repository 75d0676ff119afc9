//! The bank file: a media bank on disk, documented in `docs/media-banks.md`.
//!
//! Little-endian throughout: the magic `HGBANK\0` and a format version byte; the descriptor
//! kind (which feature pattern built it); the clip and frame counts; each clip's name and
//! source (u16 length, UTF-8); each frame's clip index, time (ms), working size and features
//! (u16 x, u16 y, four u64 descriptor words); and the SHA-256 of everything before it, so a
//! file caught mid-write or damaged is refused whole and the bank in force stays.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::features::DESCRIPTOR_KIND;
use super::image::WORKING_SIDE;
use super::matching::Stored;
use super::{Clip, MediaBank, Reference};

const MAGIC: &[u8; 7] = b"HGBANK\0";
const VERSION: u8 = 1;
/// Most features one reference frame may hold.
pub const MAX_FEATURES_PER_FRAME: usize = 4096;
const FEATURE_BYTES: usize = 2 + 2 + 32;
const FRAME_HEADER_BYTES: usize = 4 + 4 + 2 + 2 + 4;

/// Why a bank file was refused.
#[derive(Debug, thiserror::Error)]
#[error("media bank {path}: {reason}")]
pub struct BankFileError {
    /// The file.
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The bytes of a bank.
pub fn encode(bank: &MediaBank) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + bank.feature_count() * FEATURE_BYTES);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&DESCRIPTOR_KIND.to_le_bytes());
    out.extend_from_slice(&(bank.clips.len() as u32).to_le_bytes());
    out.extend_from_slice(&(bank.frames.len() as u32).to_le_bytes());
    for clip in &bank.clips {
        for text in [&clip.name, &clip.source] {
            // At most u16::MAX bytes, cut at a character boundary (the reader wants UTF-8).
            let mut end = text.len().min(u16::MAX as usize);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            let bytes = &text.as_bytes()[..end];
            out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
            out.extend_from_slice(bytes);
        }
    }
    for f in &bank.frames {
        out.extend_from_slice(&f.clip.to_le_bytes());
        out.extend_from_slice(&f.at_ms.to_le_bytes());
        out.extend_from_slice(&f.width.to_le_bytes());
        out.extend_from_slice(&f.height.to_le_bytes());
        out.extend_from_slice(&(f.features.len() as u32).to_le_bytes());
        for s in &f.features {
            out.extend_from_slice(&s.x.to_le_bytes());
            out.extend_from_slice(&s.y.to_le_bytes());
            for word in s.descriptor {
                out.extend_from_slice(&word.to_le_bytes());
            }
        }
    }
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    out
}

/// A bank from its bytes, or why not (`path` names it in the error).
pub fn decode(bytes: &[u8], path: &str) -> Result<MediaBank, BankFileError> {
    let fail = |reason: String| BankFileError {
        path: path.to_string(),
        reason,
    };
    if bytes.len() < MAGIC.len() + 1 + 12 + 32 || &bytes[..MAGIC.len()] != MAGIC {
        return Err(fail("not a hashgate media bank (no HGBANK header)".into()));
    }
    let (body, digest) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(body).as_slice() != digest {
        return Err(fail(
            "checksum does not match: truncated, damaged or caught mid-write".into(),
        ));
    }
    let mut r = Reader {
        bytes: body,
        at: MAGIC.len(),
    };
    let version = r.u8().map_err(&fail)?;
    if version != VERSION {
        return Err(fail(format!(
            "format version {version}; this build reads {VERSION}"
        )));
    }
    let kind = r.u32().map_err(&fail)?;
    if kind != DESCRIPTOR_KIND {
        return Err(fail(format!(
            "built with descriptor kind {kind}; this build makes kind {DESCRIPTOR_KIND}: rebuild it \
             with `hashgate bank add`"
        )));
    }
    let clip_count = r.u32().map_err(&fail)? as usize;
    let frame_count = r.u32().map_err(&fail)? as usize;
    // Counts are checked against the bytes left before anything is allocated for them.
    if clip_count > r.left() / 4 || frame_count > r.left() / FRAME_HEADER_BYTES {
        return Err(fail(format!(
            "{clip_count} clips and {frame_count} frames do not fit in the file"
        )));
    }
    let mut bank = MediaBank::default();
    for _ in 0..clip_count {
        let name = r.text().map_err(&fail)?;
        let source = r.text().map_err(&fail)?;
        if name.is_empty() {
            return Err(fail("a clip without a name".into()));
        }
        bank.clips.push(Clip { name, source });
    }
    for n in 0..frame_count {
        let frame = read_frame(&mut r, clip_count).map_err(|e| fail(format!("frame {n}: {e}")))?;
        bank.frames.push(frame);
    }
    if r.left() != 0 {
        return Err(fail(format!("{} bytes after the last frame", r.left())));
    }
    Ok(bank)
}

fn read_frame(r: &mut Reader, clip_count: usize) -> Result<Reference, String> {
    let clip = r.u32()?;
    let at_ms = r.u32()?;
    let width = r.u16()?;
    let height = r.u16()?;
    let count = r.u32()? as usize;
    if clip as usize >= clip_count {
        return Err(format!("clip {clip} of {clip_count}"));
    }
    if width == 0 || height == 0 || usize::from(width.max(height)) > WORKING_SIDE {
        return Err(format!("working size {width}x{height}"));
    }
    if count > MAX_FEATURES_PER_FRAME || count > r.left() / FEATURE_BYTES {
        return Err(format!("{count} features"));
    }
    let mut features = Vec::with_capacity(count);
    for _ in 0..count {
        let (x, y) = (r.u16()?, r.u16()?);
        if x >= width || y >= height {
            return Err(format!("a feature at ({x}, {y}) outside {width}x{height}"));
        }
        let mut descriptor = [0u64; 4];
        for word in descriptor.iter_mut() {
            *word = r.u64()?;
        }
        features.push(Stored { x, y, descriptor });
    }
    Ok(Reference {
        clip,
        at_ms,
        width,
        height,
        features,
    })
}

/// Reads a bank file.
pub fn load(path: &Path) -> Result<MediaBank, BankFileError> {
    let bytes = std::fs::read(path).map_err(|e| BankFileError {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    decode(&bytes, &path.display().to_string())
}

/// Writes a bank file whole: to a temporary file beside it, then renamed over it, so a reader
/// never sees half of it.
pub fn save(bank: &MediaBank, path: &Path) -> std::io::Result<()> {
    use std::io::Write;
    static SAVES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    // A name of its own (two writers must not share one), synced before the rename so a
    // power cut leaves the old file or the new one.
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(
        ".{}-{}.partial",
        std::process::id(),
        SAVES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let written = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(&encode(bank))?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let end = self.at + N;
        let slice = self.bytes.get(self.at..end).ok_or("ends early")?;
        self.at = end;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.take()?))
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take()?))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take()?))
    }

    fn text(&mut self) -> Result<String, String> {
        let len = usize::from(self.u16()?);
        let end = self.at + len;
        let slice = self.bytes.get(self.at..end).ok_or("ends early")?;
        self.at = end;
        String::from_utf8(slice.to_vec()).map_err(|_| "a clip name that is not UTF-8".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bank() -> MediaBank {
        MediaBank {
            clips: vec![Clip {
                name: "incident-1".into(),
                source: "evidence/a.mp4".into(),
            }],
            frames: vec![Reference {
                clip: 0,
                at_ms: 500,
                width: 512,
                height: 288,
                features: vec![Stored {
                    x: 10,
                    y: 20,
                    descriptor: [1, 2, 3, u64::MAX],
                }],
            }],
        }
    }

    #[test]
    fn a_bank_reads_back_as_written() {
        let b = bank();
        assert_eq!(decode(&encode(&b), "t").unwrap(), b);
    }

    #[test]
    fn a_name_past_the_length_field_is_cut_at_a_character_and_still_reads() {
        let mut b = bank();
        b.clips[0].name = "é".repeat(40_000); // 80,000 bytes
        let read = decode(&encode(&b), "t").expect("readable");
        assert!(read.clips[0].name.len() <= u16::MAX as usize);
        assert!(read.clips[0].name.chars().all(|c| c == 'é'));
    }

    #[test]
    fn every_truncation_and_any_flipped_byte_is_refused_with_a_reason() {
        let bytes = encode(&bank());
        for cut in 0..bytes.len() {
            let e = decode(&bytes[..cut], "t").unwrap_err();
            assert!(!e.reason.is_empty());
        }
        for i in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x10;
            assert!(decode(&damaged, "t").is_err(), "byte {i}");
        }
    }

    #[test]
    fn a_checksummed_file_that_lies_about_its_counts_is_refused() {
        // A crafted file with a valid checksum: counts that do not fit, a feature outside.
        let reseal = |mut body: Vec<u8>| {
            body.truncate(body.len() - 32);
            let d = Sha256::digest(&body);
            body.extend_from_slice(&d);
            body
        };
        let mut huge = encode(&bank());
        huge[16..20].copy_from_slice(&u32::MAX.to_le_bytes()); // frame count
        let e = decode(&reseal(huge), "t").unwrap_err();
        assert!(e.reason.contains("do not fit"), "{}", e.reason);
        let mut b = bank();
        b.frames[0].features[0].x = 600;
        let e = decode(&encode(&b), "t").unwrap_err();
        assert!(e.reason.contains("outside"), "{}", e.reason);
        let mut b = bank();
        b.frames[0].clip = 3;
        assert!(decode(&encode(&b), "t").is_err());
    }
}
