//! Writes the `bundle` target's seed: a real bundle of one signed step result, one input and one
//! lock file, signed with the key whose public half `bundle_seed.pub` holds.
//!
//!   cargo run --manifest-path tests/fuzz/Cargo.toml --bin bundle-seed -- corpus/bundle/seed

use composer_cache::{SecretKey, bundle};
use composer_store::Store;

/// The step result the cache crate's own tests record: one file and a log.
#[path = "../../../composer/cache/tests/common/mod.rs"]
mod common;

/// A key for fuzzing only: it signs nothing anyone trusts.
const SEED_SECRET_KEY: &str = include_str!("bundle_seed.key");

fn main() {
    let dest = std::env::args_os().nth(1).expect("usage: bundle-seed FILE");
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (key, record) = common::result_with(&store, serde_json::json!({"name": "seed"}));
    let input = store.put_bytes(b"an input, a package or a wheel").unwrap();
    let locks = [("app.lock".to_string(), b"version = 1\n".to_vec())];
    let secret = SecretKey::parse(SEED_SECRET_KEY.trim()).unwrap();
    bundle::write(&store, &[(key, record)], &[input.sha256], &locks, Some(&secret), dest.as_ref()).unwrap();
}
