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

/// (OCI architecture, OCI variant, Debian architecture, GNU multiarch triplet)
const KNOWN: &[(&str, Option<&str>, &str, &str)] = &[
    ("amd64", None, "amd64", "x86_64-linux-gnu"),
    ("arm64", Some("v8"), "arm64", "aarch64-linux-gnu"),
    ("arm", Some("v7"), "armhf", "arm-linux-gnueabihf"),
    ("arm", Some("v5"), "armel", "arm-linux-gnueabi"),
    ("386", None, "i386", "i386-linux-gnu"),
    ("ppc64le", None, "ppc64el", "powerpc64le-linux-gnu"),
    ("s390x", None, "s390x", "s390x-linux-gnu"),
    ("riscv64", None, "riscv64", "riscv64-linux-gnu"),
    ("mips64le", None, "mips64el", "mips64el-linux-gnuabi64"),
];

impl Platform {
    fn known(&self) -> &'static (&'static str, Option<&'static str>, &'static str, &'static str) {
        KNOWN
            .iter()
            .find(|(arch, variant, _, _)| {
                *arch == self.architecture && (self.variant.is_none() || self.variant.as_deref() == *variant)
            })
            .expect("platforms are validated on parse")
    }

    /// The Debian architecture name (`arm64`, `armhf`, ...).
    pub fn debian_arch(&self) -> &'static str {
        self.known().2
    }

    /// The multiarch triplet, which names library directories (`/usr/lib/<triplet>`).
    pub fn triplet(&self) -> &'static str {
        self.known().3
    }

    /// The triplet of the same machine with musl as its C library (`x86_64-linux-musl`,
    /// `arm-linux-musleabihf`), as GCC and CPython name it.
    pub fn musl_triplet(&self) -> String {
        self.triplet().replacen("-gnu", "-musl", 1)
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
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.split('/');
        let (os, arch, variant) = (parts.next(), parts.next(), parts.next());
        let (Some("linux"), Some(arch)) = (os, arch) else {
            return Err(format!("`{s}` is not a platform composer builds for: use `linux/<arch>[/<variant>]`"));
        };
        if parts.next().is_some() {
            return Err(format!("`{s}` has too many parts; use `linux/<arch>[/<variant>]`"));
        }
        let found = KNOWN.iter().any(|(a, v, _, _)| *a == arch && (variant.is_none() || variant == *v));
        if !found {
            let names: Vec<String> = KNOWN
                .iter()
                .map(|(a, v, _, _)| match v {
                    Some(v) if *a == "arm" => format!("linux/{a}/{v}"),
                    _ => format!("linux/{a}"),
                })
                .collect();
            return Err(format!("unknown platform `{s}`; known platforms: {}", names.join(", ")));
        }
        // arm64's v8 is its only variant: normalise so `linux/arm64` and `linux/arm64/v8` agree.
        let variant = match (arch, variant) {
            ("arm", None) => Some("v7".to_string()),
            ("arm64", _) => None,
            (_, v) => v.map(str::to_string),
        };
        Ok(Platform { os: "linux".into(), architecture: arch.into(), variant })
    }
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
            .flat_map(|(arch, variant, _, _)| {
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
    fn maps_oci_platforms_to_debian_architectures() {
        let cases =
            [("linux/amd64", "amd64"), ("linux/arm64", "arm64"), ("linux/arm/v7", "armhf"), ("linux/386", "i386")];
        for (oci, debian) in cases {
            assert_eq!(oci.parse::<Platform>().unwrap().debian_arch(), debian, "{oci}");
        }
        assert_eq!("linux/arm64/v8".parse::<Platform>().unwrap(), "linux/arm64".parse().unwrap());
    }

    #[test]
    fn rejects_unknown_platforms_with_the_list() {
        let err = "linux/sparc".parse::<Platform>().unwrap_err();
        assert!(err.contains("unknown platform `linux/sparc`") && err.contains("linux/arm64"), "{err}");
        assert!("windows/amd64".parse::<Platform>().is_err());
    }
}
