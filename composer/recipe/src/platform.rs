use std::fmt;
use std::str::FromStr;

/// An OCI platform (`os/architecture[/variant]`) that composer can build for, with its names in
/// the Debian world.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

/// (OCI architecture, OCI variant, the machine as the kernel and toolchains name it). A
/// distribution's own names (Debian's `armhf`, its multiarch triplets) are its backend's.
const KNOWN: &[(&str, Option<&str>, &str)] = &[
    ("amd64", None, "x86_64"),
    ("arm64", Some("v8"), "aarch64"),
    ("arm", Some("v7"), "arm"),
    ("arm", Some("v5"), "arm"),
    ("386", None, "i386"),
    ("ppc64le", None, "powerpc64le"),
    ("s390x", None, "s390x"),
    ("riscv64", None, "riscv64"),
    ("mips64le", None, "mips64el"),
];

impl Platform {
    fn known(&self) -> &'static (&'static str, Option<&'static str>, &'static str) {
        KNOWN
            .iter()
            .find(|(arch, variant, _)| {
                *arch == self.architecture && (self.variant.is_none() || self.variant.as_deref() == *variant)
            })
            .expect("platforms are validated on parse")
    }

    /// The triplet of the machine with musl as its C library (`x86_64-linux-musl`,
    /// `arm-linux-musleabihf`), as GCC and CPython name it: the recipe builds that musl, so the
    /// name is no distribution's.
    pub fn musl_triplet(&self) -> String {
        let abi = match (self.architecture.as_str(), self.variant.as_deref()) {
            ("arm", Some("v5")) => "musleabi",
            ("arm", _) => "musleabihf",
            ("mips64le", _) => "muslabi64",
            _ => "musl",
        };
        format!("{}-linux-{abi}", self.known().2)
    }

    /// The name musl's C library goes by on a musl system, as Alpine links it and the musllinux
    /// wheels built there name it (`libc.musl-x86_64.so.1`): `None` where musl has no such port.
    pub fn musl_soname(&self) -> Option<String> {
        let arch = match (self.architecture.as_str(), self.variant.as_deref()) {
            ("amd64", _) => "x86_64",
            ("arm64", _) => "aarch64",
            ("arm", Some("v7") | None) => "armv7",
            ("386", _) => "x86",
            ("ppc64le", _) => "ppc64le",
            ("s390x", _) => "s390x",
            ("riscv64", _) => "riscv64",
            _ => return None,
        };
        Some(format!("libc.musl-{arch}.so.1"))
    }

    /// The variant OCI expects in a manifest list (`v8` for arm64, `v7` for armhf).
    pub fn oci_variant(&self) -> Option<&'static str> {
        self.known().1
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = String;
    /// Accepts a platform as people write it and normalizes it as containerd does: the
    /// architecture by its kernel or Debian name too (`x86_64`, `aarch64`, `armhf`, `i386`),
    /// a variant with or without its `v` (`arm/7`), and any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        let mut parts = lower.split('/');
        let (os, arch, variant) = (parts.next(), parts.next(), parts.next());
        let (Some("linux"), Some(arch)) = (os, arch) else {
            return Err(format!("`{s}` is not a platform composer builds for: use `linux/<arch>[/<variant>]`"));
        };
        if parts.next().is_some() {
            return Err(format!("`{s}` has too many parts; use `linux/<arch>[/<variant>]`"));
        }
        let variant = variant.map(|v| match v.starts_with('v') {
            true => v.to_string(),
            false => format!("v{v}"),
        });
        let (arch, implied) = normal_arch(arch);
        let variant = match (implied, variant) {
            (Some(implied), Some(variant)) if variant != implied => {
                return Err(format!("`{s}` names two variants, {implied} by its architecture and {variant}"));
            }
            (Some(implied), _) => Some(implied.to_string()),
            (None, variant) => variant,
        };
        let found = KNOWN.iter().any(|(a, v, _)| *a == arch && (variant.is_none() || variant.as_deref() == *v));
        if !found {
            return Err(format!("unknown platform `{s}`; known platforms: {}", known_names().join(", ")));
        }
        // arm64's v8 is its only variant: normalise so `linux/arm64` and `linux/arm64/v8` agree.
        let variant = match (arch, variant) {
            ("arm", None) => Some("v7".to_string()),
            ("arm64", _) => None,
            (_, v) => v,
        };
        Ok(Platform { os: "linux".into(), architecture: arch.into(), variant })
    }
}

/// The OCI architecture (and the variant the name implies) of an architecture as the kernel,
/// GNU or Debian names it; an OCI name stays itself.
fn normal_arch(arch: &str) -> (&str, Option<&'static str>) {
    match arch {
        "x86_64" | "x86-64" => ("amd64", None),
        "aarch64" => ("arm64", None),
        "i386" | "i486" | "i586" | "i686" | "x86" => ("386", None),
        "armhf" | "armv7" | "armv7l" => ("arm", Some("v7")),
        "armel" | "armv5" | "armv5l" => ("arm", Some("v5")),
        "ppc64el" => ("ppc64le", None),
        "mips64el" => ("mips64le", None),
        other => (other, None),
    }
}

/// Every platform a recipe may name.
pub fn known() -> Vec<Platform> {
    known_names().iter().map(|name| name.parse().expect("known platforms parse")).collect()
}

/// Every platform composer builds for, by its OCI name.
fn known_names() -> Vec<String> {
    KNOWN
        .iter()
        .map(|(a, v, _)| match v {
            Some(v) if *a == "arm" => format!("linux/{a}/{v}"),
            _ => format!("linux/{a}"),
        })
        .collect()
}

impl<'de> serde::Deserialize<'de> for Platform {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Platform {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl schemars::JsonSchema for Platform {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Platform".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let names: Vec<String> = KNOWN
            .iter()
            .flat_map(|(arch, variant, _)| {
                let plain = format!("linux/{arch}");
                match variant {
                    Some(v) => vec![plain, format!("linux/{arch}/{v}")],
                    None => vec![plain],
                }
            })
            .collect();
        schemars::json_schema!({
            "type": "string",
            "description": "An OCI platform, os/architecture[/variant].",
            "enum": names,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn musl_is_named_as_alpine_names_it() {
        let soname = |p: &str| p.parse::<Platform>().unwrap().musl_soname();
        assert_eq!(soname("linux/amd64").as_deref(), Some("libc.musl-x86_64.so.1"));
        assert_eq!(soname("linux/arm64").as_deref(), Some("libc.musl-aarch64.so.1"));
        assert_eq!(soname("linux/arm/v7").as_deref(), Some("libc.musl-armv7.so.1"));
        assert_eq!(soname("linux/386").as_deref(), Some("libc.musl-x86.so.1"));
        assert_eq!(soname("linux/mips64le"), None);
    }

    #[test]
    fn arm64s_only_variant_is_the_platform_itself() {
        assert_eq!("linux/arm64/v8".parse::<Platform>().unwrap(), "linux/arm64".parse().unwrap());
    }

    #[test]
    fn musl_triplets_are_gccs() {
        let triplet = |p: &str| p.parse::<Platform>().unwrap().musl_triplet();
        let cases = [
            ("linux/amd64", "x86_64-linux-musl"),
            ("linux/arm64", "aarch64-linux-musl"),
            ("linux/arm/v7", "arm-linux-musleabihf"),
            ("linux/arm/v5", "arm-linux-musleabi"),
            ("linux/386", "i386-linux-musl"),
            ("linux/ppc64le", "powerpc64le-linux-musl"),
            ("linux/mips64le", "mips64el-linux-muslabi64"),
        ];
        for (platform, musl) in cases {
            assert_eq!(triplet(platform), musl, "{platform}");
        }
    }

    #[test]
    fn platforms_as_people_write_them_are_normalized_as_containerd_does() {
        let cases = [
            ("linux/x86_64", "linux/amd64"),
            ("Linux/X86_64", "linux/amd64"),
            ("linux/aarch64", "linux/arm64"),
            ("linux/arm64/8", "linux/arm64"),
            ("linux/armhf", "linux/arm/v7"),
            ("linux/armv7l", "linux/arm/v7"),
            ("linux/arm/7", "linux/arm/v7"),
            ("linux/arm", "linux/arm/v7"),
            ("linux/armel", "linux/arm/v5"),
            ("linux/i686", "linux/386"),
            ("linux/ppc64el", "linux/ppc64le"),
        ];
        for (written, normal) in cases {
            assert_eq!(written.parse::<Platform>().map(|p| p.to_string()).as_deref(), Ok(normal), "{written}");
        }
        // A name that says two variants is no platform.
        assert!("linux/armhf/v5".parse::<Platform>().is_err());
        assert!("linux/x86_64/v7".parse::<Platform>().is_err());
    }

    #[test]
    fn rejects_unknown_platforms_with_the_list() {
        let err = "linux/sparc".parse::<Platform>().unwrap_err();
        assert!(err.contains("unknown platform `linux/sparc`") && err.contains("linux/arm64"), "{err}");
        assert!("windows/amd64".parse::<Platform>().is_err());
    }
}
