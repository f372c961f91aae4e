//! Recipe v1: the TOML file a user writes. Parsing rejects unknown keys and bad values with the
//! file, line and column of the offending text and a hint; everything past this crate can trust
//! a [`Recipe`].
//!
//! ```
//! let recipe = composer_recipe::Recipe::parse_str(
//!     "recipe.toml".as_ref(),
//!     "[image]\nname = \"x\"\nplatforms = [\"linux/amd64\"]\n[base]\nsuite = \"bookworm\"\nmirror = \"debian\"\n",
//! ).unwrap();
//! assert_eq!(recipe.image.platforms.get_ref()[0].debian_arch(), "amd64");
//! ```

mod error;
mod platform;
mod types;

pub use error::RecipeError;
pub use platform::Platform;
pub use types::*;

use std::path::{Path, PathBuf};

impl Recipe {
    /// Reads and validates a recipe file.
    pub fn load(path: &Path) -> Result<Recipe, RecipeError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| RecipeError::Read { path: path.to_path_buf(), source })?;
        Self::parse_str(path, &text)
    }

    pub fn parse_str(path: &Path, text: &str) -> Result<Recipe, RecipeError> {
        let mut recipe: Recipe = toml::from_str(text).map_err(|e| RecipeError::from_toml(path, text, &e))?;
        recipe.dir = path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
        recipe.validate(path, text)?;
        Ok(recipe)
    }

    fn validate(&self, path: &Path, text: &str) -> Result<(), RecipeError> {
        let invalid = |span: std::ops::Range<usize>, message: String, hint: &str| {
            RecipeError::at(path, text, span, message, hint.to_string())
        };
        if self.image.platforms.get_ref().is_empty() {
            return Err(invalid(
                self.image.platforms.span(),
                "`platforms` is empty".into(),
                "list at least one platform, e.g. platforms = [\"linux/amd64\"]",
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for platform in self.image.platforms.get_ref() {
            if !seen.insert(platform.to_string()) {
                return Err(invalid(
                    self.image.platforms.span(),
                    format!("platform `{platform}` is listed twice"),
                    "list each platform once",
                ));
            }
        }
        for file in &self.files {
            let target = file.path.get_ref();
            if !target.starts_with('/') || target.split('/').any(|c| c == "..") {
                return Err(invalid(
                    file.path.span(),
                    format!("file path `{target}` must be absolute and must not contain `..`"),
                    "write the path as it appears in the image, e.g. \"/etc/app.conf\"",
                ));
            }
            let ok = match file.kind {
                FileKind::File => file.source.is_some() || file.content.is_some(),
                FileKind::Dir => true,
                FileKind::Symlink => file.target.is_some(),
            };
            if !ok {
                return Err(invalid(
                    file.path.span(),
                    format!(
                        "`{target}` is a {:?} entry without its {}",
                        file.kind,
                        match file.kind {
                            FileKind::Symlink => "`target`",
                            _ => "`source` or `content`",
                        }
                    ),
                    "files need `source` (a path relative to the recipe) or `content`; symlinks need `target`",
                ));
            }
        }
        Ok(())
    }
}
