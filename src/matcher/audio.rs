//! The audio index: where a window of a stream's sub-fingerprints lines up with a reference clip
//! under a bit error rate.
//!
//! Candidate alignments come from an inverted index, as AcoustID's server finds them: every
//! sub-fingerprint of every clip is posted under two 16-bit keys (its low and its high half), and
//! each item of the stream's window looks its keys up; a posting gives a clip and an offset, so
//! an alignment. An alignment hit at least twice ([`MIN_VOTES`]) is then checked over the whole
//! window: the bit error rate (BER) of the aligned items decides. The halves rather than the whole value: under noise
//! or music mixed in, whole 32-bit items of the clip rarely survive, halves often do (the low
//! half most: the first classifiers are the most robust).
//!
//! Exactness: the index reports the same BER as a brute-force alignment for every alignment it
//! finds, and finds every alignment under the threshold where at least two item keys of the
//! window match the clip's (`brute_force` is the reference; the property test and
//! `bench/audio.sh` compare them). Keys posted more than [`MAX_POSTINGS`] times (silence,
//! constant tones) are not looked up: they say nothing about which clip plays.

use std::sync::Arc;

use crate::hash::chromaprint::bit_error_rate;

/// A key posted more often than this is not looked up.
pub const MAX_POSTINGS: usize = 4096;
/// Key hits an alignment needs before it is checked.
pub const MIN_VOTES: usize = 2;

/// One reference clip.
#[derive(Debug, Clone)]
pub struct AudioClip {
    /// The clip's name in reports.
    pub label: String,
    /// `file:line` of the clip in its list (for a clip at another speed, the line of the first
    /// block of the same clip: one clip, one source, whatever the speed).
    pub source: String,
    /// The speed this reference plays the clip at (1: as published; `SPEED=` in the list).
    pub speed: f64,
    /// Its sub-fingerprints.
    pub items: Vec<u32>,
}

impl AudioClip {
    /// A clip at its own speed.
    pub fn new(label: impl Into<String>, source: impl Into<String>, items: Vec<u32>) -> Self {
        AudioClip {
            label: label.into(),
            source: source.into(),
            speed: 1.0,
            items,
        }
    }

    /// Seconds into the clip as published where item `offset` of this reference starts.
    pub fn clip_seconds(&self, offset: i64) -> f64 {
        offset as f64 * crate::hash::chromaprint::ITEM_SECONDS * self.speed
    }
}

/// Where a window lined up with a clip.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioHit {
    /// Index of the clip in the list.
    pub clip: usize,
    /// Clip item aligned with the window's first item (negative: the window starts before the
    /// clip).
    pub offset: i64,
    /// Items compared.
    pub compared: usize,
    /// Bit error rate over them.
    pub ber: f64,
}

/// Postings of one 16-bit key family, in compressed sparse rows: positions of key `k` are
/// `positions[starts[k]..starts[k + 1]]`.
struct Postings {
    starts: Vec<u32>,
    positions: Vec<u32>,
}

impl Postings {
    fn build(items: &[u32], key: impl Fn(u32) -> u16) -> Postings {
        let mut counts = vec![0u32; 65537];
        for &v in items {
            counts[usize::from(key(v)) + 1] += 1;
        }
        for k in 1..counts.len() {
            counts[k] += counts[k - 1];
        }
        let starts = counts.clone();
        let mut fill = counts;
        let mut positions = vec![0u32; items.len()];
        for (pos, &v) in items.iter().enumerate() {
            let k = usize::from(key(v));
            positions[fill[k] as usize] = pos as u32;
            fill[k] += 1;
        }
        Postings { starts, positions }
    }

    fn get(&self, key: u16) -> &[u32] {
        let k = usize::from(key);
        &self.positions[self.starts[k] as usize..self.starts[k + 1] as usize]
    }
}

fn low(v: u32) -> u16 {
    v as u16
}

fn high(v: u32) -> u16 {
    (v >> 16) as u16
}

/// The clips of one list, indexed.
pub struct AudioIndex {
    clips: Vec<Arc<AudioClip>>,
    /// Every clip's items, one after the other.
    items: Vec<u32>,
    /// Where each clip starts in `items`.
    starts: Vec<u32>,
    by_low: Postings,
    by_high: Postings,
}

impl AudioIndex {
    /// Indexes `clips`.
    pub fn build(clips: Vec<AudioClip>) -> AudioIndex {
        let mut items = Vec::with_capacity(clips.iter().map(|c| c.items.len()).sum());
        let mut starts = Vec::with_capacity(clips.len());
        for c in &clips {
            starts.push(items.len() as u32);
            items.extend_from_slice(&c.items);
        }
        AudioIndex {
            by_low: Postings::build(&items, low),
            by_high: Postings::build(&items, high),
            clips: clips.into_iter().map(Arc::new).collect(),
            items,
            starts,
        }
    }

    /// The clips.
    pub fn clips(&self) -> &[Arc<AudioClip>] {
        &self.clips
    }

    /// Sub-fingerprints indexed.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Approximate memory held.
    pub fn memory_bytes(&self) -> usize {
        self.items.capacity() * 4
            + self.starts.capacity() * 4
            + (self.by_low.positions.capacity() + self.by_high.positions.capacity()) * 4
            + (self.by_low.starts.capacity() + self.by_high.starts.capacity()) * 4
    }

    fn clip_of(&self, pos: u32) -> usize {
        self.starts.partition_point(|&s| s <= pos) - 1
    }

    /// The best alignment per clip of `window` (the stream's newest items, oldest first) with a
    /// BER at most `max_ber`, best first.
    pub fn search(&self, window: &[u32], max_ber: f64) -> Vec<AudioHit> {
        // Alignments packed in a u64 (clip, then offset biased to be unsigned) so that one
        // integer sort groups the votes for each.
        let bias = window.len() as i64;
        let mut votes: Vec<u64> = Vec::new();
        for (i, &v) in window.iter().enumerate() {
            for postings in [self.by_low.get(low(v)), self.by_high.get(high(v))] {
                if postings.len() > MAX_POSTINGS {
                    continue;
                }
                for &pos in postings {
                    let clip = self.clip_of(pos);
                    let offset = i64::from(pos - self.starts[clip]) - i as i64 + bias;
                    votes.push(((clip as u64) << 32) | offset as u64);
                }
            }
        }
        votes.sort_unstable();
        let mut candidates: Vec<(u32, i64)> = Vec::new();
        let mut k = 0;
        while k < votes.len() {
            let mut run = 1;
            while k + run < votes.len() && votes[k + run] == votes[k] {
                run += 1;
            }
            // One shared half could be chance; the same alignment twice is not. (With fewer
            // than `MIN_VOTES` items in the window, one vote has to do.)
            if run >= MIN_VOTES.min(window.len()) {
                let clip = (votes[k] >> 32) as u32;
                let offset = (votes[k] & 0xFFFF_FFFF) as i64 - bias;
                candidates.push((clip, offset));
            }
            k += run;
        }
        let mut best: Vec<AudioHit> = Vec::new();
        for (clip, offset) in candidates {
            let clip = clip as usize;
            let Some(hit) = self.align(window, clip, offset) else {
                continue;
            };
            if hit.ber > max_ber {
                continue;
            }
            match best.last_mut() {
                Some(last) if last.clip == clip => {
                    if hit.ber < last.ber {
                        *last = hit;
                    }
                }
                _ => best.push(hit),
            }
        }
        best.sort_by(|a, b| a.ber.total_cmp(&b.ber));
        best
    }

    /// The window against `clip` at `offset`, if they overlap enough: by the whole window, or
    /// by the whole clip when it is the shorter.
    fn align(&self, window: &[u32], clip: usize, offset: i64) -> Option<AudioHit> {
        let start = self.starts[clip] as usize;
        let len = self.clips[clip].items.len() as i64;
        let first = offset.max(0);
        let last = (offset + window.len() as i64).min(len);
        let compared = (last - first).max(0) as usize;
        if compared == 0 || compared < window.len().min(len as usize) {
            return None;
        }
        let w = &window[(first - offset) as usize..(last - offset) as usize];
        let c = &self.items[start + first as usize..start + last as usize];
        Some(AudioHit {
            clip,
            offset,
            compared,
            ber: bit_error_rate(w, c),
        })
    }

    /// The reference: every alignment of `window` with every clip, the best per clip at most
    /// `max_ber`, best first. Slow; for tests and the bench.
    pub fn brute_force(&self, window: &[u32], max_ber: f64) -> Vec<AudioHit> {
        let mut best = Vec::new();
        for clip in 0..self.clips.len() {
            let len = self.clips[clip].items.len() as i64;
            let mut found: Option<AudioHit> = None;
            for offset in -(window.len() as i64 - 1)..len {
                if let Some(hit) = self.align(window, clip, offset) {
                    if hit.ber <= max_ber && found.as_ref().is_none_or(|f| hit.ber < f.ber) {
                        found = Some(hit);
                    }
                }
            }
            best.extend(found);
        }
        best.sort_by(|a, b| a.ber.total_cmp(&b.ber));
        best
    }

    /// Whether at least [`MIN_VOTES`] looked-up keys of `window` match the clip items they are
    /// aligned with at `offset` (the index can only find such alignments).
    pub fn shares_key(&self, window: &[u32], clip: usize, offset: i64) -> bool {
        let c = &self.clips[clip].items;
        let hits: usize = window
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let j = offset + i as i64;
                if j < 0 || j >= c.len() as i64 {
                    return 0;
                }
                let r = c[j as usize];
                usize::from(low(r) == low(v) && self.by_low.get(low(v)).len() <= MAX_POSTINGS)
                    + usize::from(
                        high(r) == high(v) && self.by_high.get(high(v)).len() <= MAX_POSTINGS,
                    )
            })
            .sum();
        hits >= MIN_VOTES.min(window.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn random_clips(rng: &mut StdRng, n: usize) -> Vec<AudioClip> {
        (0..n)
            .map(|k| {
                AudioClip::new(
                    format!("clip{k}"),
                    format!("list:{k}"),
                    (0..rng.gen_range(10..200)).map(|_| rng.gen()).collect(),
                )
            })
            .collect()
    }

    /// Chromaprint-like damage: most items lose a few bits, some many.
    fn damaged(rng: &mut StdRng, items: &[u32], rate: f64) -> Vec<u32> {
        items
            .iter()
            .map(|&v| {
                let item_rate = if rng.gen_bool(0.7) {
                    rate / 3.0
                } else {
                    rate * 2.0
                };
                let mut x = v;
                for b in 0..32 {
                    if rng.gen_bool(item_rate.min(1.0)) {
                        x ^= 1 << b;
                    }
                }
                x
            })
            .collect()
    }

    #[test]
    fn the_index_agrees_with_brute_force() {
        let mut rng = StdRng::seed_from_u64(7);
        for round in 0..40 {
            let index = AudioIndex::build(random_clips(&mut rng, 30));
            let clip = rng.gen_range(0..30);
            let items = index.clips()[clip].items.clone();
            let w = rng.gen_range(5..40).min(items.len());
            let at = rng.gen_range(0..=items.len() - w);
            let rate = rng.gen_range(0.0..0.35);
            let mut window = damaged(&mut rng, &items[at..at + w], rate);
            if round % 4 == 0 {
                // Some windows are only partly the clip.
                let k = w / 3;
                for v in window.iter_mut().take(k) {
                    *v = rng.gen();
                }
            }
            let max_ber = 0.3;
            let fast = index.search(&window, max_ber);
            let slow = index.brute_force(&window, max_ber);
            // Whatever the index reports is true, and never better than the best alignment.
            for hit in &fast {
                let truth = index.align(&window, hit.clip, hit.offset).expect("aligned");
                assert_eq!(truth.ber, hit.ber);
                assert!(hit.ber <= max_ber);
                let best = slow
                    .iter()
                    .find(|s| s.clip == hit.clip)
                    .expect("brute force");
                assert!(best.ber <= hit.ber);
            }
            // And it finds every best alignment that shares a key with the window.
            for best in &slow {
                if index.shares_key(&window, best.clip, best.offset) {
                    let hit = fast.iter().find(|h| h.clip == best.clip);
                    assert_eq!(hit.map(|h| h.ber), Some(best.ber), "round {round}");
                }
            }
            if rate < 0.1 {
                assert!(fast.iter().any(|h| h.clip == clip && h.offset == at as i64));
            }
        }
    }

    #[test]
    fn common_keys_are_not_looked_up() {
        let clips = vec![AudioClip::new("silence", "l:1", vec![0; MAX_POSTINGS + 1])];
        let index = AudioIndex::build(clips);
        assert!(index.search(&[0; 40], 0.3).is_empty());
        assert!(!index.brute_force(&[0; 40], 0.3).is_empty());
    }

    #[test]
    fn a_clip_shorter_than_the_window_is_compared_whole() {
        let mut rng = StdRng::seed_from_u64(3);
        let short: Vec<u32> = (0..10).map(|_| rng.gen()).collect();
        let index = AudioIndex::build(vec![AudioClip::new("short", "l:1", short.clone())]);
        let mut window: Vec<u32> = (0..30).map(|_| rng.gen()).collect();
        window[12..22].copy_from_slice(&short);
        let hits = index.search(&window, 0.1);
        assert_eq!(hits.len(), 1);
        assert_eq!((hits[0].offset, hits[0].compared), (-12, 10));
        assert_eq!(hits[0].ber, 0.0);
    }
}
