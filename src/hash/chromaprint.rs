//! Audio fingerprints compatible with Chromaprint (AcoustID's `fpcalc`, its default algorithm):
//! mono audio at 11025 Hz in, one 32-bit sub-fingerprint out every 1365 samples (~0.124 s).
//!
//! The computation is the `rusty-chromaprint` crate (measured to agree bit for bit with
//! `fpcalc -raw` on the same samples: `tests/audio.rs`). This module adds what a live stream
//! needs around it: items handed out as they are made, memory that does not grow with the
//! stream's length, and the text forms fingerprints travel in (`fpcalc`'s compressed base64 and
//! `-raw` comma lists).

use rusty_chromaprint::{Configuration, Fingerprinter};

/// The sample rate fingerprints are computed at.
pub const SAMPLE_RATE: u32 = 11025;
/// Samples between two sub-fingerprints (a third of the 4096-sample frame).
pub const ITEM_SAMPLES: u32 = 1365;
/// Seconds between two sub-fingerprints.
pub const ITEM_SECONDS: f64 = ITEM_SAMPLES as f64 / SAMPLE_RATE as f64;
/// Seconds of audio one sub-fingerprint depends on: its 4096-sample frame, and the filters
/// that read 4 frames of chroma and up to 16 rows of the chroma image from it (28666 samples).
/// A window of `n` items rests on `(n - 1) * ITEM_SECONDS + REACH_SECONDS` of audio.
pub const REACH_SECONDS: f64 = 28666.0 / SAMPLE_RATE as f64;
/// The algorithm id `fpcalc` writes in compressed fingerprints (its default, "TEST2").
pub const ALGORITHM_ID: u8 = 1;

/// Sub-fingerprints of a long-running stream, handed out as they are made.
///
/// The crate keeps every item it made; to keep memory flat the fingerprinter is replaced every
/// [`STREAM_ROTATE_ITEMS`] items by a fresh one that was started [`ROTATE_OVERLAP_ITEMS`] items
/// earlier, on a sample where an item of the old one starts: its items are then the old one's,
/// one for one, and the hand-over leaves no gap.
pub struct StreamFingerprinter {
    current: Printer,
    /// Samples fed to `current`.
    fed: u64,
    /// Items of `current` handed out.
    taken: usize,
    /// The replacement, and the item of `current` its first item is.
    next: Option<(Printer, usize)>,
}

/// Items a fingerprinter makes before it is replaced (about 17 minutes).
pub const STREAM_ROTATE_ITEMS: usize = 8192;
/// Items the replacement runs beside the old one before taking over: more than the algorithm's
/// warm-up (its filters span about 2.6 s of audio).
pub const ROTATE_OVERLAP_ITEMS: usize = 64;

/// The crate's fingerprinter, movable between threads.
///
/// The crate erases its processing chain into a `Box<dyn AudioConsumer>` without a `Send`
/// bound, so the compiler cannot see that the chain (FFT plans from rustfft, which are `Send +
/// Sync`, and plain vectors) may move to another thread.
struct Printer(Fingerprinter);

// SAFETY: every stage behind the crate's trait object owns its data (vectors, rustfft's
// `Arc<dyn Fft>`, itself `Send + Sync`); nothing is shared with another thread or tied to the
// thread that made it. A `Printer` is used by one thread at a time (it is not `Sync`).
unsafe impl Send for Printer {}

impl Printer {
    /// Feeds samples and processes them at once. The crate buffers 32768 samples (3 s) before
    /// it processes any; its `finish` pushes the buffer through, and at 11025 Hz (no resampler,
    /// and the FFT stage's flush does nothing) it ends nothing, so it is called every time: an
    /// item comes out as soon as its audio is in, not up to 3 s later.
    fn consume(&mut self, samples: &[i16]) {
        self.0.consume(samples);
        self.0.finish();
    }

    fn fingerprint(&self) -> &[u32] {
        self.0.fingerprint()
    }
}

fn started() -> Printer {
    let mut printer = Fingerprinter::new(&Configuration::preset_test2());
    // 11025 Hz mono: the crate's own resampler is not used (FFmpeg resamples before).
    let _ = printer.start(SAMPLE_RATE, 1);
    Printer(printer)
}

impl Default for StreamFingerprinter {
    fn default() -> Self {
        StreamFingerprinter {
            current: started(),
            fed: 0,
            taken: 0,
            next: None,
        }
    }
}

impl StreamFingerprinter {
    /// Feeds mono samples at [`SAMPLE_RATE`]; calls `item` with each new sub-fingerprint.
    pub fn consume(&mut self, samples: &[i16], mut item: impl FnMut(u32)) {
        // In pieces of a few items, so a rotation never jumps past its overlap in one call.
        for piece in samples.chunks(16 * ITEM_SAMPLES as usize) {
            self.consume_piece(piece, &mut item);
        }
    }

    fn consume_piece(&mut self, samples: &[i16], item: &mut impl FnMut(u32)) {
        let chunk_start = self.fed;
        self.current.consume(samples);
        self.fed += samples.len() as u64;
        if let Some((next, first_item)) = self.next.as_mut() {
            let at = *first_item as u64 * u64::from(ITEM_SAMPLES);
            if at < self.fed {
                let from = at.saturating_sub(chunk_start) as usize;
                next.consume(&samples[from.min(samples.len())..]);
            }
        }
        let made = self.current.fingerprint();
        for &v in &made[self.taken.min(made.len())..] {
            item(v);
        }
        self.taken = made.len();
        if self.next.is_none() && self.taken >= STREAM_ROTATE_ITEMS - ROTATE_OVERLAP_ITEMS {
            let first_item = self.fed.div_ceil(u64::from(ITEM_SAMPLES)) as usize;
            self.next = Some((started(), first_item));
        }
        if self.taken >= STREAM_ROTATE_ITEMS {
            self.hand_over();
        }
    }

    /// The replacement takes over; the items it made are ones already handed out.
    fn hand_over(&mut self) {
        let Some((next, first_item)) = self.next.take() else {
            return;
        };
        let made = next.fingerprint().len();
        self.current = next;
        self.fed -= first_item as u64 * u64::from(ITEM_SAMPLES);
        self.taken = made.min(self.taken.saturating_sub(first_item));
    }

    /// Items made by the fingerprinter now in use (bounded by [`STREAM_ROTATE_ITEMS`]).
    pub fn items_held(&self) -> usize {
        self.current.fingerprint().len()
            + self.next.as_ref().map_or(0, |(n, _)| n.fingerprint().len())
    }
}

/// Fingerprint of a whole clip (mono, [`SAMPLE_RATE`]).
pub fn fingerprint(samples: &[i16]) -> Vec<u32> {
    let Printer(mut printer) = started();
    printer.consume(samples);
    printer.finish();
    printer.fingerprint().to_vec()
}

/// Why a fingerprint's text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FingerprintError {
    /// Not base64url.
    #[error("not base64: byte {0:?}")]
    Base64(char),
    /// Shorter than its header says.
    #[error("compressed fingerprint truncated")]
    Truncated,
    /// An algorithm this build does not compute.
    #[error("algorithm {0} (hashgate computes algorithm 1, fpcalc's default)")]
    Algorithm(u8),
    /// A `-raw` value that is not a 32-bit integer.
    #[error("not a 32-bit sub-fingerprint: {0:?}")]
    Raw(String),
    /// Nothing in it.
    #[error("empty fingerprint")]
    Empty,
}

/// Reads `fpcalc -raw` output's value list (`1234,-5678,...`; signed or unsigned).
pub fn parse_raw(text: &str) -> Result<Vec<u32>, FingerprintError> {
    let items: Result<Vec<u32>, _> = text
        .split(',')
        .map(str::trim)
        .map(|v| {
            v.parse::<u32>()
                .or_else(|_| v.parse::<i32>().map(|s| s as u32))
                .map_err(|_| FingerprintError::Raw(v.chars().take(20).collect()))
        })
        .collect();
    let items = items?;
    if items.is_empty() {
        return Err(FingerprintError::Empty);
    }
    Ok(items)
}

fn base64url_decode(text: &str) -> Result<Vec<u8>, FingerprintError> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0u32;
    for c in text.trim_end_matches('=').chars() {
        let v = match c {
            'A'..='Z' => c as u32 - 'A' as u32,
            'a'..='z' => c as u32 - 'a' as u32 + 26,
            '0'..='9' => c as u32 - '0' as u32 + 52,
            '-' | '+' => 62,
            '_' | '/' => 63,
            other => return Err(FingerprintError::Base64(other)),
        };
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

/// Reads `n` values of `width` bits packed least significant bit first.
fn unpack(bytes: &[u8], n: usize, width: u32) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(n);
    let mut bit = 0usize;
    for _ in 0..n {
        let mut v = 0u8;
        for k in 0..width as usize {
            let b = *bytes.get((bit + k) / 8)?;
            v |= ((b >> ((bit + k) % 8)) & 1) << k;
        }
        out.push(v);
        bit += width as usize;
    }
    Some(out)
}

/// Reads `fpcalc`'s compressed fingerprint (`FINGERPRINT=AQAA...`).
///
/// The format, as Chromaprint publishes it: a byte for the algorithm, 24 bits of item count,
/// then each item XORed with the one before, written as the gaps between its set bits (1-based,
/// 0 ends an item) in 3-bit values; a gap of 7 or more is 7 there, and the rest follows in a
/// stream of 5-bit values after the 3-bit ones.
pub fn decode_compressed(text: &str) -> Result<Vec<u32>, FingerprintError> {
    let bytes = base64url_decode(text.trim())?;
    if bytes.len() < 4 {
        return Err(FingerprintError::Truncated);
    }
    if bytes[0] != ALGORITHM_ID {
        return Err(FingerprintError::Algorithm(bytes[0]));
    }
    let count =
        (usize::from(bytes[1]) << 16) | (usize::from(bytes[2]) << 8) | usize::from(bytes[3]);
    if count == 0 {
        return Err(FingerprintError::Empty);
    }
    let body = &bytes[4..];
    // The 3-bit stream: read values until `count` items have ended (each ends with a 0).
    let mut normal = Vec::new();
    let mut ended = 0usize;
    let mut bit = 0usize;
    while ended < count {
        if (bit + 3).div_ceil(8) > body.len() {
            return Err(FingerprintError::Truncated);
        }
        let mut v = 0u8;
        for k in 0..3 {
            let b = body[(bit + k) / 8];
            v |= ((b >> ((bit + k) % 8)) & 1) << k;
        }
        if v == 0 {
            ended += 1;
        }
        normal.push(v);
        bit += 3;
    }
    let exceptional_count = normal.iter().filter(|&&v| v == 7).count();
    let exceptional_at = bit.div_ceil(8);
    let exceptional = unpack(
        &body[exceptional_at.min(body.len())..],
        exceptional_count,
        5,
    )
    .ok_or(FingerprintError::Truncated)?;
    let mut exceptional = exceptional.into_iter();
    let mut items = Vec::with_capacity(count);
    let mut value = 0u32;
    let mut last_bit = 0u32;
    for v in normal {
        if v == 0 {
            let item = match items.last() {
                Some(&prev) => value ^ prev,
                None => value,
            };
            items.push(item);
            value = 0;
            last_bit = 0;
            continue;
        }
        let mut gap = u32::from(v);
        if v == 7 {
            gap += u32::from(exceptional.next().ok_or(FingerprintError::Truncated)?);
        }
        last_bit += gap;
        if last_bit == 0 || last_bit > 32 {
            return Err(FingerprintError::Truncated);
        }
        value |= 1 << (last_bit - 1);
    }
    Ok(items)
}

/// Writes a fingerprint in `fpcalc`'s compressed form (the inverse of [`decode_compressed`]).
pub fn encode_compressed(items: &[u32]) -> String {
    let mut normal: Vec<u8> = Vec::new();
    let mut exceptional: Vec<u8> = Vec::new();
    let mut prev = 0u32;
    for (i, &item) in items.iter().enumerate() {
        let mut x = if i == 0 { item } else { item ^ prev };
        prev = item;
        let mut last = 0u32;
        let mut bit = 1u32;
        while x != 0 {
            if x & 1 != 0 {
                let gap = bit - last;
                if gap >= 7 {
                    normal.push(7);
                    exceptional.push((gap - 7) as u8);
                } else {
                    normal.push(gap as u8);
                }
                last = bit;
            }
            x >>= 1;
            bit += 1;
        }
        normal.push(0);
    }
    let mut bytes = vec![
        ALGORITHM_ID,
        (items.len() >> 16) as u8,
        (items.len() >> 8) as u8,
        items.len() as u8,
    ];
    pack(&mut bytes, &normal, 3);
    pack(&mut bytes, &exceptional, 5);
    base64url_encode(&bytes)
}

fn pack(out: &mut Vec<u8>, values: &[u8], width: u32) {
    let start = out.len();
    let total_bits = values.len() * width as usize;
    out.resize(start + total_bits.div_ceil(8), 0);
    let mut bit = 0usize;
    for &v in values {
        for k in 0..width as usize {
            if (v >> k) & 1 != 0 {
                out[start + (bit + k) / 8] |= 1 << ((bit + k) % 8);
            }
        }
        bit += width as usize;
    }
}

fn base64url_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.len();
        let v = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for k in 0..=n {
            out.push(ALPHABET[((v >> (18 - 6 * k)) & 63) as usize] as char);
        }
    }
    out
}

/// Bit error rate between two equally long runs of sub-fingerprints.
pub fn bit_error_rate(a: &[u32], b: &[u32]) -> f64 {
    let n = a.len().min(b.len());
    if n == 0 {
        return 1.0;
    }
    let errors: u32 = a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum();
    f64::from(errors) / (32.0 * n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(seconds: f64) -> Vec<i16> {
        (0..(seconds * f64::from(SAMPLE_RATE)) as usize)
            .map(|i| {
                let t = i as f64 / f64::from(SAMPLE_RATE);
                let f = 220.0 + 200.0 * (t * 0.7).sin();
                (8000.0 * (2.0 * std::f64::consts::PI * f * t).sin()
                    + 3000.0 * (2.0 * std::f64::consts::PI * 3.0 * f * t).sin())
                    as i16
            })
            .collect()
    }

    #[test]
    fn compressed_form_round_trips() {
        let items = vec![0, 1, 0xFFFF_FFFF, 0x8000_0001, 0x1234_5678, 0x1234_5678, 7];
        let text = encode_compressed(&items);
        assert_eq!(decode_compressed(&text), Ok(items));
    }

    #[test]
    fn bad_compressed_text_is_refused() {
        assert_eq!(
            decode_compressed("AQ!A"),
            Err(FingerprintError::Base64('!'))
        );
        assert_eq!(decode_compressed("AQ"), Err(FingerprintError::Truncated));
        let text = encode_compressed(&[0x1234_5678; 10]);
        assert_eq!(
            decode_compressed(&text[..text.len() - 3]),
            Err(FingerprintError::Truncated)
        );
        assert!(matches!(
            decode_compressed(&encode_compressed(&[1]).replacen('A', "B", 1)),
            Err(FingerprintError::Algorithm(_))
        ));
    }

    #[test]
    fn raw_lists_read_signed_and_unsigned() {
        assert_eq!(
            parse_raw("1,-1, 4294967295"),
            Ok(vec![1, u32::MAX, u32::MAX])
        );
        assert!(matches!(parse_raw("1,x"), Err(FingerprintError::Raw(_))));
    }

    #[test]
    fn a_stream_gets_the_items_of_the_whole_clip_across_rotations() {
        let audio = tone(STREAM_ROTATE_ITEMS as f64 * ITEM_SECONDS + 20.0);
        let whole = fingerprint(&audio);
        let mut streamed = Vec::new();
        let mut s = StreamFingerprinter::default();
        for chunk in audio.chunks(1024) {
            s.consume(chunk, |v| streamed.push(v));
        }
        assert!(streamed.len() > STREAM_ROTATE_ITEMS);
        // Up to the hand-over the items are the clip's; after it the replacement's, which
        // started on the same samples: the same items, one for one.
        let n = streamed.len().min(whole.len());
        let ber = bit_error_rate(&streamed[..n], &whole[..n]);
        assert!(
            ber < 0.01,
            "streamed items drift from the clip's: BER {ber}"
        );
        assert!(s.items_held() < STREAM_ROTATE_ITEMS, "rotated");
    }
}
