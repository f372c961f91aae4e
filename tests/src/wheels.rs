//! Wheel fixtures: wheels built here, byte by byte (so that a broken RECORD or a `../` entry
//! can be made on purpose), and a `file://` PEP 503 index that serves them.

use std::io::Write;
use std::path::PathBuf;

use base64::Engine;
use sha2::Digest;

use crate::sha256_hex;

#[derive(Clone)]
pub struct Wheel {
    pub name: String,
    pub version: String,
    pub tag: String,
    pub requires: Vec<String>,
    pub files: Vec<(String, Vec<u8>, u32)>,
    /// Entries written to the archive and to RECORD as given, even if unsafe.
    pub raw: Vec<(String, Vec<u8>)>,
    /// RECORD hashes replaced by this one (to make a RECORD that does not match).
    pub bad_record_hash: bool,
    pub entry_points: Option<String>,
}

impl Wheel {
    pub fn new(name: &str, version: &str) -> Wheel {
        Wheel {
            name: name.into(),
            version: version.into(),
            tag: "py3-none-any".into(),
            requires: vec![],
            files: vec![(format!("{name}/__init__.py"), format!("VERSION = '{version}'\n").into_bytes(), 0o644)],
            raw: vec![],
            bad_record_hash: false,
            entry_points: None,
        }
    }

    pub fn tag(mut self, tag: &str) -> Wheel {
        self.tag = tag.into();
        self
    }

    pub fn requires(mut self, requirement: &str) -> Wheel {
        self.requires.push(requirement.into());
        self
    }

    pub fn file(mut self, path: &str, data: &[u8], mode: u32) -> Wheel {
        self.files.push((path.into(), data.to_vec(), mode));
        self
    }

    pub fn raw(mut self, path: &str, data: &[u8]) -> Wheel {
        self.raw.push((path.into(), data.to_vec()));
        self
    }

    pub fn script(mut self, name: &str, module: &str) -> Wheel {
        self.entry_points = Some(format!("[console_scripts]\n{name} = {module}\n"));
        self
    }

    pub fn bad_record(mut self) -> Wheel {
        self.bad_record_hash = true;
        self
    }

    fn dist(&self) -> String {
        format!("{}-{}", self.name.replace('-', "_"), self.version)
    }

    pub fn filename(&self) -> String {
        format!("{}-{}.whl", self.dist(), self.tag)
    }

    pub fn build(&self) -> Vec<u8> {
        let dist_info = format!("{}.dist-info", self.dist());
        let mut metadata = format!("Metadata-Version: 2.1\nName: {}\nVersion: {}\n", self.name, self.version);
        for r in &self.requires {
            metadata.push_str(&format!("Requires-Dist: {r}\n"));
        }
        let mut entries: Vec<(String, Vec<u8>, u32)> = self.files.clone();
        entries.extend(self.raw.iter().map(|(p, d)| (p.clone(), d.clone(), 0o644)));
        entries.push((format!("{dist_info}/METADATA"), metadata.into_bytes(), 0o644));
        entries.push((
            format!("{dist_info}/WHEEL"),
            format!("Wheel-Version: 1.0\nGenerator: composer-testkit\nRoot-Is-Purelib: true\nTag: {}\n", self.tag)
                .into_bytes(),
            0o644,
        ));
        if let Some(eps) = &self.entry_points {
            entries.push((format!("{dist_info}/entry_points.txt"), eps.clone().into_bytes(), 0o644));
        }
        let mut record = String::new();
        for (path, data, _) in &entries {
            let hash = if self.bad_record_hash {
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(b"something else"))
            } else {
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(data))
            };
            record.push_str(&format!("{path},sha256={hash},{}\n", data.len()));
        }
        record.push_str(&format!("{dist_info}/RECORD,,\n"));
        entries.push((format!("{dist_info}/RECORD"), record.into_bytes(), 0o644));

        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (path, data, mode) in entries {
            let options = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated)
                .last_modified_time(zip::DateTime::default())
                .unix_permissions(mode);
            zip.start_file(path, options).unwrap();
            zip.write_all(&data).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }
}

/// A PEP 503 index in a temp directory: `simple/<project>/index.html` linking `files/`.
pub struct LocalIndex {
    pub root: PathBuf,
    _dir: tempfile::TempDir,
    published: std::cell::RefCell<Vec<(String, String, String)>>,
}

impl Default for LocalIndex {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalIndex {
    pub fn new() -> LocalIndex {
        let dir = tempfile::Builder::new().prefix("ci").tempdir_in("/tmp").unwrap();
        let root = dir.path().join("index");
        std::fs::create_dir_all(root.join("files")).unwrap();
        LocalIndex { root, _dir: dir, published: Default::default() }
    }

    pub fn url(&self) -> String {
        format!("file://{}/simple", self.root.display())
    }

    /// Adds wheels, each advertised with its true sha256.
    pub fn publish(&self, wheels: &[Wheel]) {
        for wheel in wheels {
            let bytes = wheel.build();
            self.add(wheel, &bytes, &sha256_hex(&bytes));
        }
    }

    /// Adds a wheel advertised with a sha256 that is not its own.
    pub fn publish_with_wrong_hash(&self, wheel: &Wheel) {
        self.add(wheel, &wheel.build(), &sha256_hex(b"not this wheel"));
    }

    /// Adds a source distribution.
    pub fn publish_sdist(&self, sdist: &Sdist) {
        let bytes = sdist.build();
        self.add_file(&sdist.name, &sdist.filename(), &bytes, &sha256_hex(&bytes));
    }

    fn add(&self, wheel: &Wheel, bytes: &[u8], sha: &str) {
        self.add_file(&wheel.name, &wheel.filename(), bytes, sha);
    }

    fn add_file(&self, name: &str, filename: &str, bytes: &[u8], sha: &str) {
        std::fs::write(self.root.join("files").join(filename), bytes).unwrap();
        let project = name.to_lowercase().replace(['_', '.'], "-");
        self.published.borrow_mut().push((project, filename.to_string(), sha.to_string()));
        self.write_pages();
    }

    fn write_pages(&self) {
        let published = self.published.borrow();
        let mut projects: std::collections::BTreeMap<&str, String> = Default::default();
        for (project, file, sha) in published.iter() {
            projects
                .entry(project)
                .or_default()
                .push_str(&format!("<a href=\"../../files/{file}#sha256={sha}\">{file}</a><br/>\n"));
        }
        let simple = self.root.join("simple");
        let mut root = String::from("<!DOCTYPE html><html><body>\n");
        for (project, links) in &projects {
            std::fs::create_dir_all(simple.join(project)).unwrap();
            std::fs::write(
                simple.join(project).join("index.html"),
                format!("<!DOCTYPE html><html><body>\n{links}</body></html>\n"),
            )
            .unwrap();
            root.push_str(&format!("<a href=\"{project}/\">{project}</a><br/>\n"));
        }
        root.push_str("</body></html>\n");
        std::fs::write(simple.join("index.html"), root).unwrap();
    }
}

/// A source distribution with an in-tree PEP 517 backend (no build requirements, so it builds
/// offline). The module it builds records the host name it was built on, which tells a wheel
/// built in composer's sandbox (host name `composer`) from any other.
pub struct Sdist {
    pub name: String,
    pub version: String,
    /// Written into the backend as a comment: two sdists with different salts are different
    /// files, so a persistent store has never built this one.
    pub salt: String,
}

const SDIST_BACKEND: &str = r#"import base64, hashlib, os, socket, zipfile
NAME, VERSION = "@NAME@", "@VERSION@"
DIST = f"{NAME}-{VERSION}.dist-info"
STAMP = (1980, 1, 1, 0, 0, 0)

def _metadata():
    return {
        "METADATA": f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {VERSION}\n".encode(),
        "WHEEL": b"Wheel-Version: 1.0\nGenerator: fixture\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }

def get_requires_for_build_wheel(config_settings=None):
    return []

def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    os.makedirs(os.path.join(metadata_directory, DIST))
    for name, data in _metadata().items():
        with open(os.path.join(metadata_directory, DIST, name), "wb") as f:
            f.write(data)
    return DIST

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    files = {f"{NAME}/__init__.py": f"BUILT_IN = {socket.gethostname()!r}\nVERSION = {VERSION!r}\n".encode()}
    files.update({f"{DIST}/{name}": data for name, data in _metadata().items()})
    lines = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        lines.append(f"{path},sha256={digest},{len(data)}")
    lines.append(f"{DIST}/RECORD,,")
    wheel = f"{NAME}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, wheel), "w") as z:
        for path, data in files.items():
            z.writestr(zipfile.ZipInfo(path, STAMP), data)
        z.writestr(zipfile.ZipInfo(f"{DIST}/RECORD", STAMP), "\n".join(lines) + "\n")
    return wheel
"#;

impl Sdist {
    pub fn new(name: &str, version: &str) -> Sdist {
        Sdist { name: name.into(), version: version.into(), salt: String::new() }
    }

    pub fn salted(mut self, salt: &str) -> Sdist {
        self.salt = salt.into();
        self
    }

    pub fn filename(&self) -> String {
        format!("{}-{}.tar.gz", self.name, self.version)
    }

    pub fn build(&self) -> Vec<u8> {
        let top = format!("{}-{}", self.name, self.version);
        let files = [
            (
                "pyproject.toml",
                "[build-system]\nrequires = []\nbuild-backend = \"backend\"\nbackend-path = [\".\"]\n".to_string(),
            ),
            (
                "backend.py",
                format!(
                    "# {}\n{}",
                    self.salt,
                    SDIST_BACKEND.replace("@NAME@", &self.name).replace("@VERSION@", &self.version)
                ),
            ),
            ("PKG-INFO", format!("Metadata-Version: 2.1\nName: {}\nVersion: {}\n", self.name, self.version)),
        ];
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default()));
        for (path, text) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(text.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(1_700_000_000);
            header.set_cksum();
            builder.append_data(&mut header, format!("{top}/{path}"), text.as_bytes()).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }
}
