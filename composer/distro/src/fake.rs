//! An in-memory distribution for tests of what sits above the seam (graph, settle, keys, the
//! scheduler): packages with dependencies and files, a "signed" index that is the list itself,
//! and either of two identities, the file's SHA-256 (as Debian signs it) or digests of parts of
//! the file (as APK signs the control and data members), so that nothing above may assume a
//! package is found by its file's SHA-256. No network, no sandbox, no maintainer scripts.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};

use composer_recipe::{Platform, Recipe};
use composer_store::held::{ContentSink, SinkError};
use composer_store::{BlobInfo, EntryKind, Sha256, Tree, TreeEntry};
use composer_wheels::Target;

use crate::{
    Backend, DistributionError, Distributions, DistroError, Identity, ImageView, LockCheck, LockedPackage,
    LockedRelease, Services, SystemFiles, Unlisted, UnpackedPackage, VerifiedRelease, Wanted,
};

/// How the fake's index names a package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// The package file's SHA-256, as a Debian `Packages` index does.
    FileSha256,
    /// Digests of the control part (name, version, dependencies) and of the data part (files),
    /// never of the whole file, as an APKINDEX does.
    Parts,
}

/// One package of the fake's index.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FakePackage {
    pub name: String,
    pub version: String,
    pub depends: Vec<String>,
    /// Files (path, content), all 0644 under root.
    pub files: Vec<(String, String)>,
}

impl FakePackage {
    pub fn new(name: &str, version: &str, depends: &[&str], files: &[(&str, &str)]) -> FakePackage {
        FakePackage {
            name: name.into(),
            version: version.into(),
            depends: depends.iter().map(|d| d.to_string()).collect(),
            files: files.iter().map(|(p, c)| (p.to_string(), c.to_string())).collect(),
        }
    }

    /// The package file: what is fetched, stored, and unpacked.
    pub fn file(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("serializes")
    }

    fn identity(&self, scheme: Scheme) -> Identity {
        match scheme {
            Scheme::FileSha256 => Identity::file_sha256(&Sha256::of(&self.file())),
            Scheme::Parts => {
                let control =
                    Sha256::of(format!("{}\n{}\n{}", self.name, self.version, self.depends.join(",")).as_bytes());
                let data = Sha256::of(&serde_json::to_vec(&self.files).expect("serializes"));
                // A 40-digit control digest, as long as a SHA-1: it is not the file's SHA-256.
                Identity::new([("control", &control.to_hex()[..40]), ("data-sha256", &data.to_hex())])
                    .expect("well-formed")
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("fake distribution: {0}")]
pub struct FakeError(pub String);

impl DistributionError for FakeError {
    fn hint(&self) -> Option<String> {
        None
    }
}

fn fail<T>(message: impl Into<String>) -> Result<T, DistroError> {
    Err(DistroError::distribution(FakeError(message.into())))
}

/// The fake distribution's index, offered for every recipe (whatever its `[base] distro`).
pub struct FakeIndex {
    pub scheme: Scheme,
    pub packages: Vec<FakePackage>,
    /// Package files fetched, over every backend made from this index: a cached build fetches none.
    pub fetches: AtomicUsize,
}

impl FakeIndex {
    pub fn new(scheme: Scheme, packages: Vec<FakePackage>) -> FakeIndex {
        FakeIndex { scheme, packages, fetches: AtomicUsize::new(0) }
    }

    fn locked(&self, package: &FakePackage) -> LockedPackage {
        let file = package.file();
        LockedPackage {
            name: package.name.clone(),
            version: package.version.clone(),
            architecture: "all".into(),
            source: package.name.clone(),
            filename: format!("pool/{}_{}.fake", package.name, package.version),
            size: file.len() as u64,
            identity: package.identity(self.scheme),
        }
    }

    fn release(&self) -> VerifiedRelease {
        let all: Vec<u8> = self.packages.iter().flat_map(|p| p.file()).collect();
        let digest = Sha256::of(&all);
        VerifiedRelease {
            locked: LockedRelease { digest: digest.to_hex(), date: "0".into(), fields: BTreeMap::new() },
            digest: digest.0,
        }
    }

    /// The closure of `requests` over `depends`, by name.
    fn closure(&self, requests: &[String]) -> Result<Vec<&FakePackage>, DistroError> {
        let mut chosen = BTreeMap::new();
        let mut todo: Vec<String> = requests.to_vec();
        while let Some(name) = todo.pop() {
            if chosen.contains_key(&name) {
                continue;
            }
            let Some(package) = self.packages.iter().find(|p| p.name == name) else {
                return fail(format!("no package `{name}`"));
            };
            todo.extend(package.depends.iter().cloned());
            chosen.insert(name, package);
        }
        Ok(chosen.into_values().collect())
    }
}

impl Distributions for FakeIndex {
    fn backend<'a>(&'a self, services: Services<'a>, _recipe: &'a Recipe) -> Box<dyn Backend + 'a> {
        Box::new(Fake { index: self, services })
    }
}

struct Fake<'a> {
    index: &'a FakeIndex,
    services: Services<'a>,
}

impl Backend for Fake<'_> {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn architecture(&self, platform: &Platform) -> String {
        platform.architecture.clone()
    }

    fn package_manager(&self) -> &'static str {
        "fake"
    }

    fn system_layer_comment(&self) -> &'static str {
        "fake system files"
    }

    fn image_requests(&self, recipe: &Recipe) -> Vec<String> {
        recipe.base.packages.iter().map(|p| p.get_ref().clone()).collect()
    }

    fn runtime_of(&self, _recipe: &Recipe) -> Vec<String> {
        Vec::new()
    }

    fn build_requests(&self, _recipe: &Recipe) -> Vec<String> {
        Vec::new()
    }

    fn cross_requests(&self, _recipe: &Recipe, _target: &Platform) -> Vec<String> {
        Vec::new()
    }

    fn triplet(&self, platform: &Platform) -> String {
        format!("{}-fake-linux", platform.architecture)
    }

    fn allocator_library(&self, _platform: &Platform) -> String {
        "usr/lib/libjemalloc.so.2".into()
    }

    fn wheel_target(
        &self,
        _platform: &Platform,
        _packages: &[LockedPackage],
        _built_python: Option<&str>,
    ) -> Result<Target, DistroError> {
        fail("no Python here")
    }

    fn python_module_dirs(&self) -> &'static [&'static str] {
        &[]
    }

    fn release_time(&self, _release: &LockedRelease) -> Option<u64> {
        Some(0)
    }

    fn mirror_url(&self, _name: &str) -> Result<String, DistroError> {
        Ok("file:///fake".into())
    }

    fn release(&self) -> Result<VerifiedRelease, DistroError> {
        Ok(self.index.release())
    }

    fn stored_release(&self, locked: &LockedRelease) -> Result<Option<VerifiedRelease>, DistroError> {
        let release = self.index.release();
        Ok((release.locked == *locked).then_some(release))
    }

    fn locked_release(&self, locked: &LockedRelease) -> Result<Option<VerifiedRelease>, DistroError> {
        self.stored_release(locked)
    }

    fn verify_locked(
        &self,
        _release: &VerifiedRelease,
        _arch: &str,
        packages: &[LockedPackage],
        wanted: &Wanted<'_>,
    ) -> Result<LockCheck, DistroError> {
        let mut check = LockCheck::default();
        for package in packages {
            let listed = self.index.packages.iter().find(|p| p.name == package.name);
            if listed.map(|p| self.index.locked(p)).as_ref() != Some(package) {
                check.unlisted.push(Unlisted {
                    package: package.name.clone(),
                    index: "the fake index".into(),
                    reason: "not listed so".into(),
                });
            }
        }
        let names: BTreeSet<&str> = packages.iter().map(|p| p.name.as_str()).collect();
        let closure = self.index.closure(wanted.requests)?;
        if check.unlisted.is_empty() && names != closure.iter().map(|p| p.name.as_str()).collect() {
            check.not_a_resolution = Some("not the closure of the requests".into());
        }
        Ok(check)
    }

    fn release_files(&self, _release: &LockedRelease, _arch: &str) -> Result<Vec<Sha256>, DistroError> {
        Ok(Vec::new())
    }

    fn resolve(
        &self,
        _release: &VerifiedRelease,
        _arch: &str,
        requests: &[String],
        _runtime_of: &[String],
        _essential: bool,
        _preferred: &BTreeMap<String, String>,
    ) -> Result<Vec<LockedPackage>, DistroError> {
        Ok(self.index.closure(requests)?.into_iter().map(|p| self.index.locked(p)).collect())
    }

    fn fetch(&self, package: &LockedPackage, progress: &(dyn Fn(u64) + Sync)) -> Result<BlobInfo, DistroError> {
        let Some(listed) = self.index.packages.iter().find(|p| self.index.locked(p) == *package) else {
            return fail(format!("`{}` is not in the index as locked", package.name));
        };
        self.index.fetches.fetch_add(1, Ordering::SeqCst);
        let file = listed.file();
        progress(file.len() as u64);
        Ok(self.services.store.put_bytes(&file)?)
    }

    fn unpack(
        &self,
        _package: &LockedPackage,
        file: &BlobInfo,
        contents: &mut dyn ContentSink,
    ) -> Result<UnpackedPackage, DistroError> {
        let mut bytes = Vec::new();
        let mut object = self.services.store.open_object(&file.id)?;
        if let Err(e) = object.read_to_end(&mut bytes) {
            return fail(format!("reading the package file: {e}"));
        }
        let Ok(package) = serde_json::from_slice::<FakePackage>(&bytes) else { return fail("not a fake package") };
        let mut entries = BTreeMap::new();
        let entry = |path: &str, kind: EntryKind, mode: u32| TreeEntry {
            path: path.to_string(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime: 0,
            xattrs: Vec::new(),
        };
        for (path, text) in &package.files {
            let mut parent = path.as_str();
            while let Some((dir, _)) = parent.rsplit_once('/') {
                entries.entry(dir.to_string()).or_insert_with(|| entry(dir, EntryKind::Dir, 0o755));
                parent = dir;
            }
            let content = match contents.file(&mut text.as_bytes(), text.len() as u64) {
                Ok(content) => content,
                Err(SinkError::Store(e)) => return Err(e.into()),
                Err(SinkError::Read(e)) => return fail(e.to_string()),
            };
            let kind = EntryKind::File { content, size: text.len() as u64, packed: None };
            entries.insert(path.clone(), entry(path, kind, 0o644));
        }
        let tree = Tree { entries: entries.into_values().collect() };
        Ok(UnpackedPackage { tree, metadata: package.name.into_bytes() })
    }

    fn system_reads(&self, _path: &str) -> bool {
        false
    }

    fn system_files(
        &self,
        _packages: &[(&LockedPackage, &[u8])],
        _view: &ImageView<'_>,
    ) -> Result<SystemFiles, DistroError> {
        Ok(SystemFiles {
            passwd: "root:x:0:0:root:/root:/bin/sh\n".into(),
            group: "root:x:0:\n".into(),
            ..SystemFiles::default()
        })
    }
}
