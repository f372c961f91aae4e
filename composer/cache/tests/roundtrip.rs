//! A result pushed from one store to a `dir:` cache and substituted into another: small claims
//! inside their manifest, large ones as the manifest's config blob, trees as packs.

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
