//! The host's apt sources: `/etc/apt/sources.list`, `sources.list.d/*.list` (one-line format) and
//! `sources.list.d/*.sources` (deb822). composer reads them only to find a Debian mirror and the
//! keyring it is signed with; it never writes a mirror host anywhere.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptSource {
    pub uri: String,
    pub suites: Vec<String>,
    pub components: Vec<String>,
    pub signed_by: Option<PathBuf>,
    pub file: PathBuf,
}

/// Reads every `deb` source under `etc_apt` (normally `/etc/apt`).
pub fn read_apt_sources(etc_apt: &Path) -> Vec<AptSource> {
    let mut files = vec![etc_apt.join("sources.list")];
    if let Ok(dir) = std::fs::read_dir(etc_apt.join("sources.list.d")) {
        let mut more: Vec<PathBuf> = dir.flatten().map(|e| e.path()).collect();
        more.sort();
        files.extend(more);
    }
    let mut out = Vec::new();
    for file in files {
        let policy = composer_store::userfile::Policy::anywhere(composer_store::userfile::Kind::APT_SOURCES);
        let Ok(text) = composer_store::userfile::read_text(&file, &policy) else { continue };
        match file.extension().and_then(|e| e.to_str()) {
            Some("sources") => out.extend(parse_deb822(&text, &file)),
            Some("list") => out.extend(parse_one_line(&text, &file)),
            _ => {}
        }
    }
    out
}

fn parse_deb822(text: &str, file: &Path) -> Vec<AptSource> {
    let mut out = Vec::new();
    for p in crate::control::parse(text) {
        let words = |k: &str| p.get(k).unwrap_or("").split_whitespace().map(str::to_string).collect::<Vec<_>>();
        if !words("Types").iter().any(|t| t == "deb") || p.get("Enabled") == Some("no") {
            continue;
        }
        let signed_by = p.get("Signed-By").filter(|s| s.starts_with('/')).map(PathBuf::from);
        for uri in words("URIs") {
            out.push(AptSource {
                uri: uri.trim_end_matches('/').to_string(),
                suites: words("Suites"),
                components: words("Components"),
                signed_by: signed_by.clone(),
                file: file.to_path_buf(),
            });
        }
    }
    out
}

fn parse_one_line(text: &str, file: &Path) -> Vec<AptSource> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(rest) = line.strip_prefix("deb ") else { continue };
        let mut rest = rest.trim();
        let mut signed_by = None;
        if rest.starts_with('[') {
            let end = rest.find(']').unwrap_or(rest.len() - 1);
            for option in rest[1..end].split_whitespace() {
                if let Some(path) = option.strip_prefix("signed-by=") {
                    signed_by = Some(PathBuf::from(path));
                }
            }
            rest = rest[end + 1..].trim();
        }
        let mut words = rest.split_whitespace();
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else { continue };
        out.push(AptSource {
            uri: uri.trim_end_matches('/').to_string(),
            suites: vec![suite.to_string()],
            components: words.map(str::to_string).collect(),
            signed_by,
            file: file.to_path_buf(),
        });
    }
    out
}

/// The apt source to use for `suite`: the first that lists it; else the first Debian archive
/// (signed with the Debian archive keyring, not a security archive), since a Debian mirror
/// serves every suite, not only the one this host installs from.
pub fn find_debian_source(sources: &[AptSource], suite: &str) -> Option<AptSource> {
    let listed = sources.iter().find(|s| s.suites.iter().any(|x| x == suite));
    let archive = || {
        sources.iter().find(|s| {
            let debian_key =
                s.signed_by.as_ref().is_some_and(|k| k.to_string_lossy().contains("debian-archive-keyring"));
            let security = s.suites.iter().any(|x| x.ends_with("-security"));
            debian_key && !security && !suite.ends_with("-security")
        })
    };
    listed.or_else(archive).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_formats() {
        let deb822 = "Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/k.gpg\n";
        let sources = parse_deb822(deb822, Path::new("x.sources"));
        assert_eq!(sources[0].suites, ["bookworm", "bookworm-updates"]);
        assert_eq!(sources[0].signed_by.as_deref(), Some(Path::new("/usr/share/keyrings/k.gpg")));
        let line = "deb [arch=amd64 signed-by=/k.gpg] http://mirror.invalid/debian/ trixie main contrib # x\ndeb-src http://x y z\n";
        let sources = parse_one_line(line, Path::new("x.list"));
        assert_eq!(sources.len(), 1);
        assert_eq!(sources[0].uri, "http://mirror.invalid/debian");
        assert_eq!(sources[0].components, ["main", "contrib"]);
        assert!(find_debian_source(&sources, "trixie").is_some());
    }

    #[test]
    fn another_suite_comes_from_the_debian_archive_not_security() {
        let text = "Types: deb\nURIs: http://security.invalid/debian-security\nSuites: bookworm-security\n\
                    Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n\
                    Types: deb\nURIs: http://archive.invalid/debian\nSuites: bookworm\n\
                    Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n";
        let sources = parse_deb822(text, Path::new("debian.sources"));
        assert_eq!(find_debian_source(&sources, "trixie").unwrap().uri, "http://archive.invalid/debian");
        assert_eq!(
            find_debian_source(&sources, "bookworm-security").unwrap().uri,
            "http://security.invalid/debian-security"
        );
        let other =
            parse_one_line("deb [signed-by=/etc/k.gpg] http://corp.invalid/repo stable main\n", Path::new("x.list"));
        assert!(find_debian_source(&other, "trixie").is_none());
    }
}
