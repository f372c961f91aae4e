//! Local files a recipe names (`[[files]] source`, `[[sources]] path`): read through the one
//! reader of user-named files ([`composer_store::userfile`]), confined to the recipe's directory
//! and the `--allow-path` ones, regular files only, with a bound, so that `/dev/zero`, a FIFO or
//! a file that grows while it is read cannot exhaust memory.

use std::path::{Path, PathBuf};

use composer_recipe::Recipe;
use composer_store::userfile::{self, Kind, UserFileError};

/// Reads the local file `path` (relative to the recipe) of `recipe` as a file of `kind`; the
/// real path comes with it.
pub(crate) fn read(recipe: &Recipe, path: &Path, kind: Kind) -> Result<(PathBuf, Vec<u8>), UserFileError> {
    let policy = recipe.file_policy(kind);
    let file = userfile::open(&policy.join(path), &policy)?;
    let real = file.real_path().to_path_buf();
    Ok((real, file.read_all()?))
}
