//! Checks on `[[sources]]`, `[toolchain]`, `[[builds]]`, the allocator build and `[python.build]`:
//! every name a build refers to exists, and every pin is a pin.

use std::collections::BTreeSet;
use std::ops::Range;

use crate::{AllocatorMode, AllocatorName, AllocatorSource, Platform, Recipe, RecipeError};

type Invalid<'a> = &'a dyn Fn(Range<usize>, String, &str) -> RecipeError;

/// The name of the allocator's build step, which other builds list in `uses`.
pub const JEMALLOC_BUILD: &str = "jemalloc";
/// The name of the CPython build step.
pub const PYTHON_BUILD: &str = "python";
/// The name of the C library's build step (and of its source), with `libc = "musl"`.
pub const MUSL_BUILD: &str = "musl";
/// The name of the step that builds, for the build platform, the CPython a cross-compiled
/// CPython runs its build scripts with (`--with-build-python`).
pub const BUILD_PYTHON: &str = "build-python";

pub(crate) fn builds(
    recipe: &Recipe,
    section: &dyn Fn(&str) -> Range<usize>,
    invalid: Invalid<'_>,
) -> Result<(), RecipeError> {
    let mut sources = BTreeSet::new();
    for source in &recipe.sources {
        let name = source.name.get_ref();
        check_name(name, source.name.span(), "source", invalid)?;
        if !sources.insert(name.as_str()) {
            return Err(invalid(
                source.name.span(),
                format!("source `{name}` is listed twice"),
                "give each source its own name",
            ));
        }
        match (&source.url, &source.path) {
            (Some(url), None) => {
                let text = url.get_ref();
                if !["mirror://", "https://", "http://", "file://"].iter().any(|s| text.starts_with(s)) {
                    return Err(invalid(
                        url.span(),
                        format!("source url `{text}` has no known scheme"),
                        "use mirror://NAME/path (a configured mirror), https://, http:// or file://",
                    ));
                }
                let Some(sha) = &source.sha256 else {
                    return Err(invalid(
                        source.name.span(),
                        format!("source `{name}` has a url but no sha256"),
                        "pin it: add sha256 = \"<64 hex digits>\" (for Debian's pool, from the suite's Sources index)",
                    ));
                };
                check_sha(sha, invalid)?;
            }
            (None, Some(path)) => {
                let full = recipe.dir.join(path.get_ref());
                if !full.exists() {
                    return Err(invalid(
                        path.span(),
                        format!("`{}` does not exist", full.display()),
                        "source paths are relative to the recipe's directory",
                    ));
                }
                if let Some(sha) = &source.sha256 {
                    check_sha(sha, invalid)?;
                }
            }
            _ => {
                return Err(invalid(
                    source.name.span(),
                    format!("source `{name}` needs exactly one of `url` and `path`"),
                    "a remote file: url and sha256; a local file: path",
                ));
            }
        }
    }

    let toolchain = &recipe.toolchain;
    let profile_exists = |name: &toml::Spanned<String>| -> Result<(), RecipeError> {
        if toolchain.profile(Some(name.get_ref())).is_none() {
            let known: Vec<&str> = toolchain.profiles.keys().map(String::as_str).collect();
            return Err(invalid(
                name.span(),
                format!("toolchain profile `{}` is not defined", name.get_ref()),
                &format!("define [toolchain.profiles.{}] (defined: default, {})", name.get_ref(), known.join(", ")),
            ));
        }
        Ok(())
    };
    let named = std::iter::once(("[toolchain]".to_string(), &toolchain.default))
        .chain(toolchain.profiles.iter().map(|(name, p)| (format!("[toolchain.profiles.{name}]"), p)));
    for (table, profile) in named {
        for platform in profile.platforms.keys() {
            if platform.parse::<Platform>().is_err() {
                return Err(invalid(
                    section("[toolchain"),
                    format!("toolchain platform `{platform}` is not a platform composer knows"),
                    "use the names of [image] platforms, e.g. [toolchain.platforms.\"linux/arm64\"]",
                ));
            }
        }
        // llvm-bolt has back ends for these two only; elsewhere the build would stop at its
        // configure, after the build root was made.
        let unboltable = recipe.image.platforms.get_ref().iter().find(|platform| {
            profile.bolt_on(&platform.to_string()) && !matches!(platform.architecture.as_str(), "amd64" | "arm64")
        });
        if let Some(platform) = unboltable {
            return Err(invalid(
                section(&table),
                format!("{table} has bolt = true, but llvm-bolt cannot rewrite {platform} binaries"),
                &format!("add [{}.platforms.\"{platform}\"] with bolt = false", &table[1..table.len() - 1]),
            ));
        }
    }

    let allocator = &recipe.allocator;
    let mut built: BTreeSet<&str> = BTreeSet::new();
    if recipe.base.musl() {
        musl(recipe, &sources, section, invalid)?;
        built.insert(MUSL_BUILD);
    }
    if (allocator.source == AllocatorSource::Build || allocator.mode == AllocatorMode::Link)
        && allocator.name != AllocatorName::Jemalloc
    {
        return Err(invalid(
            section("[allocator]"),
            "`mode = \"link\"` and `source = \"build\"` need an allocator to link or build".into(),
            "set name = \"jemalloc\"",
        ));
    }
    if allocator.source == AllocatorSource::Build {
        if !sources.contains(JEMALLOC_BUILD) {
            return Err(invalid(
                section("[allocator]"),
                "the allocator is built from source but no [[sources]] entry is named `jemalloc`".into(),
                "add [[sources]] name = \"jemalloc\" with the tarball's url and sha256",
            ));
        }
        built.insert(JEMALLOC_BUILD);
    }
    for (platform, lg) in allocator.lg_page.iter().flat_map(|l| l.values()) {
        if !(12..=16).contains(&lg) || allocator.source != AllocatorSource::Build {
            return Err(invalid(
                section("[allocator]"),
                format!("lg_page = {lg} needs a built allocator and a value from 12 to 16"),
                "set source = \"build\"; lg_page = 16 runs on 4K, 16K and 64K page kernels",
            ));
        }
        if let Some(platform) = platform
            && platform.parse::<Platform>().is_err()
        {
            return Err(invalid(
                section("[allocator]"),
                format!("lg_page names `{platform}`, which is not a platform composer knows"),
                "name [image] platforms, e.g. lg_page = { \"linux/arm64\" = 16 }",
            ));
        }
    }
    if let Some(profile) = &allocator.profile {
        profile_exists(profile)?;
    }

    for build in &recipe.builds {
        let name = build.name.get_ref();
        check_name(name, build.name.span(), "build", invalid)?;
        if name == PYTHON_BUILD || name == BUILD_PYTHON || !built.insert(name) {
            return Err(invalid(
                build.name.span(),
                format!("build name `{name}` is already taken"),
                "give each build its own name (`jemalloc`, `python`, `build-python` and `musl` name the allocator, CPython and C library builds)",
            ));
        }
        for source in &build.sources {
            if !sources.contains(source.get_ref().as_str()) {
                return Err(invalid(
                    source.span(),
                    format!("build `{name}` uses source `{}`, which no [[sources]] entry names", source.get_ref()),
                    "add the source, or fix the name",
                ));
            }
        }
        for used in &build.uses {
            if used.get_ref() == name || !built.contains(used.get_ref().as_str()) {
                return Err(invalid(
                    used.span(),
                    format!("build `{name}` uses `{}`, which is not an earlier build", used.get_ref()),
                    "list builds before the builds that use them (the built allocator is `jemalloc`)",
                ));
            }
        }
        if let Some(profile) = &build.profile {
            profile_exists(profile)?;
        }
    }

    if let Some(profile) = recipe.python.as_ref().and_then(|p| p.profile.as_ref()) {
        profile_exists(profile)?;
    }
    if let Some(interpreter) = recipe.python.as_ref().and_then(|p| p.build.as_ref()) {
        if !sources.contains(interpreter.source.get_ref().as_str()) {
            return Err(invalid(
                interpreter.source.span(),
                format!("[python.build] source `{}` is not a [[sources]] entry", interpreter.source.get_ref()),
                "add [[sources]] with the CPython tarball's url and sha256",
            ));
        }
        if let Some(profile) = &interpreter.profile {
            profile_exists(profile)?;
        }
        for used in &interpreter.uses {
            if !built.contains(used.get_ref().as_str()) {
                return Err(invalid(
                    used.span(),
                    format!("[python.build] uses `{}`, which is not a build", used.get_ref()),
                    "name [[builds]] entries (the built allocator is `jemalloc`)",
                ));
            }
        }
        if let Some(task) = &interpreter.pgo_task
            && (task.get_ref().trim().is_empty() || task.get_ref().contains('\n'))
        {
            return Err(invalid(
                task.span(),
                "[python.build] pgo_task must be one line of arguments to the interpreter".into(),
                "e.g. \"-m test --pgo --timeout=1200\"; leave it out for CPython's own training",
            ));
        }
        let mut linked_in = BTreeSet::new();
        for module in &interpreter.builtin {
            let name = module.get_ref();
            let identifier = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !identifier || !linked_in.insert(name.as_str()) {
                return Err(invalid(
                    module.span(),
                    format!("[python.build] builtin: `{name}` is not a module name, or named twice"),
                    "name each extension module once as CPython's Modules/Setup.stdlib.in does, e.g. \"_pickle\"",
                ));
            }
        }
        if !interpreter.prefix.starts_with('/') || interpreter.prefix.split('/').any(|c| c == "..") {
            return Err(invalid(
                section("[python.build]"),
                format!("prefix `{}` must be an absolute path without `..`", interpreter.prefix),
                "the default is \"/usr/local\"",
            ));
        }
    }
    if allocator.mode == AllocatorMode::Link
        && recipe.python.as_ref().and_then(|p| p.build.as_ref()).is_none()
        && !recipe.builds.iter().any(|b| b.uses.iter().any(|u| u.get_ref() == JEMALLOC_BUILD))
    {
        return Err(invalid(
            section("[allocator]"),
            "`mode = \"link\"` but nothing in the recipe is built to link it into".into(),
            "add [python.build], or a [[builds]] entry with uses = [\"jemalloc\"]; or use mode = \"preload\"",
        ));
    }
    Ok(())
}

/// `libc = "musl"`: musl comes from its source, and nothing of the distribution's (built against
/// its own C library) may reach the image.
fn musl(
    recipe: &Recipe,
    sources: &BTreeSet<&str>,
    section: &dyn Fn(&str) -> Range<usize>,
    invalid: Invalid<'_>,
) -> Result<(), RecipeError> {
    let libc = recipe.base.libc.span();
    if let Some(package) = recipe.base.packages.first() {
        return Err(invalid(
            package.span(),
            format!("a musl image holds none of the distribution's packages, and `{}` is one", package.get_ref()),
            "the distribution's packages link against its own C library: build what the image needs in [[builds]] \
             (a build names the distribution packages it needs to build in `build_depends`)",
        ));
    }
    let platforms = &recipe.image.platforms;
    if let Some(platform) = platforms.get_ref().iter().find(|p| p.musl_soname().is_none()) {
        return Err(invalid(
            platforms.span(),
            format!("musl has no port to {platform}"),
            "build a musl image for linux/amd64, linux/arm64, linux/arm/v7, linux/386, linux/ppc64le, linux/s390x \
             or linux/riscv64",
        ));
    }
    if !sources.contains(MUSL_BUILD) {
        return Err(invalid(
            libc,
            "libc = \"musl\" builds musl from the [[sources]] entry named `musl`, and there is none".into(),
            "add [[sources]] name = \"musl\" with the tarball's url and sha256 (Debian's pool has it: \
             mirror://debian/pool/main/m/musl/)",
        ));
    }
    if recipe.allocator.name == AllocatorName::Jemalloc && recipe.allocator.source == AllocatorSource::Distro {
        return Err(invalid(
            section("[allocator]"),
            "the distribution's jemalloc is built against its own C library, not musl".into(),
            "set source = \"build\" with a [[sources]] entry named `jemalloc`",
        ));
    }
    if let Some(python) = &recipe.python
        && python.build.is_none()
    {
        return Err(invalid(
            section("[python]"),
            "a musl image has no distribution python3 to install wheels for".into(),
            "add [python.build] to build CPython against musl",
        ));
    }
    if let Some(python) = recipe.python.as_ref().filter(|p| p.adds_system_libraries()) {
        return Err(invalid(
            python.system_libraries.span(),
            "system_libraries = \"add\" adds the distribution's packages, which a musl image cannot hold".into(),
            "build the libraries the wheels need as [[builds]] with image = \"runtime\", or pick wheels that carry them (musllinux wheels do)",
        ));
    }
    Ok(())
}

fn check_name(name: &str, span: Range<usize>, what: &str, invalid: Invalid<'_>) -> Result<(), RecipeError> {
    let ok = !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
        && !name.starts_with('.');
    if ok {
        return Ok(());
    }
    Err(invalid(
        span,
        format!("{what} name `{name}` is not a plain name"),
        "use lower-case letters, digits, `-`, `_` and `.`, e.g. \"cpython\"",
    ))
}

fn check_sha(sha: &toml::Spanned<String>, invalid: Invalid<'_>) -> Result<(), RecipeError> {
    let text = sha.get_ref();
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
        return Ok(());
    }
    Err(invalid(sha.span(), format!("`{text}` is not a sha256"), "write 64 lower-case hex digits"))
}

#[cfg(test)]
mod tests;

/// 9999-12-31T23:59:59Z: the last second RFC 3339 (and so an OCI config's `created`) can write.
pub const MAX_EPOCH: u64 = 253_402_300_799;

/// A repository name as the OCI distribution spec defines it: path components of
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, joined by `/`.
pub fn repository_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".into());
    }
    if name.len() > 255 {
        return Err("it is longer than 255 characters".into());
    }
    for component in name.split('/') {
        let bytes = component.as_bytes();
        if bytes.is_empty() {
            return Err("it has an empty part (a leading, trailing or double `/`)".into());
        }
        let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
            return Err(format!(
                "part `{}` must start and end with a lower-case letter or digit",
                component.escape_debug()
            ));
        }
        let mut i = 0;
        while i < bytes.len() {
            if alnum(bytes[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < bytes.len() && !alnum(bytes[i]) {
                i += 1;
            }
            let separator = &component[start..i];
            let ok = separator == "." || separator == "_" || separator == "__" || separator.bytes().all(|b| b == b'-');
            if !ok {
                return Err(format!("`{}` is not a separator (`.`, `_`, `__` or dashes)", separator.escape_debug()));
            }
        }
    }
    Ok(())
}

/// A tag as the OCI distribution spec defines it: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn tag(tag: &str) -> Result<(), String> {
    let bytes = tag.as_bytes();
    if bytes.is_empty() || bytes.len() > 128 {
        return Err("it must have 1 to 128 characters".into());
    }
    if !(bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_') {
        return Err("it must start with a letter, a digit or `_`".into());
    }
    if let Some(bad) = tag.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))) {
        return Err(format!("`{}` is not allowed in a tag", bad.escape_debug()));
    }
    Ok(())
}

/// A Debian package request: `name`, `name:arch`, `name=version`, or `name (op version)` with op
/// one of `<<`, `<=`, `=`, `>=`, `>>`. A typo such as `good (=> 1)` is an error here, not a
/// missing package later.
pub fn package_request(text: &str) -> Result<(), String> {
    let text = text.trim();
    let (head, constraint) = match text.split_once('(') {
        Some((head, rest)) => {
            let inner = rest.strip_suffix(')').ok_or("the version constraint has no closing `)`")?.trim();
            let split = inner.find(|c: char| !matches!(c, '<' | '>' | '=')).unwrap_or(inner.len());
            let op = inner[..split].trim();
            if !matches!(op, "<<" | "<=" | "=" | ">=" | ">>") {
                return Err(format!("`{op}` is not a version operator (<<, <=, =, >=, >>)"));
            }
            (head.trim(), Some(inner[split..].trim()))
        }
        None => match text.split_once('=') {
            Some((head, version)) => (head.trim(), Some(version.trim())),
            None => (text, None),
        },
    };
    if constraint.is_some_and(|v| v.is_empty() || v.contains(char::is_whitespace)) {
        return Err("the version is empty or has spaces".into());
    }
    let name = head.split_once(':').map_or(head, |(name, _)| name);
    let valid = !name.is_empty()
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.'));
    if !valid {
        return Err(format!("`{name}` is not a package name (lower-case letters, digits, `+`, `-`, `.`)"));
    }
    Ok(())
}

#[cfg(test)]
mod reference_tests {
    #[test]
    fn package_requests_are_checked_for_shape() {
        for good in ["python3", "libssl3 (>= 3.0)", "app=1.0-1", "gcc:amd64", "libc6 (<< 3)", "g++"] {
            assert!(super::package_request(good).is_ok(), "{good}");
        }
        for bad in ["good (=> 1)", "x (>= )", "Bad", "a b", "p (= 1", "", "-x"] {
            assert!(super::package_request(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn repository_names_and_tags_follow_the_distribution_spec() {
        for good in ["x", "debian-python", "team/python_app", "a__b", "a--b", "a.b/c-d/e"] {
            assert!(super::repository_name(good).is_ok(), "{good}");
        }
        for bad in ["", "/abs/dir", "../../x", "a//b", "A", "a b", "a\nb", "-a", "a-", "a._b", "x/..", "a/"] {
            assert!(super::repository_name(bad).is_err(), "{bad:?}");
        }
        for good in ["latest", "3.11", "_x", "A-b.c_d"] {
            assert!(super::tag(good).is_ok(), "{good}");
        }
        for bad in ["", "a b", "a\nb", "a/b", ".x", "-x", &"x".repeat(129)] {
            assert!(super::tag(bad).is_err(), "{bad:?}");
        }
    }
}
