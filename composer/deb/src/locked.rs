//! A lock's claim about one package, checked against a signed `Packages` index: a lock is
//! written by compose but read from a file anyone (or a bundle) may have edited, so what it pins
//! is used only if the signed index holds exactly that entry.

use crate::PackageIndex;

/// What a lock says of one package: everything that picks the file and how it is verified.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub architecture: &'a str,
    pub filename: &'a str,
    pub size: u64,
    pub sha256: &'a str,
}

impl Claim<'_> {
    /// `name_version_arch`, as Debian names the file.
    pub fn label(&self) -> String {
        format!("{}_{}_{}", self.name, self.version, self.architecture)
    }
}

/// `Ok` when `index` holds an entry equal to `claim` in name, version, architecture, filename,
/// size and SHA-256; else why not, in words whose every value comes from the index (what the
/// lock says is named as the lock's).
pub fn check(index: &PackageIndex<'_>, claim: &Claim<'_>) -> Result<(), String> {
    let candidates = index.by_name.get(claim.name).map(Vec::as_slice).unwrap_or_default();
    let same_version: Vec<_> = candidates
        .iter()
        .map(|&i| &index.packages[i])
        .filter(|p| p.version == claim.version && p.architecture == claim.architecture)
        .collect();
    // The digest compares as text in lower case, as indexes spell it; a lock spelling it in
    // upper case matches nothing, which is no loss.
    if same_version.iter().any(|p| {
        p.filename == claim.filename && p.size == claim.size && p.sha256().is_ok_and(|s| s.to_hex() == claim.sha256)
    }) {
        return Ok(());
    }
    if let Some(entry) = same_version.first() {
        let sha256 = entry.sha256().map(|s| s.to_hex()).unwrap_or_else(|_| "(unreadable)".into());
        let mut differs = Vec::new();
        if entry.filename != claim.filename {
            differs.push(format!("file `{}` (the lock says `{}`)", entry.filename, claim.filename));
        }
        if entry.size != claim.size {
            differs.push(format!("size {} bytes (the lock says {})", entry.size, claim.size));
        }
        if sha256 != claim.sha256 {
            differs.push(format!("sha256 {sha256} (the lock says {})", claim.sha256));
        }
        return Err(format!("the signed index lists it with {}", differs.join(", ")));
    }
    let mut versions: Vec<String> =
        candidates.iter().map(|&i| &index.packages[i]).map(|p| format!("{}_{}", p.version, p.architecture)).collect();
    versions.sort();
    versions.dedup();
    Err(match versions.is_empty() {
        true => "the signed index has no package of that name".into(),
        false => format!("the signed index has only {}", versions.join(", ")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a";

    fn index_text() -> String {
        format!(
            "Package: app\nVersion: 1.0\nArchitecture: amd64\nFilename: pool/main/a/app_1.0_amd64.deb\nSize: 100\n\
             SHA256: {SHA}\n\nPackage: docs\nVersion: 1\nArchitecture: all\nFilename: pool/main/d/docs_1_all.deb\n\
             Size: 7\nSHA256: {}\n",
            "2".repeat(64)
        )
    }

    fn claim<'a>(version: &'a str, filename: &'a str, size: u64, sha256: &'a str) -> Claim<'a> {
        Claim { name: "app", version, architecture: "amd64", filename, size, sha256 }
    }

    #[test]
    fn only_an_exact_entry_of_the_signed_index_passes() {
        let text = index_text();
        let mut index = PackageIndex::default();
        index.parse(&text, "amd64", "stable/main/binary-amd64/Packages").unwrap();
        let file = "pool/main/a/app_1.0_amd64.deb";
        assert_eq!(check(&index, &claim("1.0", file, 100, SHA)), Ok(()));
        let docs = Claim {
            name: "docs",
            version: "1",
            architecture: "all",
            filename: "pool/main/d/docs_1_all.deb",
            size: 7,
            sha256: &"2".repeat(64),
        };
        assert_eq!(check(&index, &docs), Ok(()));

        // Another file under the same name and version: every value said is the index's.
        let crafted = "3".repeat(64);
        let error = check(&index, &claim("1.0", file, 999, &crafted)).unwrap_err();
        assert!(error.contains("size 100 bytes (the lock says 999)"), "{error}");
        assert!(error.contains(&format!("sha256 {SHA} (the lock says {crafted})")), "{error}");
        let error = check(&index, &claim("1.0", "pool/evil.deb", 100, SHA)).unwrap_err();
        assert!(error.contains("file `pool/main/a/app_1.0_amd64.deb` (the lock says `pool/evil.deb`)"), "{error}");

        // A version the index does not hold, a name it does not hold, another architecture.
        let error = check(&index, &claim("9.9", file, 100, SHA)).unwrap_err();
        assert_eq!(error, "the signed index has only 1.0_amd64");
        let error = check(&index, &Claim { name: "backdoor", ..claim("1.0", file, 100, SHA) }).unwrap_err();
        assert_eq!(error, "the signed index has no package of that name");
        assert!(check(&index, &Claim { architecture: "all", ..claim("1.0", file, 100, SHA) }).is_err());
        assert!(check(&index, &claim("1.0", file, 100, &SHA.to_uppercase())).is_err());
    }
}
