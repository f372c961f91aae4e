//! `[[sources]]`, `[toolchain]` and `[[builds]]`: what is compiled inside the sandbox, from
//! which pinned inputs, with which flags.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use toml::Spanned;

/// A fixed input: a remote file pinned by sha256, or a local file beside the recipe.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Source {
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// `mirror://NAME/path` (resolved like the base's mirror), `https://...` or `file://...`.
    #[schemars(with = "Option<String>")]
    pub url: Option<Spanned<String>>,
    /// A local file, relative to the recipe; its content is hashed into every step that uses it.
    #[schemars(with = "Option<PathBuf>")]
    pub path: Option<Spanned<PathBuf>>,
    /// Required with `url`; checked before anything else reads the file.
    #[schemars(with = "Option<String>")]
    pub sha256: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
pub enum OptLevel {
    O0,
    O1,
    #[default]
    O2,
    O3,
    Os,
}

impl OptLevel {
    pub fn flag(self) -> &'static str {
        match self {
            OptLevel::O0 => "-O0",
            OptLevel::O1 => "-O1",
            OptLevel::O2 => "-O2",
            OptLevel::O3 => "-O3",
            OptLevel::Os => "-Os",
        }
    }
}

/// Link-time optimisation: `false`, `true` (the compiler's default kind), `"thin"` or `"full"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub enum Lto {
    #[default]
    Off,
    On,
    Thin,
    Full,
}

impl schemars::JsonSchema for Lto {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Lto".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Link-time optimisation: false, true, \"thin\" or \"full\".",
            "anyOf": [{ "type": "boolean" }, { "type": "string", "enum": ["thin", "full"] }],
        })
    }
}

impl<'de> Deserialize<'de> for Lto {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(false) => Ok(Lto::Off),
            Raw::Bool(true) => Ok(Lto::On),
            Raw::Str(s) if s == "thin" => Ok(Lto::Thin),
            Raw::Str(s) if s == "full" => Ok(Lto::Full),
            Raw::Str(s) => Err(serde::de::Error::custom(format!("lto `{s}` is not true, false, \"thin\" or \"full\""))),
        }
    }
}

/// Per-platform overrides inside a profile (`[toolchain.platforms."linux/arm64"]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlatformFlags {
    pub march: Option<String>,
    pub mtune: Option<String>,
    /// PGO off on emulated platforms, where the training run is very slow.
    pub pgo: Option<bool>,
    /// BOLT off where llvm-bolt has no back end (it has x86-64 and AArch64), or where its
    /// training run would run under qemu-user.
    pub bolt: Option<bool>,
    #[serde(default)]
    pub cflags: Vec<String>,
    #[serde(default)]
    pub ldflags: Vec<String>,
}

/// One toolchain profile. `[toolchain]` is the default profile; `[toolchain.profiles.NAME]` are
/// named ones, each complete on its own (nothing is inherited, so a profile reads as it builds).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    #[serde(default)]
    pub opt: OptLevel,
    #[serde(default)]
    pub pgo: bool,
    #[serde(default)]
    pub lto: Lto,
    /// Post-link optimisation with llvm-bolt, trained on the same task as PGO, where a build
    /// supports it: CPython's `--enable-bolt`. Like PGO, its output follows a measured profile.
    #[serde(default)]
    pub bolt: bool,
    /// `false` adds `-fno-semantic-interposition`.
    #[serde(default = "yes")]
    pub semantic_interposition: bool,
    pub march: Option<String>,
    pub mtune: Option<String>,
    #[serde(default)]
    pub cflags: Vec<String>,
    #[serde(default)]
    pub ldflags: Vec<String>,
    #[serde(default)]
    pub platforms: BTreeMap<String, PlatformFlags>,
}

impl Default for Profile {
    /// What an absent `[toolchain]` means: the compiler's usual `-O2`, nothing else.
    fn default() -> Self {
        Profile {
            opt: OptLevel::default(),
            pgo: false,
            lto: Lto::Off,
            bolt: false,
            semantic_interposition: true,
            march: None,
            mtune: None,
            cflags: Vec::new(),
            ldflags: Vec::new(),
            platforms: BTreeMap::new(),
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, schemars::JsonSchema)]
pub struct Toolchain {
    #[serde(flatten)]
    pub default: Profile,
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

impl Profile {
    /// Whether BOLT runs for `platform`: its override, else the profile's own.
    pub fn bolt_on(&self, platform: &str) -> bool {
        self.platforms.get(platform).and_then(|o| o.bolt).unwrap_or(self.bolt)
    }

    /// Whether BOLT runs for any platform: the build then needs llvm-bolt in its root.
    pub fn bolt_anywhere(&self) -> bool {
        self.bolt || self.platforms.values().any(|o| o.bolt == Some(true))
    }

    /// Whether PGO trains for any platform.
    pub fn pgo_anywhere(&self) -> bool {
        self.pgo || self.platforms.values().any(|o| o.pgo == Some(true))
    }
}

impl Toolchain {
    /// The named profile, or the default one for `None`.
    pub fn profile(&self, name: Option<&str>) -> Option<&Profile> {
        match name {
            None | Some("default") => Some(&self.default),
            Some(name) => self.profiles.get(name),
        }
    }
}

/// `[[builds]]`: a script run in the sandbox; what it installs under `$DESTDIR` becomes a layer.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BuildSpec {
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// `[[sources]]` names, each mounted read-only at `/sources/NAME`.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub sources: Vec<Spanned<String>>,
    /// Distro packages of the build root, beside `build-essential`.
    #[serde(default)]
    pub build_depends: Vec<String>,
    /// Earlier builds (or `"jemalloc"` for a built allocator) whose outputs join the build root.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub uses: Vec<Spanned<String>>,
    /// A `[toolchain.profiles]` name; the default profile when absent.
    #[schemars(with = "Option<String>")]
    pub profile: Option<Spanned<String>>,
    /// A POSIX shell script, run with `sh -eu` in `/build`.
    pub script: String,
    /// Whether the output goes into the image: `true` (all of it), `"runtime"` (without
    /// headers, static archives, pkg-config files: what a distribution's library package
    /// holds) or `false` (a build only other builds use).
    #[serde(default)]
    pub image: BuildImage,
    /// With `[cross]`: whether this build cross-compiles for foreign platforms (its script
    /// passes `--build=$CBUILD --host=$CHOST` to configure and uses `$CC`, `$AR`, `$STRIP`...)
    /// or runs on the platform's own root under qemu-user.
    #[serde(default = "yes")]
    pub cross: bool,
}

/// `[cross]`: the platform whose build root compiles for every other one, with the
/// distribution's cross compilers. A build's key names the platform it ran on, so the same
/// key gives the same output on any machine (one of another architecture runs the build
/// platform's root under qemu-user).
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cross {
    #[schemars(with = "crate::Platform")]
    pub build: toml::Spanned<crate::Platform>,
}

impl crate::Recipe {
    /// The platform whose root cross-compiles builds for `target`, when it is not `target`.
    pub fn cross_build_for(&self, target: &crate::Platform) -> Option<&crate::Platform> {
        self.cross.as_ref().map(|c| c.build.get_ref()).filter(|build| *build != target)
    }

    /// Whether the CPython of `[python.build]` runs llvm-bolt on any platform.
    pub fn interpreter_bolts(&self) -> bool {
        self.interpreter_profile().is_some_and(Profile::bolt_anywhere)
    }

    /// Whether the CPython of `[python.build]` trains for PGO on any platform.
    pub fn interpreter_trains(&self) -> bool {
        self.interpreter_profile().is_some_and(Profile::pgo_anywhere)
    }

    fn interpreter_profile(&self) -> Option<&Profile> {
        let interpreter = self.python.as_ref().and_then(|p| p.build.as_ref())?;
        self.toolchain.profile(interpreter.profile.as_ref().map(|p| p.get_ref().as_str()))
    }
}

/// What of a build's output the image gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(try_from = "RawBuildImage", into = "RawBuildImage")]
#[schemars(with = "RawBuildImage")]
pub enum BuildImage {
    #[default]
    All,
    Runtime,
    None,
}

/// `image = true | false | "runtime"`, as a recipe spells it.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
enum RawBuildImage {
    Flag(bool),
    Part(String),
}

impl TryFrom<RawBuildImage> for BuildImage {
    type Error = String;

    fn try_from(raw: RawBuildImage) -> Result<Self, String> {
        match raw {
            RawBuildImage::Flag(true) => Ok(BuildImage::All),
            RawBuildImage::Flag(false) => Ok(BuildImage::None),
            RawBuildImage::Part(word) if word == "runtime" => Ok(BuildImage::Runtime),
            RawBuildImage::Part(word) => Err(format!("image = \"{word}\": use true, false or \"runtime\"")),
        }
    }
}

impl From<BuildImage> for RawBuildImage {
    fn from(image: BuildImage) -> Self {
        match image {
            BuildImage::All => RawBuildImage::Flag(true),
            BuildImage::None => RawBuildImage::Flag(false),
            BuildImage::Runtime => RawBuildImage::Part("runtime".into()),
        }
    }
}

/// `[python.build]`: CPython compiled from a `[[sources]]` tarball, used as the image's python3.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InterpreterBuild {
    /// The `[[sources]]` entry holding the CPython tarball.
    #[schemars(with = "String")]
    pub source: Spanned<String>,
    #[schemars(with = "Option<String>")]
    pub profile: Option<Spanned<String>>,
    /// `--enable-shared` (libpython3.X.so beside the interpreter).
    #[serde(default)]
    pub shared: bool,
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Extra `./configure` arguments.
    #[serde(default)]
    pub configure: Vec<String>,
    /// The interpreter's arguments for PGO's training run (CPython's `PROFILE_TASK`), when
    /// the profile has `pgo`: by default CPython's own, the `--pgo` subset of its test suite.
    /// A broader training names more; a test that fails there costs its share of the profile.
    #[schemars(with = "Option<String>")]
    pub pgo_task: Option<Spanned<String>>,
    /// `[[builds]]` whose outputs join the build root: the libraries CPython compiles against
    /// when they do not come from the distribution (on a musl image, all of them).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub uses: Vec<Spanned<String>>,
    /// Extension modules linked into the interpreter instead of loaded as shared objects
    /// (`*static*` in CPython's `Modules/Setup.local`), as Debian links `_pickle`, `_struct`,
    /// `math` and more into its python3: a module's calls into the core are then direct, and
    /// LTO and PGO see across them.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub builtin: Vec<Spanned<String>>,
}

fn default_prefix() -> String {
    "/usr/local".into()
}
