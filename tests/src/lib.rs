//! Test fixtures for composer's end-to-end tests.
//!
//! - [`Deb`]: builds `.deb` files in memory, including ones a real packager would refuse to make
//!   (`../` paths, absolute paths, symlinks out of the root), so bad input can be made on purpose.
//! - [`LocalMirror`]: a `file://` Debian archive with `pool/`, `Packages.xz`, `Release` and an
//!   `InRelease` signed by a throwaway OpenPGP key (made with gpg, as real archives are signed).
//! - [`Compose`]: runs the real `compose` binary in a hermetic environment (temp HOME, XDG dirs and
//!   store, no colour, no host apt sources unless asked).

// The test kit is test code: it makes temporary directories under TMPDIR, reads the variables
// that switch on live tests and prints what a failing test needs; the lints that keep library
// crates from doing so (clippy.toml) do not apply to it.
#![allow(clippy::disallowed_methods, clippy::print_stdout, clippy::print_stderr)]

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod lints;
#[cfg(test)]
mod module_graph;
#[cfg(test)]
mod source_rules;
mod wheels;
pub use wheels::{LocalIndex, Sdist, Wheel};

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::Digest;

pub enum Entry {
    Dir(&'static str),
    File(String, Vec<u8>, u32),
    Symlink(String, String),
    Hardlink(String, String),
    /// A regular file whose tar name is written verbatim, bypassing every check.
    RawName(Vec<u8>, Vec<u8>),
    /// A symlink whose target is written verbatim.
    RawSymlink(String, String),
}

pub mod registry;

pub struct Deb {
    pub name: String,
    pub version: String,
    pub arch: String,
    pub fields: Vec<(String, String)>,
    pub entries: Vec<Entry>,
    /// `data.tar.gz` instead of bookworm's `data.tar.xz` (much faster for large fixtures).
    pub gzip_data: bool,
}

impl Deb {
    pub fn new(name: &str, version: &str) -> Deb {
        Deb {
            name: name.into(),
            version: version.into(),
            arch: "amd64".into(),
            fields: vec![],
            entries: vec![],
            gzip_data: false,
        }
    }
    pub fn gzip_data(mut self) -> Self {
        self.gzip_data = true;
        self
    }
    pub fn arch(mut self, arch: &str) -> Self {
        self.arch = arch.into();
        self
    }
    pub fn field(mut self, key: &str, value: &str) -> Self {
        self.fields.push((key.into(), value.into()));
        self
    }
    pub fn file(mut self, path: &str, data: &[u8]) -> Self {
        self.entries.push(Entry::File(path.into(), data.to_vec(), 0o644));
        self
    }
    pub fn entry(mut self, entry: Entry) -> Self {
        self.entries.push(entry);
        self
    }

    pub fn control(&self) -> String {
        let mut text = format!(
            "Package: {}\nVersion: {}\nArchitecture: {}\nMaintainer: test <test@invalid>\n",
            self.name, self.version, self.arch
        );
        for (k, v) in &self.fields {
            text.push_str(&format!("{k}: {v}\n"));
        }
        text.push_str(&format!("Description: fixture package {}\n", self.name));
        text
    }

    /// The `.deb` bytes: ar archive of debian-binary, control.tar.gz and data.tar.xz.
    pub fn build(&self) -> Vec<u8> {
        let control = tar_gz(&[("./control", self.control().into_bytes())]);
        let data = xz(&self.data_tar());
        let mut out = Vec::new();
        {
            let mut builder = ar::Builder::new(&mut out);
            for (name, bytes) in
                [("debian-binary", b"2.0\n".to_vec()), ("control.tar.gz", control), ("data.tar.xz", data)]
            {
                let mut header = ar::Header::new(name.as_bytes().to_vec(), bytes.len() as u64);
                header.set_mode(0o644);
                builder.append(&header, bytes.as_slice()).unwrap();
            }
        }
        out
    }

    fn data_tar(&self) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut dirs = std::collections::BTreeSet::new();
        for entry in &self.entries {
            if let Entry::File(path, ..) | Entry::Symlink(path, _) | Entry::Hardlink(path, _) = entry {
                let mut parent = Path::new(path.as_str()).parent();
                while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
                    dirs.insert(p.to_string_lossy().into_owned());
                    parent = p.parent();
                }
            }
        }
        for dir in dirs {
            append(&mut builder, tar::EntryType::Directory, format!("./{dir}/").as_bytes(), None, 0o755, &[]);
        }
        for entry in &self.entries {
            match entry {
                Entry::Dir(path) => {
                    append(&mut builder, tar::EntryType::Directory, format!("./{path}/").as_bytes(), None, 0o755, &[])
                }
                Entry::File(path, data, mode) => {
                    append(&mut builder, tar::EntryType::Regular, format!("./{path}").as_bytes(), None, *mode, data)
                }
                Entry::Symlink(path, target) | Entry::RawSymlink(path, target) => append(
                    &mut builder,
                    tar::EntryType::Symlink,
                    format!("./{path}").as_bytes(),
                    Some(target.as_bytes()),
                    0o777,
                    &[],
                ),
                Entry::Hardlink(path, target) => append(
                    &mut builder,
                    tar::EntryType::Link,
                    format!("./{path}").as_bytes(),
                    Some(format!("./{target}").as_bytes()),
                    0o644,
                    &[],
                ),
                Entry::RawName(name, data) => append(&mut builder, tar::EntryType::Regular, name, None, 0o644, data),
            }
        }
        builder.into_inner().unwrap()
    }
}

/// Appends an entry with its name and link bytes written straight into the header, so that the
/// tar crate's own path checks cannot stop a deliberately bad fixture.
fn append(
    builder: &mut tar::Builder<Vec<u8>>,
    kind: tar::EntryType,
    name: &[u8],
    link: Option<&[u8]>,
    mode: u32,
    data: &[u8],
) {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(data.len() as u64);
    header.set_mtime(1_600_000_000);
    header.set_uid(0);
    header.set_gid(0);
    if name.len() > 100 {
        // Long (well-formed) names go through the tar crate's GNU long-name support.
        let name = String::from_utf8(name.to_vec()).unwrap();
        builder.append_data(&mut header, name, data).unwrap();
        return;
    }
    let old = header.as_old_mut();
    old.name[..name.len()].copy_from_slice(name);
    if let Some(link) = link {
        old.linkname[..link.len()].copy_from_slice(link);
    }
    header.set_cksum();
    builder.append(&header, data).unwrap();
}

fn tar_gz(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in files {
        append(&mut builder, tar::EntryType::Regular, name.as_bytes(), None, 0o644, data);
    }
    let tar = builder.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

pub fn xz(data: &[u8]) -> Vec<u8> {
    let mut encoder = liblzma::write::XzEncoder::new(Vec::new(), 1);
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// A minimal ELF64 shared object for `machine` (62 x86-64, 183 aarch64) whose dynamic section
/// names `needed` (DT_NEEDED) and `runpath` (DT_RUNPATH): what the loader, and compose's check
/// of a wheel's libraries, read of a real one.
pub fn elf_needing(machine: u16, needed: &[&str], runpath: Option<&str>) -> Vec<u8> {
    let mut strings = vec![0u8];
    let mut string = |text: &str| {
        let at = strings.len() as u64;
        strings.extend_from_slice(text.as_bytes());
        strings.push(0);
        at
    };
    let mut dynamic: Vec<(u64, u64)> = needed.iter().map(|n| (1, string(n))).collect();
    if let Some(path) = runpath {
        dynamic.push((29, string(path)));
    }
    let strtab = 64 + 2 * 56;
    let dyn_at = (strtab + strings.len() as u64).next_multiple_of(8);
    dynamic.extend([(5, strtab), (10, strings.len() as u64), (0, 0)]);
    let total = dyn_at + 16 * dynamic.len() as u64;
    let mut out = Vec::new();
    out.extend_from_slice(b"\x7fELF\x02\x01\x01\x00");
    out.extend_from_slice(&[0; 8]);
    for half in [3u16, machine] {
        out.extend_from_slice(&half.to_le_bytes());
    }
    out.extend_from_slice(&1u32.to_le_bytes());
    for word in [0u64, 64, 0] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    out.extend_from_slice(&0u32.to_le_bytes());
    for half in [64u16, 56, 2, 64, 0, 0] {
        out.extend_from_slice(&half.to_le_bytes());
    }
    // PT_LOAD over the whole file at address 0, then PT_DYNAMIC.
    for (kind, flags, offset, size) in [(1u32, 5u32, 0u64, total), (2, 6, dyn_at, total - dyn_at)] {
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&flags.to_le_bytes());
        for word in [offset, offset, offset, size, size, 8] {
            out.extend_from_slice(&word.to_le_bytes());
        }
    }
    out.extend_from_slice(&strings);
    out.resize(dyn_at as usize, 0);
    for (tag, value) in dynamic {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&value.to_le_bytes());
    }
    out
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(data))
}

/// The packages every composer image needs (base-files, base-passwd), as tiny fixtures.
pub fn base_packages(arch: &str) -> Vec<Deb> {
    vec![
        Deb::new("base-files", "13")
            .arch(arch)
            .file("etc/os-release", b"ID=debian\nVERSION_ID=\"12\"\n")
            .entry(Entry::Dir("tmp")),
        Deb::new("base-passwd", "3.6")
            .arch(arch)
            .file("usr/share/base-passwd/passwd.master", b"root:x:0:0:root:/root:/bin/sh\n")
            .file("usr/share/base-passwd/group.master", b"root:x:0:\n"),
    ]
}

/// A signed `file://` Debian archive in a temp directory.
pub struct LocalMirror {
    pub root: PathBuf,
    pub gnupg: PathBuf,
    pub keyring: PathBuf,
    _dir: tempfile::TempDir,
}

impl LocalMirror {
    pub fn new() -> LocalMirror {
        // gpg-agent's socket path must be short: keep the home in /tmp.
        let dir = tempfile::Builder::new().prefix("cm").tempdir_in("/tmp").unwrap();
        let root = dir.path().join("debian");
        let gnupg = dir.path().join("g");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&gnupg).unwrap();
        let mut perms = std::fs::metadata(&gnupg).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o700);
        std::fs::set_permissions(&gnupg, perms).unwrap();
        gpg(&gnupg, &["--quick-gen-key", "composer fixture <fixture@invalid>", "ed25519", "sign", "never"]);
        let keyring = dir.path().join("keyring.gpg");
        let exported = gpg(&gnupg, &["--export"]);
        std::fs::write(&keyring, exported).unwrap();
        LocalMirror { root, gnupg, keyring, _dir: dir }
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.root.display())
    }

    /// Writes `pool/`, the `Packages` index of each architecture, `Release` and a signed
    /// `InRelease` for `suite`, replacing what was there.
    pub fn publish(&self, suite: &str, debs: &[Deb]) {
        self.publish_with(suite, debs, &Publish::default());
    }

    /// As [`LocalMirror::publish`], with the Release's fields and signatures as `how` says.
    pub fn publish_with(&self, suite: &str, debs: &[Deb], how: &Publish) {
        let mut by_arch: std::collections::BTreeMap<String, String> = Default::default();
        let arches: std::collections::BTreeSet<String> =
            debs.iter().map(|d| d.arch.clone()).filter(|a| a != "all").collect();
        for deb in debs {
            let bytes = deb.build();
            let filename = format!("pool/main/{}/{}_{}_{}.deb", deb.name, deb.name, deb.version, deb.arch);
            let path = self.root.join(&filename);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &bytes).unwrap();
            let stanza = format!(
                "{}Filename: {filename}\nSize: {}\nSHA256: {}\n\n",
                deb.control(),
                bytes.len(),
                sha256_hex(&bytes)
            );
            let targets: Vec<String> =
                if deb.arch == "all" { arches.iter().cloned().collect() } else { vec![deb.arch.clone()] };
            for arch in targets {
                by_arch.entry(arch).or_default().push_str(&stanza);
            }
        }
        let dists = self.root.join("dists").join(suite);
        let mut sums = String::new();
        // `Contents-ARCH.gz`, as the archive publishes it: which package ships which file.
        for arch in by_arch.keys() {
            let mut lines: Vec<String> = Vec::new();
            for deb in debs.iter().filter(|d| d.arch == *arch || d.arch == "all") {
                for entry in &deb.entries {
                    let path = match entry {
                        Entry::File(path, ..) | Entry::Symlink(path, _) | Entry::Hardlink(path, _) => path,
                        _ => continue,
                    };
                    lines.push(format!("{:<60} misc/{}\n", path.trim_start_matches("./"), deb.name));
                }
            }
            lines.sort();
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(lines.concat().as_bytes()).unwrap();
            let gzipped = encoder.finish().unwrap();
            std::fs::create_dir_all(dists.join("main")).unwrap();
            std::fs::write(dists.join(format!("main/Contents-{arch}.gz")), &gzipped).unwrap();
            sums.push_str(&format!(" {} {} main/Contents-{arch}.gz\n", sha256_hex(&gzipped), gzipped.len()));
        }
        for (arch, text) in &by_arch {
            let dir = dists.join(format!("main/binary-{arch}"));
            std::fs::create_dir_all(&dir).unwrap();
            let compressed = xz(text.as_bytes());
            std::fs::write(dir.join("Packages.xz"), &compressed).unwrap();
            std::fs::write(dir.join("Packages"), text).unwrap();
            sums.push_str(&format!(
                " {} {} main/binary-{arch}/Packages.xz\n",
                sha256_hex(&compressed),
                compressed.len()
            ));
            sums.push_str(&format!(" {} {} main/binary-{arch}/Packages\n", sha256_hex(text.as_bytes()), text.len()));
            if how.gzip {
                let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                encoder.write_all(text.as_bytes()).unwrap();
                let gzipped = encoder.finish().unwrap();
                std::fs::write(dir.join("Packages.gz"), &gzipped).unwrap();
                sums.push_str(&format!(" {} {} main/binary-{arch}/Packages.gz\n", sha256_hex(&gzipped), gzipped.len()));
            }
        }
        let named = how.suite_field.as_deref().unwrap_or(suite);
        let release = format!(
            "Origin: composer-fixture\nSuite: {named}\nCodename: {named}\nDate: {}\n{}Architectures: {}\nComponents: main\nSHA256:\n{sums}",
            how.date.as_deref().unwrap_or(DEFAULT_RELEASE_DATE),
            how.valid_until.as_ref().map(|v| format!("Valid-Until: {v}\n")).unwrap_or_default(),
            by_arch.keys().cloned().collect::<Vec<_>>().join(" ")
        );
        std::fs::write(dists.join("Release"), &release).unwrap();
        for old in ["InRelease", "Release.gpg"] {
            let _ = std::fs::remove_file(dists.join(old));
        }
        let (flag, name) = if how.detached { ("--detach-sign", "Release.gpg") } else { ("--clearsign", "InRelease") };
        let mut args = vec![flag, "--output", dists.join(name).to_str().unwrap().to_string().leak()];
        if how.detached {
            args.insert(0, "--armor");
        }
        args.push(dists.join("Release").to_str().unwrap().to_string().leak());
        gpg(&self.gnupg, &args);
    }

    pub fn dists(&self, suite: &str) -> PathBuf {
        self.root.join("dists").join(suite)
    }
}

/// The `Date:` of a fixture Release unless [`Publish::date`] says otherwise.
pub const DEFAULT_RELEASE_DATE: &str = "Thu, 01 Jan 2026 00:00:00 UTC";

/// How [`LocalMirror::publish_with`] writes the Release.
#[derive(Default)]
pub struct Publish {
    /// `Date:` (RFC 2822) other than [`DEFAULT_RELEASE_DATE`].
    pub date: Option<String>,
    /// `Valid-Until:` (RFC 2822), if any.
    pub valid_until: Option<String>,
    /// `Suite:` and `Codename:` other than the directory's name (a suite served under another).
    pub suite_field: Option<String>,
    /// `Release` + `Release.gpg` (detached, armored), no `InRelease`.
    pub detached: bool,
    /// A `Packages.gz` beside `Packages.xz`, as most archives have.
    pub gzip: bool,
}

impl Default for LocalMirror {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for LocalMirror {
    fn drop(&mut self) {
        // Stop the gpg-agent this fixture's gpg started (by its home, not by name).
        let _ = Command::new("gpgconf").arg("--homedir").arg(&self.gnupg).args(["--kill", "gpg-agent"]).output();
    }
}

fn gpg(home: &Path, args: &[&str]) -> Vec<u8> {
    let output = Command::new("gpg")
        .arg("--homedir")
        .arg(home)
        .args(["--batch", "--yes", "--pinentry-mode", "loopback", "--passphrase", ""])
        .args(args)
        .output()
        .expect("gpg runs (apt-get install gnupg)");
    assert!(output.status.success(), "gpg {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

/// Runs the compose binary hermetically.
pub struct Compose {
    pub bin: PathBuf,
    pub home: tempfile::TempDir,
    pub store: PathBuf,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
    /// Use the host's apt sources (for tests against the machine's real mirror).
    pub host_apt: bool,
}

impl Compose {
    pub fn new(bin: &str) -> Compose {
        let home = tempfile::tempdir().unwrap();
        let store = home.path().join("store");
        let cwd = home.path().join("work");
        std::fs::create_dir_all(&cwd).unwrap();
        // Its own temporary directory, which goes with the test: the logs a failed build keeps
        // (`compose-failed-*`), which tests of failing builds make on purpose, go there.
        std::fs::create_dir_all(home.path().join("tmp")).unwrap();
        Compose { bin: bin.into(), store, cwd, home, env: vec![], host_apt: false }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.env_clear()
            .current_dir(&self.cwd)
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("XDG_CACHE_HOME", self.home.path().join("cache"))
            .env("XDG_CONFIG_HOME", self.home.path().join("config"))
            .env("NO_COLOR", "1")
            .env("TMPDIR", self.home.path().join("tmp"))
            .arg("--store")
            .arg(&self.store)
            .args(args);
        if !self.host_apt {
            cmd.env("COMPOSE_APT_DIR", self.home.path().join("no-apt"));
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs under another umask (through `sh`, so that only the child has it).
    pub fn run_with_umask(&self, umask: &str, args: &[&str]) -> Output {
        let cmd = self.command(args);
        let mut shell = Command::new("sh");
        shell
            .arg("-c")
            .arg(format!("umask {umask}; exec \"$@\""))
            .arg("sh")
            .arg(cmd.get_program())
            .args(cmd.get_args());
        shell.env_clear().current_dir(&self.cwd);
        for (k, v) in cmd.get_envs() {
            if let Some(v) = v {
                shell.env(k, v);
            }
        }
        shell.output().unwrap()
    }

    /// Runs and asserts success, returning stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "compose {args:?} failed:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and asserts failure, returning stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "compose {args:?} should have failed:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    /// Runs `build --json` and returns the summary.
    pub fn build_json(&self, recipe: &Path, extra: &[&str]) -> serde_json::Value {
        let mut args = vec!["--json", "build", recipe.to_str().unwrap()];
        args.extend_from_slice(extra);
        serde_json::from_str(&self.ok(&args)).unwrap()
    }
}

/// Every object file of a store (for "nothing unverified stored" checks): path → bytes.
pub fn store_objects(store: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(shards) = std::fs::read_dir(store.join("objects-v1")) else { return out };
    for shard in shards.flatten() {
        for entry in std::fs::read_dir(shard.path()).unwrap().flatten() {
            out.push(entry.path());
        }
    }
    out
}

/// Whether the store holds an object with this SHA-256 (as a sha256 alias).
pub fn store_has_sha256(store: &Path, sha_hex: &str) -> bool {
    store.join("sha256-v1").join(&sha_hex[..2]).join(sha_hex).exists()
}

/// One tar entry of an image layer, as a test inspects it.
#[derive(Debug, Clone)]
pub struct LayerEntry {
    pub layer: usize,
    pub path: String,
    /// The name's bytes as the tar holds them (`path` is their lossy text).
    pub path_bytes: Vec<u8>,
    pub kind: tar::EntryType,
    pub mode: u32,
    pub mtime: u64,
    pub uid: u64,
    pub link: Option<String>,
    pub data: Vec<u8>,
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// The manifest of `platform` (e.g. "amd64") in an OCI layout written by compose.
pub fn manifest(layout: &Path, architecture: &str) -> serde_json::Value {
    let blob = |d: &str| layout.join("blobs/sha256").join(d.trim_start_matches("sha256:"));
    let top = read_json(&layout.join("index.json"));
    let index = read_json(&blob(top["manifests"][0]["digest"].as_str().unwrap()));
    let descriptor = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == architecture)
        .unwrap_or_else(|| panic!("no {architecture} manifest"));
    read_json(&blob(descriptor["digest"].as_str().unwrap()))
}

/// The image config of `platform` in an OCI layout written by compose.
pub fn image_config(layout: &Path, architecture: &str) -> serde_json::Value {
    let digest = manifest(layout, architecture)["config"]["digest"].as_str().unwrap().to_string();
    read_json(&layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:")))
}

/// Every entry of every layer of one platform's image, in order.
pub fn layer_entries(layout: &Path, architecture: &str) -> Vec<LayerEntry> {
    let manifest = manifest(layout, architecture);
    let mut out = Vec::new();
    for (i, layer) in manifest["layers"].as_array().unwrap().iter().enumerate() {
        let path = layout.join("blobs/sha256").join(layer["digest"].as_str().unwrap().trim_start_matches("sha256:"));
        let file = std::fs::File::open(path).unwrap();
        let media = layer["mediaType"].as_str().unwrap();
        let reader: Box<dyn std::io::Read> = if media.ends_with("gzip") {
            Box::new(flate2::read::MultiGzDecoder::new(file))
        } else {
            panic!("test reads gzip layers only, got {media}")
        };
        let mut archive = tar::Archive::new(reader);
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
            out.push(LayerEntry {
                layer: i,
                path: entry.path().unwrap().to_string_lossy().into_owned(),
                path_bytes: entry.path_bytes().into_owned(),
                kind: entry.header().entry_type(),
                mode: entry.header().mode().unwrap(),
                mtime: entry.header().mtime().unwrap(),
                uid: entry.header().uid().unwrap(),
                link: entry.link_name().unwrap().map(|l| l.to_string_lossy().into_owned()),
                data,
            });
        }
    }
    out
}

/// The kinds of the steps a `build --json` summary says ran (were not cached).
pub fn ran_steps(summary: &serde_json::Value) -> Vec<String> {
    summary["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["cached"] == false)
        .map(|s| s["step"].as_str().unwrap().to_string())
        .collect()
}

/// The store object that holds the blob with this SHA-256 (through its sha256 alias).
pub fn store_object_by_sha256(store: &Path, sha_hex: &str) -> PathBuf {
    let alias = std::fs::read_to_string(store.join("sha256-v1").join(&sha_hex[..2]).join(sha_hex)).unwrap();
    let id = alias.split_whitespace().next().unwrap().to_string();
    store.join("objects-v1").join(&id[..2]).join(id)
}

/// `len` bytes that no compressor shrinks (xorshift), the same every time.
pub fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Changes a (read-only) store object in place, as a failing disk or a careless hand would.
pub fn damage(object: &Path, edit: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = std::fs::read(object).unwrap();
    edit(&mut bytes);
    let mut perms = std::fs::metadata(object).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
    std::fs::set_permissions(object, perms).unwrap();
    std::fs::write(object, bytes).unwrap();
}

/// Checks that every blob of an OCI layout hashes to its name; returns how many there are.
pub fn assert_layout_blobs_intact(layout: &Path) -> usize {
    let mut count = 0;
    for entry in std::fs::read_dir(layout.join("blobs/sha256")).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        assert_eq!(sha256_hex(&std::fs::read(entry.path()).unwrap()), name, "blob {name} does not match its digest");
        count += 1;
    }
    count
}
