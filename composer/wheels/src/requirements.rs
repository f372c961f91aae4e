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

/// `text` without the byte-order mark an editor may put first: pip and uv skip it, so a check
/// that did not would read `\u{feff}-i URL` as a requirement and pass the option on.
pub fn without_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// The logical lines of a requirements file, as pip joins them: a line ending in `\` goes on
/// in the next. Each with the number of the line it starts on.
pub fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut logical = String::new();
    let mut first = 0;
    for (index, line) in without_bom(text).lines().enumerate() {
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
                out.push((first, std::mem::take(&mut logical)));
            }
        }
    }
    if !logical.is_empty() {
        out.push((first, logical));
    }
    out
}

/// A line that includes another file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include<'a> {
    /// `-r FILE`, `--requirement FILE`.
    Requirements(&'a str),
    /// `-c FILE`, `--constraint FILE`.
    Constraints(&'a str),
}

/// The file a logical line includes, read as pip and uv split it: the value follows `=` or any
/// whitespace (a TAB too), and a short option's value may follow it directly (`-rfile`).
pub fn include_of(line: &str) -> Option<Include<'_>> {
    let line = line.trim();
    let separator = |c: char| c == '=' || c.is_whitespace();
    let value = |flag: &str| {
        let rest = line.strip_prefix(flag)?;
        let short = !flag.starts_with("--");
        (short || rest.starts_with(separator)).then(|| rest.trim_start_matches(separator).trim())
    };
    let value = |flag| value(flag).filter(|v| !v.is_empty());
    if let Some(file) = value("--requirement").or_else(|| value("-r")) {
        return Some(Include::Requirements(file));
    }
    value("--constraint").or_else(|| value("-c")).map(Include::Constraints)
}

/// The first line of `text` that compose does not pass on to uv: see [`BadLine`].
pub fn first_bad_line(text: &str) -> Option<BadLine> {
    logical_lines(text).into_iter().find_map(|(number, line)| judge(&line, number))
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
    // uv expands `${NAME}` from its environment; compose reads the line as written, so the two
    // would read different things.
    if line.contains("${") {
        return Some(BadLine::Refused(number, "an environment variable (${...}), which compose does not expand"));
    }
    if line.starts_with('-') {
        if let Some(Include::Requirements(file) | Include::Constraints(file)) = include_of(line)
            && file.contains("://")
        {
            return Some(BadLine::Refused(number, "an include by URL"));
        }
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
    match pep508_rs::Requirement::<pep508_rs::VerbatimUrl>::from_str(requirement) {
        Ok(parsed) => match &parsed.version_or_url {
            Some(pep508_rs::VersionOrUrl::Url(url)) => {
                url_refusal(url.scheme()).map(|what| BadLine::Refused(number, what))
            }
            _ => None,
        },
        // A bare URL (`https://host/pkg-1.0-py3-none-any.whl`), which pip takes as a
        // requirement: one word with a scheme. Anything else is not shown, whatever it holds
        // (`API=https://...?token=...` in a `.env` named by mistake).
        Err(_) => match requirement.split_once("://") {
            Some((scheme, _)) if !requirement.contains(char::is_whitespace) && is_scheme(scheme) => {
                url_refusal(&scheme.to_ascii_lowercase()).map(|what| BadLine::Refused(number, what))
            }
            _ => Some(BadLine::Unreadable(number)),
        },
    }
}

fn is_scheme(text: &str) -> bool {
    text.starts_with(|c: char| c.is_ascii_alphabetic())
        && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// Why a requirement's URL is not passed on, by its scheme: uv would read a local path no
/// confinement checked, or clone a repository; only the network's files are fetched (and their
/// pylock entries checked as any other's).
fn url_refusal(scheme: &str) -> Option<&'static str> {
    match scheme {
        "https" | "http" => None,
        "file" => Some("a local path"),
        s if ["git+", "hg+", "svn+", "bzr+"].iter().any(|vcs| s.starts_with(vcs)) => Some("a version-control URL"),
        _ => Some("a URL that is neither https nor http"),
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
        // A line that merely holds a URL is no bare URL requirement.
        assert_eq!(first_bad_line("API=https://example.invalid/?token=hunter2\n"), Some(BadLine::Unreadable(1)));
        assert_eq!(first_bad_line("see https://example.invalid\n"), Some(BadLine::Unreadable(1)));
        assert_eq!(first_bad_line("https://example.invalid/pkg-1.0-py3-none-any.whl\n"), None);
    }

    /// Found by an outside attack: a byte-order mark first made an option look like a
    /// requirement, and pass.
    #[test]
    fn a_byte_order_mark_hides_no_option() {
        let text = "\u{feff}--extra-index-url http://127.0.0.1:1/simple\ntinyapp\n";
        assert_eq!(first_bad_line(text), Some(BadLine::Refused(1, "an index (--extra-index-url)")));
    }

    #[test]
    fn includes_are_read_as_pip_reads_them() {
        for (line, include) in [
            ("-r more.txt", Some(Include::Requirements("more.txt"))),
            ("-rmore.txt", Some(Include::Requirements("more.txt"))),
            ("--requirement=more.txt", Some(Include::Requirements("more.txt"))),
            ("--requirement\tmore.txt", Some(Include::Requirements("more.txt"))),
            ("  -c  pins.txt ", Some(Include::Constraints("pins.txt"))),
            ("--constraint pins.txt", Some(Include::Constraints("pins.txt"))),
            ("--requirements-typo x", None),
            ("-r", None),
            ("numpy", None),
        ] {
            assert_eq!(include_of(line), include, "{line}");
        }
        let lines = logical_lines("\u{feff}-r a.txt\nnumpy \\\n  >=1\nlast");
        assert_eq!(lines, vec![(1, "-r a.txt".into()), (2, "numpy    >=1".into()), (4, "last".into())]);
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
            ("-r ${HOME}/../etc/shadow", "an environment variable (${...}), which compose does not expand"),
            (
                "pkg @ https://example.invalid/${TOKEN}/pkg.whl",
                "an environment variable (${...}), which compose does not expand",
            ),
            ("-r file:///etc/shadow", "an include by URL"),
            ("--constraint=https://example.invalid/c.txt", "an include by URL"),
            ("pkg @ git+file:///srv/repo", "a version-control URL"),
            ("git+file:///srv/repo", "a version-control URL"),
            ("pkg @ git+https://example.invalid/repo", "a version-control URL"),
            ("ftp://example.invalid/pkg-1.0-py3-none-any.whl", "a URL that is neither https nor http"),
        ] {
            assert_eq!(first_bad_line(&format!("numpy\n{text}\n")), Some(BadLine::Refused(2, what)), "{text}");
        }
    }
}
