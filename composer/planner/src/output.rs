//! A build's output directory into a store tree, normalised: owner root, mtime the recipe's
//! epoch, modes as written (permission bits only), files streamed into the store, hard links
//! kept as links. Anything but files, directories and symlinks is refused.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use composer_store::{EntryKind, Store, Tree, TreeEntry};

use crate::BuildError;

pub fn tree_from_dir(store: &Store, root: &Path, epoch: u64) -> Result<Tree, BuildError> {
    let mut entries = Vec::new();
    let mut inodes: HashMap<(u64, u64), String> = HashMap::new();
    walk(store, root, root, epoch, &mut entries, &mut inodes)?;
    let mut tree = Tree { entries };
    tree.normalize().map_err(composer_store::StoreError::from)?;
    Ok(tree)
}

fn walk(
    store: &Store,
    root: &Path,
    dir: &Path,
    epoch: u64,
    entries: &mut Vec<TreeEntry>,
    inodes: &mut HashMap<(u64, u64), String>,
) -> Result<(), BuildError> {
    let err =
        |path: &Path, e: io::Error| BuildError::Io { action: "read build output", path: path.to_path_buf(), source: e };
    let mut children: Vec<_> =
        fs::read_dir(dir).map_err(|e| err(dir, e))?.collect::<Result<_, _>>().map_err(|e| err(dir, e))?;
    // Sorted, so that which of two hard-linked paths is the link is the same on every run.
    children.sort_by_key(|c| c.file_name());
    for child in children {
        let path = child.path();
        // Names that are not UTF-8 are kept byte for byte, as unpacking keeps a package's.
        let rel = composer_store::escape_name(path.strip_prefix(root).expect("under root").as_os_str().as_bytes());
        let meta = fs::symlink_metadata(&path).map_err(|e| err(&path, e))?;
        let mode = meta.mode() & 0o7777;
        let kind = if meta.is_dir() {
            EntryKind::Dir
        } else if meta.file_type().is_symlink() {
            let target = fs::read_link(&path).map_err(|e| err(&path, e))?;
            EntryKind::Symlink { target: composer_store::escape_name(target.as_os_str().as_bytes()) }
        } else if meta.is_file() {
            match (meta.nlink() > 1).then(|| inodes.get(&(meta.dev(), meta.ino()))).flatten() {
                Some(first) => EntryKind::Hardlink { target: first.clone() },
                None => {
                    inodes.insert((meta.dev(), meta.ino()), rel.clone());
                    // Never through a link that appeared since it was looked at.
                    let mut file = fs::OpenOptions::new()
                        .read(true)
                        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                        .open(&path)
                        .map_err(|e| err(&path, e))?;
                    let mut writer = store.writer()?;
                    io::copy(&mut file, &mut writer).map_err(|e| err(&path, e))?;
                    let blob = writer.finish()?;
                    EntryKind::File { content: blob.id, size: blob.size, packed: None }
                }
            }
        } else {
            return Err(BuildError::Sandbox(format!(
                "the build left `{rel}` in its output, which is neither a file, a directory nor a symlink"
            )));
        };
        let is_dir = matches!(kind, EntryKind::Dir);
        let mode = if matches!(kind, EntryKind::Symlink { .. }) { 0o777 } else { mode };
        entries.push(TreeEntry { path: rel, kind, mode, uid: 0, gid: 0, mtime: epoch, xattrs: Vec::new() });
        if is_dir {
            walk(store, root, &path, epoch, entries, inodes)?;
        }
    }
    Ok(())
}
