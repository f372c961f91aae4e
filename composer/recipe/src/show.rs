//! The effective recipe of a chain of `extends`, as `compose recipe show` prints it: TOML with
//! the file and line each value was written at as a trailing comment, or JSON with a list of
//! origins. The TOML is itself a recipe without `extends` (paths rebased onto the first recipe's
//! directory, `append` and `remove` applied): written beside the first recipe, it loads as the
//! same [`crate::Recipe`].

use std::fmt::Write;
use std::path::PathBuf;

use serde::Serialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::extend::Chain;

/// Where one value of the effective recipe was written.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Origin {
    /// The value, as a JSON Pointer (RFC 6901) into the effective recipe: `/builds/2/script`.
    pub pointer: String,
    /// The recipe file that wrote it, as named (the first recipe's path as given, a base's joined
    /// to the directory of the recipe naming it).
    pub file: PathBuf,
    /// Its line in that file, from 1.
    pub line: usize,
}

/// Lines past this width put each item of a list on its own line, with its own origin.
const WIDTH: usize = 100;

/// The effective recipe as TOML, every value followed by `# FILE:LINE`.
pub fn annotated_toml(chain: &Chain, merged: &Spanned<DeTable<'_>>) -> String {
    let mut out = String::new();
    section(&mut out, chain, "", merged.get_ref());
    out
}

/// The effective recipe as JSON, and where each of its values (not its tables) was written.
pub fn json(chain: &Chain, merged: &Spanned<DeTable<'_>>) -> (serde_json::Value, Vec<Origin>) {
    let mut origins = Vec::new();
    let value =
        to_json(chain, "", &Spanned::new(merged.span(), DeValue::Table(merged.get_ref().clone())), &mut origins);
    (value, origins)
}

fn to_json(chain: &Chain, pointer: &str, value: &Spanned<DeValue<'_>>, origins: &mut Vec<Origin>) -> serde_json::Value {
    if let DeValue::Table(table) = value.get_ref() {
        let object = table
            .iter()
            .map(|(key, v)| {
                let escaped = key.get_ref().replace('~', "~0").replace('/', "~1");
                (key.get_ref().to_string(), to_json(chain, &format!("{pointer}/{escaped}"), v, origins))
            })
            .collect();
        return serde_json::Value::Object(object);
    }
    let (file, line) = chain.origin(value.span());
    origins.push(Origin { pointer: pointer.to_string(), file: file.to_path_buf(), line });
    match value.get_ref() {
        DeValue::Array(items) => serde_json::Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| to_json(chain, &format!("{pointer}/{i}"), item, origins))
                .collect(),
        ),
        _ => match leaf(value) {
            toml::Value::String(s) => s.into(),
            toml::Value::Integer(i) => i.into(),
            toml::Value::Float(f) => f.into(),
            toml::Value::Boolean(b) => b.into(),
            other => other.to_string().into(),
        },
    }
}

/// Writes the keys of `table` (whose header, if any, is written), then its tables and arrays of
/// tables under their own headers.
fn section(out: &mut String, chain: &Chain, path: &str, table: &DeTable<'_>) {
    // `name` first, as recipes write it; then as written (the extending recipe's keys first).
    let mut keys: Vec<_> = table.iter().collect();
    keys.sort_by_key(|(key, _)| (key.get_ref() != "name", key.span().start));
    for (key, value) in keys.iter().filter(|(_, v)| !is_section(v.get_ref())) {
        let key = bare_or_quoted(key.get_ref());
        let inline = inline_value(value);
        let origin = place(chain, value);
        match value.get_ref() {
            DeValue::Array(items) if key.len() + inline.len() > WIDTH => {
                let _ = writeln!(out, "{key} = [  # {origin}");
                for item in items.iter() {
                    let _ = writeln!(out, "    {},  # {}", inline_value(item), place(chain, item));
                }
                out.push_str("]\n");
            }
            _ => {
                let _ = writeln!(out, "{key} = {inline}  # {origin}");
            }
        }
    }
    for (key, value) in keys.iter().filter(|(_, v)| is_section(v.get_ref())) {
        let name = match path {
            "" => bare_or_quoted(key.get_ref()),
            _ => format!("{path}.{}", bare_or_quoted(key.get_ref())),
        };
        match value.get_ref() {
            DeValue::Table(inner) => {
                let _ = writeln!(out, "\n[{name}]  # {}", place(chain, value));
                section(out, chain, &name, inner);
            }
            DeValue::Array(items) => {
                for item in items.iter() {
                    let _ = writeln!(out, "\n[[{name}]]  # {}", place(chain, item));
                    if let DeValue::Table(inner) = item.get_ref() {
                        section(out, chain, &name, inner);
                    }
                }
            }
            _ => {}
        }
    }
}

/// A table, or a list of tables: written under a header.
fn is_section(value: &DeValue<'_>) -> bool {
    match value {
        DeValue::Table(_) => true,
        DeValue::Array(items) => !items.is_empty() && items.iter().all(|i| i.get_ref().is_table()),
        _ => false,
    }
}

fn place(chain: &Chain, value: &Spanned<DeValue<'_>>) -> String {
    let (file, line) = chain.origin(value.span());
    // A comment ends at a newline: a file name holding one (or a terminal's escape) is shown
    // escaped, so the output stays a recipe.
    format!("{}:{line}", crate::extend::printable(&file.display().to_string()))
}

/// A value as TOML writes it inline (a string with newlines as a multi-line string).
fn inline_value(value: &Spanned<DeValue<'_>>) -> String {
    leaf(value).to_string()
}

/// The value itself, spans dropped. Every number fits: the typed recipe was read from it first.
fn leaf(value: &Spanned<DeValue<'_>>) -> toml::Value {
    match value.get_ref() {
        DeValue::String(s) => toml::Value::String(s.to_string()),
        DeValue::Integer(i) => toml::Value::Integer(i64::from_str_radix(i.as_str(), i.radix()).unwrap_or_default()),
        DeValue::Float(f) => toml::Value::Float(f.as_str().parse().unwrap_or_default()),
        DeValue::Boolean(b) => toml::Value::Boolean(*b),
        DeValue::Datetime(d) => toml::Value::Datetime(*d),
        DeValue::Array(items) => toml::Value::Array(items.iter().map(leaf).collect()),
        DeValue::Table(table) => {
            toml::Value::Table(table.iter().map(|(k, v)| (k.get_ref().to_string(), leaf(v))).collect())
        }
    }
}

fn bare_or_quoted(key: &str) -> String {
    match !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        true => key.to_string(),
        false => toml::Value::String(key.to_string()).to_string(),
    }
}
