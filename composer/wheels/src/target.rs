//! The interpreter a wheel set is for, read from the base's resolved packages rather than
//! guessed: Python version and ABI from `python3`, the glibc version (for manylinux tags) from
//! `libc6`, the machine from the platform. On a musl image, the musl version (for musllinux
//! tags) is the one the recipe builds.

use composer_recipe::Platform;
use pep508_rs::{MarkerEnvironment, MarkerEnvironmentBuilder};

use crate::{TargetProblem, WheelError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The OCI platform, e.g. `linux/arm64`.
    pub platform: String,
    /// `platform.machine()` on the target: `x86_64`, `aarch64`, ...
    pub machine: &'static str,
    /// Full interpreter version, e.g. (3, 11, 2).
    pub python: (u32, u32, u32),
    pub libc: Libc,
}

/// The C library a wheel links against, with its (major, minor) version: manylinux tags for
/// glibc, musllinux tags for musl.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Libc {
    Glibc(u32, u32),
    Musl(u32, u32),
}

impl std::fmt::Display for Libc {
    /// `2.36` for glibc (as locks have always said it), `musl 1.2`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Libc::Glibc(major, minor) => write!(f, "{major}.{minor}"),
            Libc::Musl(major, minor) => write!(f, "musl {major}.{minor}"),
        }
    }
}

impl Target {
    /// `python3_version` and `libc6_version` are Debian package versions (`3.11.2-1+b1`).
    pub fn from_debian(platform: &Platform, python3_version: &str, libc6_version: &str) -> Result<Target, WheelError> {
        let [major, minor, ..] = version_numbers(platform, "libc6", libc6_version)?[..] else { unreachable!() };
        Target::new(platform, python3_version, Libc::Glibc(major, minor))
    }

    /// A musl image's target: the interpreter and musl versions of what the recipe builds
    /// (`3.13.5`, `1.2.5`).
    pub fn musl(platform: &Platform, python_version: &str, musl_version: &str) -> Result<Target, WheelError> {
        let [major, minor, ..] = version_numbers(platform, "musl", musl_version)?[..] else { unreachable!() };
        Target::new(platform, python_version, Libc::Musl(major, minor))
    }

    fn new(platform: &Platform, python_version: &str, libc: Libc) -> Result<Target, WheelError> {
        let machine = machine(platform).ok_or_else(|| WheelError::Target {
            platform: platform.to_string(),
            reason: TargetProblem::UnknownMachine,
        })?;
        let py = version_numbers(platform, "python3", python_version)?;
        Ok(Target {
            platform: platform.to_string(),
            machine,
            python: (py[0], py[1], py.get(2).copied().unwrap_or(0)),
            libc,
        })
    }

    pub fn python_version(&self) -> String {
        format!("{}.{}", self.python.0, self.python.1)
    }

    pub fn python_full_version(&self) -> String {
        format!("{}.{}.{}", self.python.0, self.python.1, self.python.2)
    }

    /// The CPython ABI tag, e.g. `cp311`.
    pub fn abi(&self) -> String {
        format!("cp{}{}", self.python.0, self.python.1)
    }

    /// The target for `uv --python-platform`: uv knows manylinux x86_64 and aarch64 up to
    /// glibc 2.40, so a newer glibc is clamped (wheels for newer glibc are then not chosen);
    /// on musl, its `-unknown-linux-musl` targets (musllinux_1_2). `None` for the machines uv
    /// has no Linux target for (armv7l, i686, riscv64, ...): those are resolved universally.
    pub fn uv_platform(&self) -> Option<String> {
        if !matches!(self.machine, "x86_64" | "aarch64") {
            return None;
        }
        Some(match self.libc {
            Libc::Glibc(_, minor) => format!("{}-manylinux_2_{}", self.machine, minor.clamp(17, 40)),
            Libc::Musl(..) => format!("{}-unknown-linux-musl", self.machine),
        })
    }

    /// Platform tags, most specific first, as `packaging.tags` gives them on the target: on
    /// glibc `manylinux_2_Y_<arch>` from the target's glibc down to the oldest manylinux (with
    /// the legacy aliases), on musl `musllinux_1_Y_<arch>` from the target's musl down to
    /// `musllinux_1_0`; then `linux_<arch>`.
    pub fn platform_tags(&self) -> Vec<String> {
        let arch = self.machine;
        let oldest = if matches!(arch, "x86_64" | "i686") { 5 } else { 17 };
        let mut tags = Vec::new();
        if let Libc::Musl(major, minor) = self.libc {
            tags.extend((0..=minor).rev().map(|m| format!("musllinux_{major}_{m}_{arch}")));
        }
        if let Libc::Glibc(2, glibc_minor) = self.libc {
            for minor in (oldest..=glibc_minor).rev() {
                tags.push(format!("manylinux_2_{minor}_{arch}"));
                let legacy = match minor {
                    17 => Some("manylinux2014"),
                    12 => Some("manylinux2010"),
                    5 => Some("manylinux1"),
                    _ => None,
                };
                if let Some(legacy) = legacy {
                    tags.push(format!("{legacy}_{arch}"));
                }
            }
        }
        tags.push(format!("linux_{arch}"));
        tags
    }

    /// Every tag the target accepts, best first, in the order `packaging.tags` gives for CPython.
    pub fn tags(&self) -> Vec<String> {
        let (major, minor) = (self.python.0, self.python.1);
        let platforms = self.platform_tags();
        let cp = format!("cp{major}{minor}");
        let mut tags = Vec::new();
        let mut each_platform = |interpreter: &str, abi: &str| {
            for platform in &platforms {
                tags.push(format!("{interpreter}-{abi}-{platform}"));
            }
        };
        each_platform(&cp, &cp);
        each_platform(&cp, "abi3");
        each_platform(&cp, "none");
        for older in (2..minor).rev() {
            each_platform(&format!("cp{major}{older}"), "abi3");
        }
        let generic: Vec<String> = std::iter::once(format!("py{major}{minor}"))
            .chain(std::iter::once(format!("py{major}")))
            .chain((0..minor).rev().map(|m| format!("py{major}{m}")))
            .collect();
        for interpreter in &generic {
            each_platform(interpreter, "none");
        }
        tags.push(format!("{cp}-none-any"));
        for interpreter in &generic {
            tags.push(format!("{interpreter}-none-any"));
        }
        tags
    }

    /// The PEP 508 marker environment of the target interpreter.
    pub fn marker_environment(&self) -> MarkerEnvironment {
        let full = self.python_full_version();
        let short = self.python_version();
        MarkerEnvironment::try_from(MarkerEnvironmentBuilder {
            implementation_name: "cpython",
            implementation_version: &full,
            os_name: "posix",
            platform_machine: self.machine,
            platform_python_implementation: "CPython",
            platform_release: "",
            platform_system: "Linux",
            platform_version: "",
            python_full_version: &full,
            python_version: &short,
            sys_platform: "linux",
        })
        .expect("numeric versions always parse")
    }
}

/// The numbers of a version (an upstream one, or a Debian package's: `1:3.13.5-1+b1`), at least
/// major and minor.
fn version_numbers(platform: &Platform, what: &str, version: &str) -> Result<Vec<u32>, WheelError> {
    let upstream = version.split_once(':').map_or(version, |(_, v)| v);
    let upstream = upstream.split(['-', '+', '~']).next().unwrap_or_default();
    let numbers: Vec<u32> = upstream.split('.').map_while(|n| n.parse().ok()).collect();
    if numbers.len() < 2 {
        return Err(WheelError::Target {
            platform: platform.to_string(),
            reason: TargetProblem::Version { what: what.to_string(), version: version.to_string() },
        });
    }
    Ok(numbers)
}

/// What a wheel built against musl `musl_version` (`1.2.5`) on `platform` must be to be a
/// musllinux wheel, tag included (`musllinux_1_2_aarch64`).
pub fn musllinux_policy(platform: &Platform, musl_version: &str) -> Result<crate::repair::MusllinuxPolicy, WheelError> {
    let [major, minor, ..] = version_numbers(platform, "musl", musl_version)?[..] else { unreachable!() };
    let unknown =
        || WheelError::Target { platform: platform.to_string(), reason: TargetProblem::UnknownMusllinuxMachine };
    let machine = machine(platform).ok_or_else(unknown)?;
    Ok(crate::repair::MusllinuxPolicy {
        platform_tag: format!("musllinux_{major}_{minor}_{machine}"),
        machine,
        libc: platform.musl_soname().ok_or_else(unknown)?,
    })
}

pub(crate) fn machine(platform: &Platform) -> Option<&'static str> {
    Some(match (platform.architecture.as_str(), platform.variant.as_deref()) {
        ("amd64", _) => "x86_64",
        ("arm64", _) => "aarch64",
        ("arm", Some("v7")) => "armv7l",
        ("386", _) => "i686",
        ("ppc64le", _) => "ppc64le",
        ("s390x", _) => "s390x",
        ("riscv64", _) => "riscv64",
        _ => return None,
    })
}

/// The tags of a wheel file name (`name-ver(-build)?-py-abi-plat.whl`), expanded from their
/// compressed `a.b` sets.
pub fn wheel_tags(filename: &str) -> Option<Vec<String>> {
    let stem = filename.strip_suffix(".whl")?;
    let parts: Vec<&str> = stem.split('-').collect();
    if parts.len() != 5 && parts.len() != 6 {
        return None;
    }
    let n = parts.len();
    let mut tags = Vec::new();
    for py in parts[n - 3].split('.') {
        for abi in parts[n - 2].split('.') {
            for plat in parts[n - 1].split('.') {
                tags.push(format!("{py}-{abi}-{plat}"));
            }
        }
    }
    Some(tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(arch: &str) -> Target {
        let platform: Platform = arch.parse().unwrap();
        Target::from_debian(&platform, "3.11.2-1+b1", "2.36-9+deb12u10").unwrap()
    }

    #[test]
    fn versions_come_from_debian_package_versions() {
        let t = target("linux/arm64");
        assert_eq!((t.python, t.libc, t.machine), ((3, 11, 2), Libc::Glibc(2, 36), "aarch64"));
        assert_eq!(t.abi(), "cp311");
        assert_eq!(t.uv_platform().unwrap(), "aarch64-manylinux_2_36");
        let epoch = Target::from_debian(&"linux/amd64".parse().unwrap(), "1:3.13.5-1", "2.41-7").unwrap();
        assert_eq!((epoch.python, epoch.libc), ((3, 13, 5), Libc::Glibc(2, 41)));
        assert_eq!(epoch.uv_platform().unwrap(), "x86_64-manylinux_2_40");
        // uv has no armv7l target: such a platform is resolved universally.
        assert_eq!(target("linux/arm/v7").uv_platform(), None);
        assert_eq!(target("linux/arm/v7").platform_tags()[0], "manylinux_2_36_armv7l");
    }

    #[test]
    fn tag_order_prefers_the_most_specific_wheel() {
        let tags = target("linux/arm64").tags();
        let rank = |tag: &str| tags.iter().position(|t| t == tag);
        assert_eq!(tags[0], "cp311-cp311-manylinux_2_36_aarch64");
        assert!(rank("cp311-cp311-manylinux2014_aarch64") < rank("cp311-abi3-manylinux_2_36_aarch64"));
        assert!(rank("cp39-abi3-manylinux_2_28_aarch64") < rank("py3-none-any"));
        assert!(rank("cp311-cp311-linux_aarch64").is_some());
        assert_eq!(rank("cp311-cp311-manylinux_2_37_aarch64"), None, "newer glibc than the target");
        assert_eq!(rank("cp312-cp312-manylinux_2_17_aarch64"), None);
        assert_eq!(rank("cp311-cp311-manylinux_2_17_x86_64"), None);
        assert_eq!(tags.last().unwrap(), "py30-none-any");
        let x86 = target("linux/amd64").tags();
        assert!(x86.contains(&"cp311-cp311-manylinux1_x86_64".to_string()));
    }

    #[test]
    fn a_musl_target_takes_musllinux_wheels_and_no_manylinux_one() {
        let t = Target::musl(&"linux/arm64".parse().unwrap(), "3.13.5", "1.2.5").unwrap();
        assert_eq!((t.libc, t.libc.to_string()), (Libc::Musl(1, 2), "musl 1.2".to_string()));
        assert_eq!(t.uv_platform().unwrap(), "aarch64-unknown-linux-musl");
        // packaging.tags on such an image: musllinux_1_2, _1_1, _1_0, then linux.
        assert_eq!(
            t.platform_tags(),
            ["musllinux_1_2_aarch64", "musllinux_1_1_aarch64", "musllinux_1_0_aarch64", "linux_aarch64"]
        );
        let tags = t.tags();
        assert_eq!(tags[0], "cp313-cp313-musllinux_1_2_aarch64");
        assert!(!tags.iter().any(|t| t.contains("manylinux")));
        assert!(Target::musl(&"linux/amd64".parse().unwrap(), "3.13.5", "one").is_err());
    }

    #[test]
    fn wheel_names_expand_to_tags() {
        let tags = wheel_tags("numpy-2.1.0-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl").unwrap();
        assert_eq!(tags, ["cp311-cp311-manylinux_2_17_aarch64", "cp311-cp311-manylinux2014_aarch64"]);
        assert_eq!(wheel_tags("x-1-2build-py2.py3-none-any.whl").unwrap().len(), 2);
        assert_eq!(wheel_tags("not-a-wheel.tar.gz"), None);
    }
}
