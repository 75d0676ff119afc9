//! Every hash list format (hex, TSV, ThreatExchange CSV, vPDQ, base64 image_hasher, audio
//! fingerprints) loaded into a list with its index: an entry count or a `file:line` error,
//! never a panic. Loaded lists answer a lookup.
#![no_main]

use std::path::Path;

use hashgate::hash::imghash::Algorithm;
use hashgate::matcher::formats::ListFormat;
use hashgate::matcher::list::{HashList, ListSettings};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let path = Path::new("fuzz-list.txt");
    let format = match selector % 6 {
        0 => ListFormat::Auto,
        1 => ListFormat::Hex,
        2 => ListFormat::Tsv,
        3 => ListFormat::Vpdq,
        4 => ListFormat::Csv,
        _ => ListFormat::Base64,
    };
    let algorithm = match (selector / 6) % 4 {
        0 | 1 => Algorithm::Pdq,
        2 => Algorithm::Dhash,
        _ => Algorithm::Chromaprint,
    };
    let mut settings = ListSettings::for_path(path);
    settings.format = format;
    settings.algorithm = algorithm;
    if let Ok(list) = HashList::from_text(settings, path, text) {
        let _ = list.len();
    }
    let _ = hashgate::hash::chromaprint::parse_raw(text);
});
