//! Tree manifests: a directory tree as a sorted list of entries, each naming its content by
//! BLAKE3. The manifest's own hash therefore covers every byte and every attribute of the tree
//! (a Merkle root). Content is stored once however many trees use it.

use serde::{Deserialize, Serialize};

use crate::Hash;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum EntryKind {
    File {
        content: Hash,
        size: u64,
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
    /// the canonical order of manifests and of layer tars.
    pub fn normalize(&mut self) {
        self.entries.sort_by(|a, b| path_order(&a.path, &b.path));
        self.entries.dedup_by(|later, earlier| later.path == earlier.path);
    }

    /// As [`Tree::normalize`], but where two entries share a path the later one stays: trees
    /// laid over each other, the upper winning.
    pub fn normalize_last_wins(&mut self) {
        self.entries.reverse();
        self.normalize();
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("tree manifests always serialize")
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Tree, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Every content object this tree refers to.
    pub fn contents(&self) -> impl Iterator<Item = &Hash> {
        self.entries.iter().filter_map(|e| match &e.kind {
            EntryKind::File { content, .. } => Some(content),
            _ => None,
        })
    }
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
        tree.normalize();
        let paths: Vec<_> = tree.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["usr", "usr/lib", "usr/lib/a", "usr.x"]);
    }

    #[test]
    fn manifest_round_trips() {
        let tree = Tree { entries: vec![dir("etc")] };
        assert_eq!(Tree::from_bytes(&tree.to_bytes()).unwrap(), tree);
    }
}
