//! Stream keys in the form ingest servers compare them.
//!
//! A broadcaster's publish name is `name[?query]`. nginx-rtmp, SRS and MediaMTX split the query
//! off (it carries arguments such as auth tokens, not identity) and, being C or treating names as
//! paths, stop at a NUL byte. So `key?x=1` and `key\0junk` are recorded under `key`. hashgate
//! therefore identifies a stream by its *name* — the text before the first `?` — for live keys,
//! blocks, probation, routes and events, and refuses names an ingest server could read
//! differently from us: empty ones, control bytes anywhere (NUL, newline, ANSI escapes),
//! invisible format characters (zero-width, bidirectional overrides, BOM) a platform might strip,
//! and names over [`MAX_KEY_LEN`] bytes. The query string still goes upstream unchanged.

use std::sync::atomic::{AtomicBool, Ordering};

/// Longest publish name accepted, query included: nginx-rtmp reads the name into a 256-byte
/// buffer (NUL included), so two longer names differing past byte 255 are one stream to it.
/// YouTube, Twitch and Facebook keys are under 100 bytes.
pub const MAX_KEY_LEN: usize = 255;

/// A publish name split into its identity and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamKey {
    /// The identity: everything before the first `?`.
    pub name: String,
    /// What followed the `?`, when there was one (passed upstream, never compared).
    pub query: Option<String>,
}

/// Why a publish name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Nothing before the `?`.
    #[error("empty stream key")]
    Empty,
    /// A control character (NUL, newline, escape, DEL, C1) or an invisible format character
    /// somewhere in the name or query.
    #[error("stream key contains control character U+{0:04X}")]
    Control(u32),
    /// Over [`MAX_KEY_LEN`] bytes.
    #[error("stream key of {0} bytes (at most {MAX_KEY_LEN})")]
    TooLong(usize),
}

impl StreamKey {
    /// Splits and checks a publish name as the broadcaster sent it.
    pub fn parse(raw: &str) -> Result<StreamKey, KeyError> {
        if raw.len() > MAX_KEY_LEN {
            return Err(KeyError::TooLong(raw.len()));
        }
        if let Some(c) = raw.chars().find(|&c| c.is_control() || invisible(c)) {
            return Err(KeyError::Control(c as u32));
        }
        let (name, query) = match raw.split_once('?') {
            Some((name, query)) => (name, Some(query.to_owned())),
            None => (raw, None),
        };
        if name.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(StreamKey {
            name: name.to_owned(),
            query,
        })
    }

    /// The name to publish upstream under `upstream_name`, with the broadcaster's query kept.
    pub fn upstream(&self, upstream_name: &str) -> String {
        match &self.query {
            Some(query) => format!("{upstream_name}?{query}"),
            None => upstream_name.to_owned(),
        }
    }
}

/// Zero-width and bidirectional formatting characters, line and paragraph separators, the
/// byte order mark: invisible in logs and dashboards, and stripped by some normalisers.
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}'
    )
}

static REDACTED: AtomicBool = AtomicBool::new(false);

/// Turns key redaction on or off for the whole process (`events.redact_keys`): from then on
/// [`shown`] gives each key's SHA-256, in the text log, the admin API and the metrics alike.
pub fn set_redacted(on: bool) {
    REDACTED.store(on, Ordering::Relaxed);
}

/// Whether keys are redacted (see [`set_redacted`]).
pub fn redacted() -> bool {
    REDACTED.load(Ordering::Relaxed)
}

/// A key as logs and the admin API show it: escaped (a name is the broadcaster's text and may
/// hold newlines or terminal escapes meant to forge log lines), or its SHA-256 in hex when keys
/// are redacted, the form the event log uses.
pub fn shown(key: &str) -> Shown<'_> {
    Shown(key)
}

/// A key as the admin API and the metrics give it: as it is (JSON and the Prometheus text
/// escape it themselves, and an operator pastes it back into a cut), or its SHA-256 when keys
/// are redacted.
pub fn for_api(key: &str) -> String {
    if redacted() {
        hex_sha256(key)
    } else {
        key.to_owned()
    }
}

/// See [`shown`].
pub struct Shown<'a>(&'a str);

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if redacted() {
            f.write_str(&hex_sha256(self.0))
        } else {
            write!(f, "{}", self.0.escape_debug())
        }
    }
}

impl Shown<'_> {
    /// Whether an operator's `text` names this key: the key itself, or its SHA-256 in hex (the
    /// only form an operator sees with redaction on).
    pub fn named_by(&self, text: &str) -> bool {
        self.0 == text || (text.len() == 64 && text.eq_ignore_ascii_case(&hex_sha256(self.0)))
    }
}

/// The SHA-256 of `text` in hex: how keys appear where they are redacted.
pub fn hex_sha256(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The identity of a key an operator typed (admin API): the same normal form, or the text as
/// given when it is not a valid key (it then matches nothing).
pub fn normal_name(raw: &str) -> String {
    StreamKey::parse(raw).map_or_else(|_| raw.to_owned(), |k| k.name)
}

/// Whether `text` has the shape of a key's SHA-256 as the admin API shows redacted keys.
pub fn looks_hashed(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_is_not_part_of_the_name() {
        let k = StreamKey::parse("cam1?token=abc&x=1").expect("valid");
        assert_eq!(k.name, "cam1");
        assert_eq!(k.query.as_deref(), Some("token=abc&x=1"));
        assert_eq!(k.upstream("live_123"), "live_123?token=abc&x=1");
        let plain = StreamKey::parse("cam1").expect("valid");
        assert_eq!(
            (plain.name.as_str(), plain.query.as_deref()),
            ("cam1", None)
        );
        assert_eq!(plain.upstream("cam1"), "cam1");
        assert_eq!(StreamKey::parse("cam1?").expect("valid").name, "cam1");
    }

    #[test]
    fn names_an_ingest_would_read_differently_are_refused() {
        assert_eq!(StreamKey::parse(""), Err(KeyError::Empty));
        assert_eq!(StreamKey::parse("?x=1"), Err(KeyError::Empty));
        assert_eq!(StreamKey::parse("cam1\0junk"), Err(KeyError::Control(0)));
        assert_eq!(StreamKey::parse("cam1\0"), Err(KeyError::Control(0)));
        assert_eq!(
            StreamKey::parse("a\nINFO fake line"),
            Err(KeyError::Control(10))
        );
        assert_eq!(
            StreamKey::parse("\u{1b}[31mred"),
            Err(KeyError::Control(0x1b))
        );
        assert_eq!(StreamKey::parse("x?y\rz"), Err(KeyError::Control(13)));
        assert_eq!(StreamKey::parse("a\u{85}"), Err(KeyError::Control(0x85)));
        assert_eq!(
            StreamKey::parse("cam\u{200B}1"),
            Err(KeyError::Control(0x200B))
        );
        assert_eq!(
            StreamKey::parse("\u{202E}1mac"),
            Err(KeyError::Control(0x202E))
        );
        assert_eq!(
            StreamKey::parse("\u{FEFF}cam1"),
            Err(KeyError::Control(0xFEFF))
        );
        assert_eq!(
            StreamKey::parse(&"k".repeat(MAX_KEY_LEN + 1)),
            Err(KeyError::TooLong(MAX_KEY_LEN + 1))
        );
        assert!(StreamKey::parse(&"k".repeat(MAX_KEY_LEN)).is_ok());
        // Unicode that is not a control character is a valid (if unusual) name.
        assert_eq!(StreamKey::parse("caméra").expect("valid").name, "caméra");
    }

    #[test]
    fn operator_input_normalises_the_same_way() {
        assert_eq!(normal_name("cam1?x=1"), "cam1");
        assert_eq!(normal_name("cam1"), "cam1");
        assert_eq!(normal_name("bad\0"), "bad\0");
    }
}
