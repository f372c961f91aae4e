//! What the cache crate's integration tests share.

use composer_store::{ActionKey, ActionRecord, EntryKind, ObjectRef, RefKind, Store, Tree, TreeEntry};

/// A step result in `store`: a tree of one file and a log blob, recorded under a key made from
/// `data`.
pub fn result_with(store: &Store, data: serde_json::Value) -> (ActionKey, ActionRecord) {
    let content = store.put_content(b"file content").unwrap();
    let entry = TreeEntry {
        path: "usr/share/file".into(),
        kind: EntryKind::File { content, size: 12, packed: None },
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: 0,
        xattrs: vec![],
    };
    let mut tree = Tree { entries: vec![entry] };
    tree.normalize().unwrap();
    let tree = store.put_tree(&tree).unwrap();
    let blob = store.put_bytes(b"a log").unwrap();
    let key = ActionKey::new("build", 1).with("data", data.to_string());
    let record = ActionRecord {
        step: "build".into(),
        outputs: vec![ObjectRef { id: tree, kind: RefKind::Tree }, ObjectRef { id: blob.id, kind: RefKind::Blob }],
        inputs: vec![],
        data,
    };
    store.action_put(&key, &record).unwrap();
    (key, record)
}
