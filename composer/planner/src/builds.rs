//! Runs build steps in the sandbox: a build root assembled from unpacked packages, a job's
//! script on it with its sources and the outputs of the builds it uses, the part of an output
//! that goes into the image.

use std::collections::BTreeMap;
use std::path::Path;

use composer_oci::LayerBlob;
use composer_recipe::Platform;
use composer_store::{ActionKey, ActionRecord, BlobInfo, Hash, ObjectRef, RefKind, Tree};

use crate::compile::{ImagePart, Job};
use crate::lockfile::LockedPackage;
use crate::sandbox::{keep_log, tempdir};
use crate::{BuildError, Session, sandbox};

impl Session<'_> {
    /// The wheel an sdist build left in `dist/`, stored under its sha256 like a fetched one; on
    /// a musl image retagged `musllinux_1_x` once its binaries are checked (see
    /// [`composer_wheels::repair`]). Recorded by the build's output tree, so that a plan over a
    /// cached build does not read and hash the wheel again.
    pub(crate) fn built_wheel(
        &self,
        sdist: &composer_wheels::LockedWheel,
        platform: &Platform,
        tree_id: &Hash,
    ) -> Result<composer_wheels::LockedWheel, BuildError> {
        let store = self.ctx.store;
        let portable = match self.built_musl_version()? {
            Some(musl) => Some(composer_wheels::target::musllinux_policy(platform, &musl)?),
            None => None,
        };
        let portable_key = portable.as_ref().map_or(String::new(), |p| format!("{} {}", p.platform_tag, p.libc));
        let key = crate::keys::built_wheel_key(tree_id, &sdist.sha256, &portable_key);
        if let Some(record) = store.action_get(&key)?
            && let Ok(wheel) = serde_json::from_value::<composer_wheels::LockedWheel>(record.data)
        {
            return Ok(wheel);
        }
        let tree = store.get_tree(tree_id)?;
        let wheels: Vec<_> = tree
            .entries
            .iter()
            .filter(|e| {
                matches!(e.kind, composer_store::EntryKind::File { .. })
                    && e.path.starts_with("dist/")
                    && e.path.ends_with(".whl")
            })
            .map(|e| (e.path.trim_start_matches("dist/").to_string(), &e.kind))
            .collect();
        let [(filename, file)] = wheels.as_slice() else {
            return Err(BuildError::WheelCount { sdist: sdist.filename.clone(), count: wheels.len() });
        };
        let mut bytes = store.read_file_entry(file)?.expect("a file entry");
        let mut filename = filename.clone();
        if let Some(policy) = &portable
            && let Some(retagged) = composer_wheels::repair::musllinux(&bytes, &filename, policy)?
        {
            (filename, bytes) = (retagged.filename, retagged.bytes);
        }
        let blob = store.put_bytes(&bytes)?;
        let wheel = composer_wheels::LockedWheel {
            name: sdist.name.clone(),
            version: sdist.version.clone(),
            filename,
            url: format!("built-from:{}", sdist.filename),
            size: blob.size,
            sha256: blob.sha256.to_string(),
            sdist: false,
        };
        // Recorded like a fetched wheel, so `compose wheels index` publishes it.
        self.fetch_one(&wheel)?;
        let record = ActionRecord {
            inputs: vec![ObjectRef { id: *tree_id, kind: RefKind::Tree }],
            step: "built-wheel".into(),
            outputs: vec![ObjectRef { id: blob.id, kind: RefKind::Blob }],
            data: serde_json::to_value(&wheel).expect("serializes"),
        };
        store.action_put(&key, &record)?;
        Ok(wheel)
    }

    /// The build root of one platform as a tree: its packages unpacked (from the store when
    /// they were before) and what their maintainer scripts would have set up, such as the `cc`
    /// alternative.
    pub(crate) fn build_root(
        &self,
        key: &ActionKey,
        platform: &Platform,
        packages: &[LockedPackage],
        unpacked: &[(Hash, Hash)],
    ) -> Result<Hash, BuildError> {
        let store = self.ctx.store;
        self.ctx.reporter.status("Preparing", &format!("build root for {platform} ({} packages)", packages.len()));
        let mut view = crate::system::ImageView::new(store);
        let mut metadata = Vec::new();
        for &(tree, control) in unpacked {
            for entry in store.get_tree(&tree)?.entries {
                view.entries.insert(entry.path.clone(), entry);
            }
            metadata.push(store.read(&control)?);
        }
        let with_meta: Vec<(&LockedPackage, &[u8])> =
            packages.iter().zip(&metadata).map(|(p, m)| (p, m.as_slice())).collect();
        let distro = self.backend.system_files(&with_meta, &view)?;
        let mut bare = self.recipe.clone();
        bare.accounts = Default::default();
        bare.files.clear();
        let system = crate::system::system_tree(
            &mut composer_store::held::IntoStore(store),
            &view,
            &crate::system::SystemInputs { recipe: &bare, distro, epoch: 0 },
        )?;
        let mut tree = Tree { entries: view.entries.into_values().collect() };
        tree.entries.extend(system.entries);
        tree.normalize_last_wins().map_err(composer_store::StoreError::from)?;
        let id = store.put_tree(&tree)?;
        store.action_put(
            key,
            &ActionRecord {
                inputs: Vec::new(),
                step: "build-root".into(),
                outputs: vec![ObjectRef { id, kind: RefKind::Tree }],
                data: serde_json::json!({ "platform": platform.to_string(), "packages": packages.len() }),
            },
        )?;
        Ok(id)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run_job(
        &self,
        job: &Job,
        platform: &Platform,
        key: &ActionKey,
        root: Hash,
        mut env: BTreeMap<String, String>,
        sources: &BTreeMap<String, BlobInfo>,
        uses: &[(String, Hash)],
    ) -> Result<Hash, BuildError> {
        let store = self.ctx.store;
        let bwrap = self.bwrap()?;
        // The root, with the outputs of the builds this one uses laid over it.
        let root = if uses.is_empty() {
            root
        } else {
            let mut tree = store.get_tree(&root)?;
            for (_, used) in uses {
                tree.entries.extend(store.get_tree(used)?.entries);
            }
            tree.normalize_last_wins().map_err(composer_store::StoreError::from)?;
            store.put_tree(&tree)?
        };
        let root_dir = store.checkout(&root, sandbox::MOUNT_POINTS)?;
        // The sandbox reads sources by path, past every check of ours: check them whole first.
        for blob in sources.values() {
            store.verify_object(&blob.id)?;
        }
        let work = tempdir(self.ctx.temp_dir, &format!("{}-{}", job.name, platform.architecture))?;
        let (build_dir, out_dir) = (work.path().join("build"), work.path().join("out"));
        let script = work.path().join("script.sh");
        let log = work.path().join("build.log");
        for dir in [&build_dir, &out_dir] {
            std::fs::create_dir_all(dir).map_err(|e| BuildError::Io {
                action: "create",
                path: dir.clone(),
                source: e,
            })?;
        }
        std::fs::write(&script, &job.script).map_err(|e| BuildError::Io {
            action: "write",
            path: script.clone(),
            source: e,
        })?;
        let jobs = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        env.insert("JOBS".into(), jobs.to_string());
        let runs_on = job.cross.as_ref().unwrap_or(platform);
        let how = match (&job.cross, emulated(runs_on)) {
            (Some(on), false) => format!(" (cross-compiled on {on})"),
            (Some(on), true) => format!(" (cross-compiled on {on}, under qemu-user: slow)"),
            (None, true) => " (under qemu-user: slow)".into(),
            (None, false) => String::new(),
        };
        self.ctx.reporter.status("Building", &format!("{} for {platform}{how}", job.name));
        let started = std::time::Instant::now();
        let sandboxed = sandbox::Run {
            root: &root_dir,
            build_dir: &build_dir,
            out_dir: &out_dir,
            sources: sources.iter().map(|(mount, blob)| (mount.clone(), store.object_path(&blob.id))).collect(),
            script: &script,
            argv: None,
            env: &env,
            log: &log,
            scratch: self.scratch(bwrap),
        };
        let status = sandbox::run(bwrap, &sandboxed, self.ctx.interrupted)?;
        if !status.success() {
            let mut failed = self.failed(&job.name, platform, work, &log, status);
            if let BuildError::BuildFailed(failed) = &mut failed
                && failed.kept.is_some()
            {
                failed.shell = Some(sandbox::shell_command(bwrap, &sandboxed));
            }
            return Err(failed);
        }
        self.ctx.reporter.note(&format!(
            "{} for {platform} built in {:.1}s",
            job.name,
            started.elapsed().as_secs_f64()
        ));
        let step = format!("build `{}` for {platform}", job.name);
        let tree = crate::output::tree_from_dir(store, &out_dir, self.epoch(), &self.output_limit(&step))?;
        let tree_id = store.put_tree(&tree)?;
        let log_blob = store.put_content(&std::fs::read(&log).unwrap_or_default())?;
        store.action_put(
            key,
            &ActionRecord {
                // The root it ran on and the sources it read: a build made from a damaged one
                // goes with it.
                inputs: std::iter::once(ObjectRef { id: root, kind: RefKind::Tree })
                    .chain(sources.values().map(|blob| ObjectRef { id: blob.id, kind: RefKind::Blob }))
                    .collect(),
                step: "build".into(),
                outputs: vec![ObjectRef { id: tree_id, kind: RefKind::Tree }, ObjectRef { id: log_blob, kind: RefKind::Blob }],
                data: serde_json::json!({ "name": job.name, "platform": platform.to_string(), "log": log_blob.to_hex() }),
            },
        )?;
        Ok(tree_id)
    }

    /// The size of the sandbox's `/tmp` (`[limits] scratch`), or `None` where bubblewrap cannot
    /// set one: then it is the kernel's default, and the user is told once.
    pub(crate) fn scratch(&self, bwrap: &Path) -> Option<u64> {
        static TOLD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if sandbox::tmpfs_size_supported(bwrap) {
            return Some(self.recipe.limits.scratch_bytes());
        }
        if !TOLD.swap(true, std::sync::atomic::Ordering::Relaxed) {
            self.ctx.reporter.warn(&format!(
                "`{}` cannot set the size of a tmpfs (bubblewrap 0.7 or later can): /tmp in the sandbox is not \
                 bounded by [limits] scratch, only by the kernel's default of half the memory",
                bwrap.display()
            ));
        }
        None
    }

    /// The bound on what a step may leave in its output directory (`[limits] step_output`).
    pub(crate) fn output_limit<'s>(&self, step: &'s str) -> crate::output::OutputLimit<'s> {
        crate::output::OutputLimit { step, bytes: self.recipe.limits.step_output_bytes() }
    }

    /// The error of a step that exited non-zero, its log copied out of `work`; `work` itself
    /// goes, unless `--keep-failed` keeps it.
    pub(crate) fn failed(
        &self,
        name: &str,
        platform: &Platform,
        work: composer_store::staging::Staged,
        log: &Path,
        status: std::process::ExitStatus,
    ) -> BuildError {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(25)..].join("\n");
        // The log outlives the build directory, so that it can be read whatever --keep-failed says.
        let kept_log = keep_log(self.ctx.temp_dir, &format!("{name}-{}", platform.architecture), text.as_bytes())
            .unwrap_or_else(|_| log.into());
        let kept_dir = self.keep_failed.then(|| work.keep());
        BuildError::BuildFailed(Box::new(crate::error::FailedBuild {
            name: name.to_string(),
            platform: platform.to_string(),
            status: status.code().map_or_else(|| "killed by a signal".into(), |c| format!("exit status {c}")),
            tail,
            log: kept_log,
            kept: kept_dir,
            shell: None,
            // ENOSPC, as the C library words it: perhaps /tmp, which has a size of its own.
            scratch_full: text
                .contains("No space left on device")
                .then(|| self.ctx.tools.bwrap.as_deref().and_then(|bwrap| self.scratch(bwrap)))
                .flatten(),
        }))
    }

    /// The part of a build's output that goes into the image, as a layer; `None` when nothing of
    /// it is for running (a build that others link statically), recorded so as not to be tried again.
    pub(crate) fn build_layer(
        &self,
        built: &Hash,
        part: ImagePart,
        key: &ActionKey,
    ) -> Result<Option<LayerBlob>, BuildError> {
        let store = self.ctx.store;
        let (epoch, compression) = (self.epoch(), crate::compression(self.recipe));
        let mut tree = store.get_tree(built)?;
        match part {
            ImagePart::Runtime(prefix) => tree.entries.retain(|e| is_runtime(&e.path, prefix)),
            ImagePart::Only(wanted) => tree.entries.retain(|e| is_wanted(&e.path, wanted)),
            ImagePart::All | ImagePart::None => {}
        }
        if tree.entries.iter().all(|e| matches!(e.kind, composer_store::EntryKind::Dir)) {
            store.action_put(key, &crate::records::empty_record("build-layer"))?;
            return Ok(None);
        }
        let layer = composer_oci::layer::write_layer(store, &tree.entries, epoch, compression)?;
        let input = ObjectRef { id: *built, kind: RefKind::Tree };
        store.action_put(key, &crate::records::layer_record("build-layer", &layer).with_inputs([input]))?;
        Ok(Some(layer))
    }
}

fn is_runtime(path: &str, prefix: &str) -> bool {
    let Some(rest) = path.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')) else { return true };
    let under = |dir: &str| rest == dir || rest.starts_with(&format!("{dir}/"));
    let parts: Vec<&str> = rest.split('/').collect();
    let python = parts.len() >= 3 && parts[0] == "lib" && parts[1].starts_with("python3");
    let python_tests = python && parts[2] == "test";
    // The bytecode `make install` compiled: `[python] bytecode` compiles it reproducibly into a
    // layer of its own (one optimisation level, hashes instead of times).
    let build_bytecode = python && parts.contains(&"__pycache__");
    !(under("include")
        || under("lib/pkgconfig")
        || python_tests
        || build_bytecode
        || (rest.starts_with("lib/") && rest.ends_with(".a")))
}

/// Whether `path` starts with one of `wanted`, or is a directory on the way to one.
fn is_wanted(path: &str, wanted: &[&str]) -> bool {
    wanted.iter().any(|w| path.starts_with(w) || w.starts_with(&format!("{path}/")))
}

/// Whether `platform` runs under qemu-user here: its architecture is not the machine's.
pub(crate) fn emulated(platform: &composer_recipe::Platform) -> bool {
    let host = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    platform.architecture != host
}

#[cfg(test)]
mod tests {
    use super::{is_runtime, is_wanted};

    #[test]
    fn only_the_wanted_paths_and_their_directories_are_kept() {
        let wanted = &["usr/local/musl/lib/libc.so", "usr/lib/ld-musl-"];
        for kept in
            ["usr", "usr/local", "usr/local/musl/lib", "usr/local/musl/lib/libc.so", "usr/lib/ld-musl-aarch64.so.1"]
        {
            assert!(is_wanted(kept, wanted), "{kept}");
        }
        for dropped in
            ["usr/local/musl/include/stdio.h", "usr/local/musl/bin/musl-gcc", "usr/local/musl/lib/crt1.o", "etc"]
        {
            assert!(!is_wanted(dropped, wanted), "{dropped}");
        }
    }

    #[test]
    fn the_runtime_part_drops_what_only_builds_need() {
        for kept in [
            "usr/local/lib/libjemalloc.so.2",
            "usr/local/bin/python3.11",
            "usr/local/lib/python3.11/json/__init__.py",
            "usr/local/lib/python3.11/site-packages/numpy/core/include/numpy.h",
            "etc/app.conf",
        ] {
            assert!(is_runtime(kept, "usr/local"), "{kept}");
        }
        for dropped in [
            "usr/local/lib/libjemalloc.a",
            "usr/local/include",
            "usr/local/include/jemalloc/jemalloc.h",
            "usr/local/lib/pkgconfig/jemalloc.pc",
            "usr/local/lib/python3.11/test/test_os.py",
            "usr/local/lib/python3.11/__pycache__/os.cpython-311.pyc",
            "usr/local/lib/python3.11/json/__pycache__",
        ] {
            assert!(!is_runtime(dropped, "usr/local"), "{dropped}");
        }
    }
}
