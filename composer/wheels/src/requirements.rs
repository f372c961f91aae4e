//! What a pip requirements file may hold before uv sees it. uv repeats a line it cannot parse in
//! its error; a file the recipe names may be anything (a secret a link points at, a file named by
//! mistake), so a line that is neither a requirement nor an option pip documents is refused here,
//! by its number alone, and its text never reaches an error. Options that would have uv look
//! somewhere the recipe does not name (another index, a `--find-links` location) or read a local
//! path no confinement checked (`-e`, `./pkg`, `file:`) are refused by name.

use std::str::FromStr;

/// The options of pip's requirements-file format (and the per-requirement ones) that compose
/// passes on to uv.
const OPTIONS: &[&str] = &[
    "-r",
    "--requirement",
    "-c",
    "--constraint",
    "--pre",
    "--prefer-binary",
    "--only-binary",
    "--no-binary",
    "--require-hashes",
    "--use-feature",
    "--hash",
    "--config-settings",
    "--global-option",
];

/// Options pip documents that compose refuses, with what they are: each would have uv look
/// where the recipe does not say (an index, a `--find-links` page or directory) or read a
/// directory no confinement checked (an editable install). The recipe names its index, and
/// every file compose reads goes through the one reader.
const REFUSED: &[(&str, &str)] = &[
    ("-e", "an editable install (-e)"),
    ("--editable", "an editable install (--editable)"),
    ("-i", "an index (-i)"),
    ("--index-url", "an index (--index-url)"),
    ("--extra-index-url", "an index (--extra-index-url)"),
    ("--no-index", "--no-index"),
    ("-f", "a --find-links location (-f)"),
    ("--find-links", "a --find-links location"),
    ("--trusted-host", "--trusted-host"),
];

/// Why a line of a requirements file is not passed to uv.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadLine {
    /// Neither a requirement nor an option pip documents: its text is not shown.
    Unreadable(usize),
    /// A documented option (or a local path) that compose does not pass on; what it is, in
    /// compose's words.
    Refused(usize, &'static str),
}

/// The first line of `text` that compose does not pass on to uv: see [`BadLine`].
pub fn first_bad_line(text: &str) -> Option<BadLine> {
    let mut logical = String::new();
    let mut first = 0;
    for (index, line) in text.lines().enumerate() {
        if logical.is_empty() {
            first = index + 1;
        }
        match line.strip_suffix('\\') {
            Some(part) => {
                logical.push_str(part);
                logical.push(' ');
            }
            None => {
                logical.push_str(line);
                if let Some(bad) = judge(&logical, first) {
                    return Some(bad);
                }
                logical.clear();
            }
        }
    }
    if logical.is_empty() { None } else { judge(&logical, first) }
}

fn judge(line: &str, number: usize) -> Option<BadLine> {
    // A comment starts a line or follows whitespace, as pip strips it.
    let line = match line.find(" #").or_else(|| line.find("\t#")) {
        Some(at) => &line[..at],
        None => line,
    };
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    if line.starts_with('-') {
        // As pip and uv split them: the value follows `=` or whitespace, or a short option
        // directly (`-ehttps://...`, `-ffile`).
        let name = line.split(|c: char| c == '=' || c.is_whitespace()).next().unwrap_or(line);
        if OPTIONS.contains(&name) {
            return None;
        }
        let short = |flag: &str| flag.len() == 2 && line.starts_with(flag) && !line.starts_with("--");
        return match REFUSED.iter().find(|(flag, _)| *flag == name || short(flag)) {
            Some((_, what)) => Some(BadLine::Refused(number, what)),
            None if OPTIONS.iter().any(|o| o.len() == 2 && short(o)) => None,
            None => Some(BadLine::Unreadable(number)),
        };
    }
    // A requirement may carry per-requirement options (`--hash=...`) after it.
    let requirement = line.split(" --").next().unwrap_or(line).trim();
    if requirement.starts_with(['.', '/', '~']) || requirement.to_ascii_lowercase().starts_with("file:") {
        return Some(BadLine::Refused(number, "a local path"));
    }
    let parsed = pep508_rs::Requirement::<pep508_rs::VerbatimUrl>::from_str(requirement);
    match parsed {
        // `name @ file:///...` is a local path too, however it is spelled.
        Ok(parsed)
            if parsed
                .version_or_url
                .as_ref()
                .is_some_and(|v| matches!(v, pep508_rs::VersionOrUrl::Url(url) if url.scheme() == "file")) =>
        {
            Some(BadLine::Refused(number, "a local path"))
        }
        Ok(_) => None,
        Err(_) if requirement.contains("://") => None,
        Err(_) => Some(BadLine::Unreadable(number)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirements_options_and_comments_are_readable() {
        let text = "# app\nnumpy>=1.26  # fast\n-r more.txt\n-rmore.txt\n--only-binary :all:\n\
                    aiohttp[speedups]; python_version >= '3.9' \\\n    --hash=sha256:00\n\n\
                    pkg @ https://example.invalid/pkg-1.0-py3-none-any.whl\n";
        assert_eq!(first_bad_line(text), None);
    }

    #[test]
    fn anything_else_is_named_by_its_line_number() {
        assert_eq!(first_bad_line("numpy\nroot:$6$saltsalt$hash:19000:0:99999:7:::\n"), Some(BadLine::Unreadable(2)));
        assert_eq!(first_bad_line("--secret-token=abc\n"), Some(BadLine::Unreadable(1)));
        assert_eq!(first_bad_line("numpy\nnot a \\\nrequirement\n"), Some(BadLine::Unreadable(2)));
    }

    #[test]
    fn options_that_look_elsewhere_or_read_local_paths_are_refused_by_name() {
        for (text, what) in [
            ("--index-url=https://example.invalid/simple", "an index (--index-url)"),
            ("--extra-index-url https://example.invalid/simple", "an index (--extra-index-url)"),
            ("-i https://example.invalid/simple", "an index (-i)"),
            ("-ihttps://example.invalid/simple", "an index (-i)"),
            ("--find-links\t/etc", "a --find-links location"),
            ("-f/etc", "a --find-links location (-f)"),
            ("--no-index", "--no-index"),
            ("-e /home/user/project", "an editable install (-e)"),
            ("--editable=git+https://example.invalid/x", "an editable install (--editable)"),
            ("./local-pkg", "a local path"),
            ("/etc/secret-project", "a local path"),
            ("file:///etc/secret-project", "a local path"),
            ("pkg @ file:///etc/secret-project", "a local path"),
            ("--trusted-host example.invalid", "--trusted-host"),
        ] {
            assert_eq!(first_bad_line(&format!("numpy\n{text}\n")), Some(BadLine::Refused(2, what)), "{text}");
        }
    }
}
