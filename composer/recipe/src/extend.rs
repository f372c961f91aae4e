//! `extends = "base.toml"`: a recipe that starts from another and overrides or adds to it.
//!
//! Each file of the chain is read through the recipe's confined reader and parsed on its own, so
//! that a syntax error is located in its file; the trees are then merged at the TOML-value level,
//! base first, and the typed [`crate::Recipe`] is deserialized from the result as from one file:
//! it knows nothing of `extends`, and two recipes that merge to the same values plan the same steps.
//!
//! Every merged value keeps the span it was written at. The spans of each file are shifted by the
//! length of the files before it, as if the chain were one text (the extending recipe first), and
//! [`Chain::error`] maps a span of that text back to its file and line: an unknown key, a bad
//! platform or an unknown `uses` is located in the file that wrote it.
//!
//! The merge rules are those of docs/recipe.md ("Recipes that extend others"): tables merge by
//! key; arrays of tables merge entry by entry, an entry known by its `name` (`path` for
//! `[[files]]`); other values replace, but `{ append = [...] }` appends to the base's list, and an
//! entry with `remove = true` takes the base's entry of that name out.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

use composer_store::userfile::{self, Kind, Policy};
use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue};

use crate::RecipeError;

/// How many recipes one may extend through others: far more than sharing needs, few enough that
/// a chain stays readable.
pub const MAX_DEPTH: usize = 8;
const EXTENDS: &str = "extends";
const APPEND: &str = "append";
const REMOVE: &str = "remove";

/// Every key a recipe types as a path, which names a file beside the recipe that wrote it: in a
/// base, rebased onto the base's directory (`*`: each entry of an array of tables, or each value
/// of a table; a list of paths has each rebased). The files are
/// then read through the extending recipe's policy like its own, so a base in an allowed
/// directory reaches no further than the extending recipe could. A test keeps the list complete.
const PATH_KEYS: &[&[&str]] = &[
    &["base", "keyring"],
    &["files", "*", "source"],
    &["python", "requirements_file"],
    &["python", "constraints_file"],
    &["python", "packages", "*", "patches"],
    &["sources", "*", "path"],
];

type Value<'a> = Spanned<DeValue<'a>>;

/// One recipe of a chain.
#[derive(Debug)]
struct Layer {
    /// As named: the recipe's path, or the base's joined to the directory of the recipe naming it.
    path: PathBuf,
    text: String,
    /// The file's directory relative to the first recipe's: what its relative paths are rebased on.
    prefix: PathBuf,
    /// Where its text starts in the chain's joined text.
    offset: usize,
    /// Where each of its lines starts: a value's line without counting from the top each time.
    line_starts: Vec<usize>,
}

/// A recipe and every recipe it extends, read and checked for cycles, not yet merged.
#[derive(Debug)]
pub struct Chain {
    layers: Vec<Layer>,
    /// Every file's text, the extending recipe first, each followed by a newline: the text the
    /// merged spans point into.
    joined: String,
}

/// Whether a recipe's text names a base. A text that does not parse names none: it then goes
/// the way of every recipe without `extends`, which reports the syntax error.
pub fn names_a_base(text: &str) -> bool {
    DeTable::parse(text).is_ok_and(|table| table.get_ref().contains_key(EXTENDS))
}

impl Chain {
    /// Reads the recipe at `path` and every recipe it extends. The recipe itself is read as
    /// [`crate::Recipe::load`] reads it; its bases only inside its directory or `allowed`.
    pub fn load(path: &Path, allowed: &[PathBuf]) -> Result<Chain, RecipeError> {
        Chain::read(path, crate::read_recipe(path)?, allowed)
    }

    /// The chain of the recipe at `path`, whose text is `text`.
    pub(crate) fn read(path: &Path, text: String, allowed: &[PathBuf]) -> Result<Chain, RecipeError> {
        let dir = crate::recipe_dir(path);
        let named_in = path.parent().unwrap_or(Path::new(""));
        let policy = Policy::within(Kind::RECIPE, &dir, allowed);
        let mut layers =
            vec![Layer { path: path.to_path_buf(), text, prefix: PathBuf::new(), offset: 0, line_starts: vec![] }];
        let mut reals = vec![path.canonicalize().ok()];
        while let Some((named, span)) =
            extends_of(layers.last().expect("a chain has a first recipe"), layers.len() == 1)?
        {
            let layer = layers.last().expect("a chain has a first recipe");
            let first = layers.len() == 1;
            let here = |message: String, hint: String| {
                located(RecipeError::at(&layer.path, &layer.text, span.clone(), message, hint), first)
            };
            if layers.len() > MAX_DEPTH {
                return Err(here(
                    format!("recipes extend one another more than {MAX_DEPTH} deep"),
                    format!("a chain of `extends` holds at most {} recipes: merge some of them", MAX_DEPTH + 1),
                ));
            }
            let named = Path::new(&named);
            let prefix = lexical(&layer.prefix.join(named.parent().unwrap_or(Path::new(""))));
            let base = named_in.join(&layer.prefix).join(named);
            let text = userfile::read_text(&base, &policy).map_err(|e| {
                // The cause goes into the message: a located error has no chain to print.
                let cause = std::error::Error::source(&e).map(|c| format!(": {c}")).unwrap_or_default();
                here(
                    format!("`extends`: {}", printable(&format!("{e}{cause}"))),
                    e.hint().unwrap_or_else(|| {
                        "`extends` names a recipe file, relative to the directory of the recipe naming it".into()
                    }),
                )
            })?;
            let real = base.canonicalize().ok();
            if let Some(first) = reals.iter().position(|r| r.is_some() && *r == real) {
                let cycle: Vec<String> = layers[first..]
                    .iter()
                    .map(|l| format!("`{}`", shown(&l.path)))
                    .chain([format!("`{}`", shown(&base))])
                    .collect();
                return Err(here(
                    format!("recipes extend one another in a cycle: {}", cycle.join(" extends ")),
                    "a recipe cannot extend itself, directly or through others: drop one `extends`".into(),
                ));
            }
            reals.push(real);
            layers.push(Layer { path: base, text, prefix, offset: 0, line_starts: vec![] });
        }
        let mut joined = String::new();
        for layer in &mut layers {
            layer.line_starts = std::iter::once(0).chain(layer.text.match_indices('\n').map(|(i, _)| i + 1)).collect();
            layer.offset = joined.len();
            joined.push_str(&layer.text);
            joined.push('\n');
        }
        Ok(Chain { layers, joined })
    }

    /// The recipes of the chain as named, the extending one first.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.layers.iter().map(|l| l.path.as_path())
    }

    /// The text every merged span points into.
    pub(crate) fn joined(&self) -> &str {
        &self.joined
    }

    /// The recipe this chain means: one TOML table, every value with the span it was written at.
    pub fn merged(&self) -> Result<Spanned<DeTable<'_>>, RecipeError> {
        let mut merged: Option<Value<'_>> = None;
        for (depth, layer) in self.layers.iter().enumerate().rev() {
            let table = DeTable::parse(&layer.text)
                .map_err(|e| located(RecipeError::from_toml(&layer.path, &layer.text, &e), depth == 0))?;
            let span = table.span();
            let mut value = shift(Spanned::new(span, DeValue::Table(table.into_inner())), layer.offset);
            if let DeValue::Table(table) = value.get_mut() {
                table.remove(EXTENDS);
            }
            if !layer.prefix.as_os_str().is_empty() {
                for keys in PATH_KEYS {
                    rebase(value.get_mut(), keys, &layer.prefix);
                }
            }
            // Settled after each step: a base's own `{ append = [...] }` is its list before a
            // recipe extending it appends to that.
            merged = Some(self.settle(match merged {
                None => value,
                Some(base) => self.merge(base, value)?,
            })?);
        }
        let merged = merged.expect("a chain has a first recipe");
        let span = merged.span();
        match merged.into_inner() {
            DeValue::Table(table) => Ok(Spanned::new(span, table)),
            _ => unreachable!("a document is a table"),
        }
    }

    /// An error at `span` of the joined text, located in the file that holds it.
    /// A base's lines are never shown: `extends` may name any file the recipe can reach (a key,
    /// a credentials file), and only the place of its error is the recipe author's business.
    pub fn error(&self, span: Range<usize>, message: String, hint: &str) -> RecipeError {
        let index = self.layer_index(span.start);
        let layer = &self.layers[index];
        let local = span.start.saturating_sub(layer.offset)..span.end.saturating_sub(layer.offset);
        located(RecipeError::at(&layer.path, &layer.text, local, message, hint.to_string()), index == 0)
    }

    /// The file and line a span of the joined text was written at.
    pub fn origin(&self, span: Range<usize>) -> (&Path, usize) {
        let layer = &self.layers[self.layer_index(span.start)];
        let start = span.start.saturating_sub(layer.offset).min(layer.text.len());
        (&layer.path, layer.line_starts.partition_point(|&s| s <= start))
    }

    /// A TOML or serde error of the merged recipe, located in the file that wrote the value.
    pub(crate) fn toml_error(&self, error: &toml::de::Error) -> RecipeError {
        let (message, hint) = RecipeError::toml_message(error);
        self.error(error.span().unwrap_or(0..0), message, &hint)
    }

    fn layer_index(&self, at: usize) -> usize {
        self.layers.iter().rposition(|l| l.offset <= at).unwrap_or(0)
    }

    /// `over` (the extending recipe's value) merged onto `base`.
    fn merge<'a>(&self, base: Value<'a>, over: Value<'a>) -> Result<Value<'a>, RecipeError> {
        let span = over.span();
        let merged = match (base.into_inner(), over.into_inner()) {
            (DeValue::Array(mut base), DeValue::Table(over)) if is_append(&over) => {
                for item in appended(over) {
                    base.push(item);
                }
                DeValue::Array(base)
            }
            (_, DeValue::Table(over)) if is_append(&over) => {
                return Err(self.error(
                    span,
                    "`{ append = [...] }` appends to a list, and the base's value here is not one".into(),
                    "write the value whole instead, or append where the base has a list",
                ));
            }
            (DeValue::Table(mut base), DeValue::Table(over)) if !is_append(&over) => {
                for (key, value) in over {
                    let value = match base.remove(key.get_ref().as_ref()) {
                        Some(below) => self.merge(below, value)?,
                        None => value,
                    };
                    base.insert(key, value);
                }
                DeValue::Table(base)
            }
            (DeValue::Array(base), DeValue::Array(over)) if entries(&base) && entries(&over) && !over.is_empty() => {
                DeValue::Array(self.merge_entries(base, over)?)
            }
            (_, over) => over,
        };
        Ok(Spanned::new(span, merged))
    }

    /// Arrays of tables: an entry of `over` merges onto the base's entry of the same name (or
    /// takes it out, with `remove = true`); the others follow the base's, in order.
    fn merge_entries<'a>(&self, base: DeArray<'a>, over: DeArray<'a>) -> Result<DeArray<'a>, RecipeError> {
        let mut by_id: HashMap<(&'static str, String), usize> = HashMap::new();
        for (at, entry) in base.iter().enumerate() {
            if let Some(id) = identity(entry) {
                by_id.entry(id).or_insert(at);
            }
        }
        let mut kept: Vec<Option<Value<'a>>> = base.into_iter().map(Some).collect();
        let mut added = Vec::new();
        let mut seen = HashSet::new();
        for entry in over {
            let id = identity(&entry);
            // One file names an entry once, as a recipe without `extends` must: two would merge
            // into one silently.
            // An entry that takes a base's out may be followed by a new one of that name: how a
            // base's entry is replaced whole rather than merged onto.
            if let Some(id) = &id
                && removal(&entry).is_none()
                && !seen.insert(id.clone())
            {
                return Err(self.error(
                    entry.span(),
                    format!("the entry with {} = \"{}\" is listed twice", id.0, printable(&id.1)),
                    "give each entry its own name; to replace a base's entry whole, take it out first (its name and \
                     `remove = true`), then write the new entry",
                ));
            }
            let same = id.as_ref().and_then(|id| by_id.get(id)).copied().filter(|&at| kept[at].is_some());
            match (same, removal(&entry)) {
                (_, Some(span)) if entry.get_ref().as_table().is_some_and(|t| t.len() > 2) => {
                    return Err(self.error(
                        span,
                        "an entry with `remove = true` says only which entry it takes out".into(),
                        "keep its `name` (`path` for [[files]]) and `remove = true`, nothing else",
                    ));
                }
                (Some(at), None) => kept[at] = Some(self.merge(kept[at].take().expect("kept"), entry)?),
                (Some(at), Some(_)) => kept[at] = None,
                (None, Some(span)) => return Err(self.nothing_to_remove(span, id)),
                (None, None) => added.push(entry),
            }
        }
        Ok(kept.into_iter().flatten().chain(added).collect())
    }

    /// The tree without markers: a leftover `{ append = [...] }` (nothing below to append to) is
    /// its list; a leftover `remove = true` had nothing to remove.
    fn settle<'a>(&self, value: Value<'a>) -> Result<Value<'a>, RecipeError> {
        let span = value.span();
        let settled = match value.into_inner() {
            DeValue::Table(table) if is_append(&table) => DeValue::Array(appended(table).collect()),
            DeValue::Table(table) => DeValue::Table(
                table.into_iter().map(|(k, v)| Ok((k, self.settle(v)?))).collect::<Result<_, RecipeError>>()?,
            ),
            DeValue::Array(items) => {
                if let Some((span, id)) = items.iter().find_map(|e| Some((removal(e)?, identity(e)))) {
                    return Err(self.nothing_to_remove(span, id));
                }
                DeValue::Array(items.into_iter().map(|v| self.settle(v)).collect::<Result<_, _>>()?)
            }
            other => other,
        };
        Ok(Spanned::new(span, settled))
    }

    fn nothing_to_remove(&self, span: Range<usize>, id: Option<(&'static str, String)>) -> RecipeError {
        let what = id.map_or_else(
            || "an entry".into(),
            |(key, name)| format!("the entry with {key} = \"{}\"", printable(&name)),
        );
        self.error(
            span,
            format!("`remove = true` takes out {what}, which no recipe this one extends has"),
            "`remove = true` takes an entry of a base recipe out by its `name` (`path` for [[files]]); check the name",
        )
    }
}

/// The `extends` value of a recipe and where it is written, if it has one.
fn extends_of(layer: &Layer, first: bool) -> Result<Option<(String, Range<usize>)>, RecipeError> {
    let table = DeTable::parse(&layer.text)
        .map_err(|e| located(RecipeError::from_toml(&layer.path, &layer.text, &e), first))?;
    let Some(value) = table.get_ref().get(EXTENDS) else { return Ok(None) };
    match value.get_ref().as_str() {
        Some(named) if !named.is_empty() => Ok(Some((named.to_string(), value.span()))),
        _ => Err(located(
            RecipeError::at(
                &layer.path,
                &layer.text,
                value.span(),
                "`extends` is not the path of a recipe".into(),
                "write the base recipe's path as a string, relative to this recipe, e.g. extends = \"base.toml\""
                    .into(),
            ),
            first,
        )),
    }
}

/// An error in the first recipe keeps its lines (the top recipe's own leads-out rule applies
/// later); one in a base keeps only its place.
fn located(error: RecipeError, first: bool) -> RecipeError {
    match first {
        true => error,
        false => error.without_text(),
    }
}

/// A path as a person means it, for display: control characters escaped.
fn shown(path: &Path) -> String {
    printable(&path.display().to_string())
}

/// `path` without `.` components, as written: `./shared/base.toml` and `shared/base.toml` name a
/// file alike. `dir/..` stays: through a link, it is not the directory the text suggests.
fn lexical(path: &Path) -> PathBuf {
    path.components().filter(|c| *c != std::path::Component::CurDir).collect()
}

/// Text for a terminal or a comment: control characters (a newline, an escape) escaped, the
/// rest as it is.
pub fn printable(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { c.escape_debug().to_string() } else { c.to_string() }).collect()
}

/// `value` with every span moved `by` bytes on: its place in the joined text.
fn shift(value: Value<'_>, by: usize) -> Value<'_> {
    let span = value.span();
    let moved = match value.into_inner() {
        DeValue::Array(items) => DeValue::Array(items.into_iter().map(|v| shift(v, by)).collect()),
        DeValue::Table(table) => DeValue::Table(
            table
                .into_iter()
                .map(|(k, v)| {
                    let key_span = k.span();
                    (Spanned::new(key_span.start + by..key_span.end + by, k.into_inner()), shift(v, by))
                })
                .collect(),
        ),
        other => other,
    };
    Spanned::new(span.start + by..span.end + by, moved)
}

/// Rewrites the relative paths at `keys` in `value` (a path, or a list of paths) to name the
/// same files from the first recipe's directory. `*` is every entry of an array of tables or
/// every value of a table (`[python.packages.*]`-like settings by name).
fn rebase(value: &mut DeValue<'_>, keys: &[&str], prefix: &Path) {
    let rebased = |path: &mut Cow<'_, str>| {
        if !Path::new(path.as_ref()).is_absolute() {
            *path = Cow::Owned(lexical(&prefix.join(path.as_ref())).to_string_lossy().into_owned());
        }
    };
    match (value, keys.split_first()) {
        // `{ append = [...] }` holds what the list will hold: its items are rebased as the
        // list's would be.
        (DeValue::Table(table), _) if is_append(table) => {
            if let Some(list) = table.get_mut(APPEND) {
                rebase(list.get_mut(), keys, prefix);
            }
        }
        (DeValue::String(path), None) => rebased(path),
        (DeValue::Array(items), None) => {
            for item in items.iter_mut() {
                if let DeValue::String(path) = item.get_mut() {
                    rebased(path);
                }
            }
        }
        (DeValue::Array(items), Some((&"*", rest))) => {
            for item in items.iter_mut() {
                rebase(item.get_mut(), rest, prefix);
            }
        }
        (DeValue::Table(table), Some((&"*", rest))) => {
            for (_, item) in table.iter_mut() {
                rebase(item.get_mut(), rest, prefix);
            }
        }
        (DeValue::Table(table), Some((key, rest))) => {
            if let Some(item) = table.get_mut(*key) {
                rebase(item.get_mut(), rest, prefix);
            }
        }
        _ => {}
    }
}

/// `{ append = [...] }`: the one spelling of "add these to the base's list".
fn is_append(table: &DeTable<'_>) -> bool {
    table.len() == 1 && table.get(APPEND).is_some_and(|v| v.get_ref().is_array())
}

fn appended(marker: DeTable<'_>) -> impl Iterator<Item = Value<'_>> {
    marker.into_iter().flat_map(|(_, list)| match list.into_inner() {
        DeValue::Array(items) => items.into_iter().collect::<Vec<_>>(),
        _ => Vec::new(),
    })
}

/// Whether every item is a table (an empty list is of any kind).
fn entries(items: &DeArray<'_>) -> bool {
    items.iter().all(|v| v.get_ref().is_table())
}

/// What an entry of an array of tables is known by: its `name`, else its `path` ([[files]]).
fn identity(entry: &Value<'_>) -> Option<(&'static str, String)> {
    let table = entry.get_ref().as_table()?;
    ["name", "path"].into_iter().find_map(|key| Some((key, table.get(key)?.get_ref().as_str()?.to_string())))
}

/// Where an entry says `remove = true`.
fn removal(entry: &Value<'_>) -> Option<Range<usize>> {
    let marker = entry.get_ref().as_table()?.get(REMOVE)?;
    (marker.get_ref().as_bool() == Some(true)).then(|| marker.span())
}

#[cfg(test)]
mod tests;
