//! Durations and sizes as the config file spells them: `"250ms"`, `"10s"`, `"5m"`; `65536`,
//! `"64KiB"`, `"10MiB"`. Used through `#[serde(deserialize_with = ...)]`, so a bad value is
//! reported by the TOML deserializer with its line and column.

use serde::{Deserialize, Deserializer, de};
use std::time::Duration;

/// Parses a duration with units (`"250ms"`, `"10s"`, `"1m 30s"`). A bare number is refused:
/// `timeout = 5` is ambiguous (seconds? milliseconds?), and operators get it wrong.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.chars().all(|c| c.is_ascii_digit()) && !text.is_empty() {
        return Err(format!(
            "duration `{text}` needs a unit, e.g. \"{text}s\" or \"{text}ms\""
        ));
    }
    humantime::parse_duration(text).map_err(|e| format!("invalid duration `{text}`: {e}"))
}

/// Parses a size: a plain byte count or a number with a unit (B, KB, MB, GB, KiB, MiB, GiB).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("invalid size `{text}`: expected a number, e.g. \"64KiB\""))?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "invalid size unit `{other}` in `{text}`: use B, KB, MB, GB, KiB, MiB or GiB"
            ));
        }
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("size `{text}` is too large"))
}

/// serde adapter for durations.
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text).map_err(de::Error::custom)
}

/// serde adapter for an optional duration (with `#[serde(default)]`).
pub fn optional_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// serde adapter for sizes: an integer (bytes) or a string with a unit.
pub fn size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Bytes(u64),
        Text(String),
    }
    match Raw::deserialize(d).map_err(|_| {
        de::Error::custom("expected a size: an integer number of bytes or a string like \"64KiB\"")
    })? {
        Raw::Bytes(n) => Ok(n),
        Raw::Text(text) => parse_size(&text).map_err(de::Error::custom),
    }
}

/// serde adapter for sizes that must fit a `usize` (buffer lengths).
pub fn size_usize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let bytes = size(d)?;
    usize::try_from(bytes).map_err(|_| de::Error::custom("size too large for this platform"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert!(parse_duration("10").unwrap_err().contains("needs a unit"));
        assert!(parse_duration("ten seconds").is_err());
    }

    #[test]
    fn sizes_take_binary_and_decimal_units() {
        assert_eq!(parse_size("64KiB"), Ok(65_536));
        assert_eq!(parse_size("10MiB"), Ok(10 * 1024 * 1024));
        assert_eq!(parse_size("1KB"), Ok(1000));
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("8 KiB"), Ok(8192));
        assert!(parse_size("12XB").unwrap_err().contains("unit"));
        assert!(parse_size("KiB").is_err());
        assert!(
            parse_size("99999999999999GiB")
                .unwrap_err()
                .contains("too large")
        );
    }
}
