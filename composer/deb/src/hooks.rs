//! What maintainer scripts would have done that the image needs in order to work, done
//! declaratively from the packages' own data, so that no script runs and the result is
//! reproducible:
//!
//! - **alternatives**: every `update-alternatives --install LINK NAME PATH PRIORITY` (and its
//!   `--slave` links) found in a `postinst` becomes the two symlinks update-alternatives would
//!   make, the highest priority winning per name, as in auto mode. A word may name a variable
//!   the script sets once, at its top level, to a plain word (`ver=1.17`, as automake's does);
//!   a call with any other expansion is passed over.
//! - **ca-certificates**: `update-ca-certificates` concatenates every certificate under
//!   `/usr/share/ca-certificates` into `/etc/ssl/certs/ca-certificates.crt` and lists them in
//!   `/etc/ca-certificates.conf`; the same is done here.

use std::collections::BTreeMap;

/// A symlink to add: (path, target), both absolute in the image.
pub type Link = (String, String);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Alternative {
    priority: i64,
    link: String,
    path: String,
    slaves: Vec<(String, String, String)>,
}

/// Symlinks for every alternative whose target file exists (per `exists`).
pub fn alternatives(postinsts: &[&str], exists: &dyn Fn(&str) -> bool) -> Vec<Link> {
    let mut best: BTreeMap<String, Alternative> = BTreeMap::new();
    for script in postinsts {
        let joined = script.replace("\\\n", " ");
        let variables = plain_assignments(&joined);
        for line in joined.lines() {
            let expanded: Vec<String> = line.split_whitespace().map(|w| expand(w, &variables)).collect();
            let words: Vec<&str> = expanded.iter().map(String::as_str).collect();
            let Some(start) =
                words.windows(2).position(|w| w[0].ends_with("update-alternatives") && w[1] == "--install")
            else {
                continue;
            };
            let args = &words[start + 2..];
            let [link, name, path, priority, rest @ ..] = args else { continue };
            if [link, name, path, priority].iter().any(|w| w.contains('$') || w.contains('`')) {
                continue;
            }
            let Ok(priority) = priority.parse::<i64>() else { continue };
            let mut slaves = Vec::new();
            let mut rest = rest;
            while let ["--slave", slink, sname, spath, tail @ ..] = rest {
                if ![slink, sname, spath].iter().any(|w| w.contains('$')) {
                    slaves.push((slink.to_string(), sname.to_string(), spath.to_string()));
                }
                rest = tail;
            }
            if !exists(path) {
                continue;
            }
            let candidate = Alternative { priority, link: link.to_string(), path: path.to_string(), slaves };
            let better = match best.get(*name) {
                None => true,
                Some(current) => (candidate.priority, &candidate.path) > (current.priority, &current.path),
            };
            if better {
                best.insert(name.to_string(), candidate);
            }
        }
    }
    let mut links = Vec::new();
    for (name, alt) in best {
        links.push((alt.link.clone(), format!("/etc/alternatives/{name}")));
        links.push((format!("/etc/alternatives/{name}"), alt.path.clone()));
        for (slink, sname, spath) in alt.slaves {
            if exists(&spath) {
                links.push((slink, format!("/etc/alternatives/{sname}")));
                links.push((format!("/etc/alternatives/{sname}"), spath));
            }
        }
    }
    links
}

/// The variables a script sets exactly once, at the start of a line, to a word (quoted or not)
/// with no expansion of its own: what can be known without running it.
fn plain_assignments(script: &str) -> BTreeMap<String, String> {
    let mut seen: BTreeMap<String, Option<String>> = BTreeMap::new();
    for line in script.lines() {
        let Some((name, value)) = line.trim_end().split_once('=') else { continue };
        let is_name = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !is_name {
            continue;
        }
        let value = ['"', '\''].iter().find_map(|q| value.strip_prefix(*q)?.strip_suffix(*q)).unwrap_or(value);
        let plain = !value.is_empty()
            && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | '+' | ':'));
        let value = plain.then(|| value.to_string());
        seen.entry(name.to_string()).and_modify(|v| *v = None).or_insert(value);
    }
    seen.into_iter().filter_map(|(name, value)| Some((name, value?))).collect()
}

/// `word` with `$NAME` and `${NAME}` replaced where `variables` knows NAME; any other `$` stays,
/// and the caller passes such a word over.
fn expand(word: &str, variables: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = word;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, tail) = match after.strip_prefix('{') {
            Some(braced) => match braced.split_once('}') {
                Some((name, tail)) => (name, tail),
                None => ("", after),
            },
            None => {
                let end = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
        };
        match variables.get(name) {
            Some(value) if !name.is_empty() => out.push_str(value),
            _ => {
                out.push('$');
                out.push_str(&after[..after.len() - tail.len()]);
            }
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// `/etc/ssl/certs/ca-certificates.crt` and `/etc/ca-certificates.conf` from the certificates
/// (path relative to `/usr/share/ca-certificates`, PEM content), in path order.
pub fn ca_bundle(mut certificates: Vec<(String, Vec<u8>)>) -> Vec<(String, Vec<u8>)> {
    certificates.sort();
    let mut bundle = Vec::new();
    let mut conf = String::from("# Generated by composer, as update-ca-certificates would.\n");
    for (path, pem) in &certificates {
        bundle.extend_from_slice(pem);
        if !pem.ends_with(b"\n") {
            bundle.push(b'\n');
        }
        conf.push_str(path);
        conf.push('\n');
    }
    vec![("etc/ssl/certs/ca-certificates.crt".into(), bundle), ("etc/ca-certificates.conf".into(), conf.into_bytes())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highest_priority_alternative_wins_with_slaves() {
        let a = "update-alternatives --install /usr/bin/awk awk /usr/bin/mawk 5 \\\n  --slave /usr/share/man/man1/awk.1.gz awk.1.gz /usr/share/man/man1/mawk.1.gz\n";
        let b = "  update-alternatives --install /usr/bin/awk awk /usr/bin/gawk 10\n";
        let c = "update-alternatives --install /usr/bin/x x /usr/lib/$ARCH/x 10\n";
        let links = alternatives(&[a, b, c], &|p| p != "/usr/share/man/man1/mawk.1.gz");
        assert_eq!(
            links,
            [
                ("/usr/bin/awk".to_string(), "/etc/alternatives/awk".to_string()),
                ("/etc/alternatives/awk".into(), "/usr/bin/gawk".into())
            ]
        );
        let links = alternatives(&[a], &|_| true);
        assert_eq!(links.len(), 4);
    }

    #[test]
    fn a_variable_the_script_sets_once_to_a_plain_word_is_expanded() {
        let automake = "#!/bin/sh\nset -e\n\nver=1.17\nprio=35\n\nupdate-alternatives --install /usr/bin/automake automake \\\n\t/usr/bin/automake-$ver $prio \\\n\t--slave /usr/bin/aclocal aclocal /usr/bin/aclocal-${ver}\n";
        let links = alternatives(&[automake], &|_| true);
        assert!(links.contains(&("/usr/bin/aclocal".into(), "/etc/alternatives/aclocal".into())), "{links:?}");
        assert!(links.contains(&("/etc/alternatives/automake".into(), "/usr/bin/automake-1.17".into())), "{links:?}");
        let quoted = automake.replace("ver=1.17", "ver=\"1.17\"");
        assert_eq!(alternatives(&[&quoted], &|_| true), links);
        // Set twice, or to something with an expansion of its own: not known, not guessed.
        for unknown in ["ver=1.17\nver=1.16\n", "ver=$(cat v)\n", "ver=\"$x\"\n", "  ver=1.17\n"] {
            let script = format!("{unknown}update-alternatives --install /usr/bin/a a /usr/bin/a-$ver 1\n");
            assert!(alternatives(&[&script], &|_| true).is_empty(), "{unknown:?}");
        }
    }

    #[test]
    fn bundle_concatenates_in_order() {
        let files = ca_bundle(vec![("mozilla/B.crt".into(), b"B".to_vec()), ("mozilla/A.crt".into(), b"A\n".to_vec())]);
        assert_eq!(files[0].1, b"A\nB\n");
        assert!(String::from_utf8_lossy(&files[1].1).ends_with("mozilla/A.crt\nmozilla/B.crt\n"));
    }
}
