//! A bundle's tar, in the one form `compose bundle` writes (`oci-layout`, `index.json`, then the
//! blobs by name; ustar headers with fixed metadata; zero padding; the two-block end marker and
//! nothing after it) and read back only in that form. A reader that accepted any valid tar would
//! let bytes through that nothing checks (a header's unused fields, its checksum's spacing, the
//! padding, data after the end marker); comparing every header with the one we would write and
//! every padding byte with zero leaves no byte of a bundle unchecked, since the members' contents
//! are checked against their digests or, for the two documents, against their canonical form.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;

use composer_store::Sha256;
use sha2::Digest as _;

use crate::{ArtifactProblem, CacheError};

const BLOCK: usize = 512;
const BLOBS: &str = "blobs/sha256/";

fn header(member: &str, size: u64) -> io::Result<tar::Header> {
    let mut header = tar::Header::new_ustar();
    header.set_path(member)?;
    header.set_size(size);
    header.set_mode(0o444);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    Ok(header)
}

/// The layout at `layout` as a tar at `dest`.
pub(crate) fn write(layout: &Path, dest: &Path) -> Result<(), CacheError> {
    let file = fs::File::create(dest).map_err(CacheError::io("create", dest))?;
    let mut builder = tar::Builder::new(io::BufWriter::new(file));
    let mut members: Vec<String> = vec!["oci-layout".into(), "index.json".into()];
    let mut blobs: Vec<String> = fs::read_dir(layout.join("blobs/sha256"))
        .map_err(CacheError::io("list", layout))?
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|name| !name.starts_with('.'))
        .map(|name| format!("{BLOBS}{name}"))
        .collect();
    blobs.sort();
    members.extend(blobs);
    for member in members {
        let path = layout.join(&member);
        let mut file = fs::File::open(&path).map_err(CacheError::io("open", &path))?;
        let size = file.metadata().map_err(CacheError::io("inspect", &path))?.len();
        let header = header(&member, size).map_err(CacheError::io("archive", &path))?;
        builder.append(&header, &mut file).map_err(CacheError::io("read", &path))?;
    }
    let mut out = builder.into_inner().map_err(CacheError::io("write", dest))?;
    out.flush().map_err(CacheError::io("write", dest))?;
    out.into_inner()
        .map_err(|e| CacheError::io("write", dest)(e.into_error()))?
        .sync_all()
        .map_err(CacheError::io("write", dest))?;
    Ok(())
}

/// Unpacks the bundle `file` into the empty directory `layout`, refusing anything but the form
/// [`write`] gives and any blob that does not match its name; returns the blobs with their sizes.
/// `oci-layout` and `index.json` are written unchecked: the caller checks them whole.
pub(crate) fn unpack(file: &Path, layout: &Path) -> Result<BTreeMap<Sha256, u64>, CacheError> {
    let bad = |reason| CacheError::BadArtifact { what: file.display().to_string(), reason };
    let eof = |e: io::Error| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            bad(ArtifactProblem::EndsBeforeEndMarker)
        } else {
            CacheError::io("read", file)(e)
        }
    };
    fs::create_dir_all(layout.join("blobs/sha256")).map_err(CacheError::io("create", layout))?;
    let mut source =
        io::BufReader::with_capacity(256 * 1024, fs::File::open(file).map_err(CacheError::io("open", file))?);
    let mut blobs = BTreeMap::new();
    let mut previous: Option<String> = None;
    let mut block = [0u8; BLOCK];
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        source.read_exact(&mut block).map_err(eof)?;
        if block == [0u8; BLOCK] {
            source.read_exact(&mut block).map_err(eof)?;
            if block != [0u8; BLOCK] || source.read(&mut [0u8; 1]).map_err(CacheError::io("read", file))? != 0 {
                return Err(bad(ArtifactProblem::BytesAfterEndMarker));
            }
            break;
        }
        let raw = tar::Header::from_byte_slice(&block);
        let name = String::from_utf8_lossy(&raw.path_bytes()).into_owned();
        let member_header = |source| bad(ArtifactProblem::MemberHeader { member: name.clone(), source });
        let size = raw.size().map_err(member_header)?;
        let canonical = header(&name, size).map_err(member_header)?;
        if canonical.as_bytes()[..] != block[..] {
            return Err(bad(ArtifactProblem::ForeignHeader(name)));
        }
        let expected_next = match previous.as_deref() {
            None => Some("oci-layout"),
            Some("oci-layout") => Some("index.json"),
            Some(_) => None,
        };
        let sha = match (expected_next, name.strip_prefix(BLOBS)) {
            (Some(expected), _) if name == expected => None,
            (None, Some(hex)) if previous.as_deref().is_some_and(|p| !p.starts_with(BLOBS) || p < name.as_str()) => {
                let sha = hex
                    .parse::<Sha256>()
                    .map_err(|source| bad(ArtifactProblem::MemberDigest { member: name.clone(), source }))?;
                if sha.to_hex() != hex {
                    return Err(bad(ArtifactProblem::ForeignBlobName(name)));
                }
                Some(sha)
            }
            _ => return Err(bad(ArtifactProblem::StrayMember(name))),
        };
        let target = layout.join(&name);
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&target)
            .map_err(CacheError::io("create", &target))?;
        let mut hasher = sha2::Sha256::new();
        let mut member = (&mut source).take(size);
        loop {
            let n = member.read(&mut buf).map_err(CacheError::io("read", file))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(CacheError::io("write", &target))?;
        }
        if member.limit() != 0 {
            return Err(bad(ArtifactProblem::EndsInsideMember));
        }
        let padding = &mut block[..(BLOCK - (size % BLOCK as u64) as usize) % BLOCK];
        source.read_exact(padding).map_err(eof)?;
        if padding.iter().any(|&b| b != 0) {
            return Err(bad(ArtifactProblem::Padding(name)));
        }
        if let Some(sha) = sha {
            if Sha256(hasher.finalize().into()) != sha {
                return Err(bad(ArtifactProblem::BlobDigest(sha)));
            }
            blobs.insert(sha, size);
        }
        previous = Some(name);
    }
    if previous.as_deref().is_none_or(|p| p == "oci-layout") {
        return Err(bad(ArtifactProblem::NotABundle));
    }
    Ok(blobs)
}
