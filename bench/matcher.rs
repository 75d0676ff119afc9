//! hashgate side of bench/matcher.sh: build the index over the hashes file, run every query at
//! the radius single-threaded, print one Markdown row (and the total match count, which must
//! equal FAISS's: both are exact).

use std::time::Instant;

use hashgate::matcher::index::HammingIndex;

fn read(path: &str) -> Vec<[u64; 4]> {
    let bytes = std::fs::read(path).expect("read hashes");
    bytes
        .chunks_exact(32)
        .map(|c| {
            std::array::from_fn(|w| {
                u64::from_le_bytes(c[w * 8..w * 8 + 8].try_into().expect("8 bytes"))
            })
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    let (hashes, queries, radius) = (
        read(&args[1]),
        read(&args[2]),
        args[3].parse::<u32>().expect("radius"),
    );
    let n = hashes.len();
    let t = Instant::now();
    let index = HammingIndex::build(hashes);
    let build = t.elapsed().as_secs_f64();
    let memory = index.memory_bytes() as f64 / (1 << 20) as f64;
    let t = Instant::now();
    let mut found = 0usize;
    for q in &queries {
        index.search(q, radius, |_, _| found += 1);
    }
    let per_query = t.elapsed().as_secs_f64() / queries.len() as f64 * 1000.0;
    println!(
        "| hashgate MIH (16 x 16-bit) | {n} | {per_query:.3} | {:.0} | {build:.1} | {memory:.0} | {found} |",
        1000.0 / per_query
    );
    // The sure-bit comparison (`weak_margin = 0.8` leaves ~100 of 256 bits out, the radius
    // scales to the 156 counted): free bits drawn per query, fixed seed.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let masks: Vec<[u64; 4]> = queries
        .iter()
        .map(|_| {
            let mut free = [0u64; 4];
            let mut left = 100;
            while left > 0 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let bit = (state % 256) as usize;
                if free[bit / 64] & (1 << (bit % 64)) == 0 {
                    free[bit / 64] |= 1 << (bit % 64);
                    left -= 1;
                }
            }
            free.map(|w| !w)
        })
        .collect();
    let sure_radius = radius * 156 / 256;
    let t = Instant::now();
    let mut found = 0usize;
    for (q, care) in queries.iter().zip(&masks) {
        index.search_masked(q, care, sure_radius, |_, _| found += 1);
    }
    let per_query = t.elapsed().as_secs_f64() / queries.len() as f64 * 1000.0;
    println!(
        "| hashgate MIH, sure bits (100 of 256 free, radius {sure_radius}) | {n} | {per_query:.3} | {:.0} | - | - | {found} |",
        1000.0 / per_query
    );
}
