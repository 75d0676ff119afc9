//! Units in config files and on the command line: durations (`"250ms"`, `"5s"`, `"10m"`) and
//! sizes (`"64KiB"`, `"16MiB"`), with the serde helpers every settings type uses. A leaf: it
//! imports nothing from the crate, so settings types anywhere can use it without a cycle.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Parses `"250ms"`, `"5s"`, `"10m"`, `"1h"` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. \"250ms\", \"5s\", \"10m\")"))?;
    let scale = match unit.trim() {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} (use ms, s, m or h)"
            ))
        }
    };
    // Found by fuzz/ config: a duration past Duration's range panicked (a config file, or
    // `?block=` on the admin API).
    Duration::try_from_secs_f64(value * scale)
        .map_err(|_| format!("{text:?} is out of range for a duration"))
}

/// A duration as a config file writes it, to the millisecond (rounded up): `"2s"`, `"2500ms"`.
pub fn duration_text(duration: Duration) -> String {
    let ms = duration.as_nanos().div_ceil(1_000_000);
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Parses `"64KiB"`, `"16MiB"`, `"1GiB"`, `"500kB"`, `"2MB"` or a plain byte count.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: usize = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. \"64KiB\", \"16MiB\")"))?;
    let scale: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => {
            return Err(format!(
                "unknown size unit {other:?} (use B, KiB, MiB, GiB)"
            ))
        }
    };
    value
        .checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too large"))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Number(u64),
    Text(String),
}

/// Deserializes a duration given as `"5s"`-style text or a number of seconds.
pub fn duration_value<'de, D: Deserializer<'de>>(de: D) -> Result<Duration, D::Error> {
    match NumberOrText::deserialize(de)? {
        NumberOrText::Number(n) => Ok(Duration::from_secs(n)),
        NumberOrText::Text(t) => parse_duration(&t).map_err(serde::de::Error::custom),
    }
}

/// Deserializes a size given as `"16MiB"`-style text or a number of bytes.
pub fn size<'de, D: Deserializer<'de>>(de: D) -> Result<usize, D::Error> {
    match NumberOrText::deserialize(de)? {
        NumberOrText::Number(n) => usize::try_from(n).map_err(serde::de::Error::custom),
        NumberOrText::Text(t) => parse_size(&t).map_err(serde::de::Error::custom),
    }
}

/// `N` seconds: a serde default.
pub const fn secs<const N: u64>() -> Duration {
    Duration::from_secs(N)
}

/// `N` MiB in bytes: a serde default.
pub const fn mib<const N: usize>() -> usize {
    N * 1024 * 1024
}

/// Deserializes an optional duration (see [`duration_value`]).
pub fn optional_duration<'de, D: Deserializer<'de>>(de: D) -> Result<Option<Duration>, D::Error> {
    duration_value(de).map(Some)
}
