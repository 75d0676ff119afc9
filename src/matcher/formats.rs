//! Hash list files in the formats platforms receive them in. A file is accepted whole or not at
//! all: the first malformed line rejects it with `file:line: reason` (a half-loaded list is
//! worse than the old one).
//!
//! - `hex`: one PDQ hash (64 hex digits) per line; `#` comments and blank lines allowed.
//! - `tsv`: `hex<TAB>quality<TAB>label[<TAB>…]`.
//! - `vpdq`: ThreatExchange vPDQ, `frameNumber,quality,pdqHex,timestampSec`; each frame is an
//!   entry labelled `<file>@<seconds>s`.
//! - `csv`: ThreatExchange / HMA / python-threatexchange exports. With a header row, the hash is
//!   the column named `hash`, `signal`, `signal_value`, `indicator`, `pdq`, `pdq_hash` or
//!   `hash_value`; labels come from `label(s)`, `tags`, `bank`/`bank_name`, `content_id`, `id`;
//!   rows whose `signal_type`/`indicator_type` column names another algorithm are skipped.
//!   Without a header, python-threatexchange's CLI dataset layout:
//!   `indicator_id,hash,first_descriptor_id,added_on,labels`.
//! - `base64`: image_hasher hashes (base64, 64 bits), optionally `<TAB>label`.

use std::path::Path;

use image_hasher::ImageHash;
use serde::Deserialize;

use crate::hash::imghash::Algorithm;
use crate::hash::pdq::PdqHash;

/// A list file format; `auto` decides from the content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListFormat {
    /// Detect from the first data line.
    #[default]
    Auto,
    /// One hex hash per line.
    Hex,
    /// hex, quality, label.
    Tsv,
    /// ThreatExchange vPDQ.
    Vpdq,
    /// ThreatExchange / HMA / pytx CSV.
    Csv,
    /// image_hasher base64.
    Base64,
}

/// A stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashValue {
    /// 256-bit PDQ.
    Pdq(PdqHash),
    /// 64-bit image_hasher hash.
    Short(u64),
}

/// One parsed list line.
#[derive(Debug, Clone, PartialEq)]
pub struct ListEntry {
    /// The hash.
    pub hash: HashValue,
    /// Quality, when the format carries it.
    pub quality: Option<u32>,
    /// Label, when the format carries one.
    pub label: Option<String>,
    /// 1-based line number in the file.
    pub line: u32,
    /// The clip this entry is a frame of and its time in it, when the format says (vPDQ; TSV
    /// with a seconds column, as `hashgate hash --fps` writes).
    pub position: Option<(String, f64)>,
}

/// Why a list file was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {reason}")]
pub struct ListError {
    /// The file.
    pub file: String,
    /// 1-based line (0 when the whole file is at fault).
    pub line: u32,
    /// What is wrong.
    pub reason: String,
}

/// Parses a list file's text.
pub fn parse_list(
    file: &Path,
    text: &str,
    format: ListFormat,
    algorithm: Algorithm,
) -> Result<Vec<ListEntry>, ListError> {
    let name = file.display().to_string();
    let err = |line: usize, reason: String| ListError {
        file: name.clone(),
        line: line as u32,
        reason,
    };
    let format = match format {
        ListFormat::Auto => detect(text, algorithm),
        other => other,
    };
    if algorithm != Algorithm::Pdq && format != ListFormat::Base64 {
        return Err(err(
            0,
            format!("{algorithm} lists must be in base64 format"),
        ));
    }
    if algorithm == Algorithm::Pdq && format == ListFormat::Base64 {
        return Err(err(0, "base64 lists need a non-PDQ algorithm".into()));
    }
    if format == ListFormat::Csv {
        return parse_csv(&name, text);
    }
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut entries = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let entry = match format {
            ListFormat::Hex => ListEntry {
                hash: pdq_field(line.trim()).map_err(|r| err(n, r))?,
                quality: None,
                label: None,
                line: n as u32,
                position: None,
            },
            ListFormat::Tsv => {
                let f: Vec<&str> = line.split('\t').collect();
                if f.len() < 2 {
                    return Err(err(n, "expected hex<TAB>quality<TAB>label".into()));
                }
                let label = f
                    .get(2)
                    .map(|l| l.trim().to_owned())
                    .filter(|l| !l.is_empty());
                let seconds = f
                    .get(3)
                    .and_then(|t| t.trim().parse::<f64>().ok())
                    .filter(|s| s.is_finite() && *s >= 0.0);
                ListEntry {
                    hash: pdq_field(f[0].trim()).map_err(|r| err(n, r))?,
                    quality: Some(quality_field(f[1]).map_err(|r| err(n, r))?),
                    position: seconds.map(|s| (label.clone().unwrap_or_else(|| stem.clone()), s)),
                    label,
                    line: n as u32,
                }
            }
            ListFormat::Vpdq => {
                let f: Vec<&str> = line.split(',').map(str::trim).collect();
                if f.len() != 4 {
                    return Err(err(
                        n,
                        "expected frameNumber,quality,pdqHex,timestampSec".into(),
                    ));
                }
                f[0].parse::<u64>()
                    .map_err(|_| err(n, format!("frame number {:?} is not a number", f[0])))?;
                let seconds: f64 = f[3]
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                    .ok_or_else(|| err(n, format!("timestamp {:?} is not seconds", f[3])))?;
                ListEntry {
                    hash: pdq_field(f[2]).map_err(|r| err(n, r))?,
                    quality: Some(quality_field(f[1]).map_err(|r| err(n, r))?),
                    label: Some(format!("{stem}@{seconds:.3}s")),
                    line: n as u32,
                    position: Some((stem.clone(), seconds)),
                }
            }
            ListFormat::Base64 => {
                let (hash, label) = line.split_once('\t').unwrap_or((line, ""));
                let decoded = ImageHash::<Box<[u8]>>::from_base64(hash.trim())
                    .map_err(|e| err(n, format!("not an image_hasher base64 hash: {e:?}")))?;
                let bytes: [u8; 8] = decoded.as_bytes().try_into().map_err(|_| {
                    err(
                        n,
                        format!(
                            "{}-bit hash; lists hold 64-bit (8x8) hashes",
                            decoded.as_bytes().len() * 8
                        ),
                    )
                })?;
                ListEntry {
                    hash: HashValue::Short(u64::from_le_bytes(bytes)),
                    quality: None,
                    label: Some(label.trim().to_owned()).filter(|l| !l.is_empty()),
                    line: n as u32,
                    position: None,
                }
            }
            ListFormat::Auto | ListFormat::Csv => unreachable!("resolved above"),
        };
        entries.push(entry);
    }
    Ok(entries)
}

fn detect(text: &str, algorithm: Algorithm) -> ListFormat {
    if algorithm != Algorithm::Pdq {
        return ListFormat::Base64;
    }
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap_or("");
    let fields: Vec<&str> = first.split(',').map(str::trim).collect();
    if first.contains('\t') {
        ListFormat::Tsv
    } else if fields.len() == 4
        && fields[0].parse::<u64>().is_ok()
        && fields[1].parse::<u32>().is_ok()
        && fields[2].len() == 64
        && fields[3].parse::<f64>().is_ok()
    {
        ListFormat::Vpdq
    } else if first.contains(',') {
        ListFormat::Csv
    } else {
        ListFormat::Hex
    }
}

fn pdq_field(text: &str) -> Result<HashValue, String> {
    text.to_ascii_lowercase()
        .parse::<PdqHash>()
        .map(HashValue::Pdq)
        .map_err(|e| e.to_string())
}

fn quality_field(text: &str) -> Result<u32, String> {
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|q| *q <= 100)
        .ok_or_else(|| format!("quality {:?} is not a number 0-100", text.trim()))
}

const HASH_COLUMNS: [&str; 7] = [
    "hash",
    "signal",
    "signal_value",
    "indicator",
    "pdq",
    "pdq_hash",
    "hash_value",
];
const LABEL_COLUMNS: [&str; 7] = [
    "label",
    "labels",
    "tags",
    "bank",
    "bank_name",
    "content_id",
    "id",
];
const TYPE_COLUMNS: [&str; 3] = ["signal_type", "indicator_type", "type"];

fn parse_csv(name: &str, text: &str) -> Result<Vec<ListEntry>, ListError> {
    let err = |line: u64, reason: String| ListError {
        file: name.to_owned(),
        line: line as u32,
        reason,
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let Some(first) = records.next() else {
        return Ok(Vec::new());
    };
    let first = first.map_err(|e| err(e.position().map_or(0, |p| p.line()), e.to_string()))?;
    let lower: Vec<String> = first
        .iter()
        .map(|c| c.trim().to_ascii_lowercase())
        .collect();
    let find = |names: &[&str]| lower.iter().position(|c| names.contains(&c.as_str()));
    let header = find(&HASH_COLUMNS);
    let (hash_col, label_cols, type_col, quality_col, rest) = match header {
        Some(h) => {
            let labels: Vec<usize> = LABEL_COLUMNS
                .iter()
                .filter_map(|n| lower.iter().position(|c| c == n))
                .collect();
            (h, labels, find(&TYPE_COLUMNS), find(&["quality"]), None)
        }
        // python-threatexchange CLI dataset: id, hash, descriptor id, added on, labels.
        None => (1, vec![4], None, None, Some(first)),
    };
    let mut entries = Vec::new();
    let rows = rest.into_iter().map(Ok).chain(records);
    for row in rows {
        let row = row.map_err(|e| err(e.position().map_or(0, |p| p.line()), e.to_string()))?;
        let line = row.position().map_or(0, |p| p.line());
        if let Some(t) = type_col.and_then(|c| row.get(c)) {
            let t = t.trim().to_ascii_lowercase();
            if !t.is_empty() && !t.contains("pdq") {
                continue;
            }
        }
        let hash_text = row
            .get(hash_col)
            .ok_or_else(|| err(line, format!("no hash in column {}", hash_col + 1)))?;
        let hash = pdq_field(hash_text.trim()).map_err(|r| err(line, r))?;
        let quality = match quality_col.and_then(|c| row.get(c)).map(str::trim) {
            Some(q) if !q.is_empty() => Some(quality_field(q).map_err(|r| err(line, r))?),
            _ => None,
        };
        let label: Vec<&str> = label_cols
            .iter()
            .filter_map(|c| row.get(*c))
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        entries.push(ListEntry {
            hash,
            quality,
            label: (!label.is_empty()).then(|| label.join(" ")),
            line: line as u32,
            position: None,
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H1: &str = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22";
    const H2: &str = "d8f871cce0f4e84d8a370a32028f63f4b36e27d597621e1d33e6b39c4a9c9b22";

    fn parse(text: &str) -> Result<Vec<ListEntry>, ListError> {
        parse_list(
            Path::new("lists/test.txt"),
            text,
            ListFormat::Auto,
            Algorithm::Pdq,
        )
    }

    #[test]
    fn hex_with_comments() {
        let entries = parse(&format!(
            "# known clips\n{H1}\n\n  {}  \n",
            H2.to_uppercase()
        ))
        .expect("valid");
        assert_eq!(entries.len(), 2);
        assert_eq!((entries[0].line, entries[1].line), (2, 4));
        assert_eq!(entries[1].hash, HashValue::Pdq(H2.parse().expect("hex")));
    }

    #[test]
    fn tsv_with_labels_and_extra_columns() {
        let entries = parse(&format!("{H1}\t100\tclip-a\textra\n{H2}\t87\t\n")).expect("valid");
        assert_eq!(entries[0].label.as_deref(), Some("clip-a"));
        assert_eq!(
            (entries[1].quality, entries[1].label.clone()),
            (Some(87), None)
        );
    }

    #[test]
    fn vpdq_frames_are_entries_labelled_by_file_and_time() {
        let entries = parse(&format!("0,100,{H1},0.000\n1,43,{H2},0.033\n")).expect("valid");
        assert_eq!(entries[1].label.as_deref(), Some("test@0.033s"));
        assert_eq!(entries[1].quality, Some(43));
    }

    #[test]
    fn csv_with_header_and_pytx_dataset_rows() {
        let hma = format!("content_id,signal_type,signal_value,bank_name\nc1,pdq,{H1},terror-bank\nc2,md5,d41d8cd98f00b204e9800998ecf8427e,terror-bank\n");
        let entries = parse(&hma).expect("valid");
        assert_eq!(entries.len(), 1, "md5 row skipped");
        assert_eq!(entries[0].label.as_deref(), Some("terror-bank c1"));
        assert_eq!(entries[0].line, 2);
        let pytx = format!("1234,{H1},5678,1609459200,\"violent_extremism media_priority_s1\"\n");
        let entries = parse(&pytx).expect("valid");
        assert_eq!(
            entries[0].label.as_deref(),
            Some("violent_extremism media_priority_s1")
        );
        assert_eq!(entries[0].hash, HashValue::Pdq(H1.parse().expect("hex")));
    }

    #[test]
    fn base64_for_image_hasher_lists() {
        let image =
            image::GrayImage::from_fn(64, 64, |x, y| image::Luma([((x * 5 + y * 3) % 256) as u8]));
        let hash = crate::hash::imghash::hash(Algorithm::Dhash, &image).expect("dhash");
        let text = format!("{}\tknown\n", hash.to_base64());
        let entries = parse_list(
            Path::new("d.txt"),
            &text,
            ListFormat::Auto,
            Algorithm::Dhash,
        )
        .expect("valid");
        let bytes: [u8; 8] = hash.as_bytes().try_into().expect("64 bits");
        assert_eq!(entries[0].hash, HashValue::Short(u64::from_le_bytes(bytes)));
    }

    #[test]
    fn every_malformed_line_is_rejected_with_file_and_line() {
        let cases = [
            (
                format!("{H1}\nnot-a-hash\n"),
                ListFormat::Hex,
                2,
                "not a PDQ hash",
            ),
            (
                format!("{H1}\n{}\n", &H2[..60]),
                ListFormat::Hex,
                2,
                "not a PDQ hash",
            ),
            (
                format!("{H1}\t100\tok\n{H2}\n"),
                ListFormat::Tsv,
                2,
                "expected hex<TAB>quality",
            ),
            (
                format!("{H1}\t100\tok\n{H2}\t101\tbad\n"),
                ListFormat::Tsv,
                2,
                "quality",
            ),
            (format!("{H1}\tabc\tbad\n"), ListFormat::Tsv, 1, "quality"),
            (
                format!("0,100,{H1},0.0\n1,100,{H2}\n"),
                ListFormat::Vpdq,
                2,
                "expected frameNumber",
            ),
            (
                format!("0,100,{H1},0.0\nx,100,{H2},0.1\n"),
                ListFormat::Vpdq,
                2,
                "frame number",
            ),
            (
                format!("0,100,{H1},0.0\n1,100,{H2},-1\n"),
                ListFormat::Vpdq,
                2,
                "timestamp",
            ),
            (
                format!("id,hash\n1,{H1}\n2,zz\n"),
                ListFormat::Csv,
                3,
                "not a PDQ hash",
            ),
            ("@@@@\n".to_owned(), ListFormat::Base64, 1, "base64"),
            ("abc\n".to_owned(), ListFormat::Base64, 1, "64-bit"),
        ];
        for (text, format, line, reason) in cases {
            let algorithm = if format == ListFormat::Base64 {
                Algorithm::Dhash
            } else {
                Algorithm::Pdq
            };
            let err = parse_list(Path::new("lists/bad.txt"), &text, format, algorithm)
                .expect_err(&format!("must reject {text:?}"));
            assert_eq!(err.line, line, "{err}");
            assert!(err.reason.contains(reason), "{err}");
            assert!(
                err.to_string()
                    .starts_with(&format!("lists/bad.txt:{line}: ")),
                "{err}"
            );
        }
    }
}
