//! Tree manifests: a directory tree as a sorted list of entries, each naming its content by
//! BLAKE3. The manifest's own hash therefore covers every byte and every attribute of the tree
//! (a Merkle root). Content is stored once however many trees use it; the small files of an
//! unpacked package share one object ([`Packed`]), so that unpacking a package creates two files
//! in the store rather than one per file it ships.

use serde::{Deserialize, Serialize};

use crate::Hash;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum EntryKind {
    File {
        content: Hash,
        size: u64,
        /// Where the content lies in a pack, for small files: then no object of its own holds it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        packed: Option<Packed>,
    },
    Dir,
    Symlink {
        target: String,
    },
    /// A hard link to an earlier entry of the same tree (its path).
    Hardlink {
        target: String,
    },
}

/// Where a small file's content lies inside a pack: one object that holds the small files of a
/// package one after another. Its BLAKE3 is the entry's `content` like any file's, checked when
/// it is read; the pack itself is an object named by its own hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Packed {
    pub pack: Hash,
    pub offset: u64,
}

/// Files up to this size are packed by writers that choose to.
pub const PACK_MAX: u64 = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeEntry {
    /// Relative path with `/` separators, no leading `./` or `/`, never `..`.
    pub path: String,
    #[serde(flatten)]
    pub kind: EntryKind,
    /// Permission bits including setuid, setgid and sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Seconds since the epoch, as the source recorded it (clamped when a layer is written).
    pub mtime: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<(String, Vec<u8>)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub entries: Vec<TreeEntry>,
}

impl Tree {
    /// Sorts entries so that a directory precedes its contents and siblings are in byte order:
    /// the canonical order of manifests and of layer tars. Where several trees were merged, an
    /// entry that lies beneath another tree's symlink moves to where the link points inside the
    /// tree, as dpkg would put it on a root filesystem (without ever following a link on the
    /// host); then the tree is checked with [`Tree::validate`].
    pub fn normalize(&mut self) -> Result<(), TreeError> {
        self.entries.sort_by(|a, b| path_order(&a.path, &b.path));
        self.entries.dedup_by(|later, earlier| later.path == earlier.path);
        if self.resolve_beneath_symlinks()? {
            self.entries.sort_by(|a, b| path_order(&a.path, &b.path));
            self.entries.dedup_by(|later, earlier| later.path == earlier.path);
        }
        self.validate()
    }

    /// As [`Tree::normalize`], but where two entries share a path the later one stays: trees
    /// laid over each other, the upper winning.
    pub fn normalize_last_wins(&mut self) -> Result<(), TreeError> {
        self.entries.reverse();
        self.normalize()
    }

    /// Checks what every consumer of a tree relies on, so that a tree from a hostile package or
    /// a damaged store cannot make a checkout or a layer write outside its root: every path is
    /// relative, free of `.`, `..`, empty components and NUL; no entry lies beneath a symlink or
    /// a file; a hard link names a regular file of the same tree.
    pub fn validate(&self) -> Result<(), TreeError> {
        let mut kinds: std::collections::HashMap<&str, &EntryKind> = std::collections::HashMap::new();
        for entry in &self.entries {
            check_path(&entry.path)?;
            kinds.insert(entry.path.as_str(), &entry.kind);
        }
        for entry in &self.entries {
            let mut end = 0;
            while let Some(slash) = entry.path[end..].find('/') {
                end += slash;
                let ancestor = &entry.path[..end];
                match kinds.get(ancestor) {
                    Some(EntryKind::Symlink { .. }) => {
                        return Err(TreeError::new(&entry.path, TreeProblem::BeneathSymlink(ancestor.to_string())));
                    }
                    Some(EntryKind::File { .. } | EntryKind::Hardlink { .. }) => {
                        return Err(TreeError::new(&entry.path, TreeProblem::BeneathFile(ancestor.to_string())));
                    }
                    _ => {}
                }
                end += 1;
            }
            match &entry.kind {
                EntryKind::Hardlink { target } => match kinds.get(target.as_str()) {
                    Some(EntryKind::File { .. }) => {}
                    _ => {
                        return Err(TreeError::new(&entry.path, TreeProblem::HardLinkNotToAFile(target.clone())));
                    }
                },
                EntryKind::Symlink { target } if target.is_empty() || !escapes_are_well_formed(target) => {
                    return Err(TreeError::new(&entry.path, TreeProblem::BadSymlinkTarget));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Moves entries that lie beneath a symlink of the tree to the path the link resolves to
    /// within the tree (absolute targets from the tree's root, `..` stopping at the root, as in
    /// a chroot). Returns whether anything moved.
    fn resolve_beneath_symlinks(&mut self) -> Result<bool, TreeError> {
        let links: std::collections::HashMap<String, String> = self
            .entries
            .iter()
            .filter_map(|e| match &e.kind {
                EntryKind::Symlink { target } => Some((e.path.clone(), target.clone())),
                _ => None,
            })
            .collect();
        if links.is_empty() {
            return Ok(false);
        }
        let mut moved = false;
        for entry in &mut self.entries {
            let resolved = resolve_parents(&entry.path, &links)?;
            if resolved != entry.path {
                moved = true;
                if let EntryKind::Hardlink { target } = &mut entry.kind {
                    *target = resolve_parents(target, &links)?;
                }
                entry.path = resolved;
            } else if let EntryKind::Hardlink { target } = &mut entry.kind {
                let resolved = resolve_parents(target, &links)?;
                moved |= resolved != *target;
                *target = resolved;
            }
        }
        Ok(moved)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("tree manifests always serialize")
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Tree, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Every object this tree refers to: contents, and the packs that hold small ones (once per
    /// entry: callers that need each once deduplicate).
    pub fn contents(&self) -> impl Iterator<Item = &Hash> {
        self.entries.iter().filter_map(|e| match &e.kind {
            EntryKind::File { packed: Some(packed), .. } => Some(&packed.pack),
            EntryKind::File { content, packed: None, .. } => Some(content),
            _ => None,
        })
    }
}

/// Why a tree is not acceptable, naming the entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entry `{path}`: {reason}")]
pub struct TreeError {
    pub path: String,
    #[source]
    pub reason: TreeProblem,
}

/// What is wrong with a tree's entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeProblem {
    #[error("it lies beneath the symlink `{0}`")]
    BeneathSymlink(String),
    #[error("it lies beneath the file `{0}`")]
    BeneathFile(String),
    #[error("hard link to `{0}`, not a file of the tree")]
    HardLinkNotToAFile(String),
    #[error("symlink with an empty target or a NUL in it")]
    BadSymlinkTarget,
    #[error("empty path")]
    EmptyPath,
    #[error("NUL in the path")]
    Nul,
    #[error("not a plain relative path (absolute, or with `.`, `..` or `//`)")]
    NotPlainRelative,
    #[error("too many levels of symlinks beneath it")]
    SymlinkLoop,
    #[error("it resolves to the root of the tree")]
    ResolvesToRoot,
}

impl TreeError {
    fn new(path: &str, reason: TreeProblem) -> TreeError {
        TreeError { path: path.escape_debug().to_string(), reason }
    }
}

/// A file name's bytes as a tree holds them. Names are bytes on Linux, and packages do ship
/// names that are not UTF-8; such a name must reach the image byte for byte, not with U+FFFD in
/// place of what it had. Tree paths are JSON strings, so each byte of an invalid UTF-8
/// sequence is written as NUL and two lower-case hex digits: NUL cannot occur in a file name,
/// so the escape is unambiguous and a valid UTF-8 name is its own encoding.
pub fn escape_name(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for byte in chunk.invalid() {
            out.push('\0');
            out.push_str(&format!("{byte:02x}"));
        }
    }
    out
}

/// The bytes a tree path (or link target) stands for; see [`escape_name`].
pub fn name_bytes(path: &str) -> std::borrow::Cow<'_, [u8]> {
    if !path.contains('\0') {
        return std::borrow::Cow::Borrowed(path.as_bytes());
    }
    let mut out = Vec::with_capacity(path.len());
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == 0
            && let Some(byte) = path.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Whether every NUL in `path` starts a well-formed escape of [`escape_name`].
fn escapes_are_well_formed(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.iter().enumerate().filter(|(_, b)| **b == 0).all(|(i, _)| {
        path.get(i + 1..i + 3).is_some_and(|h| h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    })
}

/// A tree path: relative, `/`-separated, no empty, `.` or `..` component, no NUL but in the
/// escapes of non-UTF-8 bytes ([`escape_name`]).
pub fn check_path(path: &str) -> Result<(), TreeError> {
    if path.is_empty() {
        return Err(TreeError::new(path, TreeProblem::EmptyPath));
    }
    if !escapes_are_well_formed(path) {
        return Err(TreeError::new(path, TreeProblem::Nul));
    }
    if path.split('/').any(|c| matches!(c, "" | "." | "..")) {
        return Err(TreeError::new(path, TreeProblem::NotPlainRelative));
    }
    Ok(())
}

/// The path with every symlink among its parents replaced by what it points at in the tree.
fn resolve_parents(path: &str, links: &std::collections::HashMap<String, String>) -> Result<String, TreeError> {
    // Linux gives up after 40 links; so does dpkg's view of the filesystem.
    let mut hops = 0;
    let mut done: Vec<String> = Vec::new();
    let mut rest: std::collections::VecDeque<String> = path.split('/').map(str::to_string).collect();
    while let Some(component) = rest.pop_front() {
        match component.as_str() {
            "" | "." => continue,
            ".." => {
                done.pop();
                continue;
            }
            _ => done.push(component),
        }
        // The last component is the entry itself: a link there is the entry, not a parent.
        if rest.is_empty() {
            break;
        }
        if let Some(target) = links.get(&done.join("/")) {
            hops += 1;
            if hops > 40 {
                return Err(TreeError::new(path, TreeProblem::SymlinkLoop));
            }
            done.pop();
            if target.starts_with('/') {
                done.clear();
            }
            for part in target.split('/').rev() {
                rest.push_front(part.to_string());
            }
        }
    }
    let resolved = done.join("/");
    if resolved.is_empty() {
        return Err(TreeError::new(path, TreeProblem::ResolvesToRoot));
    }
    Ok(resolved)
}

/// Component-wise ordering, so `a/b` sorts before `a.b` would not matter and `a` precedes `a/x`.
pub fn path_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.split('/').cmp(b.split('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(path: &str) -> TreeEntry {
        TreeEntry { path: path.into(), kind: EntryKind::Dir, mode: 0o755, uid: 0, gid: 0, mtime: 0, xattrs: vec![] }
    }

    #[test]
    fn directories_precede_their_contents() {
        let mut tree = Tree { entries: vec![dir("usr/lib"), dir("usr.x"), dir("usr"), dir("usr/lib/a")] };
        tree.normalize().unwrap();
        let paths: Vec<_> = tree.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["usr", "usr/lib", "usr/lib/a", "usr.x"]);
    }

    fn file(path: &str) -> TreeEntry {
        TreeEntry { kind: EntryKind::File { content: crate::Hash([0; 32]), size: 0, packed: None }, ..dir(path) }
    }

    fn link(path: &str, target: &str) -> TreeEntry {
        TreeEntry { kind: EntryKind::Symlink { target: target.into() }, ..dir(path) }
    }

    #[test]
    fn entries_beneath_a_symlink_move_where_it_points_inside_the_tree() {
        let mut tree = Tree {
            entries: vec![
                dir("opt"),
                link("opt/esc", "/host/dir"),
                file("opt/esc/file"),
                dir("opt/esc/sub"),
                link("opt/up", "../../../../etc"),
                file("opt/up/passwd"),
            ],
        };
        tree.normalize().unwrap();
        let paths: Vec<_> = tree.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["etc/passwd", "host/dir/file", "host/dir/sub", "opt", "opt/esc", "opt/up"]);
    }

    #[test]
    fn names_that_are_not_utf8_round_trip_byte_for_byte() {
        for bytes in [&b"caf\xe9"[..], b"plain", b"\xff\xfe/x", "é".as_bytes(), b"a\xc3"] {
            let escaped = escape_name(bytes);
            assert_eq!(name_bytes(&escaped).as_ref(), bytes, "{escaped:?}");
            check_path(&escaped).unwrap();
        }
        assert_eq!(escape_name("é".as_bytes()), "é", "valid UTF-8 is its own encoding");
        assert!(check_path("a\0zz").is_err() && check_path("a\0").is_err());
    }

    #[test]
    fn a_link_loop_is_refused() {
        let mut tree = Tree { entries: vec![link("a", "b"), link("b", "a"), file("a/x")] };
        assert_eq!(tree.normalize().unwrap_err().reason, TreeProblem::SymlinkLoop);
    }

    #[test]
    fn validation_names_the_entry_that_could_leave_the_root() {
        for (entries, reason) in [
            (vec![link("opt/esc", "/host"), file("opt/esc/file")], "beneath the symlink `opt/esc`"),
            (vec![file("etc/x"), file("etc/x/y")], "beneath the file `etc/x`"),
            (vec![file("../etc/passwd")], "not a plain relative path"),
            (vec![file("/etc/passwd")], "not a plain relative path"),
            (vec![file("etc/./x")], "not a plain relative path"),
            (vec![file("a\0b")], "NUL"),
            (vec![TreeEntry { kind: EntryKind::Hardlink { target: "nowhere".into() }, ..dir("x") }], "hard link"),
        ] {
            let err = Tree { entries }.validate().unwrap_err();
            assert!(err.to_string().contains(reason), "{err}");
        }
    }

    #[test]
    fn manifest_round_trips() {
        let tree = Tree { entries: vec![dir("etc")] };
        assert_eq!(Tree::from_bytes(&tree.to_bytes()).unwrap(), tree);
    }
}
