//! A wheel set that cannot load is caught at build time, not at `import` in production: every
//! ELF file of every wheel layer has each library it needs (`DT_NEEDED`) found inside the
//! image, where the dynamic loader would look for it. manylinux wheels assume system libraries
//! (libstdc++, libgcc_s, libz, libexpat...) that a slim image may lack; a numpy that builds and
//! then dies at `import numpy` with "libstdc++.so.6: cannot open shared object file" is what
//! this stops.
//!
//! The image is read as its layers lay it out (each layer's tar, in order), so what counts is
//! what a container sees: the packages' files, the builds', the wheels' own bundled libraries
//! (`numpy.libs/`, found through `RUNPATH=$ORIGIN/...`), through every symbolic link (a merged
//! `/usr` makes `/lib` one). Where the loader looks: the file's `DT_RPATH` and `DT_RUNPATH`
//! (with `$ORIGIN`), `LD_LIBRARY_PATH` from the image's environment, the directories the
//! image's own loader configuration names (`/etc/ld.so.conf.d/*.conf` for glibc,
//! `/etc/ld-musl-ARCH.path` for musl) and the loader's defaults.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;

use composer_oci::layer::{Compression, LayerBlob};

use crate::plan::{ImagePlan, Output, Plan, StepKind};
use crate::{BuildError, Session};

/// What a path of the image is, as far as finding a library goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    File,
    Dir,
    Link(String),
}

/// An ELF file of the wheel set: where it is (without the leading `/`) and what it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Needs {
    pub path: String,
    pub needed: Vec<String>,
    /// `DT_RUNPATH`, else `DT_RPATH`, each directory as written (`$ORIGIN/../lib`).
    pub search: Vec<String>,
}

/// A library the image lacks: which wheel's file needs it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Missing {
    /// The distribution (`numpy`) whose RECORD lists the file, else the file's top directory.
    pub wheel: String,
    /// The file, as the image holds it (`/opt/venv/lib/python3.13/site-packages/...`).
    pub file: String,
    pub library: String,
}

/// Which C library's loader the image runs: where it looks by default and which file
/// configures it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loader {
    Glibc,
    Musl,
}

/// The image as far as loading goes: every path, the loader's configuration files, and the
/// wheel layers' ELF files and RECORDs.
#[derive(Debug, Default)]
pub(crate) struct ImageFiles {
    nodes: HashMap<String, Node>,
    /// `etc/ld.so.conf`, `etc/ld.so.conf.d/*.conf`, `etc/ld-musl-*.path`: their text.
    loader_config: BTreeMap<String, String>,
    needs: Vec<Needs>,
    /// Each file a wheel's RECORD lists, and the wheel.
    owners: HashMap<String, String>,
}

/// No loader configuration file is larger; a bigger one is not read.
const MAX_CONFIG: u64 = 64 << 10;
/// An ELF file is read whole to find its dynamic section; none of a wheel is near this (the
/// largest libraries of real wheels are a few hundred MiB).
const MAX_ELF: u64 = 2 << 30;

impl ImageFiles {
    /// Adds one layer's tar (uncompressed), over what the layers below laid out. In a wheel
    /// layer, ELF files are read for what they need, and RECORDs for whose files they are.
    pub(crate) fn add_layer(&mut self, tar: impl Read, wheel_layer: bool) -> std::io::Result<()> {
        let mut archive = tar::Archive::new(tar);
        for entry in archive.entries()? {
            let mut entry = entry?;
            let raw = entry.path()?.to_string_lossy().into_owned();
            let path = normal(&raw);
            if path.is_empty() {
                continue;
            }
            let kind = entry.header().entry_type();
            let node = if kind.is_dir() {
                Node::Dir
            } else if kind.is_symlink() {
                let target = entry.link_name()?.map(|t| t.to_string_lossy().into_owned()).unwrap_or_default();
                Node::Link(target)
            } else if kind.is_file() || kind.is_hard_link() {
                Node::File
            } else {
                continue;
            };
            // A file laid over a directory or a link replaces it, as a runtime unpacks layers.
            self.nodes.insert(path.clone(), node.clone());
            if node != Node::File || !kind.is_file() {
                continue;
            }
            let size = entry.header().size()?;
            if is_loader_config(&path) && size <= MAX_CONFIG {
                let mut text = String::new();
                entry.read_to_string(&mut text)?;
                self.loader_config.insert(path, text);
                continue;
            }
            if !wheel_layer {
                continue;
            }
            if path.ends_with(".dist-info/RECORD") && size <= MAX_CONFIG * 64 {
                let mut text = String::new();
                entry.read_to_string(&mut text)?;
                self.add_record(&path, &text);
                continue;
            }
            let mut magic = [0u8; 4];
            if !(64..=MAX_ELF).contains(&size) || entry.read_exact(&mut magic).is_err() || &magic != b"\x7fELF" {
                continue;
            }
            let mut bytes = magic.to_vec();
            // The header's size is the layer's word: memory is taken as bytes arrive.
            bytes.reserve(size.min(64 << 20) as usize);
            entry.read_to_end(&mut bytes)?;
            // A file that is not a loadable ELF (a test fixture, a corrupt one) is not the
            // loader's business until something loads it: it is not judged here.
            if let Ok(elf) = goblin::elf::Elf::parse(&bytes)
                && !elf.libraries.is_empty()
            {
                let search = if elf.runpaths.is_empty() { &elf.rpaths } else { &elf.runpaths };
                self.needs.push(Needs {
                    path: path.clone(),
                    needed: elf.libraries.iter().map(|l| l.to_string()).collect(),
                    search: search.iter().flat_map(|p| p.split(':')).map(str::to_string).collect(),
                });
            }
        }
        Ok(())
    }

    /// `RECORD` paths are relative to the directory that holds the `.dist-info`.
    fn add_record(&mut self, record: &str, text: &str) {
        let Some((site, dist_info)) = record.trim_end_matches("/RECORD").rsplit_once('/') else { return };
        let name = dist_info.trim_end_matches(".dist-info");
        let dist = name.split('-').next().unwrap_or(name).to_string();
        for line in text.lines() {
            let file = line.split(',').next().unwrap_or_default();
            if !file.is_empty() {
                self.owners.insert(normal(&format!("{site}/{file}")), dist.clone());
            }
        }
    }

    /// Every library a wheel's ELF file needs that the loader would not find in this image.
    /// `env_paths`: `LD_LIBRARY_PATH` of the image's environment.
    pub(crate) fn missing(&self, loader: Loader, env_paths: &[String]) -> Vec<Missing> {
        let mut dirs: Vec<String> = env_paths.iter().map(|d| normal(d)).collect();
        dirs.extend(self.configured_dirs(loader));
        let mut out = BTreeSet::new();
        for needs in &self.needs {
            let origin = needs.path.rsplit_once('/').map_or("", |(dir, _)| dir);
            let own: Vec<String> = needs
                .search
                .iter()
                .map(|d| {
                    normal(&d.replace("${ORIGIN}", &format!("/{origin}")).replace("$ORIGIN", &format!("/{origin}")))
                })
                .collect();
            for library in &needs.needed {
                // A name with a slash is a path, loaded as such.
                let found = match library.contains('/') {
                    true => self.is_file(&normal(library)),
                    false => own.iter().chain(&dirs).any(|dir| self.is_file(&format!("{dir}/{library}"))),
                };
                if !found {
                    out.insert(Missing {
                        wheel: self.owner_of(&needs.path),
                        file: format!("/{}", needs.path),
                        library: library.clone(),
                    });
                }
            }
        }
        out.into_iter().collect()
    }

    fn owner_of(&self, path: &str) -> String {
        self.owners.get(path).cloned().unwrap_or_else(|| {
            // Not in any RECORD (a file installed by other means): named by its directory.
            path.rsplit('/').nth(1).unwrap_or(path).to_string()
        })
    }

    /// The directories the image's loader searches besides a file's own: its configuration
    /// (glibc: `/etc/ld.so.conf` and what it includes; musl: `/etc/ld-musl-ARCH.path`), then
    /// its built-in defaults.
    fn configured_dirs(&self, loader: Loader) -> Vec<String> {
        let mut dirs = Vec::new();
        match loader {
            Loader::Glibc => {
                // `include /etc/ld.so.conf.d/*.conf` is what Debian's ld.so.conf says; every
                // `.conf` there is read, in name order, as the glob would give them.
                for (path, text) in &self.loader_config {
                    if path == "etc/ld.so.conf" || (path.starts_with("etc/ld.so.conf.d/") && path.ends_with(".conf")) {
                        dirs.extend(
                            text.lines()
                                .map(|l| l.split('#').next().unwrap_or_default().trim())
                                .filter(|l| l.starts_with('/'))
                                .map(normal),
                        );
                    }
                }
                dirs.extend(["lib", "usr/lib", "lib64", "usr/lib64"].map(String::from));
            }
            Loader::Musl => {
                let configured: Vec<String> = self
                    .loader_config
                    .iter()
                    .filter(|(path, _)| path.starts_with("etc/ld-musl-") && path.ends_with(".path"))
                    .flat_map(|(_, text)| {
                        text.split(['\n', ':']).map(str::trim).filter(|d| d.starts_with('/')).map(normal)
                    })
                    .collect();
                match configured.is_empty() {
                    true => dirs.extend(["lib", "usr/local/lib", "usr/lib"].map(String::from)),
                    false => dirs.extend(configured),
                }
            }
        }
        dirs
    }

    /// Whether `path` (no leading `/`) is a regular file once every symbolic link on the way,
    /// and the file's own, is followed inside the image (as a container's root would).
    fn is_file(&self, path: &str) -> bool {
        let mut pending: Vec<String> = path.split('/').filter(|c| !c.is_empty()).rev().map(str::to_string).collect();
        let mut at: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(component) = pending.pop() {
            match component.as_str() {
                "." => continue,
                ".." => {
                    at.pop();
                    continue;
                }
                _ => {}
            }
            at.push(component);
            match self.nodes.get(&at.join("/")) {
                Some(Node::Link(target)) => {
                    hops += 1;
                    if hops > 40 {
                        return false;
                    }
                    at.pop();
                    if target.starts_with('/') {
                        at.clear();
                    }
                    pending.extend(target.split('/').filter(|c| !c.is_empty()).rev().map(str::to_string));
                }
                Some(Node::File) => {
                    if !pending.is_empty() {
                        return false;
                    }
                }
                Some(Node::Dir) => {}
                // Directories a layer implies without an entry of their own.
                None => {
                    if pending.is_empty() {
                        return false;
                    }
                }
            }
        }
        matches!(self.nodes.get(&at.join("/")), Some(Node::File))
    }
}

impl Session<'_> {
    /// Fails the build when a wheel of `image` needs a library the image lacks (see the module
    /// comment). Recorded under a key of the image's layers, so an image is read once: a warm
    /// build only looks the record up.
    pub(crate) fn check_loadable(&self, plan: &Plan, image: &ImagePlan, results: &[Output]) -> Result<(), BuildError> {
        let layers: Vec<(&LayerBlob, bool)> = image
            .layers
            .iter()
            .filter_map(|l| {
                results[l.step].layer().map(|layer| (layer, plan.steps[l.step].kind == StepKind::WheelLayer))
            })
            .collect();
        if !layers.iter().any(|(_, wheels)| *wheels) {
            return Ok(());
        }
        let env_paths: Vec<String> = self
            .recipe
            .config
            .env
            .get("LD_LIBRARY_PATH")
            .map(|v| v.split(':').filter(|d| !d.is_empty()).map(str::to_string).collect())
            .unwrap_or_default();
        let loader = if self.recipe.base.musl() { Loader::Musl } else { Loader::Glibc };
        let keyed: Vec<(String, bool)> =
            layers.iter().map(|(layer, wheels)| (layer.diff_id.to_hex(), *wheels)).collect();
        let key = crate::keys::library_check_key(
            &image.platform.to_string(),
            &format!("{loader:?}"),
            &env_paths.join(":"),
            &keyed,
        );
        let store = self.ctx.store;
        if store.action_get(&key)?.is_some() {
            return Ok(());
        }
        self.ctx
            .reporter
            .status("Checking", &format!("that every wheel's libraries are in the image ({})", image.platform));
        let mut files = ImageFiles::default();
        for (layer, wheels) in &layers {
            let mut file = store.open_blob(&layer.blob)?;
            let read: std::io::Result<()> = match layer.compression {
                Compression::Gzip => files.add_layer(flate2::read::MultiGzDecoder::new(&mut file), *wheels),
                Compression::Zstd => {
                    zstd::stream::read::Decoder::new(&mut file).and_then(|tar| files.add_layer(tar, *wheels))
                }
            };
            // The store's verdict on the blob first: a damaged one says so, not "bad tar".
            file.finish()?;
            read.map_err(|source| BuildError::LayerUnreadable {
                layer: layer.blob.sha256,
                purpose: "for its libraries",
                source,
            })?;
        }
        let missing = files.missing(loader, &env_paths);
        if missing.is_empty() {
            store.action_put(&key, &crate::records::empty_record("library-check"))?;
            return Ok(());
        }
        let libraries: BTreeSet<&str> = missing.iter().map(|m| m.library.as_str()).collect();
        // Which package would bring each: the distribution's to say (a failure to find out
        // costs the hint, not the error).
        let providers = match loader {
            Loader::Glibc => self
                .locked_digest(&image.release)
                .and_then(|digest| self.release_of_lock(&image.release, &digest))
                .and_then(|release| Ok(self.backend.library_packages(&release, &image.platform, &libraries)?))
                .unwrap_or_default(),
            Loader::Musl => BTreeMap::new(),
        };
        Err(BuildError::WheelLibraries {
            adding: self.adds_system_libraries(),
            platform: image.platform.to_string(),
            count: missing.len(),
            missing: describe(&missing, &providers),
            packages: providers
                .values()
                .filter_map(|p| p.first().cloned())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
        })
    }
}

fn is_loader_config(path: &str) -> bool {
    path == "etc/ld.so.conf"
        || path.starts_with("etc/ld.so.conf.d/")
        || (path.starts_with("etc/ld-musl-") && path.ends_with(".path"))
}

/// A path as the image's root names it: no leading `/` or `./`, no empty or `.` components,
/// `..` applied.
fn normal(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.join("/")
}

/// The missing libraries as the build's error lists them, one line each.
pub(crate) fn describe(missing: &[Missing], providers: &BTreeMap<String, Vec<String>>) -> String {
    missing
        .iter()
        .map(|m| {
            let from = match providers.get(&m.library).map(Vec::as_slice) {
                Some([]) | None => String::new(),
                Some(packages) => format!(" (package {})", packages.join(" or ")),
            };
            // Names from the image's files: shown, never obeyed by the terminal.
            format!("{}: {} needs {}{from}", m.wheel.escape_debug(), m.file.escape_debug(), m.library.escape_debug())
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(entries: &[(&str, Node)]) -> ImageFiles {
        let mut files = ImageFiles::default();
        for (path, node) in entries {
            files.nodes.insert(path.to_string(), node.clone());
        }
        files
    }

    #[test]
    fn libraries_are_found_through_links_as_the_loader_finds_them() {
        let files = image(&[
            ("lib", Node::Link("usr/lib".into())),
            ("usr/lib/x86_64-linux-gnu", Node::Dir),
            ("usr/lib/x86_64-linux-gnu/libstdc++.so.6", Node::Link("libstdc++.so.6.0.33".into())),
            ("usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.33", Node::File),
            ("usr/lib/x86_64-linux-gnu/libgone.so.1", Node::Link("/nowhere/libgone.so.1".into())),
            ("usr/lib/x86_64-linux-gnu/loop.so", Node::Link("loop.so".into())),
        ]);
        assert!(files.is_file("lib/x86_64-linux-gnu/libstdc++.so.6"));
        assert!(files.is_file("usr/lib/x86_64-linux-gnu/../x86_64-linux-gnu/libstdc++.so.6"));
        assert!(!files.is_file("lib/x86_64-linux-gnu/libgone.so.1"), "a dangling link is no library");
        assert!(!files.is_file("lib/x86_64-linux-gnu/loop.so"), "a loop ends");
        assert!(!files.is_file("lib/x86_64-linux-gnu"), "a directory is no library");
    }

    #[test]
    fn a_wheels_needs_are_met_by_its_own_libs_the_configured_dirs_or_nothing() {
        let mut files = image(&[
            ("usr/lib/x86_64-linux-gnu/libc.so.6", Node::File),
            ("opt/venv/lib/python3.13/site-packages/numpy.libs/libopenblas.so", Node::File),
        ]);
        files
            .loader_config
            .insert("etc/ld.so.conf.d/x86_64-linux-gnu.conf".into(), "# multiarch\n/usr/lib/x86_64-linux-gnu\n".into());
        let site = "opt/venv/lib/python3.13/site-packages";
        files.needs.push(Needs {
            path: format!("{site}/numpy/_core/_multiarray.so"),
            needed: vec!["libc.so.6".into(), "libopenblas.so".into(), "libstdc++.so.6".into()],
            search: vec!["$ORIGIN/../../numpy.libs".into()],
        });
        files.add_record(
            &format!("{site}/numpy-2.1.0.dist-info/RECORD"),
            "numpy/_core/_multiarray.so,sha256=x,1\nnumpy-2.1.0.dist-info/RECORD,,\n",
        );
        let missing = files.missing(Loader::Glibc, &[]);
        assert_eq!(
            missing,
            vec![Missing {
                wheel: "numpy".into(),
                file: format!("/{site}/numpy/_core/_multiarray.so"),
                library: "libstdc++.so.6".into()
            }]
        );
        // LD_LIBRARY_PATH of the image counts.
        files.nodes.insert("srv/lib/libstdc++.so.6".into(), Node::File);
        assert!(files.missing(Loader::Glibc, &["/srv/lib".into()]).is_empty());
        // musl's loader reads neither ld.so.conf nor the multiarch directories.
        assert_eq!(files.missing(Loader::Musl, &["/srv/lib".into()]).len(), 1, "libc.so.6 is not musl's");
        let said =
            describe(&missing, &BTreeMap::from([("libstdc++.so.6".to_string(), vec!["libstdc++6".to_string()])]));
        assert!(said.ends_with("needs libstdc++.so.6 (package libstdc++6)"), "{said}");
    }
}
