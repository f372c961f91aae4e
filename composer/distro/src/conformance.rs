//! What every backend must do, checked the same way for each (run against Debian's on a signed
//! local archive and against the fake, in `tests/src/conformance.rs`): the planner relies on
//! these and on nothing else a backend does.

use std::collections::BTreeMap;

use composer_recipe::Platform;
use composer_store::Store;
use composer_store::held::IntoStore;

use crate::{Backend, Identity, LockedPackage, Wanted};

/// Runs every check against `backend`, which must offer a release in which `requests` resolve
/// on `platform` to more than one package; panics naming the rule a backend broke.
pub fn check(backend: &dyn Backend, store: &Store, platform: &Platform, requests: &[String]) {
    let arch = backend.architecture(platform);
    let release = backend.release().expect("the release verifies");

    // A lock's release is found again from the store alone, as the same document.
    let stored = backend.locked_release(&release.locked).expect("reads the store").expect("stored once fetched");
    assert_eq!(stored.digest, release.digest, "the stored release is the fetched one");
    assert_eq!(stored.locked, release.locked, "and records the same");

    // Resolution is a function of the release and the requests.
    let none = BTreeMap::new();
    let resolve = || backend.resolve(&release, &arch, requests, &[], false, &none).expect("resolves");
    let packages = resolve();
    assert!(packages.len() > 1, "the requests resolve to more than one package: {packages:?}");
    assert_eq!(packages, resolve(), "resolving twice gives the same packages in the same order");

    // What it resolved, it accepts as a lock; what it did not, it refuses.
    let wanted = Wanted { requests, runtime_of: &[], essential: false };
    let verdict = backend.verify_locked(&release, &arch, &packages, &wanted).expect("checks");
    assert!(verdict.unlisted.is_empty() && verdict.not_a_resolution.is_none(), "its own resolution: {verdict:?}");
    let mut bigger = packages.clone();
    bigger[0].size += 1;
    let verdict = backend.verify_locked(&release, &arch, &bigger, &wanted).expect("checks");
    assert_eq!(verdict.unlisted.len(), 1, "a package whose size was edited is not listed: {verdict:?}");
    let mut other = packages.clone();
    other[0].identity = Identity::new([("sha256", &*"0".repeat(64))]).expect("well-formed");
    if other[0].identity != packages[0].identity {
        let verdict = backend.verify_locked(&release, &arch, &other, &wanted).expect("checks");
        assert_eq!(verdict.unlisted.len(), 1, "a package whose identity was edited is not listed: {verdict:?}");
    }
    let dropped: Vec<LockedPackage> = packages.iter().skip(1).cloned().collect();
    let verdict = backend.verify_locked(&release, &arch, &dropped, &wanted).expect("checks");
    assert!(
        !verdict.unlisted.is_empty() || verdict.not_a_resolution.is_some(),
        "a lock missing a package is not a resolution: {verdict:?}"
    );

    // A lock entry reads back as written: nothing of the identity is lost on the way.
    for package in &packages {
        let text = serde_json::to_string(package).expect("serializes");
        let back: LockedPackage = serde_json::from_str(&text).expect("reads back");
        assert_eq!(&back, package, "a lock entry reads back as written");
    }

    // Every package fetches into the store and unpacks to a valid tree; a file that is not the
    // one its identity names is refused.
    let mut metadata = Vec::new();
    let mut view = crate::ImageView::new(store);
    for package in &packages {
        let blob = backend.fetch(package, &|_| {}).unwrap_or_else(|e| panic!("{} fetches: {e}", package.name));
        assert!(store.contains(&blob.id), "{} is in the store once fetched", package.name);
        if let Some(sha) = package.identity.sha256() {
            assert_eq!(blob.sha256, sha, "a file digest identity names the file fetched");
        }
        let unpacked = backend
            .unpack(package, &blob, &mut IntoStore(store))
            .unwrap_or_else(|e| panic!("{} unpacks: {e}", package.name));
        unpacked.tree.validate().unwrap_or_else(|e| panic!("{}'s tree: {e}", package.name));
        metadata.push(unpacked.metadata);
        view.entries.extend(unpacked.tree.entries.into_iter().map(|e| (e.path.clone(), e)));
    }
    let mut forged = packages[0].clone();
    forged.identity = other[0].identity.clone();
    if forged.identity != packages[0].identity {
        assert!(backend.fetch(&forged, &|_| {}).is_err(), "a file that is not the one named is refused");
    }

    // The database and the accounts come out of the packages alone.
    let pairs: Vec<(&LockedPackage, &[u8])> = packages.iter().zip(&metadata).map(|(p, m)| (p, m.as_slice())).collect();
    let files = backend.system_files(&pairs, &view).expect("system files");
    assert!(files.passwd.starts_with("root:"), "the accounts start with root: {:?}", files.passwd);
}
