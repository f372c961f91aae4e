//! Writes the `bundle` target's seed: a real bundle of one signed step result, one input and one
//! lock file, signed with the key whose public half `bundle_seed.pub` holds.
//!
//!   cargo run --manifest-path tests/fuzz/Cargo.toml --bin bundle-seed -- corpus/bundle/seed

use composer_cache::{SecretKey, bundle};
use composer_store::{ActionKey, ActionRecord, EntryKind, ObjectRef, RefKind, Store, Tree, TreeEntry};

/// A key for fuzzing only: it signs nothing anyone trusts.
const SEED_SECRET_KEY: &str = include_str!("bundle_seed.key");

fn main() {
    let dest = std::env::args_os().nth(1).expect("usage: bundle-seed FILE");
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
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
    let log = store.put_bytes(b"a log").unwrap();
    let key = ActionKey::new("build", 1).with("data", "seed");
    let record = ActionRecord {
        step: "build".into(),
        outputs: vec![ObjectRef { id: tree, kind: RefKind::Tree }, ObjectRef { id: log.id, kind: RefKind::Blob }],
        inputs: vec![],
        data: serde_json::json!({"name": "seed"}),
    };
    store.action_put(&key, &record).unwrap();
    let input = store.put_bytes(b"an input, a package or a wheel").unwrap();
    let locks = [("app.lock".to_string(), b"version = 1\n".to_vec())];
    let secret = SecretKey::parse(SEED_SECRET_KEY.trim()).unwrap();
    bundle::write(&store, &[(key, record)], &[input.sha256], &locks, Some(&secret), dest.as_ref()).unwrap();
}
