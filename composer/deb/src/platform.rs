//! Debian's names for a platform: its architecture (`arm64`, `armhf`), which indexes, locks and
//! `.deb` files spell, and its multiarch triplet (`aarch64-linux-gnu`), which names library
//! directories (`/usr/lib/<triplet>`) and cross toolchains (`aarch64-linux-gnu-gcc`).

use composer_recipe::Platform;

/// (OCI architecture, OCI variant, Debian architecture, multiarch triplet)
const DEBIAN: &[(&str, Option<&str>, &str, &str)] = &[
    ("amd64", None, "amd64", "x86_64-linux-gnu"),
    ("arm64", None, "arm64", "aarch64-linux-gnu"),
    ("arm", Some("v7"), "armhf", "arm-linux-gnueabihf"),
    ("arm", Some("v5"), "armel", "arm-linux-gnueabi"),
    ("386", None, "i386", "i386-linux-gnu"),
    ("ppc64le", None, "ppc64el", "powerpc64le-linux-gnu"),
    ("s390x", None, "s390x", "s390x-linux-gnu"),
    ("riscv64", None, "riscv64", "riscv64-linux-gnu"),
    ("mips64le", None, "mips64el", "mips64el-linux-gnuabi64"),
];

fn entry(platform: &Platform) -> &'static (&'static str, Option<&'static str>, &'static str, &'static str) {
    DEBIAN
        .iter()
        .find(|(arch, variant, _, _)| *arch == platform.architecture && *variant == platform.variant.as_deref())
        .expect("every platform a recipe may name has a Debian architecture")
}

/// The Debian architecture (`arm64`, `armhf`, ...).
pub fn debian_arch(platform: &Platform) -> &'static str {
    entry(platform).2
}

/// The multiarch triplet (`aarch64-linux-gnu`, ...).
pub fn triplet(platform: &Platform) -> &'static str {
    entry(platform).3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_platform_a_recipe_may_name_has_debian_names() {
        for platform in composer_recipe::platform::known() {
            assert!(!debian_arch(&platform).is_empty() && triplet(&platform).contains("-linux-"), "{platform}");
        }
        let cases =
            [("linux/amd64", "amd64"), ("linux/arm64", "arm64"), ("linux/arm/v7", "armhf"), ("linux/386", "i386")];
        for (oci, debian) in cases {
            assert_eq!(debian_arch(&oci.parse().unwrap()), debian, "{oci}");
        }
        assert_eq!(triplet(&"linux/arm/v7".parse().unwrap()), "arm-linux-gnueabihf");
    }
}
