//! The dpkg database of the image: `var/lib/dpkg/status` with every installed package, and for
//! each one `info/<pkg>.list`, `.md5sums` and `.conffiles` (`<pkg>:<arch>.*` for Multi-Arch: same,
//! as `info/format` declares). Scanners (syft, trivy) and dpkg itself read these to know what the
//! image holds.

use crate::unpack::ControlData;

/// A file to add to the image: path (relative) and content.
pub type GeneratedFile = (String, Vec<u8>);

pub fn database(packages: &[(String, &ControlData)]) -> Vec<GeneratedFile> {
    let mut sorted: Vec<&(String, &ControlData)> = packages.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut status = String::new();
    let mut files = Vec::new();
    for (name, data) in sorted {
        let paragraph = crate::control::parse(&data.control).into_iter().next().unwrap_or_default();
        for (key, value) in &paragraph.fields {
            status.push_str(key);
            status.push_str(": ");
            status.push_str(&value.replace('\n', "\n "));
            status.push('\n');
            if key == "Package" {
                status.push_str("Status: install ok installed\n");
            }
        }
        status.push('\n');
        let info_name = match (paragraph.get("Multi-Arch"), paragraph.get("Architecture")) {
            (Some("same"), Some(arch)) => format!("{name}:{arch}"),
            _ => name.clone(),
        };
        let info = |ext: &str| format!("var/lib/dpkg/info/{info_name}.{ext}");
        // Paths keep the bytes the package had (escaped in the tree, raw in dpkg's list).
        files.push((info("list"), composer_store::name_bytes(&(data.paths.join("\n") + "\n")).into_owned()));
        if !data.md5sums.is_empty() {
            files.push((info("md5sums"), data.md5sums.clone().into_bytes()));
        }
        if !data.conffiles.is_empty() {
            files.push((info("conffiles"), data.conffiles.clone().into_bytes()));
        }
    }
    // Without `info/format`, dpkg takes the database for the pre-multiarch layout and looks for
    // `libc6.list` instead of `libc6:amd64.list`: every Multi-Arch: same package would seem to
    // own no files, for `dpkg -S`, `dpkg --verify` and the scanners that ask dpkg.
    files.push(("var/lib/dpkg/info/format".into(), b"1\n".to_vec()));
    files.push(("var/lib/dpkg/status".into(), status.into_bytes()));
    files.push(("var/lib/dpkg/available".into(), Vec::new()));
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_status_with_installed_state_and_multiarch_names() {
        let data = ControlData {
            control: "Package: libc6\nVersion: 2.36\nArchitecture: amd64\nMulti-Arch: same\nDescription: C\n library\n"
                .into(),
            paths: vec!["/.".into(), "/usr".into()],
            ..Default::default()
        };
        let files = database(&[("libc6".into(), &data)]);
        let status = String::from_utf8(files.iter().find(|f| f.0 == "var/lib/dpkg/status").unwrap().1.clone()).unwrap();
        assert!(status.starts_with("Package: libc6\nStatus: install ok installed\nVersion: 2.36\n"), "{status}");
        assert!(status.contains("Description: C\n library\n"));
        assert!(files.iter().any(|f| f.0 == "var/lib/dpkg/info/libc6:amd64.list"));
        assert!(files.iter().any(|f| f.0 == "var/lib/dpkg/info/format" && f.1 == b"1\n"), "multiarch layout declared");
    }
}
