use std::ops::Range;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    #[error("failed to read recipe `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: composer_store::userfile::UserFileError,
    },
    /// `snippet` is the line with a caret under the place, after a newline; empty where the
    /// recipe's text may not be shown.
    #[error("{}:{line}:{column}: {message}{snippet}", path.display())]
    Invalid { path: PathBuf, line: usize, column: usize, message: String, snippet: String, hint: String },
}

impl RecipeError {
    pub fn hint(&self) -> Option<String> {
        match self {
            RecipeError::Invalid { hint, .. } if !hint.is_empty() => Some(hint.clone()),
            RecipeError::Read { source, .. } => source
                .hint()
                .or_else(|| Some("check the path; recipes are TOML files such as recipes/debian-python.toml".into())),
            _ => None,
        }
    }

    /// The same error without the recipe's line: for a file that may not be a recipe at all.
    pub(crate) fn without_text(self) -> RecipeError {
        match self {
            RecipeError::Invalid { path, line, column, message, hint, .. } => {
                RecipeError::Invalid { path, line, column, message, snippet: String::new(), hint }
            }
            other => other,
        }
    }

    pub(crate) fn from_toml(path: &Path, text: &str, error: &toml::de::Error) -> RecipeError {
        let (message, hint) = Self::toml_message(error);
        RecipeError::at(path, text, error.span().unwrap_or(0..0), message, hint)
    }

    /// What a TOML or serde error says, and what to do about it.
    pub(crate) fn toml_message(error: &toml::de::Error) -> (String, String) {
        let message = error.message().trim().to_string();
        let hint = if message.starts_with("unknown field") || message.starts_with("unknown variant") {
            // serde names the word and what it expected, each in backticks.
            let quoted: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
            let near = match quoted.split_first() {
                Some((word, expected)) => crate::suggest::nearest(word, expected.iter().copied(), 3),
                None => Vec::new(),
            };
            match near.is_empty() {
                true => "remove the key or fix its spelling; docs/recipe.md lists every key".to_string(),
                false => format!("{} (docs/recipe.md lists them all)", crate::suggest::did_you_mean(&near)),
            }
        } else if message.starts_with("missing field") {
            "add the key; docs/recipe.md lists what each table needs".to_string()
        } else {
            "see docs/recipe.md for the recipe format".to_string()
        };
        (message, hint)
    }

    pub(crate) fn at(path: &Path, text: &str, span: Range<usize>, message: String, hint: String) -> RecipeError {
        let start = span.start.min(text.len());
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line = text[..start].matches('\n').count() + 1;
        let column = text[line_start..start].chars().count() + 1;
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let source_line = &text[line_start..line_end];
        let width = text[start..span.end.clamp(start, line_end)].chars().count().max(1);
        let snippet = format!("\n{line:>4} | {source_line}\n     | {}{}", " ".repeat(column - 1), "^".repeat(width));
        RecipeError::Invalid { path: path.to_path_buf(), line, column, message, snippet, hint }
    }
}
