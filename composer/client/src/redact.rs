//! User information (`USER:PASSWORD@`) in a URL or an image reference is a secret: every
//! message that shows one goes through [`redact`], so a password given where a host was
//! expected never reaches stderr, `--json` or a log.

use std::borrow::Cow;

/// What the user information is replaced with.
pub const REDACTED: &str = "***";

/// `text` with the user information of every URL or reference in it replaced by `***`:
/// `https://user:pw@host/x` → `https://***@host/x`, `user:pw@host/repo:tag` → `***@host/repo:tag`.
/// An `@` after the first `/` of a token (`host/repo@sha256:...`, `git+https://host/r@v1`) is
/// not user information and is kept.
pub fn redact(text: &str) -> Cow<'_, str> {
    if !text.contains('@') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let start = rest.find(|c: char| !is_delimiter(c)).unwrap_or(rest.len());
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest.find(is_delimiter).unwrap_or(rest.len());
        out.push_str(&redact_token(&rest[..end]));
        rest = &rest[end..];
    }
    Cow::Owned(out)
}

/// Characters that end a URL or reference in running text.
fn is_delimiter(c: char) -> bool {
    c.is_whitespace() || matches!(c, '`' | '"' | '\'' | '<' | '>' | '(' | ')' | ',' | ';' | '{' | '}')
}

fn redact_token(token: &str) -> Cow<'_, str> {
    let authority_start = token.find("://").map_or(0, |i| i + 3);
    let authority = &token[authority_start..];
    // Up to the last `@` of the token, not only of what looks like its authority: a password may
    // hold an unencoded `/` (`u:SEC/RET@host`), and a mistyped scheme (`htp:/u:pw@host`) hides
    // where the authority starts. A digest reference's `@sha256:...` is no user information.
    let user_end = authority.match_indices('@').map(|(at, _)| at).rfind(|&at| !is_digest(&authority[at + 1..]));
    let Some(at) = user_end.filter(|&at| at > 0) else { return Cow::Borrowed(token) };
    // An `@` past a `/` is user information only where what comes before that `/` has a `:`
    // (`user:pass/word`); else it is a path's own (`forge.test/project@v1.0`).
    let head = &authority[..at];
    let user_information = match head.split_once('/') {
        None => true,
        Some((before, _)) => before.contains(':'),
    };
    match user_information {
        true => Cow::Owned(format!("{}{REDACTED}{}", &token[..authority_start], &authority[at..])),
        false => Cow::Borrowed(token),
    }
}

/// Whether `text` starts with a digest (`sha256:` + hex), as an image reference's `@` names one.
fn is_digest(text: &str) -> bool {
    let Some((algorithm, hex)) = text.split_once(':') else { return false };
    matches!(algorithm, "sha256" | "sha384" | "sha512") && hex.bytes().next().is_some_and(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_information_is_replaced_wherever_a_url_or_reference_shows_it() {
        let cases = [
            ("user:SECRETPW@127.0.0.1:5000/team/app:v1", "***@127.0.0.1:5000/team/app:v1"),
            ("docker://user:SECRETPW@registry.test/app", "docker://***@registry.test/app"),
            ("oci://user:SECRETPW@registry.test/cache", "oci://***@registry.test/cache"),
            ("https://user:SECRETPW@mirror.test/debian/dists", "https://***@mirror.test/debian/dists"),
            ("http://SECRETPW@mirror.test", "http://***@mirror.test"),
            // An unencoded `@` in the password: everything up to the last one goes.
            ("https://user:SECRET@PW@mirror.test/x", "https://***@mirror.test/x"),
            // An unencoded `/` in the password, and a mistyped scheme.
            ("user:SEC/RETPW@127.0.0.1:9/repo:tag", "***@127.0.0.1:9/repo:tag"),
            ("oci://u:SEC/RETPW@127.0.0.1:9/cache", "oci://***@127.0.0.1:9/cache"),
            ("http://user:SEC/RETPW@127.0.0.1:9/debian", "http://***@127.0.0.1:9/debian"),
            ("htp:/user:SECRETPW@127.0.0.1/debian", "***@127.0.0.1/debian"),
            (
                "error: `user:SECRETPW@host/app` is not an image reference (see https://u:SECRETPW@h/x)",
                "error: `***@host/app` is not an image reference (see https://***@h/x)",
            ),
        ];
        for (text, redacted) in cases {
            assert_eq!(redact(text), redacted, "{text}");
            assert!(!redact(text).contains("SECRET"), "{text}");
        }
        // What is not user information stays as it was.
        for kept in [
            "registry.test/team/app@sha256:0123",
            "git+https://forge.test/project@v1.0",
            "no url here",
            "name @ https://files.test/pkg.whl",
        ] {
            assert_eq!(redact(kept), kept);
        }
    }
}
