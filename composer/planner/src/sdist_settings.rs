//! `[python.packages.NAME]` at plan time: which locked sdist each table is for (a table for no
//! sdist is an error, not a setting that silently does nothing), its patches read through the
//! recipe's confined reader, and what it changes of the sdist's step: the script (patches,
//! config settings) and the environment (`CFLAGS` and friends added to the profile's, other
//! variables set). Both are part of the step's key; an sdist without a table keeps the script
//! and environment, and so the key, it had before tables existed.

use std::collections::BTreeMap;
use std::path::Path;

use composer_recipe::sdist_settings::{APPENDED_FLAGS, refused_env};
use composer_recipe::{Platform, Python, SdistSettings};
use composer_store::userfile::Kind;

use crate::python::WheelPlan;
use crate::scripts::{SDIST_BACKEND, SDIST_BUILD, SDIST_BUILD_WITH_SETTINGS, SDIST_UNPACK};
use crate::{BuildError, SdistSettingsProblem, Session};

/// The variable the build script reads the config settings from, as JSON.
const CONFIG_SETTINGS_VAR: &str = "COMPOSE_CONFIG_SETTINGS";
/// The patches of one package, together.
const MAX_PATCH_BYTES: usize = 8 << 20;

/// One sdist's settings on one platform, its patches read.
#[derive(Debug, Clone, Default)]
pub(crate) struct PackageSettings {
    pub settings: SdistSettings,
    /// (the path as the recipe writes it, the file's bytes), in order.
    pub patches: Vec<(String, Vec<u8>)>,
}

impl Session<'_> {
    /// The settings of the sdist `name` on `platform`: `None` when the recipe has no table for it.
    pub(crate) fn package_settings(
        &self,
        python: &Python,
        name: &str,
        platform: &Platform,
    ) -> Result<Option<PackageSettings>, BuildError> {
        let Some(build) = python.package_build(name) else { return Ok(None) };
        let settings = build.on(platform);
        let patches = settings
            .patches
            .iter()
            // The file's name only goes into the script (and so the key): a base and the recipes
            // extending it name one patch by different paths.
            .map(|path| {
                let shown =
                    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
                Ok((shown, self.read_patch(name, path)?))
            })
            .collect::<Result<Vec<_>, BuildError>>()?;
        // Each build step's script carries its patches: bounded, so that many sdists on many
        // platforms cannot add up to gigabytes of scripts.
        let total: usize = patches.iter().map(|(_, bytes)| bytes.len()).sum();
        if total > MAX_PATCH_BYTES {
            return Err(BuildError::SdistSettings {
                recipe: self.recipe_path.clone(),
                package: name.to_string(),
                reason: Box::new(SdistSettingsProblem::PatchesTooLarge { total, limit_mib: MAX_PATCH_BYTES >> 20 }),
                hint: "patch less, or build the package as a [[builds]] entry from its source".into(),
            });
        }
        Ok(Some(PackageSettings { settings, patches }))
    }

    /// Every patch of every `[python.packages]` table, read as the build will read it: before
    /// anything is resolved, so that a missing or refused file costs no resolution.
    pub(crate) fn check_patches(&self, python: &Python) -> Result<(), BuildError> {
        for (name, build) in &python.packages {
            for patch in &build.patches {
                self.read_patch(name.get_ref(), patch.get_ref())?;
            }
        }
        Ok(())
    }

    fn read_patch(&self, package: &str, path: &Path) -> Result<Vec<u8>, BuildError> {
        let (_, bytes) = crate::local::read(self.recipe, path, Kind::PATCH).map_err(|source| BuildError::UserFile {
            what: format!("cannot read a patch of [python.packages.{package}]"),
            source: Box::new(source),
        })?;
        // An empty file applies nothing and says nothing: most likely not the patch meant.
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(BuildError::SdistSettings {
                recipe: self.recipe_path.clone(),
                package: package.to_string(),
                reason: Box::new(SdistSettingsProblem::EmptyPatch(path.to_path_buf())),
                hint: "write the patch's hunks into the file (`diff -u` or `git diff` output), or drop it".into(),
            });
        }
        Ok(bytes)
    }

    /// Every `[python.packages]` table names a package the lock builds from its sdist on at least
    /// one platform: a table for a package installed from a wheel, or a misspelt one, would do
    /// nothing.
    pub(crate) fn check_package_tables(&self, python: &Python, plans: &[WheelPlan]) -> Result<(), BuildError> {
        let normal = composer_recipe::sdist_settings::normalize;
        for name in python.packages.keys() {
            let wanted = normal(name.get_ref());
            let locked: Vec<&composer_wheels::LockedWheel> =
                plans.iter().flat_map(|p| &p.lock.wheels).filter(|w| normal(&w.name) == wanted).collect();
            if locked.iter().any(|w| w.sdist) {
                continue;
            }
            let (reason, hint) = match locked.first() {
                Some(wheel) => (
                    SdistSettingsProblem::FromWheel { name: wheel.name.clone(), filename: wheel.filename.clone() },
                    format!("add \"{}\" to [python] no_binary to build it, or drop the table", normal(&wheel.name)),
                ),
                None => {
                    let mut names: Vec<&str> =
                        plans.iter().flat_map(|p| &p.lock.wheels).map(|w| w.name.as_str()).collect();
                    names.sort();
                    names.dedup();
                    let near = composer_recipe::suggest::nearest(&wanted, names, 3);
                    let guess = composer_recipe::suggest::did_you_mean(&near);
                    (
                        SdistSettingsProblem::NotLocked(name.get_ref().clone()),
                        match guess.is_empty() {
                            true => "name a package of the wheel set that is built from its sdist".into(),
                            false => guess,
                        },
                    )
                }
            };
            return Err(BuildError::SdistSettings {
                recipe: self.recipe_path.clone(),
                package: name.get_ref().clone(),
                reason: Box::new(reason),
                hint,
            });
        }
        Ok(())
    }
}

/// The sdist build's script: [`SDIST_UNPACK`], the patches, [`SDIST_BACKEND`], and the build,
/// with config settings when there are some. Without settings, the script every sdist had
/// before `[python.packages]` existed, byte for byte.
pub(crate) fn sdist_script(settings: Option<&PackageSettings>, package: &str) -> String {
    let mut script = String::from(SDIST_UNPACK);
    let settings = settings.cloned().unwrap_or_default();
    for (i, (path, bytes)) in settings.patches.iter().enumerate() {
        script.push_str(&patch_step(i + 1, path, bytes, package));
    }
    script.push_str(SDIST_BACKEND);
    script.push_str(match settings.settings.config_settings.is_empty() {
        true => SDIST_BUILD,
        false => SDIST_BUILD_WITH_SETTINGS,
    });
    script
}

/// Writes a patch (base64, so that any bytes survive and no line can end the here-document)
/// beside the source and applies it; one that does not apply stops the build naming it.
fn patch_step(number: usize, path: &str, bytes: &[u8], package: &str) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut lines = String::new();
    for chunk in encoded.as_bytes().chunks(76) {
        lines.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        lines.push('\n');
    }
    let file = format!("../compose-patch-{number}");
    let message = shell_quote(&format!("compose: patch `{path}` does not apply to {package}"));
    // No fuzz: a patch that no longer matches its lines (a new version of the sdist) fails
    // rather than landing elsewhere. patch's own report quotes the patch's text ("The text
    // leading up to this was"), which may be anything: only its status lines reach the log.
    format!(
        "base64 -d > {file} <<'PATCH'\n{lines}PATCH\n\
         if ! patch -p1 --batch --forward --fuzz=0 --no-backup-if-mismatch --reject-file=- -i {file} > {file}.log 2>&1; then\n    \
         grep -E '^(patching file|Hunk #|No file to patch|can.t find file|Reversed|Only garbage)' {file}.log | cut -c1-200 >&2 || true\n    \
         echo {message} >&2\n    exit 1\nfi\n"
    )
}

/// `text` as one shell word.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// Adds a package's environment to its build's: the compiler flags after the profile's, other
/// variables where the build sets none. A variable composer sets is refused here whatever the
/// recipe check let through, so that a variable composer comes to set later is never replaced.
pub(crate) fn add_env(
    env: &mut BTreeMap<String, String>,
    settings: &SdistSettings,
    recipe: &Path,
    package: &str,
) -> Result<(), BuildError> {
    for (name, value) in &settings.env {
        if APPENDED_FLAGS.contains(&name.as_str()) {
            match env.get_mut(name) {
                Some(flags) if !flags.is_empty() => {
                    flags.push(' ');
                    flags.push_str(value);
                }
                _ => {
                    env.insert(name.clone(), value.clone());
                }
            }
            continue;
        }
        if env.contains_key(name) || refused_env(name).is_some() {
            return Err(BuildError::SdistSettings {
                recipe: recipe.to_path_buf(),
                package: package.to_string(),
                reason: Box::new(SdistSettingsProblem::ReservedVariable(name.clone())),
                hint: format!(
                    "set the build's own variables; {} add to the profile's flags",
                    APPENDED_FLAGS.join(", ")
                ),
            });
        }
        env.insert(name.clone(), value.clone());
    }
    if !settings.config_settings.is_empty() {
        let json = serde_json::to_string(&settings.config_settings).expect("serializes");
        env.insert(CONFIG_SETTINGS_VAR.into(), json);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
