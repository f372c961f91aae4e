//! The image as a backend sees it while it writes its database, and what it adds.

use std::collections::HashMap;

use composer_store::{EntryKind, Hash, Store, StoreError, TreeEntry};

/// What the distribution adds to the system layer.
#[derive(Debug, Default)]
pub struct SystemFiles {
    /// Files (path relative to the root, content, mode).
    pub files: Vec<(String, Vec<u8>, u32)>,
    /// Symlinks (absolute path, target).
    pub links: Vec<(String, String)>,
    /// The system accounts the recipe's are appended to (passwd and group lines).
    pub passwd: String,
    pub group: String,
}

/// The packages' files, merged by path, to answer "does the image hold X" and "what is in X".
pub struct ImageView<'a> {
    pub store: &'a Store,
    pub entries: HashMap<String, TreeEntry>,
    /// Contents kept with the packages' listings, by BLAKE3: of a package layered straight from
    /// its file, only what the backend reads (`Backend::system_reads`) is anywhere at all.
    pub kept: HashMap<Hash, Vec<u8>>,
}

impl<'a> ImageView<'a> {
    pub fn new(store: &'a Store) -> Self {
        ImageView { store, entries: HashMap::new(), kept: HashMap::new() }
    }

    pub fn exists(&self, absolute: &str) -> bool {
        self.entries.contains_key(absolute.trim_start_matches('/'))
    }

    /// The content of the file at `path`; `None` when the image has no file there. A content
    /// that is neither kept nor in the store (damaged, or never kept) is an error, not a gap.
    pub fn read(&self, path: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(entry) = self.entries.get(path) else { return Ok(None) };
        let EntryKind::File { content, .. } = &entry.kind else { return Ok(None) };
        if let Some(data) = self.kept.get(content) {
            return Ok(Some(data.clone()));
        }
        self.store.read_file_entry(&entry.kind)
    }
}
