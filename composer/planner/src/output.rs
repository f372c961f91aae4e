//! A build's output directory into a store tree, normalised: owner root, mtime the recipe's
//! epoch, modes as written (permission bits only), files streamed into the store, hard links
//! kept as links. Anything but files, directories and symlinks is refused.
//!
//! The output is bounded (`[limits] step_output`): the directory is walked first, reading only
//! metadata, and the sizes of its files (each inode once; a sparse file by its size, which is
//! what the store would hold) are summed; past the limit the step fails there, naming its
//! largest files, before a byte is read. Reads are bounded by the limit too, so a file cannot
//! give more than the walk saw.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use composer_store::{EntryKind, Store, Tree, TreeEntry};

use crate::BuildError;

/// How many of the largest files an error over the limit names.
const LARGEST_SHOWN: usize = 5;

/// The bound on one step's output: which step (for the error) and how many bytes.
pub struct OutputLimit<'a> {
    /// What the step is, as the error names it: "build `hello` for linux/amd64".
    pub step: &'a str,
    pub bytes: u64,
}

/// One entry of the output as the walk found it, before anything is read.
struct Found {
    rel: String,
    path: PathBuf,
    meta: fs::Metadata,
}

pub fn tree_from_dir(store: &Store, root: &Path, epoch: u64, limit: &OutputLimit<'_>) -> Result<Tree, BuildError> {
    let mut found = Vec::new();
    walk(root, root, &mut found)?;
    check_size(&found, limit)?;
    let mut entries = Vec::new();
    let mut inodes: HashMap<(u64, u64), String> = HashMap::new();
    let mut budget = limit.bytes;
    for Found { rel, path, meta } in found {
        let err = |e: io::Error| BuildError::Io { action: "read build output", path: path.clone(), source: e };
        let mode = meta.mode() & 0o7777;
        let kind = if meta.is_dir() {
            EntryKind::Dir
        } else if meta.file_type().is_symlink() {
            let target = fs::read_link(&path).map_err(err)?;
            EntryKind::Symlink { target: composer_store::escape_name(target.as_os_str().as_bytes()) }
        } else {
            match (meta.nlink() > 1).then(|| inodes.get(&(meta.dev(), meta.ino()))).flatten() {
                Some(first) => EntryKind::Hardlink { target: first.clone() },
                None => {
                    inodes.insert((meta.dev(), meta.ino()), rel.clone());
                    // Never through a link that appeared since it was looked at.
                    let file = fs::OpenOptions::new()
                        .read(true)
                        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                        .open(&path)
                        .map_err(err)?;
                    let mut writer = store.writer()?;
                    let copied = io::copy(&mut file.take(budget + 1), &mut writer).map_err(err)?;
                    if copied > budget {
                        return Err(over_limit(limit, limit.bytes + 1, vec![(rel, copied)]));
                    }
                    budget -= copied;
                    let blob = writer.finish()?;
                    EntryKind::File { content: blob.id, size: blob.size, packed: None }
                }
            }
        };
        let mode = if matches!(kind, EntryKind::Symlink { .. }) { 0o777 } else { mode };
        entries.push(TreeEntry { path: rel, kind, mode, uid: 0, gid: 0, mtime: epoch, xattrs: Vec::new() });
    }
    let mut tree = Tree { entries };
    tree.normalize().map_err(composer_store::StoreError::from)?;
    Ok(tree)
}

/// Every entry beneath `dir`, depth first in name order (so that which of two hard-linked paths
/// is the link is the same on every run), by metadata only.
fn walk(root: &Path, dir: &Path, found: &mut Vec<Found>) -> Result<(), BuildError> {
    let err =
        |path: &Path, e: io::Error| BuildError::Io { action: "read build output", path: path.to_path_buf(), source: e };
    let mut children: Vec<_> =
        fs::read_dir(dir).map_err(|e| err(dir, e))?.collect::<Result<_, _>>().map_err(|e| err(dir, e))?;
    children.sort_by_key(|c| c.file_name());
    for child in children {
        let path = child.path();
        // Names that are not UTF-8 are kept byte for byte, as unpacking keeps a package's.
        let rel = composer_store::escape_name(path.strip_prefix(root).expect("under root").as_os_str().as_bytes());
        let meta = fs::symlink_metadata(&path).map_err(|e| err(&path, e))?;
        if !(meta.is_dir() || meta.is_file() || meta.file_type().is_symlink()) {
            return Err(BuildError::StrangeOutput { path: rel });
        }
        let is_dir = meta.is_dir();
        found.push(Found { rel, path: path.clone(), meta });
        if is_dir {
            walk(root, &path, found)?;
        }
    }
    Ok(())
}

/// Refuses an output whose files add up to more than the limit.
fn check_size(found: &[Found], limit: &OutputLimit<'_>) -> Result<(), BuildError> {
    let mut seen = std::collections::HashSet::new();
    let files: Vec<(&str, u64)> = found
        .iter()
        .filter(|f| f.meta.is_file() && seen.insert((f.meta.dev(), f.meta.ino())))
        .map(|f| (f.rel.as_str(), f.meta.len()))
        .collect();
    let total = files.iter().fold(0u64, |sum, (_, size)| sum.saturating_add(*size));
    if total <= limit.bytes {
        return Ok(());
    }
    let mut largest: Vec<(String, u64)> = files.iter().map(|(rel, size)| (rel.to_string(), *size)).collect();
    largest.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    largest.truncate(LARGEST_SHOWN);
    Err(over_limit(limit, total, largest))
}

fn over_limit(limit: &OutputLimit<'_>, total: u64, largest: Vec<(String, u64)>) -> BuildError {
    BuildError::OutputTooLarge { step: limit.step.to_string(), total, limit: limit.bytes, largest }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_output_past_its_limit_is_refused_before_a_byte_of_it_is_read() {
        let store_dir = tempfile::tempdir().unwrap();
        let store = Store::open(store_dir.path()).unwrap();
        let out = tempfile::tempdir().unwrap();
        fs::create_dir(out.path().join("usr")).unwrap();
        fs::write(out.path().join("usr/small"), b"small").unwrap();
        // 1 TiB that takes no disk: read whole, it would take hours.
        fs::File::create(out.path().join("usr/sparse")).unwrap().set_len(1 << 40).unwrap();
        fs::hard_link(out.path().join("usr/small"), out.path().join("usr/again")).unwrap();
        let limit = OutputLimit { step: "build `probe` for linux/amd64", bytes: 1 << 30 };
        let started = std::time::Instant::now();
        let error = tree_from_dir(&store, out.path(), 0, &limit).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "{:?}", started.elapsed());
        let BuildError::OutputTooLarge { total, largest, .. } = &error else { panic!("{error}") };
        assert_eq!(*total, (1 << 40) + 5, "a hard link counts once");
        assert_eq!(largest[0], ("usr/sparse".to_string(), 1 << 40));
        let message = error.to_string();
        assert!(message.contains("build `probe`") && message.contains("1 GiB") && message.contains("usr/sparse"));
        assert!(error.hint().unwrap().contains("[limits] step_output"));

        fs::remove_file(out.path().join("usr/sparse")).unwrap();
        let tree = tree_from_dir(&store, out.path(), 0, &limit).unwrap();
        assert!(tree.entries.iter().any(|e| matches!(e.kind, EntryKind::Hardlink { .. })));
    }
}
