//! `hashgate lookup --list FILE`: query hashes on stdin, one JSON line of matches per query.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde_json::json;

use crate::hash::imghash::Algorithm;
use crate::hash::pdq::PdqHash;
use crate::matcher::formats::ListFormat;
use crate::matcher::list::{HashList, ListSettings};

/// Arguments of `hashgate lookup`.
#[derive(Debug, Args)]
pub struct LookupArgs {
    /// The list file to search.
    #[arg(long)]
    pub list: PathBuf,
    /// Largest distance that matches (default: 31 for PDQ, 8 for 64-bit hashes).
    #[arg(long)]
    pub threshold: Option<u32>,
    /// The list's algorithm (its queries are the same kind of hash).
    #[arg(long, default_value = "pdq")]
    pub algorithm: Algorithm,
    /// Skip list entries below this quality (the live default is 50; here every entry counts).
    #[arg(long, default_value_t = 0)]
    pub min_quality: u32,
}

/// Runs `lookup`; returns the number of queries that were not valid hashes.
pub fn run(args: &LookupArgs) -> anyhow::Result<usize> {
    let mut settings = ListSettings::for_path(&args.list);
    settings.algorithm = args.algorithm;
    settings.format = ListFormat::Auto;
    settings.threshold = args.threshold;
    settings.min_quality = args.min_quality;
    let loading = std::time::Instant::now();
    let list = HashList::load(settings)?;
    eprintln!(
        "hashgate: {} entries from {} in {:.2} s",
        list.len(),
        args.list.display(),
        loading.elapsed().as_secs_f64()
    );
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut invalid = 0;
    for line in stdin.lock().lines() {
        let line = line.context("reading queries")?;
        let query = line.trim();
        if query.is_empty() || query.starts_with('#') {
            continue;
        }
        let result = lookup_one(&list, args, query);
        let value = match result {
            Ok(matches) => json!({ "query": query, "matches": matches }),
            Err(reason) => {
                invalid += 1;
                json!({ "query": query, "error": reason })
            }
        };
        if let Err(e) = writeln!(out, "{value}") {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(invalid);
            }
            return Err(e.into());
        }
    }
    out.flush().ok();
    Ok(invalid)
}

fn lookup_one(
    list: &HashList,
    args: &LookupArgs,
    query: &str,
) -> Result<Vec<serde_json::Value>, String> {
    let matches = if args.algorithm == Algorithm::Pdq {
        let hash: PdqHash = query
            .to_ascii_lowercase()
            .parse()
            .map_err(|e: crate::hash::pdq::BadPdqHex| e.to_string())?;
        // A bare hash has no DCT to derive rotations from: queries match as given.
        list.lookup_pdq(&[hash], args.threshold)
    } else {
        let decoded = image_hasher::ImageHash::<Box<[u8]>>::from_base64(query)
            .map_err(|e| format!("not a base64 image_hasher hash: {e:?}"))?;
        let bytes: [u8; 8] = decoded
            .as_bytes()
            .try_into()
            .map_err(|_| "not a 64-bit hash".to_owned())?;
        list.lookup_short(u64::from_le_bytes(bytes), args.threshold)
    };
    Ok(matches
        .into_iter()
        .map(|m| json!({ "distance": m.distance, "label": m.label, "source": m.source }))
        .collect())
}
