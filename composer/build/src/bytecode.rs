//! `[python] bytecode = true`: the `.pyc` files Debian's `py3compile` (in the python packages'
//! postinst) and `pip install --compile` would have written, written once at build time. Without
//! them every container start compiles what it imports, and a non-root user cannot even keep the
//! result: `import json, ssl, sqlite3, asyncio` took 430 to 615 ms at every start as the image's
//! user against 142 ms with bytecode.
//!
//! The image's own interpreter runs in the sandbox on the image as its layers lay it out (under
//! qemu-user for a foreign platform), so the bytecode is exactly what that interpreter reads. It
//! compiles every module under the Python directories that has no bytecode yet (a built CPython
//! brings its own), with checked-hash invalidation (valid whatever the files' times, as layers
//! clamp them) and a fixed hash seed (set and frozenset constants marshal in a fixed order), and
//! the `.pyc` files become one layer on top.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use composer_oci::image::LayerDescriptor;
use composer_oci::layer::Compression;
use composer_recipe::Platform;
use composer_store::ActionKey;

use crate::compile::{Built, host_debian_arch, tempdir};
use crate::lockfile::LockedPackage;
use crate::python::WheelPlan;
use crate::{BuildError, Session, StepReport, sandbox};

/// Bumped when the compiled files change for the same inputs.
const BYTECODE_VERSION: u32 = 1;

/// Compiles every `.py` under the directories it is given (`{ver}` is the interpreter's
/// `major.minor`) into `/out`, at the path the interpreter will look for it. Files that do not
/// compile (Python 2 test data, templates) are skipped, as `py3compile` skips them.
const COMPILE: &str = r#"
import importlib.util, os, py_compile, sys
os.umask(0o022)
ver = "%d.%d" % sys.version_info[:2]
mode = py_compile.PycInvalidationMode.CHECKED_HASH
compiled = skipped = 0
roots = sorted({r.replace("{ver}", ver) for r in sys.argv[1:]})
for root in roots:
    if not os.path.isdir(root) or os.path.islink(root):
        continue
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            source = os.path.join(dirpath, name)
            if not name.endswith(".py") or os.path.islink(source):
                continue
            cached = importlib.util.cache_from_source(source)
            if os.path.exists(cached):
                continue
            try:
                py_compile.compile(source, cfile="/out" + cached, dfile=source, doraise=True, invalidation_mode=mode)
                compiled += 1
            except (py_compile.PyCompileError, SyntaxError, ValueError, UnicodeDecodeError):
                skipped += 1
print("compiled %d modules, skipped %d that do not compile" % (compiled, skipped))
"#;

impl Session<'_> {
    pub(crate) fn bytecode_wanted(&self) -> bool {
        self.recipe.python.as_ref().is_some_and(|p| p.bytecode)
    }

    /// The interpreter the image runs: the built CPython, else the distro's.
    fn interpreter(&self) -> String {
        match self.interpreter_prefix() {
            Some(prefix) => format!("{prefix}/bin/python3"),
            None => "/usr/bin/python3".into(),
        }
    }

    /// The directories whose modules are compiled: the distro's, the built interpreter's, and
    /// the wheel set's.
    fn bytecode_roots(&self) -> Vec<String> {
        let mut roots =
            vec!["/usr/lib/python3".to_string(), "/usr/lib/python{ver}".into(), "/usr/local/lib/python{ver}".into()];
        if let Some(prefix) = self.interpreter_prefix() {
            roots.push(format!("{prefix}/lib/python{{ver}}"));
        }
        if let Some(venv) = self.recipe.python.as_ref().and_then(|p| p.venv()) {
            roots.push(venv.to_string());
        }
        roots.sort();
        roots.dedup();
        roots
    }

    /// The key of a platform's bytecode step: everything that puts Python files in the image
    /// (its packages, the system files, the builds' outputs, the wheel set's layers) and how it
    /// is compiled. `None` when a build it depends on is not in the store yet (`plan` only).
    pub(crate) fn bytecode_key(
        &self,
        platform: &Platform,
        packages: &[LockedPackage],
        system_key: &ActionKey,
        built: &[Built],
        wheels: Option<&WheelPlan>,
    ) -> Option<ActionKey> {
        if !self.bytecode_wanted() || built.len() < crate::compile::job_count(self, platform) {
            return None;
        }
        let mut key = ActionKey::new("python-bytecode", BYTECODE_VERSION)
            .with("platform", platform.to_string())
            .with("interpreter", self.interpreter())
            .with("roots", self.bytecode_roots().join("\n"))
            .with("script", COMPILE)
            .with("epoch", crate::epoch(self.recipe).to_le_bytes())
            .with("compression", crate::compression(self.recipe).name())
            .with("system", system_key.hash().0);
        for p in packages {
            key.field("deb", p.sha256.as_bytes());
        }
        for b in built {
            key.field("built", format!("{}={}", b.name, b.tree.to_hex()).as_bytes());
        }
        if let Some(plan) = wheels {
            for layer in &plan.layer_keys {
                key.field("wheel-layer", &layer.hash().0);
            }
            if let Some(env) = &plan.env_key {
                key.field("env", &env.hash().0);
            }
        }
        Some(key)
    }

    /// The bytecode layer of one platform, from the store or compiled now on the image that
    /// `below` lays out.
    pub(crate) fn bytecode_layer(
        &self,
        platform: &Platform,
        key: &ActionKey,
        below: &[LayerDescriptor],
        steps: &mut Vec<StepReport>,
    ) -> Result<LayerDescriptor, BuildError> {
        let store = self.ctx.store;
        let (layer, cached) = match store.action_get(key)? {
            Some(record) => (crate::layer_from(&record)?, true),
            None => {
                let layer = self.compile_bytecode(platform, below)?;
                store.action_put(key, &crate::layer_record("python-bytecode", &layer))?;
                (layer, false)
            }
        };
        steps.push(StepReport {
            step: "python-bytecode",
            platform: Some(platform.to_string()),
            name: "bytecode".into(),
            cached,
            bytes: 0,
        });
        Ok(LayerDescriptor { layer, packages: vec![], comment: "python bytecode".into() })
    }

    fn compile_bytecode(
        &self,
        platform: &Platform,
        below: &[LayerDescriptor],
    ) -> Result<composer_oci::layer::LayerBlob, BuildError> {
        let store = self.ctx.store;
        let work = tempdir(&format!("bytecode-{}", platform.debian_arch()))?;
        let result = (|| {
            let (root, out, build) = (work.join("root"), work.join("out"), work.join("build"));
            let emulated = platform.debian_arch() != host_debian_arch();
            self.ctx.reporter.status(
                "Compiling",
                &format!("Python bytecode for {platform}{}", if emulated { " (under qemu-user)" } else { "" }),
            );
            for layer in below {
                unpack_layer(store, &layer.layer, &root)?;
            }
            let interpreter = self.interpreter();
            if !root.join(interpreter.trim_start_matches('/')).exists() {
                return Err(BuildError::Bytecode {
                    platform: platform.to_string(),
                    reason: format!("the image has no {interpreter} to compile with"),
                });
            }
            for dir in sandbox::MOUNT_POINTS.iter().map(|d| root.join(d)).chain([out.clone(), build.clone()]) {
                std::fs::create_dir_all(&dir).map_err(|e| BuildError::Sandbox(format!("{}: {e}", dir.display())))?;
            }
            let script = work.join("compile.py");
            std::fs::write(&script, COMPILE).map_err(|e| BuildError::Sandbox(e.to_string()))?;
            // -S: no site (nothing of the image's own configuration runs); -s: no user site.
            let mut argv = vec![interpreter, "-S".into(), "-s".into(), "/sources/.script".into()];
            argv.extend(self.bytecode_roots());
            let mut env: BTreeMap<String, String> = sandbox::base_env(crate::epoch(self.recipe), 1);
            env.insert("PYTHONHASHSEED".into(), "0".into());
            let log = work.join("bytecode.log");
            let status = sandbox::run(
                &sandbox::find_bwrap()?,
                &sandbox::Run {
                    root: &root,
                    build_dir: &build,
                    out_dir: &out,
                    sources: Vec::new(),
                    script: &script,
                    argv: Some(&argv),
                    env: &env,
                    log: &log,
                },
            )?;
            if !status.success() {
                return Err(self.failed("python-bytecode", platform, &work, &log, status));
            }
            let said = std::fs::read_to_string(&log).unwrap_or_default();
            self.ctx.reporter.note(&format!("bytecode for {platform}: {}", said.trim()));
            let tree = crate::output::tree_from_dir(store, &out, crate::epoch(self.recipe))?;
            Ok(composer_oci::layer::write_layer(
                store,
                &tree.entries,
                crate::epoch(self.recipe),
                crate::compression(self.recipe),
            )?)
        })();
        if !matches!(result, Err(BuildError::BuildFailed(_))) || !self.keep_failed {
            let _ = std::fs::remove_dir_all(&work);
        }
        result
    }
}

/// Lays one of the image's own layers out under `root`, as a container runtime would.
fn unpack_layer(
    store: &composer_store::Store,
    layer: &composer_oci::layer::LayerBlob,
    root: &Path,
) -> Result<(), BuildError> {
    let file = store.open_object(&layer.blob.id)?;
    let reader: Box<dyn Read> = match layer.compression {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(file)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(file).map_err(|e| BuildError::Sandbox(format!("reading a layer: {e}")))?,
        ),
    };
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_overwrite(true);
    archive
        .unpack(root)
        .map_err(|e| BuildError::Sandbox(format!("laying out layer {} for bytecode: {e}", layer.blob.sha256)))
}
