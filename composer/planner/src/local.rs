//! Local files a recipe names (`[[files]] source`, `[[sources]] path`): resolved inside the
//! recipe's directory (see `Recipe::local_path`) and read with a bound, regular files only, so
//! that `/dev/zero`, a FIFO or a file that grows while it is read cannot exhaust memory.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use composer_recipe::Recipe;

/// The largest `[[files]]` file: it is held in memory while it is stored.
pub(crate) const MAX_FILE: u64 = 1 << 30;
/// The largest local source tarball.
pub(crate) const MAX_SOURCE: u64 = 4 << 30;

/// Reads the local file `path` of `recipe`; the error says why, naming the file.
pub(crate) fn read(recipe: &Recipe, path: &Path, limit: u64) -> Result<(PathBuf, Vec<u8>), String> {
    let real = recipe.local_path(path)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&real)
        .map_err(|e| format!("`{}`: {e}", real.display()))?;
    let meta = file.metadata().map_err(|e| format!("`{}`: {e}", real.display()))?;
    if !meta.is_file() {
        return Err(format!("`{}` is not a regular file", real.display()));
    }
    if meta.len() > limit {
        return Err(format!("`{}` holds {} bytes, more than the {limit} a local file may", real.display(), meta.len()));
    }
    let mut data = Vec::with_capacity(meta.len() as usize);
    file.take(meta.len() + 1).read_to_end(&mut data).map_err(|e| format!("`{}`: {e}", real.display()))?;
    if data.len() as u64 != meta.len() {
        return Err(format!("`{}` changed size while it was read", real.display()));
    }
    Ok((real, data))
}
