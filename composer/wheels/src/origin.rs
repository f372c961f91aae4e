//! Where a locked wheel may come from. A pylock is a claim like a `recipe.lock`: it may have been
//! edited, or carried in. Its SHA-256 pins each file's bytes, but not where they are read from:
//! a `file://` URL could name any file on the machine (and a digest mismatch would then test a
//! guess at a secret), and plain HTTP to another host is a request anyone on the path may answer
//! or watch. So each URL must be HTTPS; plain HTTP only to loopback or the host of an index the
//! user configured over HTTP; and `file://` only beneath the recipe's directory, an
//! `--allow-path` directory or the directory of a `file://` index the user configured.

use std::path::{Component, Path, PathBuf};

use crate::pylock::WheelLock;

/// What the recipe and the user's configuration allow a locked wheel's URL to be.
#[derive(Debug, Clone)]
pub struct Origins {
    /// The index the wheel set is resolved from, when one is configured (`None`: uv's default).
    pub index: Option<String>,
    /// Directories a `file://` wheel may lie beneath (the recipe's, `--allow-path`).
    pub dirs: Vec<PathBuf>,
}

impl Origins {
    /// `Ok` when `url` is a place this policy allows; else why not, in words that quote the URL
    /// only by its scheme and host (a path may be a secret's, a URL may carry a token).
    pub fn check(&self, url: &str) -> Result<(), String> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err("its URL is not https://, http:// or file:/// with an absolute path".into());
        };
        match scheme.to_ascii_lowercase().as_str() {
            "https" => Ok(()),
            "http" => {
                let host = host_of(rest);
                let index_host = self.index.as_deref().and_then(|i| i.strip_prefix("http://")).map(host_of);
                if is_loopback(host) || index_host.is_some_and(|h| h.eq_ignore_ascii_case(host)) {
                    Ok(())
                } else {
                    Err(format!(
                        "its URL is plain HTTP to `{host}`, which is neither loopback nor the configured index's host"
                    ))
                }
            }
            "file" => {
                // The path as the fetcher reads it (`userfile::file_url_path`, the whole URL):
                // any other reading (one that drops a `?query`, say) would check one file and
                // let another be read.
                let path = match composer_store::userfile::file_url_path(url) {
                    Some(Ok(path)) if !path.components().any(|c| matches!(c, Component::ParentDir)) => path,
                    _ => return Err("its file URL is not a plain absolute local path".into()),
                };
                // Links are resolved first: a path beneath an allowed directory that leads out of
                // it is where it leads. A file that is not there fails when it is fetched.
                let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
                if self.file_roots().iter().any(|root| real.starts_with(root)) {
                    Ok(())
                } else {
                    Err("its file URL is outside the recipe's directory, the --allow-path directories and the \
                         configured file:// index"
                        .into())
                }
            }
            _ => Err(format!("its URL's scheme `{}` is not https, http or file", scheme.escape_debug())),
        }
    }

    /// The directories a `file://` wheel may lie beneath, links resolved: a file index's own
    /// directory and, for an index at `.../simple`, the `files/` beside it, where `compose wheels
    /// index` puts the wheels (not the whole parent: an index at `/tmp/simple` would open `/tmp`).
    fn file_roots(&self) -> Vec<PathBuf> {
        let mut index_dirs = Vec::new();
        if let Some(Ok(p)) = self.index.as_deref().and_then(composer_store::userfile::file_url_path) {
            let p = Path::new(p.to_str().unwrap_or_default().trim_end_matches('/'));
            index_dirs.push(p.to_path_buf());
            if p.file_name().and_then(|n| n.to_str()) == Some("simple")
                && let Some(parent) = p.parent()
            {
                index_dirs.push(parent.join("files"));
            }
        }
        self.dirs.iter().cloned().chain(index_dirs).map(|d| std::fs::canonicalize(&d).unwrap_or(d)).collect()
    }

    /// Checks every wheel, sdist and build wheel of `lock`; the error names the package.
    pub fn check_lock(&self, lock: &WheelLock) -> Result<(), String> {
        let build = lock.meta.build_wheels.iter().flatten().chain(lock.meta.package_build_wheels.values().flatten());
        for wheel in lock.wheels.iter().chain(build) {
            self.check(&wheel.url)
                .map_err(|reason| format!("package {} ({}): {reason}", wheel.name, wheel.filename))?;
        }
        Ok(())
    }
}

fn host_of(rest: &str) -> &str {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => host_port.split(':').next().unwrap_or(host_port),
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_loopback_and_the_configured_places_pass_and_nothing_else() {
        let recipe_dir = tempfile::tempdir().unwrap();
        let index_dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(index_dir.path().join("simple")).unwrap();
        std::fs::create_dir_all(index_dir.path().join("files")).unwrap();
        let origins = |index: Option<String>| Origins { index, dirs: vec![recipe_dir.path().to_path_buf()] };
        let file_index = origins(Some(format!("file://{}/simple", index_dir.path().display())));
        let wheel = |dir: &Path| format!("file://{}/files/x-1-py3-none-any.whl", dir.display());

        assert_eq!(origins(None).check("https://files.example.invalid/x.whl"), Ok(()));
        assert_eq!(origins(None).check("http://127.0.0.1:8080/x.whl"), Ok(()));
        assert_eq!(origins(None).check("http://[::1]/x.whl"), Ok(()));
        assert_eq!(origins(Some("http://devpi.lan/simple".into())).check("http://devpi.lan:80/x.whl"), Ok(()));
        assert_eq!(file_index.check(&wheel(index_dir.path())), Ok(()));
        assert_eq!(origins(None).check(&wheel(recipe_dir.path())), Ok(()));

        let error = origins(None).check("http://user:tok3n@mirror.example.invalid/x.whl").unwrap_err();
        assert!(error.contains("plain HTTP to `mirror.example.invalid`") && !error.contains("tok3n"), "{error}");
        assert!(origins(None).check("ftp://example.invalid/x.whl").unwrap_err().contains("`ftp`"));
        for outside in ["file:///etc/shadow", "file:///tmp/../etc/shadow", "file://relative/x.whl"] {
            let error = file_index.check(outside).unwrap_err();
            assert!(!error.contains("shadow"), "{error}");
        }
        assert!(origins(None).check(&wheel(index_dir.path())).is_err(), "no file index configured");
        // A link beneath the recipe's directory that leads out of it.
        std::os::unix::fs::symlink("/etc", recipe_dir.path().join("etc")).unwrap();
        let linked = format!("file://{}/etc/hostname", recipe_dir.path().display());
        assert!(origins(None).check(&linked).is_err());
        // The fetcher reads the whole URL as the path: a `?` or `#` in it hides nothing. A
        // directory named `a?` under the recipe's directory leads out through `..`.
        std::fs::create_dir_all(recipe_dir.path().join("a?")).unwrap();
        for hidden in ["a?/../../../etc/shadow", "a#/../../../etc/shadow"] {
            let url = format!("file://{}/{hidden}", recipe_dir.path().display());
            assert!(origins(None).check(&url).is_err(), "{url}");
        }
        // A file index at `.../simple` opens the `files/` beside it, not its whole parent.
        std::fs::write(index_dir.path().join("secret"), "x").unwrap();
        let beside = format!("file://{}/secret", index_dir.path().display());
        assert!(file_index.check(&beside).is_err());
        let no_scheme = origins(None).check("data:,x").unwrap_err();
        assert!(no_scheme.contains("not https://, http:// or file:///"), "{no_scheme}");
    }
}
