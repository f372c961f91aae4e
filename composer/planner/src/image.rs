//! What a platform's image holds beyond its packages' layers: the system layer and the image
//! configuration.

use std::collections::BTreeMap;

use composer_oci::LayerBlob;
use composer_recipe::{AllocatorMode, AllocatorName, AllocatorSource, Platform};
use composer_store::{ActionKey, ActionRecord, BlobInfo, Hash, ObjectRef, RefKind};

use crate::lockfile::LockedPackage;
use crate::plan::ImagePlan;
use crate::{BuildError, Phase, Session};

impl Session<'_> {
    /// Unpacks one fetched package into the store and records the step.
    pub(crate) fn unpack_one(
        &self,
        package: &LockedPackage,
        blob: &BlobInfo,
        key: &ActionKey,
    ) -> Result<(Hash, Hash), BuildError> {
        let store = self.ctx.store;
        let unpacked = self.backend.unpack(package, blob, &mut composer_store::held::IntoStore(store))?;
        let tree = store.put_tree(&unpacked.tree)?;
        let control = store.put_content(&unpacked.metadata)?;
        let record = ActionRecord {
            inputs: vec![ObjectRef { id: blob.id, kind: RefKind::Blob }],
            step: "unpack".into(),
            outputs: vec![ObjectRef { id: tree, kind: RefKind::Tree }, ObjectRef { id: control, kind: RefKind::Blob }],
            data: serde_json::json!({ "package": package.name, "version": package.version }),
        };
        store.action_put(key, &record)?;
        self.ctx.reporter.advance(Phase::Unpack, 1);
        Ok((tree, control))
    }

    /// The system layer of one image from its packages' listings (in the image's package
    /// order), recorded under `key`.
    pub(crate) fn system_layer(
        &self,
        plan: &ImagePlan,
        listings: &[Hash],
        key: &ActionKey,
    ) -> Result<LayerBlob, BuildError> {
        let store = self.ctx.store;
        let (epoch, compression) = (self.epoch(), crate::compression(self.recipe));
        let crate::package_layer::Listed { view, metadata, shared } = self.listed_view(listings, &plan.packages)?;
        for (path, first, second) in &shared {
            let (a, b) = (&plan.packages[*first], &plan.packages[*second]);
            if !self.backend.replaces(&metadata[*second], &a.name) && !self.backend.replaces(&metadata[*first], &b.name)
            {
                self.ctx.reporter.warn(&format!(
                    "packages `{}` and `{}` both ship /{path}, with different content ({}); \
                     {} would refuse to install both unless one replaces the other",
                    a.name,
                    b.name,
                    plan.platform,
                    self.backend.package_manager()
                ));
            }
        }
        let packages: Vec<(&LockedPackage, &[u8])> =
            plan.packages.iter().zip(&metadata).map(|(p, m)| (p, m.as_slice())).collect();
        let distro = self.backend.system_files(&packages, &view)?;
        let inputs = crate::system::SystemInputs { recipe: self.recipe, distro, epoch };
        // The generated files (the package database above all: two files per package) are held
        // for the layer, not stored: nothing reads them but this layer.
        let mut held = composer_store::held::Held::new(store);
        let tree = crate::system::system_tree(&mut held, &view, &inputs)?;
        if self.recipe.allocator.name == AllocatorName::Jemalloc
            && self.recipe.allocator.source == AllocatorSource::Distro
        {
            let path = self.backend.allocator_library(&plan.platform);
            if !view.exists(&path) {
                return Err(BuildError::Allocator { platform: plan.platform.to_string(), path });
            }
        }
        let layer = composer_oci::layer::write_layer_from(store, &held, &tree.entries, epoch, compression)?;
        let inputs = listings.iter().map(|id| ObjectRef { id: *id, kind: RefKind::Blob });
        store.action_put(key, &crate::records::layer_record("system-layer", &layer).with_inputs(inputs))?;
        Ok(layer)
    }

    pub(crate) fn image_spec(&self, platform: &Platform) -> Result<composer_oci::ImageSpec, BuildError> {
        let config = &self.recipe.config;
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        env.insert("PATH".into(), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
        for (key, value) in self.python_env() {
            let value = match env.get(&key) {
                Some(old) if key == "PATH" => format!("{value}:{old}"),
                _ => value,
            };
            env.insert(key, value);
        }
        let allocator = &self.recipe.allocator;
        if allocator.name == AllocatorName::Jemalloc {
            if allocator.mode == AllocatorMode::Preload {
                let path = match allocator.source {
                    AllocatorSource::Distro => self.backend.allocator_library(platform),
                    AllocatorSource::Build => "/usr/local/lib/libjemalloc.so.2".into(),
                };
                env.insert("LD_PRELOAD".into(), path);
            }
            if let Some(conf) = &self.recipe.allocator.malloc_conf {
                env.insert("MALLOC_CONF".into(), conf.clone());
            }
        }
        env.extend(config.env.clone());
        Ok(composer_oci::ImageSpec {
            entrypoint: config.entrypoint.clone(),
            cmd: config.cmd.clone(),
            env: env.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
            workdir: config.workdir.clone(),
            user: config.user.clone(),
            labels: config.labels.clone(),
            exposed_ports: config.exposed_ports.clone(),
            volumes: config.volumes.clone(),
            stop_signal: config.stop_signal.clone(),
            annotations: config.annotations.clone(),
        })
    }
}
