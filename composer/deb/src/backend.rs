//! The Debian backend: signed `InRelease`, `Packages` indexes solved with resolvo, `.deb` files
//! unpacked without maintainer scripts, and the dpkg database plus declarative script effects.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::repo::Repository;
use crate::unpack::ControlData;
use composer_recipe::{AllocatorMode, AllocatorName, AllocatorSource, Base, Platform, Recipe};
use composer_store::held::ContentSink;
use composer_store::{BlobInfo, Sha256};
use composer_wheels::{Target, WheelError};

use composer_distro::{
    Backend, DistroError, Identity, ImageView, LockCheck, LockedPackage, LockedRelease, Services, SystemFiles,
    Unlisted, UnpackedPackage, VerifiedRelease, Wanted,
};

use crate::mirror::MirrorSettings;

/// Where ca-certificates keeps the certificates its hook bundles.
const CA_CERTIFICATES: &str = "usr/share/ca-certificates/";
/// Where base-passwd keeps the account files its postinst copies into /etc.
const BASE_PASSWD: &str = "usr/share/base-passwd/";

/// What CPython's configure looks for, so that ssl, sqlite3, ctypes, lzma, bz2, readline,
/// curses, dbm, uuid and zlib are all built.
pub const CPYTHON_BUILD_DEPENDS: &[&str] = &[
    "libbz2-dev",
    "libffi-dev",
    "libgdbm-dev",
    "liblzma-dev",
    "libncurses-dev",
    "libreadline-dev",
    "libsqlite3-dev",
    "libssl-dev",
    "pkg-config",
    "uuid-dev",
    "zlib1g-dev",
];

pub struct Debian<'a> {
    ctx: Services<'a>,
    mirrors: &'a MirrorSettings,
    base: &'a Base,
    /// The recipe's directory, for a relative keyring.
    dir: std::path::PathBuf,
    allowed_paths: Vec<std::path::PathBuf>,
    repo: Mutex<Option<Arc<Repository<'a>>>>,
    /// Releases verified in this run, by digest: resolution reads index checksums from the copy
    /// that was verified, never from a second download.
    releases: Mutex<HashMap<[u8; 32], Arc<crate::Release>>>,
}

/// The directories of the host's apt keyrings, which a recipe's `keyring` may name too.
const SYSTEM_KEYRINGS: &[&str] = &["/usr/share/keyrings", "/etc/apt/keyrings", "/etc/apt/trusted.gpg.d"];

impl<'a> Debian<'a> {
    pub fn new(
        ctx: Services<'a>,
        mirrors: &'a MirrorSettings,
        base: &'a Base,
        dir: &std::path::Path,
        allowed_paths: &[std::path::PathBuf],
    ) -> Debian<'a> {
        Debian {
            ctx,
            mirrors,
            base,
            dir: dir.to_path_buf(),
            // Where apt keeps keyrings: public keys, which a recipe may name as apt sources do.
            allowed_paths: allowed_paths.iter().cloned().chain(SYSTEM_KEYRINGS.iter().map(Into::into)).collect(),
            repo: Mutex::new(None),
            releases: Mutex::new(HashMap::new()),
        }
    }

    /// Now, in seconds since the epoch: what a Release's Date and Valid-Until are checked against.
    fn now(&self) -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
    }

    /// A verified release as locks record it; kept to resolve against.
    fn verified(&self, release: crate::Release, digest: Sha256) -> VerifiedRelease {
        let verified = VerifiedRelease {
            locked: LockedRelease {
                digest: digest.to_hex(),
                date: release.date.clone(),
                fields: [("suite", &release.suite), ("codename", &release.codename)]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
            },
            digest: digest.0,
        };
        self.releases.lock().expect("releases").insert(digest.0, Arc::new(release));
        verified
    }

    /// The mirror, resolved and its keyring loaded on first use: a build served wholly from the
    /// store needs neither.
    fn repo(&self) -> Result<Arc<Repository<'a>>, DistroError> {
        let mut slot = self.repo.lock().expect("repo lock");
        if let Some(repo) = slot.as_ref() {
            return Ok(repo.clone());
        }
        let keyring = self.base.keyring.as_ref().map(|k| self.dir.join(k));
        let mirror = self.mirrors.resolve(&self.base.mirror, &self.base.suite, keyring.as_deref())?;
        self.ctx.notes.note(&format!(
            "mirror `{}` from {}, keyring {}",
            self.base.mirror,
            mirror.origin,
            mirror.keyring.display()
        ));
        // The recipe's own keyring is confined to its directory; the settings' and the system's
        // are the user's choice.
        let kind = composer_store::userfile::Kind::KEYRING;
        let policy = match keyring {
            Some(_) => composer_store::userfile::Policy::within(kind, &self.dir, &self.allowed_paths),
            None => composer_store::userfile::Policy::anywhere(kind),
        };
        let keys = crate::release::load_keyring(&mirror.keyring, &policy)?;
        let repo = Arc::new(Repository { url: mirror.url, keys, client: self.ctx.client, store: self.ctx.store });
        *slot = Some(repo.clone());
        Ok(repo)
    }
}

fn to_locked(p: &crate::Package<'_>) -> Result<LockedPackage, crate::DebError> {
    Ok(LockedPackage {
        name: p.name.to_string(),
        version: p.version.to_string(),
        architecture: p.architecture.to_string(),
        source: p.source.to_string(),
        filename: p.filename.to_string(),
        size: p.size,
        identity: Identity::file_sha256(&p.sha256()?),
    })
}

/// The `.deb`'s SHA-256, the one digest a Debian index signs: a lock entry naming any other is
/// not Debian's.
fn deb_sha256(package: &LockedPackage) -> Result<Sha256, crate::DebError> {
    match package.identity.sha256() {
        Some(sha) if package.identity == Identity::file_sha256(&sha) => Ok(sha),
        _ => Err(crate::DebError::Index {
            what: format!("the lock's entry for `{}`", package.name.escape_debug()),
            reason: crate::IndexProblem::NotDebianIdentity(package.identity.to_string()),
        }),
    }
}

impl Debian<'_> {
    fn stored(&self, locked: &LockedRelease, valid_until: bool) -> Result<Option<VerifiedRelease>, DistroError> {
        let digest: Sha256 = locked.digest.parse().map_err(|reason| crate::DebError::Index {
            what: "the lock's release digest".into(),
            reason: crate::IndexProblem::BadChecksum(reason),
        })?;
        let release = self.repo()?.stored_release(&digest, &self.base.suite, self.now(), valid_until)?;
        Ok(release.map(|release| self.verified(release, digest)))
    }

    /// The `Packages` texts of `release` (one this backend verified) for `arch`, with the name
    /// of each.
    fn index_texts(&self, release: &VerifiedRelease, arch: &str) -> Result<Vec<(String, String)>, DistroError> {
        let repo = self.repo()?;
        let verified = self.releases.lock().expect("releases").get(&release.digest).cloned();
        let verified = verified.expect("indexes are only read from a release this backend verified");
        Ok(repo.index_texts(&verified, &self.base.suite, &self.base.components, arch)?)
    }

    /// `requests` and the run-time libraries of the `runtime_of` packages, as relations.
    fn relations(
        &self,
        index: &crate::PackageIndex<'_>,
        arch: &str,
        requests: &[String],
        runtime_of: &[String],
    ) -> Result<Vec<crate::relation::Relation>, DistroError> {
        let mut requests = requests.to_vec();
        for dev in runtime_of {
            requests.extend(crate::index::runtime_libraries(index, dev)?);
        }
        let relations = requests
            .iter()
            .map(|r| {
                crate::index::parse_request(r).ok_or_else(|| crate::DebError::UnknownPackage {
                    name: r.clone(),
                    suite: self.base.suite.clone(),
                    arch: arch.to_string(),
                    near: Vec::new(),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(relations)
    }
}

impl Backend for Debian<'_> {
    fn name(&self) -> &'static str {
        "debian"
    }

    fn architecture(&self, platform: &Platform) -> String {
        crate::platform::debian_arch(platform).to_string()
    }

    fn package_manager(&self) -> &'static str {
        "dpkg"
    }

    fn system_layer_comment(&self) -> &'static str {
        "system: dpkg database, accounts, files"
    }

    /// base-files holds /etc/os-release, by which scanners identify the distribution;
    /// base-passwd the system accounts.
    fn image_requests(&self, recipe: &Recipe) -> Vec<String> {
        // Every package of the archive, base-files and base-passwd included, links against
        // glibc or pulls something that does: a musl image takes none (the recipe's own list is
        // empty, as validation requires).
        if recipe.base.musl() {
            return Vec::new();
        }
        let mut out: Vec<String> = recipe.base.packages.iter().map(|p| p.get_ref().trim().to_string()).collect();
        out.extend(["base-files".to_string(), "base-passwd".to_string()]);
        if recipe.allocator.name == AllocatorName::Jemalloc && recipe.allocator.source == AllocatorSource::Distro {
            out.push("libjemalloc2".into());
        }
        // A wheel set is installed for the base's own interpreter, unless the recipe builds one.
        if recipe.python.as_ref().is_some_and(|p| p.build.is_none()) {
            out.push("python3".into());
        }
        out.sort();
        out.dedup();
        out
    }

    /// A built CPython's extension modules link to what it was compiled against (libssl3 for
    /// libssl-dev, ...); pkg-config is a tool, not a library to link to.
    fn runtime_of(&self, recipe: &Recipe) -> Vec<String> {
        match recipe.python.as_ref().and_then(|p| p.build.as_ref()) {
            // On musl, CPython links only to what the recipe builds.
            Some(_) if recipe.base.musl() => Vec::new(),
            Some(_) => CPYTHON_BUILD_DEPENDS.iter().filter(|p| p.ends_with("-dev")).map(|p| p.to_string()).collect(),
            None => Vec::new(),
        }
    }

    /// Debian's cross toolchains are packages of the build architecture (`gcc-aarch64-linux-gnu`)
    /// with the target's C library and kernel headers as `Architecture: all` packages under
    /// `/usr/<triplet>`: no foreign architecture needs adding to resolve them.
    fn cross_requests(&self, recipe: &Recipe, target: &Platform) -> Vec<String> {
        let mut out = self.build_requests(recipe);
        out.push(format!("crossbuild-essential-{}", crate::platform::debian_arch(target)));
        out
    }

    /// `build-essential`, what each build names, and the libraries the CPython and allocator
    /// steps compile against.
    fn build_requests(&self, recipe: &Recipe) -> Vec<String> {
        let interpreter = recipe.python.as_ref().and_then(|p| p.build.as_ref());
        let allocator = &recipe.allocator;
        let builds_allocator = allocator.name == AllocatorName::Jemalloc && allocator.source == AllocatorSource::Build;
        let sdists = recipe.python.as_ref().filter(|p| p.builds_sdists());
        if recipe.builds.is_empty()
            && interpreter.is_none()
            && !builds_allocator
            && sdists.is_none()
            && !recipe.base.musl()
        {
            return Vec::new();
        }
        // `mawk` is Priority: required, not Essential: every Debian build chroot has it
        // (configure scripts call awk), yet build-essential does not pull it in.
        let mut out = vec!["build-essential".to_string(), "mawk".to_string()];
        for build in &recipe.builds {
            out.extend(build.build_depends.iter().map(|p| p.trim().to_string()));
        }
        match interpreter {
            // Against musl, CPython finds its libraries among the recipe's builds: of the
            // archive it needs only the tools.
            Some(_) if recipe.base.musl() => {
                out.extend(CPYTHON_BUILD_DEPENDS.iter().filter(|p| !p.ends_with("-dev")).map(|p| p.to_string()))
            }
            Some(_) => out.extend(CPYTHON_BUILD_DEPENDS.iter().map(|p| p.to_string())),
            None => {}
        }
        // llvm-bolt and merge-fdata under their plain names, as CPython's configure looks for
        // them (trixie and later; bookworm has only the versioned bolt-NN).
        if recipe.interpreter_bolts() {
            out.push("llvm-bolt".into());
        }
        if let Some(python) = sdists {
            // The build backends come from the lock (its build wheels), not from the distro:
            // only the distro's interpreter needs its headers from here.
            if interpreter.is_none() {
                out.push("python3-dev".into());
            }
            out.extend(python.build_depends.iter().map(|p| p.trim().to_string()));
            for build in python.packages.values() {
                out.extend(build.build_depends.iter().map(|p| p.get_ref().trim().to_string()));
            }
        }
        if allocator.mode == AllocatorMode::Link && allocator.source == AllocatorSource::Distro {
            out.push("libjemalloc-dev".into());
        }
        out.sort();
        out.dedup();
        out
    }

    fn triplet(&self, platform: &Platform) -> String {
        crate::platform::triplet(platform).to_string()
    }

    fn allocator_library(&self, platform: &Platform) -> String {
        format!("/usr/lib/{}/libjemalloc.so.2", crate::platform::triplet(platform))
    }

    fn wheel_target(
        &self,
        platform: &Platform,
        packages: &[LockedPackage],
        built_python: Option<&str>,
    ) -> Result<Target, DistroError> {
        let version = |name: &str| {
            packages.iter().find(|p| p.name == name).map(|p| p.version.clone()).ok_or_else(|| WheelError::Target {
                platform: platform.to_string(),
                reason: composer_wheels::TargetProblem::NoPackage(name.to_string()),
            })
        };
        let python = match built_python {
            Some(version) => version.to_string(),
            None => version("python3")?,
        };
        Ok(Target::from_debian(platform, &python, &version("libc6")?)?)
    }

    fn python_module_dirs(&self) -> &'static [&'static str] {
        &["/usr/lib/python3", "/usr/lib/python{ver}", "/usr/local/lib/python{ver}"]
    }

    fn release_time(&self, release: &LockedRelease) -> Option<u64> {
        crate::release::parse_date(&release.date)
    }

    fn mirror_url(&self, name: &str) -> Result<String, DistroError> {
        Ok(self.mirrors.resolve(name, &self.base.suite, None)?.url)
    }

    fn release(&self) -> Result<VerifiedRelease, DistroError> {
        // Valid-Until is not checked where the recipe says the mirror is a snapshot, whose
        // Releases are old on purpose.
        let (release, digest) = self.repo()?.release(&self.base.suite, self.now(), self.base.check_valid_until)?;
        Ok(self.verified(release, digest))
    }

    /// From the suite's `Contents` indexes, as `release` (signed, verified) lists them.
    fn library_packages(
        &self,
        release: &VerifiedRelease,
        platform: &Platform,
        libraries: &std::collections::BTreeSet<&str>,
    ) -> Result<std::collections::BTreeMap<String, Vec<String>>, DistroError> {
        let verified = self.releases.lock().expect("releases").get(&release.digest).cloned();
        let verified = verified.expect("a VerifiedRelease is one this backend verified");
        let arch = crate::platform::debian_arch(platform);
        // Where glibc's loader looks without being told: the multiarch directories first, then
        // the plain ones. A copy elsewhere (a plugin directory) is no provider.
        let triplet = crate::platform::triplet(platform);
        let dirs = [format!("lib/{triplet}"), format!("usr/lib/{triplet}"), "lib".to_string(), "usr/lib".to_string()];
        Ok(self.repo()?.library_packages(&verified, &self.base.suite, &self.base.components, arch, &dirs, libraries)?)
    }

    fn stored_release(&self, locked: &LockedRelease) -> Result<Option<VerifiedRelease>, DistroError> {
        self.stored(locked, self.base.check_valid_until)
    }

    /// Valid-Until is not checked: a lock pins its release on purpose, and checking what it
    /// pins against that release is what keeps the lock honest.
    fn locked_release(&self, locked: &LockedRelease) -> Result<Option<VerifiedRelease>, DistroError> {
        self.stored(locked, false)
    }

    fn verify_locked(
        &self,
        release: &VerifiedRelease,
        arch: &str,
        packages: &[LockedPackage],
        wanted: &Wanted<'_>,
    ) -> Result<LockCheck, DistroError> {
        let index_texts = self.index_texts(release, arch)?;
        let mut index = crate::PackageIndex::default();
        for (text, what) in &index_texts {
            index.parse(text, arch, what)?;
        }
        index.finish();
        let indexes = format!(
            "suite `{}`, {}",
            self.base.suite,
            self.base
                .components
                .iter()
                .map(|c| format!("{c}/binary-{arch}/Packages"))
                .collect::<Vec<_>>()
                .join(" and ")
        );
        let mut check = LockCheck::default();
        let mut hexes = Vec::with_capacity(packages.len());
        for package in packages {
            match deb_sha256(package) {
                Ok(sha) => hexes.push(sha.to_hex()),
                Err(e) => {
                    let label = format!("{}_{}_{}", package.name, package.version, package.architecture);
                    check.unlisted.push(Unlisted { package: label, index: indexes.clone(), reason: Box::new(e) });
                    hexes.push(String::new());
                }
            }
        }
        let claims: Vec<crate::locked::Claim<'_>> = packages
            .iter()
            .zip(&hexes)
            .map(|(package, sha256)| crate::locked::Claim {
                name: &package.name,
                version: &package.version,
                architecture: &package.architecture,
                filename: &package.filename,
                size: package.size,
                sha256,
            })
            .collect();
        for claim in claims.iter().filter(|c| !c.sha256.is_empty()) {
            if let Err(reason) = crate::locked::check(&index, claim) {
                check.unlisted.push(Unlisted { package: claim.label(), index: indexes.clone(), reason: reason.into() });
            }
        }
        if check.unlisted.is_empty() {
            let requests = self.relations(&index, arch, wanted.requests, wanted.runtime_of)?;
            check.not_a_resolution =
                crate::locked::check_resolution(&index, &claims, &requests, wanted.essential).err().map(Into::into);
        }
        Ok(check)
    }

    fn release_files(&self, release: &LockedRelease, arch: &str) -> Result<Vec<Sha256>, DistroError> {
        let sha: Sha256 = release.digest.parse().map_err(|reason| crate::DebError::Index {
            what: "the lock's release digest".into(),
            reason: crate::IndexProblem::BadChecksum(reason),
        })?;
        let verified = self.releases.lock().expect("releases").get(&sha.0).cloned();
        Ok(self.repo()?.stored_release_files(&sha, verified.as_deref(), &self.base.components, arch)?)
    }

    fn resolve(
        &self,
        release: &VerifiedRelease,
        arch: &str,
        requests: &[String],
        runtime_of: &[String],
        essential: bool,
        preferred: &std::collections::BTreeMap<String, String>,
    ) -> Result<Vec<LockedPackage>, DistroError> {
        let index_texts = self.index_texts(release, arch)?;
        let mut index = crate::PackageIndex::default();
        for (text, what) in &index_texts {
            index.parse(text, arch, what)?;
        }
        index.finish();
        let relations = self.relations(&index, arch, requests, runtime_of)?;
        let chosen = crate::resolve::resolve(&index, &relations, essential, preferred, &self.base.suite, arch)?;
        Ok(chosen.into_iter().map(to_locked).collect::<Result<_, _>>()?)
    }

    fn fetch(&self, package: &LockedPackage, progress: &(dyn Fn(u64) + Sync)) -> Result<BlobInfo, DistroError> {
        let sha = deb_sha256(package)?;
        Ok(self.repo()?.fetch_deb(&package.filename, &sha, package.size, progress)?)
    }

    fn unpack(
        &self,
        package: &LockedPackage,
        file: &BlobInfo,
        contents: &mut dyn ContentSink,
    ) -> Result<UnpackedPackage, DistroError> {
        let store = self.ctx.store;
        let mut object = store.open_object(&file.id)?;
        let what = format!("{}_{}_{}.deb", package.name, package.version, package.architecture);
        let reader = std::io::BufReader::new(&mut object);
        let unpacked = match crate::unpack::unpack_into(contents, reader, &what, true) {
            Ok(unpacked) => unpacked,
            Err(error) => {
                // A damaged object can fail the parse before its last byte is read and checked:
                // the store's verdict, when there is one, names the cause (and lets the build
                // fetch the file again) rather than blaming the package.
                object.finish()?;
                return Err(error.into());
            }
        };
        // Nothing derived from the package is recorded unless all of its bytes were right.
        object.finish()?;
        Ok(UnpackedPackage {
            tree: unpacked.tree,
            metadata: serde_json::to_vec(&unpacked.control).expect("control data serializes"),
        })
    }

    fn replaces(&self, metadata: &[u8], other: &str) -> bool {
        let Ok(control) = serde_json::from_slice::<ControlData>(metadata) else { return false };
        let paragraph = crate::control::parse(&control.control).into_iter().next().unwrap_or_default();
        paragraph
            .get("Replaces")
            .unwrap_or("")
            .split(',')
            .any(|r| crate::relation::parse_relation(r.trim()).is_some_and(|relation| relation.name == other))
    }

    fn system_reads(&self, path: &str) -> bool {
        (path.starts_with(CA_CERTIFICATES) && path.ends_with(".crt"))
            || (path.starts_with(BASE_PASSWD) && path.ends_with(".master"))
    }

    fn system_files(
        &self,
        packages: &[(&LockedPackage, &[u8])],
        view: &ImageView<'_>,
    ) -> Result<SystemFiles, DistroError> {
        let controls: Vec<(String, ControlData)> = packages
            .iter()
            .map(|(p, metadata)| {
                let data = serde_json::from_slice(metadata).map_err(|e| composer_store::StoreError::Corrupt {
                    what: format!("control data of {}", p.name),
                    reason: Box::new(composer_store::Corruption::Unparsable(e.into())),
                })?;
                Ok((p.name.clone(), data))
            })
            .collect::<Result<_, DistroError>>()?;
        let named: Vec<(String, &ControlData)> = controls.iter().map(|(n, c)| (n.clone(), c)).collect();
        let mut out = SystemFiles::default();
        for (path, data) in crate::dpkg::database(&named) {
            out.files.push((path, data, 0o644));
        }
        let postinsts: Vec<&str> = controls.iter().map(|(_, c)| c.postinst.as_str()).collect();
        out.links = crate::hooks::alternatives(&postinsts, &|p| view.exists(p));
        let mut certificates: Vec<(String, Vec<u8>)> = Vec::new();
        for path in view.entries.keys() {
            if let Some(rel) = path.strip_prefix(CA_CERTIFICATES).filter(|p| p.ends_with(".crt"))
                && let Some(data) = view.read(path)?
            {
                certificates.push((rel.to_string(), data));
            }
        }
        if !certificates.is_empty() {
            for (path, data) in crate::hooks::ca_bundle(certificates) {
                out.files.push((path, data, 0o644));
            }
        }
        // base-passwd's postinst copies its master files into /etc when they are missing.
        let master = |name: &str, fallback: &str| -> Result<String, DistroError> {
            Ok(view
                .read(&format!("{BASE_PASSWD}{name}.master"))?
                .map(|d| String::from_utf8_lossy(&d).into_owned())
                .unwrap_or_else(|| fallback.to_string()))
        };
        out.passwd = master("passwd", "root:x:0:0:root:/root:/bin/sh\n")?;
        out.group = master("group", "root:x:0:\n")?;
        Ok(out)
    }
}
