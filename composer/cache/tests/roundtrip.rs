//! A result pushed from one store to a `dir:` cache and substituted into another: small claims
//! inside their manifest, large ones as the manifest's config blob, trees as packs.

// Test code may make temporary directories under TMPDIR and read its environment (clippy.toml
// forbids it to the library).
#![allow(clippy::disallowed_methods)]

use common::result_with;
use composer_cache::push::Pusher;
use composer_cache::{DirCache, Remote, SecretKey, Substituters, TrustedKeys};
use composer_store::{ActionKey, Store};

mod common;

/// Directories for two machines' stores, the cache between them and push's temp files.
fn dirs() -> [tempfile::TempDir; 4] {
    std::array::from_fn(|_| tempfile::tempdir().unwrap())
}

#[test]
fn small_and_large_claims_travel_and_come_back_as_the_same_records() {
    let [one_dir, two_dir, cache_dir, temp] = dirs();
    let one = Store::open(one_dir.path()).unwrap();
    let small = result_with(&one, serde_json::json!({"name": "small"}));
    let large = result_with(&one, serde_json::json!({"files": "x".repeat(40_000)}));
    let key = SecretKey::generate("test").unwrap();
    let cache = DirCache::create(&cache_dir.path().join("cache")).unwrap();
    let pusher = Pusher::new(&one, &cache, &key, temp.path());
    pusher.push_all(&[small.clone(), large.clone()], &[]).unwrap();
    assert_eq!(pusher.stats().results, 2);

    // The small claim is in its manifest; the large one is a blob of its own.
    let manifest = |k: &ActionKey| -> serde_json::Value {
        serde_json::from_slice(&cache.manifest(&composer_cache::claim::step_tag(k)).unwrap().unwrap()).unwrap()
    };
    assert!(manifest(&small.0)["annotations"]["dev.composer.claim"].is_string());
    assert!(manifest(&large.0)["annotations"]["dev.composer.claim"].is_null());
    assert_eq!(manifest(&large.0)["config"]["mediaType"], "application/vnd.composer.claim.v1+json");

    let two = Store::open(two_dir.path()).unwrap();
    let reader = DirCache::open(&cache_dir.path().join("cache"));
    let substituters = Substituters::new(vec![Box::new(reader)], TrustedKeys::new(vec![key.public()]));
    let hits = substituters.query(&[small.0.clone(), large.0.clone()]);
    assert!(substituters.take_warnings().is_empty());
    for ((key, record), hit) in [small, large].iter().zip(hits) {
        substituters.fetch(&two, &hit.expect("a hit")).unwrap();
        assert_eq!(two.action_get(key).unwrap().as_ref(), Some(record));
        assert_eq!(two.get_tree(&record.outputs[0].id).unwrap(), one.get_tree(&record.outputs[0].id).unwrap());
    }
    assert!(two.verify(false).unwrap().problems.is_empty());
}

#[test]
fn a_result_under_another_keys_tag_is_not_taken() {
    let [one_dir, two_dir, cache_dir, temp] = dirs();
    let one = Store::open(one_dir.path()).unwrap();
    let (key_a, record) = result_with(&one, serde_json::json!({"name": "a"}));
    let key = SecretKey::generate("test").unwrap();
    let layout = cache_dir.path().join("cache");
    let cache = DirCache::create(&layout).unwrap();
    Pusher::new(&one, &cache, &key, temp.path()).push_all(&[(key_a.clone(), record)], &[]).unwrap();
    // Someone files the signed result of `a` under the tag of `b` as well.
    let key_b = ActionKey::new("build", 1).with("data", "b");
    let manifest = cache.manifest(&composer_cache::claim::step_tag(&key_a)).unwrap().unwrap();
    cache.put_manifest(&composer_cache::claim::step_tag(&key_b), &manifest).unwrap();
    let _two = Store::open(two_dir.path()).unwrap();
    let substituters = Substituters::new(vec![Box::new(DirCache::open(&layout))], TrustedKeys::new(vec![key.public()]));
    assert!(substituters.query(&[key_b])[0].is_none());
    let warnings = substituters.take_warnings();
    assert!(warnings.iter().any(|w| w.contains("not the step asked for")), "{warnings:?}");
}

/// A `dir:` cache is the user's directory, but what is beneath it is data: a `blobs/sha256`, a
/// blob, an `index.json` or its lock that is a symlink is never written through.
#[test]
fn a_dir_cache_never_writes_through_a_symlink_beneath_it() {
    use composer_cache::Remote as _;
    let [one_dir, _two, cache_dir, outside] = dirs();
    let one = Store::open(one_dir.path()).unwrap();
    let key = SecretKey::generate("test").unwrap();
    let layout = cache_dir.path().join("cache");
    DirCache::create(&layout).unwrap();
    let outside_listing = || std::fs::read_dir(outside.path()).unwrap().count();

    // blobs/sha256 swapped for a link to a directory elsewhere.
    std::fs::rename(layout.join("blobs/sha256"), layout.join("blobs/moved")).unwrap();
    std::os::unix::fs::symlink(outside.path(), layout.join("blobs/sha256")).unwrap();
    let cache = DirCache::create(&layout).unwrap();
    let blob = b"a blob".as_slice();
    let sha = composer_store::Sha256::of(blob);
    assert!(cache.put_blob(&sha, blob.len() as u64, &blob).is_err());
    let result = result_with(&one, serde_json::json!({"name": "linked"}));
    let temp = tempfile::tempdir().unwrap();
    assert!(Pusher::new(&one, &cache, &key, temp.path()).push_all(&[result], &[]).is_err());
    assert_eq!(outside_listing(), 0, "nothing was written where the link points");
    std::fs::remove_file(layout.join("blobs/sha256")).unwrap();
    std::fs::rename(layout.join("blobs/moved"), layout.join("blobs/sha256")).unwrap();

    // A blob's name, the index and the index's lock as links to files elsewhere.
    let target = outside.path().join("target");
    std::fs::write(&target, b"the user's").unwrap();
    std::os::unix::fs::symlink(&target, layout.join("blobs/sha256").join(sha.to_hex())).unwrap();
    assert!(cache.put_blob(&sha, blob.len() as u64, &blob).is_err());
    assert!(!cache.has_blob(&sha, None).unwrap(), "a link is not a blob the cache holds");
    std::fs::remove_file(layout.join("blobs/sha256").join(sha.to_hex())).unwrap();
    let lock_target = outside.path().join("lock-target");
    std::os::unix::fs::symlink(&lock_target, layout.join("index.json.lock")).unwrap();
    assert!(cache.put_manifest("tag", b"{}").is_err());
    assert!(!lock_target.exists(), "the lock was not made where its link points");
    std::fs::remove_file(layout.join("index.json.lock")).unwrap();
    std::fs::remove_file(layout.join("index.json")).unwrap();
    std::os::unix::fs::symlink(&target, layout.join("index.json")).unwrap();
    assert!(cache.put_manifest("tag", b"{}").is_err());
    assert_eq!(std::fs::read(&target).unwrap(), b"the user's");
}
