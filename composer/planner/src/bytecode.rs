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
//! the `.pyc` files become a layer: one for the distro's and the builds' modules, above the
//! builds' layers, and one for the wheel set's, above its layers, so that a change to the wheel
//! set compiles only its own modules again.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use composer_oci::image::LayerDescriptor;
use composer_oci::layer::Compression;
use composer_recipe::Platform;
use composer_store::ActionKey;

use crate::plan::Part;
use crate::sandbox::tempdir;
use crate::{BuildError, Session, sandbox};

/// Compiles every `.py` under the directories it is given (`{ver}` is the interpreter's
/// `major.minor`) into `/out`, at the path the interpreter will look for it. Files that do not
/// compile (Python 2 test data, templates) are skipped, as `py3compile` skips them.
pub(crate) const COMPILE: &str = r#"
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
    pub(crate) fn interpreter(&self) -> String {
        match self.interpreter_prefix() {
            Some(prefix) => format!("{prefix}/bin/python3"),
            None => "/usr/bin/python3".into(),
        }
    }

    /// The directories whose modules a part compiles: the distro's and the built interpreter's,
    /// or the wheel set's (a venv, or the interpreter's site directory for `target = "system"`,
    /// where the distro part has already compiled what is not the wheel set's).
    pub(crate) fn bytecode_roots(&self, part: Part) -> Vec<String> {
        let prefix = self.interpreter_prefix().map(|p| format!("{p}/lib/python{{ver}}"));
        let venv = self.recipe.python.as_ref().and_then(|p| p.venv());
        let mut roots: Vec<String> = match (part, venv) {
            (Part::Distro, _) => self.backend.python_module_dirs().iter().map(|d| d.to_string()).collect(),
            (Part::Wheels, Some(venv)) => vec![venv.to_string()],
            (Part::Wheels, None) => vec!["/usr/local/lib/python{ver}".into()],
        };
        if part == Part::Distro || venv.is_none() {
            roots.extend(prefix);
        }
        roots.sort();
        roots.dedup();
        roots
    }

    /// The bytecode layer of one platform, compiled now on the image that `below` lays out;
    /// `None` when nothing was left to compile (a built CPython's own modules come compiled), so
    /// that the image gets no empty layer. Recorded either way.
    pub(crate) fn bytecode_layer(
        &self,
        part: Part,
        platform: &Platform,
        key: &ActionKey,
        below: &[LayerDescriptor],
    ) -> Result<Option<composer_oci::layer::LayerBlob>, BuildError> {
        let layer = self.compile_bytecode(part, platform, below)?;
        let record = match &layer {
            Some(layer) => crate::records::layer_record("python-bytecode", layer),
            None => crate::records::empty_record("python-bytecode"),
        };
        self.ctx.store.action_put(key, &record)?;
        Ok(layer)
    }

    fn compile_bytecode(
        &self,
        part: Part,
        platform: &Platform,
        below: &[LayerDescriptor],
    ) -> Result<Option<composer_oci::layer::LayerBlob>, BuildError> {
        let store = self.ctx.store;
        let work = tempdir(self.ctx.temp_dir, &format!("bytecode-{}", platform.architecture))?;
        let (root, out, build) = (work.path().join("root"), work.path().join("out"), work.path().join("build"));
        let emulated = crate::builds::emulated(platform);
        self.ctx.reporter.status(
            "Compiling",
            &format!(
                "Python bytecode ({}) for {platform}{}",
                part.name(),
                if emulated { " (under qemu-user)" } else { "" }
            ),
        );
        for layer in below {
            unpack_layer(store, &layer.layer, &root)?;
        }
        let interpreter = self.interpreter();
        if !root.join(interpreter.trim_start_matches('/')).exists() {
            return Err(BuildError::Bytecode {
                platform: platform.to_string(),
                reason: crate::BytecodeProblem::NoInterpreter(interpreter.to_string()),
            });
        }
        for dir in sandbox::MOUNT_POINTS.iter().map(|d| root.join(d)).chain([out.clone(), build.clone()]) {
            std::fs::create_dir_all(&dir).map_err(|e| BuildError::Io {
                action: "create",
                path: dir.clone(),
                source: e,
            })?;
        }
        let script = work.path().join("compile.py");
        std::fs::write(&script, COMPILE).map_err(|e| BuildError::Io {
            action: "write",
            path: script.clone(),
            source: e,
        })?;
        // -S: no site (nothing of the image's own configuration runs); -s: no user site.
        let mut argv = vec![interpreter, "-S".into(), "-s".into(), "/sources/.script".into()];
        argv.extend(self.bytecode_roots(part));
        let mut env: BTreeMap<String, String> = sandbox::base_env(self.epoch(), 1);
        env.insert("PYTHONHASHSEED".into(), "0".into());
        let log = work.path().join("bytecode.log");
        let status = sandbox::run(
            self.bwrap()?,
            &sandbox::Run {
                root: &root,
                build_dir: &build,
                out_dir: &out,
                sources: Vec::new(),
                script: &script,
                argv: Some(&argv),
                env: &env,
                log: &log,
                scratch: self.scratch(self.bwrap()?),
            },
            self.ctx.interrupted,
        )?;
        if !status.success() {
            return Err(self.failed("python-bytecode", platform, work, &log, status));
        }
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        self.ctx.reporter.note(&format!("bytecode ({}) for {platform}: {}", part.name(), said.trim()));
        let step = format!("python-bytecode for {platform}");
        let tree = crate::output::tree_from_dir(store, &out, self.epoch(), &self.output_limit(&step))?;
        if tree.entries.iter().all(|e| matches!(e.kind, composer_store::EntryKind::Dir)) {
            return Ok(None);
        }
        let (epoch, compression) = (self.epoch(), crate::compression(self.recipe));
        Ok(Some(composer_oci::layer::write_layer(store, &tree.entries, epoch, compression)?))
    }
}

/// Lays one of the image's own layers out under `root`, as a container runtime would.
fn unpack_layer(
    store: &composer_store::Store,
    layer: &composer_oci::layer::LayerBlob,
    root: &Path,
) -> Result<(), BuildError> {
    let mut file = store.open_blob(&layer.blob)?;
    let reader: Box<dyn Read> = match layer.compression {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(&mut file)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(&mut file).map_err(|source| {
            BuildError::LayerUnreadable { layer: layer.blob.sha256, purpose: "for bytecode", source }
        })?),
    };
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_overwrite(true);
    let unpacked = archive.unpack(root).map_err(|source| BuildError::LayerUnpack { layer: layer.blob.sha256, source });
    drop(archive);
    file.finish()?;
    unpacked
}
