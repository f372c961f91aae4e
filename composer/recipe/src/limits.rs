//! `[limits]`: how much a build step may take of the machine that runs it. A build script (or an
//! sdist's build backend) is not trusted to stay small: a 30 GiB sparse file left in `$DESTDIR`
//! would be read and hashed whole, and a `/tmp` without a bound takes memory until the kernel
//! kills something. The limits are execution limits, not inputs: a step that stays within them
//! gives the same output whatever they are, so they are not part of any step key (raising one
//! never rebuilds anything, and a cached step is never checked against them again).

use std::ops::Range;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::RecipeError;

/// The default of `step_output`: far above any real build's output (CPython's is about 200 MiB).
pub const DEFAULT_STEP_OUTPUT: u64 = 8 << 30;
/// The default of `scratch`: what the sandbox's `/tmp` may hold.
pub const DEFAULT_SCRATCH: u64 = 4 << 30;
/// The smallest limit that can be set: less would fail every real build.
const MIN_LIMIT: u64 = 1 << 20;

#[derive(Debug, Clone, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// The most bytes a build step may leave in its output directory (`$DESTDIR`), counted by
    /// each file's size (a sparse file counts whole): `"8 GiB"` (the default), or a number of
    /// bytes.
    #[schemars(with = "Option<SizeText>")]
    pub step_output: Option<Spanned<SizeText>>,
    /// The most bytes a build step may keep in the sandbox's `/tmp` (a tmpfs, in memory):
    /// `"4 GiB"` (the default), or a number of bytes.
    #[schemars(with = "Option<SizeText>")]
    pub scratch: Option<Spanned<SizeText>>,
}

/// A size as a recipe writes it: a number of bytes, or a number and a binary unit (`"512 MiB"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum SizeText {
    Bytes(u64),
    Text(String),
}

impl<'de> Deserialize<'de> for SizeText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<SizeText, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = SizeText;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a size: a number of bytes or a string such as \"8 GiB\"")
            }
            fn visit_u64<E: serde::de::Error>(self, bytes: u64) -> Result<SizeText, E> {
                Ok(SizeText::Bytes(bytes))
            }
            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<SizeText, E> {
                u64::try_from(value).map(SizeText::Bytes).map_err(|_| {
                    E::custom(format!("a size is a number of bytes or a string such as \"8 GiB\", not {value}"))
                })
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<SizeText, E> {
                Ok(SizeText::Text(text.to_string()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl Limits {
    /// The output limit of every build step, in bytes.
    pub fn step_output_bytes(&self) -> u64 {
        self.step_output.as_ref().and_then(|s| parse_size(s.get_ref()).ok()).unwrap_or(DEFAULT_STEP_OUTPUT)
    }

    /// The size of the sandbox's `/tmp`, in bytes.
    pub fn scratch_bytes(&self) -> u64 {
        self.scratch.as_ref().and_then(|s| parse_size(s.get_ref()).ok()).unwrap_or(DEFAULT_SCRATCH)
    }

    pub(crate) fn validate(
        &self,
        invalid: &dyn Fn(Range<usize>, String, &str) -> RecipeError,
    ) -> Result<(), RecipeError> {
        for (key, value) in [("step_output", &self.step_output), ("scratch", &self.scratch)] {
            let Some(value) = value else { continue };
            match parse_size(value.get_ref()) {
                Ok(bytes) if bytes >= MIN_LIMIT => {}
                Ok(bytes) => {
                    return Err(invalid(
                        value.span(),
                        format!("`[limits] {key}` is {bytes} bytes, less than the smallest limit, 1 MiB"),
                        "write a size of at least \"1 MiB\", e.g. \"8 GiB\"",
                    ));
                }
                Err(reason) => {
                    return Err(invalid(
                        value.span(),
                        format!("`[limits] {key}` is not a size: {reason}"),
                        "write a number of bytes, or a number and one of B, KiB, MiB, GiB, TiB, e.g. \"8 GiB\"",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Bytes as a person reads them: `8 GiB`, `512 MiB`, `1000 B`.
pub fn format_size(bytes: u64) -> String {
    for (unit, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if bytes >= 1 << shift {
            let whole = bytes >> shift;
            return if whole << shift == bytes {
                format!("{whole} {unit}")
            } else {
                format!("{:.1} {unit}", bytes as f64 / (1u64 << shift) as f64)
            };
        }
    }
    format!("{bytes} B")
}

/// A size in bytes from `"8 GiB"`, `"8GiB"`, `"8G"` (binary: G is GiB, as tmpfs reads it) or a
/// bare number. Decimal units (`GB`) are refused rather than guessed at.
pub fn parse_size(text: &SizeText) -> Result<u64, String> {
    let text = match text {
        SizeText::Bytes(bytes) => return Ok(*bytes),
        SizeText::Text(text) => text.trim(),
    };
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().map_err(|_| format!("`{}` does not start with a number", text.escape_debug()))?;
    let shift = match unit.trim() {
        "" | "B" => 0,
        "K" | "KiB" => 10,
        "M" | "MiB" => 20,
        "G" | "GiB" => 30,
        "T" | "TiB" => 40,
        "KB" | "kB" | "MB" | "GB" | "TB" => {
            return Err(format!("`{}`: composer counts in binary units; write KiB, MiB, GiB or TiB", unit.trim()));
        }
        other => return Err(format!("`{}` is not a unit", other.escape_debug())),
    };
    number.checked_mul(1 << shift).ok_or_else(|| format!("`{}` is more bytes than can be counted", text.escape_debug()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_binary_units_and_refuse_what_they_cannot_be() {
        let text = |t: &str| parse_size(&SizeText::Text(t.into()));
        assert_eq!(text("8 GiB"), Ok(8 << 30));
        assert_eq!(text("8GiB"), Ok(8 << 30));
        assert_eq!(text("512M"), Ok(512 << 20));
        assert_eq!(text("1000"), Ok(1000));
        assert_eq!(parse_size(&SizeText::Bytes(42)), Ok(42));
        for bad in ["8 GB", "eight GiB", "-1 GiB", "8 PiB", "", "99999999999 TiB"] {
            assert!(text(bad).is_err(), "{bad}");
        }
        assert_eq!(format_size(8 << 30), "8 GiB");
        assert_eq!(format_size(1536 << 20), "1.5 GiB");
        assert_eq!(format_size(12), "12 B");
    }
}
