//! What a pip requirements file may hold before uv sees it. uv repeats a line it cannot parse in
//! its error; a file the recipe names may be anything (a secret a link points at, a file named by
//! mistake), so a line that is neither a requirement nor an option pip documents is refused here,
//! by its number alone, and its text never reaches an error.

use std::str::FromStr;

/// The options of pip's requirements-file format (and the per-requirement ones).
const OPTIONS: &[&str] = &[
    "-r",
    "--requirement",
    "-c",
    "--constraint",
    "-e",
    "--editable",
    "-i",
    "--index-url",
    "--extra-index-url",
    "--no-index",
    "-f",
    "--find-links",
    "--pre",
    "--prefer-binary",
    "--only-binary",
    "--no-binary",
    "--require-hashes",
    "--trusted-host",
    "--use-feature",
    "--hash",
    "--config-settings",
    "--global-option",
];

/// The number (from 1) of the first line of `text` that is neither blank, a comment, a PEP 508
/// requirement, a path or URL of a distribution, nor one of pip's options; a line ending in `\`
/// continues on the next, as pip reads it.
pub fn first_unreadable_line(text: &str) -> Option<usize> {
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
                if !readable(&logical) {
                    return Some(first);
                }
                logical.clear();
            }
        }
    }
    (!logical.is_empty() && !readable(&logical)).then_some(first)
}

fn readable(line: &str) -> bool {
    // A comment starts a line or follows whitespace, as pip strips it.
    let line = match line.find(" #").or_else(|| line.find("\t#")) {
        Some(at) => &line[..at],
        None => line,
    };
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return true;
    }
    if line.starts_with('-') {
        let name = line.split(|c: char| c == '=' || c.is_whitespace()).next().unwrap_or(line);
        return OPTIONS.contains(&name);
    }
    // A requirement may carry per-requirement options (`--hash=...`) after it.
    let requirement = line.split(" --").next().unwrap_or(line).trim();
    pep508_rs::Requirement::<pep508_rs::VerbatimUrl>::from_str(requirement).is_ok()
        || requirement.starts_with(['.', '/'])
        || requirement.contains("://")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirements_options_and_comments_are_readable() {
        let text = "# app\nnumpy>=1.26  # fast\n-r more.txt\n--index-url=https://example.invalid/simple\n\
                    aiohttp[speedups]; python_version >= '3.9' \\\n    --hash=sha256:00\n\n./local-pkg\n";
        assert_eq!(first_unreadable_line(text), None);
    }

    #[test]
    fn anything_else_is_named_by_its_line_number() {
        assert_eq!(first_unreadable_line("numpy\nroot:$6$saltsalt$hash:19000:0:99999:7:::\n"), Some(2));
        assert_eq!(first_unreadable_line("--secret-token=abc\n"), Some(1));
        assert_eq!(first_unreadable_line("numpy\nnot a \\\nrequirement\n"), Some(2));
    }
}
