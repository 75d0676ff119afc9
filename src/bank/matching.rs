//! Feature pairs: each of a frame's features paired with its nearest reference feature by
//! Hamming distance, kept only when that nearest is clearly nearer than the second (Lowe's
//! ratio test), so repeated texture, whose features all look alike, pairs nothing.

use super::features::Feature;
use super::geometry::Pair;

/// A reference feature as a bank stores it: position and descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// Position in the reference's working picture, pixels.
    pub x: u16,
    /// Position in the reference's working picture, pixels.
    pub y: u16,
    /// Steered BRIEF descriptor.
    pub descriptor: [u64; 4],
}

impl From<&Feature> for Stored {
    fn from(f: &Feature) -> Stored {
        Stored {
            x: f.x.round().clamp(0.0, f32::from(u16::MAX)) as u16,
            y: f.y.round().clamp(0.0, f32::from(u16::MAX)) as u16,
            descriptor: f.descriptor,
        }
    }
}

/// How pairs are chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairRule {
    /// Farthest a pair's descriptors may be, bits of 256.
    pub max_distance: u32,
    /// The nearest must be nearer than this share of the second nearest.
    pub ratio: f64,
}

impl Default for PairRule {
    fn default() -> Self {
        PairRule {
            max_distance: 64,
            ratio: 0.8,
        }
    }
}

/// The frame's features paired with a reference picture's, one to one: a reference feature
/// that several frame features chose (one corner found at several pyramid levels) keeps the
/// nearest, so inliers count distinct correspondences.
pub fn pairs(frame: &[Feature], reference: &[Stored], rule: PairRule) -> Vec<Pair> {
    // Per reference feature: the nearest frame feature that chose it, and its distance.
    let mut chosen: Vec<Option<(u32, usize)>> = vec![None; reference.len()];
    for (i, f) in frame.iter().enumerate() {
        let Some((nearest, d1, d2)) = two_nearest(&f.descriptor, reference) else {
            continue;
        };
        if d1 <= rule.max_distance
            && f64::from(d1) < rule.ratio * f64::from(d2)
            && chosen[nearest].is_none_or(|(d, _)| d1 < d)
        {
            chosen[nearest] = Some((d1, i));
        }
    }
    chosen
        .iter()
        .enumerate()
        .filter_map(|(r, c)| c.map(|(_, i)| (r, i)))
        .map(|(r, i)| Pair {
            from: (f64::from(reference[r].x), f64::from(reference[r].y)),
            to: (f64::from(frame[i].x), f64::from(frame[i].y)),
        })
        .collect()
}

/// The nearest reference feature, its distance and the second nearest distance (256 when
/// there is no second).
fn two_nearest(query: &[u64; 4], reference: &[Stored]) -> Option<(usize, u32, u32)> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("popcnt") {
            // SAFETY: the CPU was just found to have POPCNT.
            return unsafe { two_nearest_popcnt(query, reference) };
        }
    }
    two_nearest_plain(query, reference)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
unsafe fn two_nearest_popcnt(query: &[u64; 4], reference: &[Stored]) -> Option<(usize, u32, u32)> {
    two_nearest_plain(query, reference)
}

#[inline(always)]
fn two_nearest_plain(query: &[u64; 4], reference: &[Stored]) -> Option<(usize, u32, u32)> {
    // (nearest, its distance, the second nearest distance)
    let mut near = (usize::MAX, 257u32, 257u32);
    let consider = |near: &mut (usize, u32, u32), i: usize, d: u32| {
        if d < near.1 {
            *near = (i, d, near.1);
        } else if d < near.2 {
            near.2 = d;
        }
    };
    // Eight distances at a time, independent of one another; the two nearest are only
    // updated (in order, as one by one) when one of the eight comes nearer than the second
    // nearest, which after the first few is rare: the comparisons no longer wait on each other.
    let mut blocks = reference.chunks_exact(BLOCK);
    let mut start = 0;
    for block in blocks.by_ref() {
        let d: [u32; BLOCK] = std::array::from_fn(|k| hamming(query, &block[k].descriptor));
        if d.iter().any(|&x| x < near.2) {
            for (k, &x) in d.iter().enumerate() {
                consider(&mut near, start + k, x);
            }
        }
        start += BLOCK;
    }
    for (k, r) in blocks.remainder().iter().enumerate() {
        consider(&mut near, start + k, hamming(query, &r.descriptor));
    }
    let (best, d1, d2) = near;
    (best != usize::MAX).then_some((best, d1, d2.min(256)))
}

/// Reference features compared at once by [`two_nearest_plain`].
const BLOCK: usize = 8;

#[inline(always)]
fn hamming(a: &[u64; 4], b: &[u64; 4]) -> u32 {
    (a[0] ^ b[0]).count_ones()
        + (a[1] ^ b[1]).count_ones()
        + (a[2] ^ b[2]).count_ones()
        + (a[3] ^ b[3]).count_ones()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feature(x: f32, descriptor: [u64; 4]) -> Feature {
        Feature {
            x,
            y: 0.0,
            level: 0,
            angle: 0.0,
            descriptor,
        }
    }

    #[test]
    fn the_two_nearest_are_those_of_a_plain_scan_whatever_the_count() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for n in [0usize, 1, 7, 8, 9, 61, 500] {
            let reference: Vec<Stored> = (0..n)
                .map(|i| Stored {
                    x: i as u16,
                    y: 0,
                    // Some near copies of one another, so ties and near misses occur.
                    descriptor: [
                        next(),
                        next() & next(),
                        next(),
                        if i % 5 == 0 { 0 } else { next() },
                    ],
                })
                .collect();
            for _ in 0..20 {
                let query = [next(), next() & next(), next(), 0];
                let (mut best, mut d1, mut d2) = (usize::MAX, 257u32, 257u32);
                for (i, r) in reference.iter().enumerate() {
                    let d = hamming(&query, &r.descriptor);
                    if d < d1 {
                        (d2, d1, best) = (d1, d, i);
                    } else if d < d2 {
                        d2 = d;
                    }
                }
                let plain = (best != usize::MAX).then_some((best, d1, d2.min(256)));
                assert_eq!(two_nearest(&query, &reference), plain, "{n}");
            }
        }
    }

    #[test]
    fn a_clear_nearest_pairs_and_an_ambiguous_one_does_not() {
        let reference = [
            Stored {
                x: 1,
                y: 0,
                descriptor: [0, 0, 0, 0],
            },
            Stored {
                x: 2,
                y: 0,
                descriptor: [u64::MAX, u64::MAX, 0, 0],
            },
            Stored {
                x: 3,
                y: 0,
                descriptor: [u64::MAX, u64::MAX, 0, 1],
            },
        ];
        let rule = PairRule::default();
        // 3 bits from the first, far from the rest: paired with it.
        let clear = pairs(&[feature(10.0, [0b111, 0, 0, 0])], &reference, rule);
        assert_eq!(clear.len(), 1);
        assert_eq!(clear[0].from, (1.0, 0.0));
        // 10 bits from the second, 11 from the third: ambiguous, not paired.
        let torn = pairs(
            &[feature(10.0, [u64::MAX, u64::MAX, 0x3FF, 0])],
            &reference,
            rule,
        );
        assert!(torn.is_empty());
        // Two frame features choosing one reference feature: one pair, the nearer.
        let both = pairs(
            &[
                feature(10.0, [0b11, 0, 0, 0]),
                feature(20.0, [0b1, 0, 0, 0]),
            ],
            &reference,
            rule,
        );
        assert_eq!(both.len(), 1);
        assert_eq!(both[0].to, (20.0, 0.0));
        // Nearest, but too far to be the same corner.
        let far = pairs(&[feature(10.0, [0, 0, u64::MAX, 0xFF])], &reference, rule);
        assert!(far.is_empty());
    }
}
