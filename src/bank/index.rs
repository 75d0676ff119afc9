//! Which reference frames a frame is worth verifying against, found without comparing it to
//! every reference feature: locality-sensitive hashing by bit sampling. Each of [`TABLES`]
//! tables keys the reference features by a fixed draw of [`KEY_BITS`] descriptor bits; a
//! feature 30 bits from a reference feature shares a key with it in some table 95 % of the
//! time, a random one (128 bits away) in one table in 16,384. Each frame feature votes once for
//! every reference frame holding a feature within `VOTE_DISTANCE` bits in its buckets; the frames
//! with the most votes are then paired exhaustively and verified.
//!
//! The cost stays near the bucket sizes (the bank's features / 16,384 per table) instead of the
//! bank's size: a bank of 600 frames is searched in milliseconds. 14 key bits rather than 12
//! cut the vote at 600 frames from 9-11 ms to 3.5 (each comparison reads a descriptor from
//! anywhere in the bank) and caught the same rows of the evasion corpus (`bench/media_bank_evasion.sh`).

use super::matching::Stored;

/// Hash tables.
pub const TABLES: usize = 16;
/// Bits in each table's key.
pub const KEY_BITS: usize = 14;
/// A bucket neighbour this near votes for its frame.
const VOTE_DISTANCE: u32 = 56;
/// A bucket holding more than this many times its share of the features is passed over.
const CROWDED: usize = 8;

/// The bank's features keyed for voting.
#[derive(Debug, Clone, Default)]
pub struct VoteIndex {
    /// Per table: the key's bit positions.
    keys: Vec<[u8; KEY_BITS]>,
    /// Per table: bucket start offsets into `members` (`2^KEY_BITS + 1`).
    starts: Vec<Vec<u32>>,
    /// Per table: feature ids, bucket by bucket.
    members: Vec<Vec<u32>>,
    /// Per feature: its frame and descriptor.
    frame_of: Vec<u32>,
    descriptors: Vec<[u64; 4]>,
    frames: usize,
}

/// The fixed draw of key bits (our own generator, so no dependency can change it).
fn key_positions() -> Vec<[u8; KEY_BITS]> {
    let mut state = 0x6b65_7973_6174_3132u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..TABLES)
        .map(|_| {
            let mut key = [0u8; KEY_BITS];
            let mut used = [false; 256];
            for slot in key.iter_mut() {
                loop {
                    let bit = (next() % 256) as usize;
                    if !used[bit] {
                        used[bit] = true;
                        *slot = bit as u8;
                        break;
                    }
                }
            }
            key
        })
        .collect()
}

fn key_of(descriptor: &[u64; 4], bits: &[u8; KEY_BITS]) -> usize {
    bits.iter().enumerate().fold(0, |k, (i, &b)| {
        let bit = (descriptor[usize::from(b) / 64] >> (b % 64)) & 1;
        k | ((bit as usize) << i)
    })
}

impl VoteIndex {
    /// The index over reference frames, each given by its features.
    pub fn build<'a>(frames: impl IntoIterator<Item = &'a [Stored]>) -> VoteIndex {
        let mut frame_of = Vec::new();
        let mut descriptors = Vec::new();
        let mut count = 0;
        for (f, features) in frames.into_iter().enumerate() {
            for s in features {
                frame_of.push(f as u32);
                descriptors.push(s.descriptor);
            }
            count = f + 1;
        }
        let keys = key_positions();
        let buckets = 1 << KEY_BITS;
        let mut starts = Vec::with_capacity(TABLES);
        let mut members = Vec::with_capacity(TABLES);
        for bits in &keys {
            let keyed: Vec<usize> = descriptors.iter().map(|d| key_of(d, bits)).collect();
            let mut start = vec![0u32; buckets + 1];
            for &k in &keyed {
                start[k + 1] += 1;
            }
            for i in 0..buckets {
                start[i + 1] += start[i];
            }
            let mut fill = start.clone();
            let mut ids = vec![0u32; keyed.len()];
            for (id, &k) in keyed.iter().enumerate() {
                ids[fill[k] as usize] = id as u32;
                fill[k] += 1;
            }
            starts.push(start);
            members.push(ids);
        }
        VoteIndex {
            keys,
            starts,
            members,
            frame_of,
            descriptors,
            frames: count,
        }
    }

    /// Frames ranked by votes, at most `best` of them, most votes first (ties: earlier frame).
    pub fn vote(&self, query: &[[u64; 4]], best: usize) -> Vec<(usize, u32)> {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("popcnt") {
                // SAFETY: the CPU was just found to have POPCNT.
                return unsafe { self.vote_popcnt(query, best) };
            }
        }
        self.vote_plain(query, best)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "popcnt")]
    unsafe fn vote_popcnt(&self, query: &[[u64; 4]], best: usize) -> Vec<(usize, u32)> {
        self.vote_plain(query, best)
    }

    #[inline(always)]
    fn vote_plain(&self, query: &[[u64; 4]], best: usize) -> Vec<(usize, u32)> {
        // A bucket far over its share holds a descriptor common to many frames (repeated
        // texture: one cell of the game of life looks like every other): it tells frames
        // apart poorly and would cost the most, so it is passed over.
        let share = self.descriptors.len() >> KEY_BITS;
        let crowded = (share * CROWDED).max(64);
        let mut votes = vec![0u32; self.frames];
        let mut voted_by = vec![u32::MAX; self.frames];
        for (q, descriptor) in query.iter().enumerate() {
            for (t, bits) in self.keys.iter().enumerate() {
                let k = key_of(descriptor, bits);
                let (a, b) = (self.starts[t][k] as usize, self.starts[t][k + 1] as usize);
                if b - a > crowded {
                    continue;
                }
                for &id in &self.members[t][a..b] {
                    let frame = self.frame_of[id as usize] as usize;
                    if voted_by[frame] == q as u32 {
                        continue;
                    }
                    let r = &self.descriptors[id as usize];
                    let d: u32 = (0..4).map(|w| (descriptor[w] ^ r[w]).count_ones()).sum();
                    if d <= VOTE_DISTANCE {
                        voted_by[frame] = q as u32;
                        votes[frame] += 1;
                    }
                }
            }
        }
        let mut ranked: Vec<(usize, u32)> = votes
            .into_iter()
            .enumerate()
            .filter(|&(_, v)| v > 0)
            .collect();
        ranked.sort_by_key(|&(f, v)| (std::cmp::Reverse(v), f));
        ranked.truncate(best);
        ranked
    }

    /// Bytes the index holds.
    pub fn memory_bytes(&self) -> usize {
        self.members.iter().map(|m| m.len() * 4).sum::<usize>()
            + self.starts.iter().map(|s| s.len() * 4).sum::<usize>()
            + self.descriptors.len() * 36
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_descriptor(state: &mut u64) -> [u64; 4] {
        std::array::from_fn(|_| {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            *state
        })
    }

    #[test]
    fn the_frame_holding_near_copies_of_the_features_gets_the_votes() {
        let mut state = 99u64;
        let frames: Vec<Vec<Stored>> = (0..50)
            .map(|_| {
                (0..200)
                    .map(|_| Stored {
                        x: 0,
                        y: 0,
                        descriptor: random_descriptor(&mut state),
                    })
                    .collect()
            })
            .collect();
        let index = VoteIndex::build(frames.iter().map(Vec::as_slice));
        // Frame 31's features with 25 bits flipped each.
        let query: Vec<[u64; 4]> = frames[31]
            .iter()
            .map(|s| {
                let mut d = s.descriptor;
                for i in 0..25 {
                    let bit = (i * 37 + 11) % 256;
                    d[bit / 64] ^= 1 << (bit % 64);
                }
                d
            })
            .collect();
        let ranked = index.vote(&query, 3);
        assert_eq!(ranked[0].0, 31);
        assert!(ranked[0].1 > 150, "{ranked:?}");
        assert!(ranked.get(1).is_none_or(|r| r.1 < 10), "{ranked:?}");
        // Unrelated features find (almost) nothing.
        let noise: Vec<[u64; 4]> = (0..200).map(|_| random_descriptor(&mut state)).collect();
        assert!(index.vote(&noise, 3).iter().all(|r| r.1 < 5));
    }
}
