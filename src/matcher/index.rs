//! Exact Hamming range search: every stored hash within `radius` bits of a query, none missed.
//!
//! Small sets are scanned (popcount over packed words is faster than any index below a few
//! thousand entries). Larger ones use multi-index hashing (Norouzi et al.): each hash is cut into
//! 16-bit slots, and by the pigeonhole principle a hash within `r` bits of the query agrees with it
//! within `r / slots` bits on at least one slot. For PDQ (16 slots) at radius 31 that is a 1-bit
//! probe: 17 buckets per slot. Candidates are then checked with the full distance, so results are
//! exactly those of the scan.
//!
//! Buckets are stored as one sorted array of entry ids per slot plus 65,537 offsets (no hash maps,
//! no per-bucket allocation): 64 bytes per PDQ entry for the 16 slots, next to its 32 bytes.

/// Below this many entries the index is a plain scan.
pub const SCAN_BELOW: usize = 4096;

/// A fixed-width binary hash of `W` 64-bit words (PDQ: 4; image_hasher 8×8: 1).
pub type Bits<const W: usize> = [u64; W];

fn distance<const W: usize>(a: &Bits<W>, b: &Bits<W>) -> u32 {
    let mut d = 0;
    for i in 0..W {
        d += (a[i] ^ b[i]).count_ones();
    }
    d
}

/// How many candidates ahead hash loads are requested.
const PREFETCH_AHEAD: usize = 24;

#[cfg(target_arch = "x86_64")]
fn prefetch<T>(item: &T) {
    // SAFETY: a prefetch is a hint that never faults; the pointer comes from a live reference.
    unsafe {
        std::arch::x86_64::_mm_prefetch(
            item as *const T as *const i8,
            std::arch::x86_64::_MM_HINT_T0,
        )
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn prefetch<T>(_item: &T) {}

fn slot<const W: usize>(hash: &Bits<W>, s: usize) -> u16 {
    (hash[s / 4] >> ((s % 4) * 16)) as u16
}

/// The multi-index tables: per slot, entry ids sorted by that slot's value, and where each
/// value's run starts.
struct Slots {
    ids: Vec<Vec<u32>>,
    starts: Vec<Vec<u32>>,
}

/// An exact Hamming index over hashes of `W` words.
pub struct HammingIndex<const W: usize> {
    hashes: Vec<Bits<W>>,
    slots: Option<Slots>,
}

impl<const W: usize> HammingIndex<W> {
    /// Builds the index; entry ids are positions in `hashes`.
    pub fn build(hashes: Vec<Bits<W>>) -> Self {
        let slots = (hashes.len() >= SCAN_BELOW).then(|| build_slots(&hashes));
        HammingIndex { hashes, slots }
    }

    /// Number of hashes.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether the index holds no hash.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// The stored hash of entry `id`.
    pub fn hash(&self, id: u32) -> &Bits<W> {
        &self.hashes[id as usize]
    }

    /// Calls `found(id, distance)` once for every entry within `radius` bits of `query`.
    pub fn search(&self, query: &Bits<W>, radius: u32, mut found: impl FnMut(u32, u32)) {
        let slot_count = W * 4;
        let probe = radius as usize / slot_count;
        match &self.slots {
            // Probing more than 2 bits per slot visits more buckets than a scan would pay off.
            Some(slots) if probe <= 2 => {
                // Candidates are checked as their buckets are read: sorting thousands of ids to
                // drop duplicates costs more than the rare duplicate check (only true neighbours
                // tend to share several slots), so duplicates are removed among the hits.
                let mut candidates = Vec::with_capacity(4096);
                for s in 0..slot_count {
                    let key = slot(query, s);
                    for_each_within(key, probe, |bucket| {
                        let (from, to) = (
                            slots.starts[s][bucket as usize] as usize,
                            slots.starts[s][bucket as usize + 1] as usize,
                        );
                        candidates.extend_from_slice(&slots.ids[s][from..to]);
                    });
                }
                // One tight loop over independent loads, with the loads a few candidates ahead
                // requested early, so the cache misses overlap instead of queueing.
                let mut hits = Vec::new();
                for (i, &id) in candidates.iter().enumerate() {
                    if let Some(&ahead) = candidates.get(i + PREFETCH_AHEAD) {
                        prefetch(&self.hashes[ahead as usize]);
                    }
                    let d = distance(query, &self.hashes[id as usize]);
                    if d <= radius {
                        hits.push((id, d));
                    }
                }
                hits.sort_unstable();
                hits.dedup();
                for (id, d) in hits {
                    found(id, d);
                }
            }
            _ => self.scan(query, radius, found),
        }
    }

    /// Calls `found(id, distance)` once for every entry within `radius` bits of `query`
    /// counting only the bits set in `care` (the others may differ freely).
    ///
    /// Multi-index hashing still holds: over the slots that keep at most [`MAX_WILD`] free
    /// bits, an entry within `radius` on the cared bits is within `radius / slots` on some
    /// slot's cared bits, so each such slot is probed with every filling of its free bits.
    /// With many free bits that reads more buckets than a scan: then it scans.
    pub fn search_masked(
        &self,
        query: &Bits<W>,
        care: &Bits<W>,
        radius: u32,
        mut found: impl FnMut(u32, u32),
    ) {
        let masked = |h: &Bits<W>| -> u32 {
            let mut d = 0;
            for i in 0..W {
                d += ((query[i] ^ h[i]) & care[i]).count_ones();
            }
            d
        };
        let Some((slots, MaskedPlan::Probe { used, probe })) = self
            .slots
            .as_ref()
            .map(|slots| (slots, self.masked_plan(care, radius)))
        else {
            for (id, hash) in self.hashes.iter().enumerate() {
                let d = masked(hash);
                if d <= radius {
                    found(id as u32, d);
                }
            }
            return;
        };
        let mut hits = Vec::new();
        for s in used {
            let (key, sure) = (slot(query, s), slot(care, s));
            for_each_filling(!sure, |free| {
                for_each_within_mask(key ^ free, sure, probe, |bucket| {
                    let (from, to) = (
                        slots.starts[s][bucket as usize] as usize,
                        slots.starts[s][bucket as usize + 1] as usize,
                    );
                    for &id in &slots.ids[s][from..to] {
                        let d = masked(&self.hashes[id as usize]);
                        if d <= radius {
                            hits.push((id, d));
                        }
                    }
                });
            });
        }
        hits.sort_unstable();
        hits.dedup();
        for (id, d) in hits {
            found(id, d);
        }
    }

    /// How [`HammingIndex::search_masked`] answers for `care` at `radius`: probing the slots
    /// that keep at most [`MAX_WILD`] free bits, each within `probe` of its cared bits, or
    /// scanning every entry when the probes would read more than an eighth of them.
    fn masked_plan(&self, care: &Bits<W>, radius: u32) -> MaskedPlan {
        let used: Vec<usize> = (0..W * 4)
            .filter(|&s| 16 - slot(care, s).count_ones() as usize <= MAX_WILD)
            .collect();
        if used.is_empty() {
            return MaskedPlan::Scan;
        }
        let probe = radius as usize / used.len();
        if probe > 2 {
            return MaskedPlan::Scan;
        }
        // Buckets the probes read: every filling of a slot's free bits, times the values
        // within `probe` of its cared bits; random hashes spread evenly over 2^16 values.
        let buckets: f64 = used
            .iter()
            .map(|&s| {
                let sure = f64::from(slot(care, s).count_ones());
                let within = match probe {
                    0 => 1.0,
                    1 => 1.0 + sure,
                    _ => 1.0 + sure + sure * (sure - 1.0) / 2.0,
                };
                2f64.powi(16 - sure as i32) * within
            })
            .sum();
        let candidates = buckets * self.hashes.len() as f64 / 65_536.0;
        // Each candidate is a random read; past an eighth of the entries, reading them all in
        // order is cheaper.
        if candidates * 8.0 < self.hashes.len() as f64 {
            MaskedPlan::Probe { used, probe }
        } else {
            MaskedPlan::Scan
        }
    }

    /// The plain scan, also the reference the index is tested against.
    pub fn scan(&self, query: &Bits<W>, radius: u32, mut found: impl FnMut(u32, u32)) {
        for (id, hash) in self.hashes.iter().enumerate() {
            let d = distance(query, hash);
            if d <= radius {
                found(id as u32, d);
            }
        }
    }

    /// Approximate heap bytes held.
    pub fn memory_bytes(&self) -> usize {
        let slots = self.slots.as_ref().map_or(0, |s| {
            s.ids.iter().map(|v| v.capacity() * 4).sum::<usize>()
                + s.starts.iter().map(|v| v.capacity() * 4).sum::<usize>()
        });
        self.hashes.capacity() * 8 * W + slots
    }
}

fn build_slots<const W: usize>(hashes: &[Bits<W>]) -> Slots {
    let slot_count = W * 4;
    let mut ids = Vec::with_capacity(slot_count);
    let mut starts = Vec::with_capacity(slot_count);
    for s in 0..slot_count {
        // Counting sort by the 16-bit slot value.
        let mut counts = vec![0u32; 65_537];
        for h in hashes {
            counts[slot(h, s) as usize + 1] += 1;
        }
        for v in 1..counts.len() {
            counts[v] += counts[v - 1];
        }
        let mut next = counts.clone();
        let mut order = vec![0u32; hashes.len()];
        for (id, h) in hashes.iter().enumerate() {
            let v = slot(h, s) as usize;
            order[next[v] as usize] = id as u32;
            next[v] += 1;
        }
        ids.push(order);
        starts.push(counts);
    }
    Slots { ids, starts }
}

/// How a masked search is answered (see `HammingIndex::masked_plan`).
#[derive(Debug, PartialEq)]
enum MaskedPlan {
    /// Read every entry.
    Scan,
    /// Probe these slots, each within `probe` bits of the query's cared bits.
    Probe { used: Vec<usize>, probe: usize },
}

/// Most free bits a slot may have and still be probed by [`HammingIndex::search_masked`]
/// (2^10 fillings).
pub const MAX_WILD: usize = 10;

/// Every subset of the bits of `free` (including none).
fn for_each_filling(free: u16, mut visit: impl FnMut(u16)) {
    let mut subset: u16 = 0;
    loop {
        visit(subset);
        if subset == free {
            return;
        }
        subset = subset.wrapping_sub(free) & free;
    }
}

/// Every 16-bit value that differs from `key` in at most `radius` bits, all of them in `mask`.
fn for_each_within_mask(key: u16, mask: u16, radius: usize, mut visit: impl FnMut(u16)) {
    let bits: Vec<u16> = (0..16)
        .map(|i| 1u16 << i)
        .filter(|b| mask & b != 0)
        .collect();
    visit(key);
    if radius >= 1 {
        for (n, a) in bits.iter().enumerate() {
            visit(key ^ a);
            if radius >= 2 {
                for b in &bits[n + 1..] {
                    visit(key ^ a ^ b);
                }
            }
        }
    }
}

/// Every 16-bit value within `radius` bits of `key`.
fn for_each_within(key: u16, radius: usize, mut visit: impl FnMut(u16)) {
    visit(key);
    if radius >= 1 {
        for i in 0..16 {
            let one = key ^ (1 << i);
            visit(one);
            if radius >= 2 {
                for j in i + 1..16 {
                    visit(one ^ (1 << j));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            // xorshift64*: deterministic, good enough for test data.
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn hash<const W: usize>(&mut self) -> Bits<W> {
            std::array::from_fn(|_| self.next())
        }
        /// `base` with `flips` distinct random bits flipped.
        fn near<const W: usize>(&mut self, base: &Bits<W>, flips: u32) -> Bits<W> {
            let mut out = *base;
            let mut flipped = std::collections::HashSet::new();
            while flipped.len() < flips as usize {
                let bit = (self.next() % (64 * W as u64)) as usize;
                if flipped.insert(bit) {
                    out[bit / 64] ^= 1 << (bit % 64);
                }
            }
            out
        }
    }

    fn results<const W: usize>(
        index: &HammingIndex<W>,
        q: &Bits<W>,
        r: u32,
        scan: bool,
    ) -> Vec<(u32, u32)> {
        let mut v = Vec::new();
        if scan {
            index.scan(q, r, |id, d| v.push((id, d)));
        } else {
            index.search(q, r, |id, d| v.push((id, d)));
        }
        v.sort_unstable();
        v
    }

    /// Property: the index returns exactly what the scan returns, on random data and on data
    /// with near-duplicates planted at every distance up to and past the radius.
    fn index_equals_scan<const W: usize>(seed: u64, n: usize, radii: &[u32]) {
        let mut rng = Rng(seed);
        let mut hashes: Vec<Bits<W>> = (0..n).map(|_| rng.hash()).collect();
        let queries: Vec<Bits<W>> = (0..40).map(|_| rng.hash()).collect();
        let max_r = *radii.iter().max().unwrap_or(&0);
        for q in &queries {
            for flips in 0..=max_r + 2 {
                hashes.push(rng.near(q, flips));
            }
        }
        let index = HammingIndex::build(hashes);
        assert!(index.slots.is_some(), "large enough to be indexed");
        for q in &queries {
            for &r in radii {
                let want = results(&index, q, r, true);
                assert!(
                    want.len() as u32 > r,
                    "planted neighbours found by the scan"
                );
                assert_eq!(results(&index, q, r, false), want, "radius {r}");
            }
        }
    }

    #[test]
    fn mih_equals_scan_for_pdq() {
        for seed in 1..4 {
            index_equals_scan::<4>(seed, 20_000, &[0, 8, 15, 16, 31, 32, 47]);
        }
    }

    #[test]
    fn mih_equals_scan_for_64_bit_hashes() {
        for seed in 1..4 {
            index_equals_scan::<1>(seed, 20_000, &[0, 3, 4, 8, 10, 12, 16]);
        }
    }

    /// The property below covers both answers: few free bits probe, many scan.
    #[test]
    fn masked_plans_probe_with_few_free_bits_and_scan_with_many() {
        let mut rng = Rng(3);
        let index = HammingIndex::build((0..20_000).map(|_| rng.hash()).collect::<Vec<Bits<4>>>());
        let all = [u64::MAX; 4];
        assert!(matches!(
            index.masked_plan(&all, 31),
            MaskedPlan::Probe { probe: 1, .. }
        ));
        assert!(matches!(
            index.masked_plan(&all, 40),
            MaskedPlan::Probe { probe: 2, .. }
        ));
        let mut few = all;
        few[0] &= !0b1011; // three free bits in one slot
        assert!(matches!(
            index.masked_plan(&few, 20),
            MaskedPlan::Probe { .. }
        ));
        let many = rng.near(&[0; 4], 120).map(|w| !w);
        assert_eq!(index.masked_plan(&many, 18), MaskedPlan::Scan);
        assert_eq!(index.masked_plan(&all, 60), MaskedPlan::Scan, "probe 3");
    }

    /// Property: the masked search returns exactly what a masked scan returns, for masks
    /// leaving out from 0 to 120 bits (some slots past MAX_WILD), with neighbours planted that
    /// differ freely on the free bits and by 0 to 35 on the cared ones.
    #[test]
    fn masked_mih_equals_a_masked_scan() {
        let mut rng = Rng(9);
        let mut hashes: Vec<Bits<4>> = (0..20_000).map(|_| rng.hash()).collect();
        let mut cases = Vec::new();
        for free_bits in [0u32, 16, 48, 80, 120] {
            let q: Bits<4> = rng.hash();
            let care = {
                let free = rng.near(&[0; 4], free_bits);
                free.map(|w| !w)
            };
            for flips in 0..=35 {
                let noise: Bits<4> = rng.hash();
                let near = rng.near(&q, flips);
                // Free bits anything; cared bits `flips` away at most.
                let planted = std::array::from_fn(|i| (near[i] & care[i]) | (noise[i] & !care[i]));
                hashes.push(planted);
            }
            cases.push((q, care));
        }
        let index = HammingIndex::build(hashes.clone());
        for (q, care) in &cases {
            // 40: two bits a slot over sixteen slots (probe 2).
            for radius in [0u32, 8, 20, 31, 40] {
                let mut want: Vec<(u32, u32)> = Vec::new();
                for (id, h) in hashes.iter().enumerate() {
                    let d: u32 = (0..4).map(|i| ((q[i] ^ h[i]) & care[i]).count_ones()).sum();
                    if d <= radius {
                        want.push((id as u32, d));
                    }
                }
                assert!(
                    want.len() as u32 > radius.min(35),
                    "planted neighbours exist"
                );
                let mut got = Vec::new();
                index.search_masked(q, care, radius, |id, d| got.push((id, d)));
                got.sort_unstable();
                assert_eq!(got, want, "radius {radius}");
            }
        }
    }

    #[test]
    fn small_sets_scan_and_probes_are_complete() {
        let index = HammingIndex::<4>::build(vec![[0; 4], [1, 0, 0, 0], [u64::MAX; 4]]);
        assert!(index.slots.is_none());
        assert_eq!(results(&index, &[0; 4], 1, false), vec![(0, 0), (1, 1)]);
        let mut count = 0;
        for_each_within(0xABCD, 2, |_| count += 1);
        assert_eq!(count, 1 + 16 + 120);
    }
}
