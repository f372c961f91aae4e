//! `[[sources]]` into the store: a remote file is fetched through the one network client and
//! enters the store only if its sha256 matches the recipe's pin; a local file is read and hashed.
//! Once the store holds a pinned file, no network is needed.

use std::collections::BTreeMap;

use composer_recipe::{Recipe, Source};
use composer_store::userfile::{self, Kind};
use composer_store::{BlobInfo, Sha256, StoreError};

use composer_distro::Backend;

use crate::{BuildError, Context, SourceProblem};

fn pin(source: &Source) -> Result<Option<Sha256>, BuildError> {
    source
        .sha256
        .as_ref()
        .map(|s| {
            s.get_ref().parse::<Sha256>().map_err(|reason| BuildError::Source {
                name: source.name.get_ref().clone(),
                reason: Box::new(SourceProblem::BadSha256(reason)),
            })
        })
        .transpose()
}

/// A source into the store, or found there; the flag says whether the store had it.
pub(crate) fn fetch_one(
    ctx: &Context<'_>,
    backend: &dyn Backend,
    recipe: &Recipe,
    source: &Source,
) -> Result<(BlobInfo, bool), BuildError> {
    let name = source.name.get_ref();
    let expected = pin(source)?;
    if let Some(sha) = &expected
        && let Some(blob) = ctx.store.lookup_sha256(sha)?
    {
        return Ok((blob, true));
    }
    if let Some(path) = &source.path {
        let (full, data) = read_local(recipe, name, path.get_ref())?;
        // A local file is read every build (it may have changed); it is only news to the store
        // when its content is.
        let already_stored = ctx.store.contains(&composer_store::Hash::of(&data));
        let blob = ctx.store.put_bytes(&data)?;
        if let Some(sha) = &expected
            && blob.sha256 != *sha
        {
            return Err(pin_mismatch(name, &full, sha));
        }
        return Ok((blob, already_stored));
    }
    let url = source.url.as_ref().expect("validated: url or path").get_ref();
    // A `file://` URL in the recipe is a local file like `path`: confined and bounded the same.
    if let Some(path) = composer_store::userfile::file_url_path(url) {
        let path = path.map_err(|reason| BuildError::Source {
            name: name.to_string(),
            reason: Box::new(SourceProblem::FileUrl(reason)),
        })?;
        return Ok((store_local_url(ctx, recipe, name, path, expected.as_ref())?, false));
    }
    let url = resolve_url(backend, url)?;
    ctx.reporter.status("Fetching", &format!("source {name}"));
    let blob = ctx
        .client
        .fetch_to_store(ctx.store, &url, expected.as_ref().map(|s| (s, None)), &format!("source `{name}`"), &|_| {})
        .map_err(|source| BuildError::Fetch { what: format!("source `{name}`"), source })?;
    Ok((blob, false))
}

/// Every source's sha256 without fetching anything: a remote source is known by its pin, a local
/// file is read and hashed. (Whether the store holds it is the plan's question.)
pub fn source_digests(recipe: &Recipe) -> Result<BTreeMap<String, Sha256>, BuildError> {
    let mut out = BTreeMap::new();
    for source in &recipe.sources {
        let name = source.name.get_ref();
        let sha256 = match &source.path {
            Some(path) => Sha256::of(&read_local(recipe, name, path.get_ref())?.1),
            None => pin(source)?.expect("validated: a url comes with its sha256"),
        };
        out.insert(name.clone(), sha256);
    }
    Ok(out)
}

fn read_local(
    recipe: &Recipe,
    name: &str,
    path: &std::path::Path,
) -> Result<(std::path::PathBuf, Vec<u8>), BuildError> {
    crate::local::read(recipe, path, Kind::LOCAL_SOURCE)
        .map_err(|source| BuildError::UserFile { what: format!("source `{name}`"), source: Box::new(source) })
}

/// Streams the local file of a `file://` source into the store, within the bound; a file that
/// is not the pinned one leaves nothing behind.
fn store_local_url(
    ctx: &Context<'_>,
    recipe: &Recipe,
    name: &str,
    path: &std::path::Path,
    expected: Option<&Sha256>,
) -> Result<BlobInfo, BuildError> {
    let refused = |source: userfile::UserFileError| BuildError::UserFile {
        what: format!("source `{name}`"),
        source: Box::new(source),
    };
    let policy = recipe.file_policy(Kind::LOCAL_SOURCE);
    let mut file = userfile::open(path, &policy).map_err(refused)?;
    let mut writer = ctx.store.writer()?;
    let mut buf = vec![0u8; 128 * 1024];
    loop {
        let n = std::io::Read::read(&mut file, &mut buf).map_err(|e| refused(file.error(e)))?;
        if n == 0 {
            break;
        }
        std::io::Write::write_all(&mut writer, &buf[..n])
            .map_err(|e| StoreError::io("write", &ctx.store.root().join("tmp"), e))?;
    }
    match writer.finish_checked(expected.map(|sha| (sha, name)), None) {
        Err(StoreError::Sha256Mismatch { .. }) => {
            Err(pin_mismatch(name, path, expected.expect("only a pin mismatches")))
        }
        other => Ok(other?),
    }
}

/// A local file that is not the pinned one. Its own digest is not shown: the recipe may name a
/// file it was not meant to read, and a digest tells whether a guess at a secret is right.
fn pin_mismatch(name: &str, path: &std::path::Path, pin: &Sha256) -> BuildError {
    BuildError::Source {
        name: name.to_string(),
        reason: Box::new(SourceProblem::PinMismatch { path: path.to_path_buf(), pin: *pin }),
    }
}

/// `mirror://NAME/path` → the configured mirror's URL joined with `path`.
fn resolve_url(backend: &dyn Backend, url: &str) -> Result<String, BuildError> {
    let Some(rest) = url.strip_prefix("mirror://") else { return Ok(url.to_string()) };
    let (name, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mirror = backend.mirror_url(name)?;
    Ok(format!("{mirror}/{}", path.trim_start_matches('/')))
}
