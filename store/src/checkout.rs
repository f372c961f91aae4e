//! Trees checked out as directories, for build roots: every file a hard link to its object, so a
//! root of thousands of files costs inodes, not copies. A checkout is derived data: it lives
//! under `checkouts/<tree hash>`, appears whole or not at all (built beside, then renamed), and
//! `gc` removes it. Objects are read-only; one that a tree marks executable is made `0555`,
//! which is harmless for every other link to it (nothing writes through a store object).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::confined::Confined;
use crate::{EntryKind, Hash, Store, StoreError};

impl Store {
    /// The directory holding tree `id`, checked out if it is not already. `extra_dirs` are
    /// created empty (mount points a sandbox needs) and are part of the checkout's identity.
    pub fn checkout(&self, id: &Hash, extra_dirs: &[&str]) -> Result<PathBuf, StoreError> {
        let mut name = blake3::Hasher::new();
        // 3: objects linked with their one mode and packed files written with it (see `fill`),
        // so no checkout made before is reused.
        name.update(b"checkout-3\0");
        name.update(&id.0);
        for dir in extra_dirs {
            name.update(dir.as_bytes());
            name.update(b"\0");
        }
        let name = name.finalize().to_hex().to_string();
        let base = self.dir("checkouts");
        let dest = base.join(&name);
        if dest.is_dir() {
            return Ok(dest);
        }
        fs::create_dir_all(&base).map_err(|e| StoreError::io("create", &base, e))?;
        // Two steps may check out the same root at once (two builds on one build root).
        let temp = self.dir("tmp").join(format!("checkout-{name}-{}", crate::temp_suffix()));
        let _ = fs::remove_dir_all(&temp);
        let result = self.fill(id, extra_dirs, &temp).and_then(|()| match fs::rename(&temp, &dest) {
            Ok(()) => Ok(()),
            // Another build checked out the same tree first; its copy is as good.
            Err(_) if dest.is_dir() => Ok(()),
            Err(e) => Err(StoreError::io("rename", &temp, e)),
        });
        let _ = fs::remove_dir_all(&temp);
        result.map(|()| dest)
    }

    /// Fills `root` from the tree. Every operation goes through [`Confined`], so that no entry,
    /// however the tree came to be, can create, link or chmod anything outside `root`; and every
    /// object is verified before it is linked, since the build that runs on the checkout reads
    /// the objects themselves.
    fn fill(&self, id: &Hash, extra_dirs: &[&str], root: &Path) -> Result<(), StoreError> {
        let tree = self.get_tree(id)?;
        let mut contents: Vec<(&Hash, Option<u64>)> = tree
            .entries
            .iter()
            .filter_map(|e| match &e.kind {
                EntryKind::File { content, size, packed: None } => Some((content, Some(*size))),
                EntryKind::File { packed: Some(packed), .. } => Some((&packed.pack, None)),
                _ => None,
            })
            .collect();
        contents.sort_unstable();
        contents.dedup();
        contents.par_iter().try_for_each(|(content, size)| match size {
            Some(size) => self.open_object_sized(content, *size)?.finish(),
            None => self.open_object(content)?.finish(),
        })?;

        fs::create_dir_all(root).map_err(|e| StoreError::io("create", root, e))?;
        let mut dir = Confined::open(root).map_err(|e| StoreError::io("open", root, e))?;
        let io = |action: &'static str, rel: &str, dir: &Confined| {
            let path = dir.display(rel);
            move |e| StoreError::io(action, &path, e)
        };
        let mut dir_modes: Vec<(&str, u32)> = Vec::new();
        let mut links: Vec<(&str, &str)> = Vec::new();
        for entry in &tree.entries {
            let rel = entry.path.as_str();
            match &entry.kind {
                EntryKind::Dir => {
                    dir.create_dir(rel).map_err(io("create", rel, &dir))?;
                    dir_modes.push((rel, entry.mode));
                }
                EntryKind::File { content, size, packed: Some(packed) } => {
                    // Inside a pack: no object of its own to link, so a file of its own, with
                    // the mode a linked object has (the umask must not reach a build).
                    let mut data = self.open_file_entry(content, *size, Some(packed))?;
                    let mut out = dir.create_new(rel, 0o600).map_err(io("create", rel, &dir))?;
                    std::io::copy(&mut data, &mut out)
                        .map_err(|e| StoreError::carried(e).unwrap_or_else(|e| io("write", rel, &dir)(e)))?;
                    out.set_permissions(fs::Permissions::from_mode(linked_mode(entry.mode)))
                        .map_err(io("chmod", rel, &dir))?;
                }
                EntryKind::File { content, .. } => {
                    let object = self.object_path(content);
                    // The build sees the object's own mode: 0444, or 0555 once any tree has
                    // wanted it executable. An object written before objects had one mode
                    // (with the writer's umask) gets it here.
                    let meta = fs::metadata(&object).map_err(|e| StoreError::io("stat", &object, e))?;
                    let mode = meta.permissions().mode() & 0o7777;
                    let wanted =
                        if entry.mode & 0o111 != 0 || mode == 0o555 { 0o555 } else { crate::object::OBJECT_MODE };
                    if mode != wanted {
                        fs::set_permissions(&object, fs::Permissions::from_mode(wanted))
                            .map_err(|e| StoreError::io("chmod", &object, e))?;
                    }
                    match dir.hard_link_from(&object, rel) {
                        Ok(()) => {}
                        // Too many links to one inode: a copy instead.
                        Err(e) if e.raw_os_error() == Some(31 /* EMLINK */) => {
                            let mut out = dir.create_new(rel, 0o600).map_err(io("create", rel, &dir))?;
                            let mut source = self.open_object(content)?;
                            std::io::copy(&mut source, &mut out).map_err(io("copy", rel, &dir))?;
                            out.set_permissions(fs::Permissions::from_mode(linked_mode(entry.mode)))
                                .map_err(io("chmod", rel, &dir))?;
                        }
                        Err(e) => return Err(io("link", rel, &dir)(e)),
                    }
                }
                EntryKind::Symlink { target } => dir.symlink(target, rel).map_err(io("symlink", rel, &dir))?,
                // Sorted by path, a link may come before the file it names: linked afterwards.
                EntryKind::Hardlink { target } => links.push((target.as_str(), rel)),
            }
        }
        for (target, rel) in links {
            dir.hard_link_within(target, rel).map_err(io("link", rel, &dir))?;
        }
        for extra in extra_dirs {
            dir.create_dir_all(extra).map_err(io("create", extra, &dir))?;
        }
        // Modes last, deepest first, so that a read-only directory does not stop its own filling.
        for (rel, mode) in dir_modes.into_iter().rev() {
            dir.chmod_dir(rel, mode | 0o700).map_err(io("chmod", rel, &dir))?;
        }
        Ok(())
    }
}

/// The mode of a file a checkout writes rather than links: what a linked object has.
fn linked_mode(entry_mode: u32) -> u32 {
    if entry_mode & 0o111 != 0 { 0o555 } else { crate::object::OBJECT_MODE }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;
    use crate::{Tree, TreeEntry};

    fn entry(path: &str, kind: EntryKind, mode: u32) -> TreeEntry {
        TreeEntry { path: path.into(), kind, mode, uid: 0, gid: 0, mtime: 0, xattrs: vec![] }
    }

    #[test]
    fn a_checkout_links_every_file_to_its_object_and_is_made_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let tool = store.put_content(b"#!/bin/sh\necho tool\n").unwrap();
        let data = store.put_content(b"data\n").unwrap();
        let mut tree = Tree {
            entries: vec![
                entry("usr", EntryKind::Dir, 0o755),
                entry("usr/bin/tool", EntryKind::File { content: tool, size: 20, packed: None }, 0o755),
                entry("usr/share/data", EntryKind::File { content: data, size: 5, packed: None }, 0o644),
                entry("usr/bin/again", EntryKind::Hardlink { target: "usr/bin/tool".into() }, 0o755),
                entry("bin", EntryKind::Symlink { target: "usr/bin".into() }, 0o777),
            ],
        };
        tree.normalize().unwrap();
        let id = store.put_tree(&tree).unwrap();
        let root = store.checkout(&id, &["build", "out"]).unwrap();
        let object = fs::metadata(store.object_path(&tool)).unwrap();
        let linked = fs::metadata(root.join("usr/bin/tool")).unwrap();
        assert_eq!((linked.dev(), linked.ino()), (object.dev(), object.ino()), "a hard link, not a copy");
        assert_eq!(linked.mode() & 0o111, 0o111, "executable where the tree says so");
        assert_eq!(fs::metadata(root.join("usr/bin/again")).unwrap().ino(), object.ino());
        assert_eq!(fs::read_link(root.join("bin")).unwrap(), Path::new("usr/bin"));
        assert_eq!(fs::read(root.join("bin/tool")).unwrap(), b"#!/bin/sh\necho tool\n");
        assert!(root.join("build").is_dir() && root.join("out").is_dir());
        assert_eq!(store.checkout(&id, &["build", "out"]).unwrap(), root, "the second call reuses it");
        assert_ne!(store.checkout(&id, &["build"]).unwrap(), root, "mount points are part of its identity");
        assert_eq!(fs::read_dir(store.dir("tmp")).unwrap().count(), 0, "nothing left half made");
    }

    #[test]
    fn two_threads_checking_out_one_tree_at_once_both_get_it_whole() {
        // Two builds on one build root start together: each fills its own temp directory.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut entries = vec![entry("usr", EntryKind::Dir, 0o755)];
        for i in 0..400 {
            let content = store.put_content(format!("file {i}\n").as_bytes()).unwrap();
            let size = format!("file {i}\n").len() as u64;
            entries.push(entry(&format!("usr/share/f{i:03}"), EntryKind::File { content, size, packed: None }, 0o644));
        }
        let mut tree = Tree { entries };
        tree.normalize().unwrap();
        let id = store.put_tree(&tree).unwrap();
        for _ in 0..5 {
            let _ = fs::remove_dir_all(store.dir("checkouts"));
            let roots: Vec<PathBuf> = std::thread::scope(|s| {
                let a = s.spawn(|| store.checkout(&id, &["build"]));
                let b = s.spawn(|| store.checkout(&id, &["build"]));
                vec![a.join().unwrap().unwrap(), b.join().unwrap().unwrap()]
            });
            assert_eq!(roots[0], roots[1]);
            assert_eq!(fs::read_dir(roots[0].join("usr/share")).unwrap().count(), 400);
        }
    }

    #[test]
    fn a_packed_file_is_written_from_its_pack_and_checked_against_its_hash() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (first, small) = (b"first file\n".to_vec(), b"#!/bin/sh\necho small\n".to_vec());
        let pack = store.put_content(&[first.clone(), small.clone()].concat()).unwrap();
        let file = |offset: u64| EntryKind::File {
            content: crate::Hash::of(&small),
            size: small.len() as u64,
            packed: Some(crate::Packed { pack, offset }),
        };
        let mut tree = Tree {
            entries: vec![
                entry("usr", EntryKind::Dir, 0o755),
                entry("usr/bin/small", file(first.len() as u64), 0o755),
                entry("usr/bin/again", EntryKind::Hardlink { target: "usr/bin/small".into() }, 0o755),
            ],
        };
        tree.normalize().unwrap();
        assert_eq!(tree.contents().collect::<Vec<_>>(), [&pack], "a packed file refers to its pack");
        let id = store.put_tree(&tree).unwrap();
        let root = store.checkout(&id, &[]).unwrap();
        assert_eq!(fs::read(root.join("usr/bin/small")).unwrap(), small);
        // Exactly a linked object's mode, whatever the umask.
        assert_eq!(fs::metadata(root.join("usr/bin/small")).unwrap().mode() & 0o7777, 0o555);
        let (a, b) =
            (fs::metadata(root.join("usr/bin/again")).unwrap(), fs::metadata(root.join("usr/bin/small")).unwrap());
        assert_eq!(a.ino(), b.ino());

        // An offset that names other bytes, or bytes past the pack's end, is refused: the pack is
        // treated as damaged and removed.
        for offset in [0, 1000] {
            let mut tree = Tree { entries: vec![entry("small", file(offset), 0o644)] };
            tree.normalize().unwrap();
            let id = store.put_tree(&tree).unwrap();
            assert!(matches!(store.checkout(&id, &[]), Err(StoreError::Corrupt { .. })), "offset {offset}");
            let _ = store.put_content(&[first.clone(), small.clone()].concat()).unwrap();
        }
    }
}
