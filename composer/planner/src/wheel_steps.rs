//! The steps of a wheel set: a wheel file into the store (checked against its locked sha256),
//! installed without pip into a tree, trees into layers (deflate data copied straight out of the
//! wheels), and a virtual environment's own files.

use composer_oci::LayerBlob;
use composer_oci::members::Precompressed;
use composer_store::{ActionKey, ActionRecord, BlobInfo, EntryKind, Hash, ObjectRef, RefKind, Sha256, Tree};
use composer_wheels::install::entry;
use composer_wheels::{LockedWheel, Scheme};

use crate::plan::Installed;
use crate::records::layer_record;
use crate::{BuildError, Phase, Session};

impl Session<'_> {
    /// A wheel file from the store, or fetched into it: checked against its locked sha256 and
    /// size before it is stored. The flag says whether the store had it.
    pub(crate) fn fetch_one(&self, wheel: &LockedWheel) -> Result<(BlobInfo, bool), BuildError> {
        let store = self.ctx.store;
        let sha = wheel_sha(wheel)?;
        let record_file = |blob: &BlobInfo| -> Result<(), BuildError> {
            // Sdists are inputs of builds, not wheels to publish.
            if !wheel.sdist && store.action_get(&crate::keys::wheel_file_key(&wheel.sha256))?.is_none() {
                store.action_put(&crate::keys::wheel_file_key(&wheel.sha256), &wheel_file_record(wheel, blob))?;
            }
            Ok(())
        };
        if let Some(blob) = store.lookup_sha256(&sha)? {
            record_file(&blob)?;
            return Ok((blob, true));
        }
        let size = (wheel.size > 0).then_some(wheel.size);
        let blob = self
            .ctx
            .client
            .fetch_to_store(store, &wheel.url, Some((&sha, size)), &wheel.filename, &|n| {
                self.ctx.reporter.advance(Phase::Download, n)
            })
            .map_err(|source| BuildError::Fetch { what: wheel.filename.clone(), source })?;
        record_file(&blob)?;
        Ok((blob, false))
    }

    /// Installs one stored wheel into a tree and records the step.
    pub(crate) fn install_one(
        &self,
        key: &ActionKey,
        wheel: &LockedWheel,
        blob: &BlobInfo,
        scheme: &Scheme,
        requested: bool,
    ) -> Result<Installed, BuildError> {
        let store = self.ctx.store;
        let file = store.open_verified_file(&blob.id)?;
        let installed = composer_wheels::install::install(
            store,
            std::io::BufReader::new(file),
            &wheel.filename,
            requested,
            scheme,
        )?;
        let tree = store.put_tree(&installed.tree)?;
        let metadata = store.put_content(&installed.metadata)?;
        let deflated: Vec<(Hash, Precompressed)> = installed
            .deflated
            .iter()
            .map(|d| {
                let reused =
                    Precompressed { object: blob.id, offset: d.offset, length: d.length, crc32: d.crc32, size: d.size };
                (d.content, reused)
            })
            .collect();
        // The wheel is an output too: layers read its deflate data, so it lives as long as this.
        let record = ActionRecord {
            inputs: Vec::new(),
            step: "wheel-install".into(),
            outputs: vec![
                ObjectRef { id: tree, kind: RefKind::Tree },
                ObjectRef { id: metadata, kind: RefKind::Blob },
                ObjectRef { id: blob.id, kind: RefKind::Blob },
            ],
            data: serde_json::json!({ "wheel": wheel.filename, "deflated": deflated }),
        };
        store.action_put(key, &record)?;
        self.ctx.reporter.advance(Phase::Unpack, 1);
        Ok(Installed { tree, deflated })
    }

    /// The virtual environment itself: pyvenv.cfg and the interpreter links, as `python -m venv
    /// --without-pip` makes them, with the base's interpreter as `home`.
    fn env_tree(&self, root: &str, version: &str, full_version: &str) -> Result<Tree, BuildError> {
        let root = root.trim_matches('/');
        let store = self.ctx.store;
        let mut entries = Vec::new();
        let mut dir = |path: String| entries.push(entry(&path, EntryKind::Dir, 0o755));
        let mut prefix = String::new();
        for part in root.split('/') {
            prefix = if prefix.is_empty() { part.to_string() } else { format!("{prefix}/{part}") };
            dir(prefix.clone());
        }
        for sub in
            ["bin", "include", "lib", &format!("lib/python{version}"), &format!("lib/python{version}/site-packages")]
        {
            dir(format!("{root}/{sub}"));
        }
        let bin = format!("{}/bin", self.interpreter_prefix().unwrap_or("/usr"));
        let cfg = format!(
            "home = {bin}\ninclude-system-site-packages = false\nversion = {}\nexecutable = {bin}/python{version}\ncommand = {bin}/python{version} -m venv /{root}\n",
            full_version
        );
        let content = store.put_content(cfg.as_bytes())?;
        entries.push(entry(
            &format!("{root}/pyvenv.cfg"),
            EntryKind::File { content, size: cfg.len() as u64, packed: None },
            0o644,
        ));
        let link = |path: String, target: &str| entry(&path, EntryKind::Symlink { target: target.to_string() }, 0o777);
        entries.push(link(format!("{root}/bin/python"), &format!("{bin}/python{version}")));
        entries.push(link(format!("{root}/bin/python3"), "python"));
        entries.push(link(format!("{root}/bin/python{version}"), "python"));
        entries.push(link(format!("{root}/lib64"), "lib"));
        let mut tree = Tree { entries };
        tree.normalize().map_err(composer_store::StoreError::from)?;
        Ok(tree)
    }

    /// The venv's layer.
    pub(crate) fn env_layer(
        &self,
        root: &str,
        version: &str,
        full_version: &str,
        key: &ActionKey,
    ) -> Result<LayerBlob, BuildError> {
        let store = self.ctx.store;
        let tree = self.env_tree(root, version, full_version)?;
        let (epoch, compression) = (self.epoch(), crate::compression(self.recipe));
        let layer = composer_oci::layer::write_layer(store, &tree.entries, epoch, compression)?;
        store.action_put(key, &layer_record("python-env", &layer))?;
        Ok(layer)
    }

    /// One layer of installed wheels.
    pub(crate) fn wheel_layer(&self, installs: Vec<Installed>, key: &ActionKey) -> Result<LayerBlob, BuildError> {
        let store = self.ctx.store;
        let (epoch, compression) = (self.epoch(), crate::compression(self.recipe));
        let mut tree = Tree::default();
        let mut reuse = composer_oci::members::Reuse::new();
        for installed in &installs {
            tree.entries.extend(store.get_tree(&installed.tree)?.entries);
            for segment in &installed.deflated {
                reuse.entry(segment.0).or_insert(segment.1);
            }
        }
        tree.normalize().map_err(composer_store::StoreError::from)?;
        // Members copy deflate data straight out of the wheels: check each wheel whole first, as
        // every other input of a layer is checked while it is read.
        let wheels: std::collections::BTreeSet<Hash> = reuse.values().map(|p| p.object).collect();
        wheels.iter().try_for_each(|id| store.verify_object(id))?;
        let layer = composer_oci::layer::write_layer_reusing(store, &tree.entries, epoch, compression, &reuse)?;
        let inputs = installs
            .iter()
            .map(|i| ObjectRef { id: i.tree, kind: RefKind::Tree })
            .chain(wheels.iter().map(|id| ObjectRef { id: *id, kind: RefKind::Blob }))
            .collect::<Vec<_>>();
        store.action_put(key, &layer_record("wheel-layer", &layer).with_inputs(inputs))?;
        Ok(layer)
    }
}

pub(crate) fn installed_from(record: &ActionRecord) -> Option<Installed> {
    let tree = record.outputs.first()?.id;
    let deflated = serde_json::from_value(record.data.get("deflated")?.clone()).ok()?;
    Some(Installed { tree, deflated })
}

fn wheel_file_record(wheel: &LockedWheel, blob: &BlobInfo) -> ActionRecord {
    ActionRecord {
        inputs: Vec::new(),
        step: "wheel-file".into(),
        outputs: vec![ObjectRef { id: blob.id, kind: RefKind::Blob }],
        data: serde_json::json!({
            "filename": wheel.filename,
            "name": wheel.name,
            "version": wheel.version,
            "sha256": wheel.sha256,
            "size": blob.size,
        }),
    }
}

pub(crate) fn wheel_sha(wheel: &LockedWheel) -> Result<Sha256, BuildError> {
    wheel.sha256.parse().map_err(|reason| BuildError::BadDigest { package: wheel.filename.clone(), reason })
}
