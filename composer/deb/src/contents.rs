//! Debian's `Contents` index: which package ships which file, one line per path
//! (`usr/lib/x86_64-linux-gnu/libstdc++.so.6   libs/libstdc++6`), as `apt-file` reads it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};

/// Adds to `found`, for each of `names` (a library's file name), the packages that ship it
/// directly in one of `dirs` (`usr/lib/x86_64-linux-gnu`: where the loader looks). Lines that
/// are not `PATH SECTION/PACKAGE[,...]` are skipped.
pub fn providers(
    contents: impl Read,
    dirs: &[String],
    names: &BTreeSet<&str>,
    found: &mut BTreeMap<String, Vec<String>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::with_capacity(256 * 1024, contents);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let Ok(text) = std::str::from_utf8(&line) else { continue };
        let Some((path, packages)) = text.trim_end().rsplit_once(char::is_whitespace) else { continue };
        let path = path.trim_end();
        let Some((dir, file)) = path.rsplit_once('/') else { continue };
        if !names.contains(file) || !dirs.iter().any(|d| d == dir) {
            continue;
        }
        let entry = found.entry(file.to_string()).or_default();
        for package in packages.split(',') {
            let name = package.rsplit('/').next().unwrap_or(package).to_string();
            if !name.is_empty() && !entry.contains(&name) {
                entry.push(name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libraries_are_found_only_where_the_loader_looks() {
        let text = "usr/lib/x86_64-linux-gnu/libstdc++.so.6            libs/libstdc++6\n\
                    usr/share/doc/libstdc++.so.6                        doc/decoy\n\
                    lib/x86_64-linux-gnu/libz.so.1   libs/zlib1g,oldlibs/zlib1g-compat\n\
                    usr/lib/x86_64-linux-gnu/plugins/libz.so.1   libs/private-copy\n\
                    usr/bin/tool devel/tool\n\
                    garbage\n";
        let names = BTreeSet::from(["libstdc++.so.6", "libz.so.1", "libnone.so"]);
        let dirs = ["lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib", "usr/lib"].map(String::from);
        let mut found = BTreeMap::new();
        providers(text.as_bytes(), &dirs, &names, &mut found).unwrap();
        assert_eq!(found["libstdc++.so.6"], vec!["libstdc++6"]);
        assert_eq!(found["libz.so.1"], vec!["zlib1g", "zlib1g-compat"]);
        assert!(!found.contains_key("libnone.so"));
    }
}
