//! A toolchain profile turned into the compiler flags and environment of one build on one
//! platform. Every build records its switches in the binaries (`-frecord-gcc-switches`), so the
//! flags can be read back from what was built, and maps `/build` away from debug paths.

use std::collections::BTreeMap;

use composer_recipe::{Lto, Platform, Profile};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flags {
    pub cflags: Vec<String>,
    pub ldflags: Vec<String>,
    pub opt: &'static str,
    pub pgo: bool,
    pub bolt: bool,
    pub lto: Lto,
}

impl Flags {
    pub fn new(profile: &Profile, platform: &Platform) -> Flags {
        let over = profile.platforms.get(&platform.to_string()).cloned().unwrap_or_default();
        let opt = profile.opt.flag();
        let mut cflags = vec![opt.to_string(), "-frecord-gcc-switches".into(), "-ffile-prefix-map=/build=.".into()];
        let mut ldflags = Vec::new();
        if !profile.semantic_interposition {
            cflags.push("-fno-semantic-interposition".into());
            ldflags.push("-fno-semantic-interposition".into());
        }
        if let Some(march) = over.march.as_ref().or(profile.march.as_ref()) {
            cflags.push(format!("-march={march}"));
        }
        if let Some(mtune) = over.mtune.as_ref().or(profile.mtune.as_ref()) {
            cflags.push(format!("-mtune={mtune}"));
        }
        // GCC has no ThinLTO; its nearest is the default partitioned LTO, while "full" puts the
        // whole program in one partition.
        let lto: &[&str] = match profile.lto {
            Lto::Off => &[],
            Lto::On | Lto::Thin => &["-flto=auto"],
            Lto::Full => &["-flto=auto", "-flto-partition=one"],
        };
        cflags.extend(lto.iter().map(|f| f.to_string()));
        // The link step compiles under LTO, so it needs the optimisation level too.
        if profile.lto != Lto::Off {
            ldflags.push(opt.into());
            ldflags.extend(lto.iter().map(|f| f.to_string()));
        }
        cflags.extend(profile.cflags.iter().cloned());
        cflags.extend(over.cflags.iter().cloned());
        ldflags.extend(profile.ldflags.iter().cloned());
        ldflags.extend(over.ldflags.iter().cloned());
        let pgo = over.pgo.unwrap_or(profile.pgo);
        let bolt = profile.bolt_on(&platform.to_string());
        Flags { cflags, ldflags, opt, pgo, bolt, lto: profile.lto }
    }

    /// What a build script sees: the usual make variables and composer's own.
    pub fn env(&self) -> BTreeMap<String, String> {
        let cflags = self.cflags.join(" ");
        let lto = match self.lto {
            Lto::Off => "off",
            Lto::On => "on",
            Lto::Thin => "thin",
            Lto::Full => "full",
        };
        let mut env = BTreeMap::from([
            ("CC".into(), "gcc".into()),
            ("CXX".into(), "g++".into()),
            ("CFLAGS".into(), cflags.clone()),
            ("CXXFLAGS".into(), cflags),
            ("LDFLAGS".into(), self.ldflags.join(" ")),
            ("COMPOSE_OPT".into(), self.opt.into()),
            ("COMPOSE_PGO".into(), if self.pgo { "1" } else { "0" }.into()),
            ("COMPOSE_LTO".into(), lto.into()),
        ]);
        // Only when set: the environment is part of every step's key, and the builds of
        // profiles without BOLT stay the builds they were before it existed.
        if self.bolt {
            env.insert("COMPOSE_BOLT".into(), "1".into());
        }
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use composer_recipe::{OptLevel, PlatformFlags};

    #[test]
    fn a_profile_reaches_the_flags_with_its_platform_overrides() {
        let mut profile = Profile {
            opt: OptLevel::O3,
            pgo: true,
            lto: Lto::Full,
            semantic_interposition: false,
            bolt: true,
            march: Some("x86-64-v2".into()),
            cflags: vec!["-DEXTRA".into()],
            ..Profile::default()
        };
        profile.platforms.insert(
            "linux/arm64".into(),
            PlatformFlags { march: Some("armv8-a".into()), pgo: Some(false), bolt: Some(false), ..Default::default() },
        );
        let amd64: Platform = "linux/amd64".parse().unwrap();
        let arm64: Platform = "linux/arm64".parse().unwrap();
        let flags = Flags::new(&profile, &amd64);
        for wanted in ["-O3", "-fno-semantic-interposition", "-march=x86-64-v2", "-flto-partition=one", "-DEXTRA"] {
            assert!(flags.cflags.iter().any(|f| f == wanted), "{wanted} in {:?}", flags.cflags);
        }
        assert!(flags.ldflags.contains(&"-flto=auto".to_string()) && flags.ldflags.contains(&"-O3".to_string()));
        assert!(flags.pgo && flags.bolt);
        assert_eq!(flags.env()["COMPOSE_BOLT"], "1");
        let flags = Flags::new(&profile, &arm64);
        assert!(flags.cflags.contains(&"-march=armv8-a".to_string()) && !flags.pgo && !flags.bolt);
        assert_eq!(flags.env()["COMPOSE_PGO"], "0");
        assert!(!flags.env().contains_key("COMPOSE_BOLT"));
    }

    #[test]
    fn the_default_profile_adds_no_optimisation_beyond_o2() {
        let flags = Flags::new(&Profile::default(), &"linux/amd64".parse().unwrap());
        assert_eq!(flags.cflags[0], "-O2");
        assert!(flags.ldflags.is_empty());
        assert!(!flags.cflags.iter().any(|f| f.starts_with("-flto") || f.contains("semantic")));
    }
}
