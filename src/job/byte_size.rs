//! Byte sizes written as a plain integer (`1000000`) or as a number with a
//! unit (`512MiB`, `4GiB`, `3MB`), for serde's `with` attribute.
//!
//! The value is read as a string (YAML hands plain integers over as their
//! text), not through an untagged enum or `deserialize_any`, so that the YAML
//! deserializer reports every error at the value's own position.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

/// Units accepted after the number, with their multipliers.
const UNITS: [(&str, u64); 9] = [
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
];

pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(*v)
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    d.deserialize_str(ByteSizeVisitor)
}

struct ByteSizeVisitor;

impl Visitor<'_> for ByteSizeVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a byte size: an integer or a string like `4GiB`")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        parse(v).map_err(E::custom)
    }
}

/// Parses `123`, `64KiB`, `512MiB`, `4GiB`, `1TiB`, `10KB`, `3MB`, `2GB`
/// (a space before the unit is allowed).
pub fn parse(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("expected a byte size like `4GiB` or `1000000`, got `{text}`"))?;
    let unit = unit.trim();
    let mult = match unit {
        "" => 1,
        u => UNITS
            .iter()
            .find(|(name, _)| *name == u)
            .map(|(_, m)| *m)
            .ok_or_else(|| {
                format!(
                    "unknown byte-size unit `{u}` in `{text}` (use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)"
                )
            })?,
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("byte size `{text}` does not fit in 64 bits"))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn parses_integers_and_units() {
        assert_eq!(parse("1000000"), Ok(1_000_000));
        assert_eq!(parse("512MiB"), Ok(512 << 20));
        assert_eq!(parse("4GiB"), Ok(4 << 30));
        assert_eq!(parse(" 4 GiB "), Ok(4 << 30));
        assert_eq!(parse("3MB"), Ok(3_000_000));
        assert_eq!(parse("7B"), Ok(7));
        assert_eq!(parse("0"), Ok(0));
    }

    #[test]
    fn rejects_bad_sizes() {
        assert!(
            parse("4XB")
                .unwrap_err()
                .contains("unknown byte-size unit `XB`")
        );
        assert!(parse("GiB").unwrap_err().contains("expected a byte size"));
        assert!(parse("-4GiB").unwrap_err().contains("expected a byte size"));
        assert!(
            parse("1.5GiB")
                .unwrap_err()
                .contains("unknown byte-size unit `.5GiB`")
        );
        assert!(
            parse("99999999999TiB")
                .unwrap_err()
                .contains("does not fit")
        );
        assert!(parse("").is_err());
    }
}
