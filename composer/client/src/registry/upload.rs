//! Writing to a registry: blob uploads (in one request, or in chunks for large blobs), mounts
//! from another repository of the same registry, and manifests. An upload location the registry
//! names is data: credentials go only to locations on the registry itself.

use std::io::{self, Read};
use std::time::Duration;

use composer_store::{BlobInfo, Store};

use super::{ATTEMPTS, CHUNK, Disagreement, ProtocolProblem, Registry, RegistryError, Response, echoed_digest};

/// Where a blob's bytes come from, opened again for each attempt.
pub trait BlobSource: Sync {
    fn open(&self) -> io::Result<Box<dyn Read + Send + '_>>;
}

impl BlobSource for &[u8] {
    fn open(&self) -> io::Result<Box<dyn Read + Send + '_>> {
        Ok(Box::new(*self))
    }
}

/// A store object, opened (and verified against its digest as it streams) for each attempt.
pub struct StoreBlob<'s> {
    pub store: &'s Store,
    pub blob: BlobInfo,
}

impl BlobSource for StoreBlob<'_> {
    fn open(&self) -> io::Result<Box<dyn Read + Send + '_>> {
        Ok(Box::new(self.store.open_blob(&self.blob).map_err(io::Error::other)?))
    }
}

impl Registry {
    /// Mounts a blob from another repository of the same registry; `false` if the registry
    /// did not (it then answers with an upload session, which is abandoned), if these
    /// credentials may not read that repository, or if the registry, asked afterwards, does not
    /// hold `digest` of `size` bytes: the blob is uploaded instead.
    pub fn mount(&self, digest: &str, size: u64, from: &str) -> Result<bool, RegistryError> {
        if !self.mount_answered(digest, from)? {
            return Ok(false);
        }
        Ok(self.check_blob(digest, Some(size))?.is_ok())
    }

    fn mount_answered(&self, digest: &str, from: &str) -> Result<bool, RegistryError> {
        match self.try_mount(digest, from) {
            Err(RegistryError::Unauthorized { .. }) => Ok(false),
            Err(RegistryError::Status { status, .. }) if (400..500).contains(&status) => Ok(false),
            other => other,
        }
    }

    fn try_mount(&self, digest: &str, from: &str) -> Result<bool, RegistryError> {
        let url = self.url("blobs/uploads/")?;
        let what = format!("mounting blob {digest} from {from}");
        let response = self.send(&what, &|auth| {
            let mut request =
                self.agent.post(&url).query("mount", digest).query("from", from).header("Content-Length", "0");
            if let Some(auth) = auth {
                request = request.header("Authorization", auth);
            }
            request.send_empty()
        })?;
        Ok(response.status().as_u16() == 201 && echoed_digest(&response).is_none_or(|echoed| echoed == digest))
    }

    /// Uploads a blob: in one request, or in chunks of [`CHUNK`] when larger. `Ok` only once
    /// the registry, asked again, holds `digest` of `size` bytes.
    pub fn put_blob(&self, digest: &str, size: u64, source: &dyn BlobSource) -> Result<(), RegistryError> {
        let what = format!("uploading blob {digest}");
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.upload_once(digest, size, source, &what) {
                Err(e) if e.is_unavailable() && attempt < ATTEMPTS => {
                    std::thread::sleep(Duration::from_millis(500 << attempt));
                }
                Err(e) => return Err(e),
                Ok(()) => break,
            }
        }
        self.check_blob(digest, Some(size))?.map_err(|reason| RegistryError::Disagrees {
            host: self.host.clone(),
            what: format!("blob {digest} ({size} bytes) after it was uploaded"),
            reason: Box::new(reason),
        })
    }

    /// The answer that completes an upload: `201`, about our digest, and (where it says)
    /// at a location on this registry.
    fn completed(&self, response: Response, digest: &str, what: &str) -> Result<(), RegistryError> {
        if response.status().as_u16() != 201 {
            return Err(self.status(what, response));
        }
        let disagrees = |reason| RegistryError::Disagrees {
            host: self.host.clone(),
            what: format!("blob {digest}"),
            reason: Box::new(reason),
        };
        if let Some(echoed) = echoed_digest(&response).filter(|echoed| *echoed != digest) {
            return Err(disagrees(Disagreement::UploadDigest(echoed.to_string())));
        }
        if response.headers().contains_key("location") {
            let location = self.location(&response, what)?;
            // Only the host: a registry behind a proxy may name its other scheme.
            if !super::authority_of(&location).eq_ignore_ascii_case(&self.host) {
                return Err(disagrees(Disagreement::UploadElsewhere(crate::redact(&location).into_owned())));
            }
        }
        Ok(())
    }

    fn start_upload(&self, what: &str) -> Result<String, RegistryError> {
        let url = self.url("blobs/uploads/")?;
        let response = self.send(what, &|auth| {
            let mut request = self.agent.post(&url).header("Content-Length", "0");
            if let Some(auth) = auth {
                request = request.header("Authorization", auth);
            }
            request.send_empty()
        })?;
        if response.status().as_u16() != 202 {
            return Err(self.status(what, response));
        }
        self.location(&response, what)
    }

    /// Whether `url` is on this registry: the upload location a registry names is data, and
    /// the credentials go only to the registry they are for.
    fn same_origin(&self, url: &str) -> Result<bool, RegistryError> {
        Ok(url.strip_prefix(&self.base()?).is_some_and(|rest| rest.starts_with('/')))
    }

    fn location(&self, response: &Response, what: &str) -> Result<String, RegistryError> {
        let location = response.headers().get("location").and_then(|v| v.to_str().ok()).ok_or_else(|| {
            RegistryError::Protocol {
                host: self.host.clone(),
                what: what.into(),
                reason: ProtocolProblem::NoUploadLocation,
            }
        })?;
        Ok(if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            format!("{}{location}", self.base()?)
        })
    }

    fn upload_once(&self, digest: &str, size: u64, source: &dyn BlobSource, what: &str) -> Result<(), RegistryError> {
        let mut location = self.start_upload(what)?;
        let reader = source.open().map_err(|e| self.transport(what, e))?;
        let mut reader = io::BufReader::with_capacity(1 << 20, reader);
        if size > CHUNK {
            let mut sent = 0u64;
            while sent < size {
                let length = CHUNK.min(size - sent);
                let mut chunk = Vec::with_capacity(length as usize);
                (&mut reader).take(length).read_to_end(&mut chunk).map_err(|e| self.transport(what, e))?;
                if chunk.len() as u64 != length {
                    return Err(self.transport(what, io::Error::from(io::ErrorKind::UnexpectedEof)));
                }
                let range = format!("{sent}-{}", sent + length - 1);
                let ours = self.same_origin(&location)?;
                let response = self.send_to(what, ours, &|auth| {
                    let mut request = self
                        .agent
                        .patch(&location)
                        .header("Content-Type", "application/octet-stream")
                        .header("Content-Range", &range)
                        .header("Content-Length", length.to_string());
                    if let Some(auth) = auth.filter(|_| ours) {
                        request = request.header("Authorization", auth);
                    }
                    request.send(&chunk[..])
                })?;
                if response.status().as_u16() != 202 {
                    return Err(self.status(what, response));
                }
                location = self.location(&response, what)?;
                sent += length;
            }
            let ours = self.same_origin(&location)?;
            let response = self.send_to(what, ours, &|auth| {
                let mut request = self.agent.put(&location).query("digest", digest).header("Content-Length", "0");
                if let Some(auth) = auth.filter(|_| ours) {
                    request = request.header("Authorization", auth);
                }
                request.send_empty()
            })?;
            return self.completed(response, digest, what);
        }
        let mut body = Vec::with_capacity(size as usize);
        reader.read_to_end(&mut body).map_err(|e| self.transport(what, e))?;
        let ours = self.same_origin(&location)?;
        let response = self.send_to(what, ours, &|auth| {
            let mut request = self
                .agent
                .put(&location)
                .query("digest", digest)
                .header("Content-Type", "application/octet-stream")
                .header("Content-Length", body.len().to_string());
            if let Some(auth) = auth.filter(|_| ours) {
                request = request.header("Authorization", auth);
            }
            request.send(&body[..])
        })?;
        self.completed(response, digest, what)
    }

    /// Stores a manifest or index under `reference` (a tag, or its digest).
    pub fn put_manifest(&self, reference: &str, media_type: &str, bytes: &[u8]) -> Result<(), RegistryError> {
        let url = self.url(&format!("manifests/{reference}"))?;
        let what = format!("writing manifest {reference}");
        let response = self.send(&what, &|auth| {
            let mut request = self
                .agent
                .put(&url)
                .header("Content-Type", media_type)
                .header("Content-Length", bytes.len().to_string());
            if let Some(auth) = auth {
                request = request.header("Authorization", auth);
            }
            request.send(bytes)
        })?;
        if !matches!(response.status().as_u16(), 201 | 200) {
            return Err(self.status(&what, response));
        }
        let ours = composer_store::Sha256::of(bytes).oci();
        match echoed_digest(&response) {
            Some(echoed) if echoed != ours => Err(RegistryError::Disagrees {
                host: self.host.clone(),
                what: format!("manifest {reference}"),
                reason: Box::new(Disagreement::StoredAs { stored: echoed.to_string(), sent: ours }),
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Client;
    use crate::registry::RegistryOptions;

    #[test]
    fn credentials_go_only_to_upload_locations_on_the_registry_itself() {
        let client = Client::new(crate::ClientOptions::default());
        let registry = Registry::new(&client, &RegistryOptions::default(), "127.0.0.1:5000", "team/app", true);
        *registry.base.lock().unwrap() = Some("http://127.0.0.1:5000".into());
        assert!(registry.same_origin("http://127.0.0.1:5000/v2/team/app/blobs/uploads/x").unwrap());
        assert!(!registry.same_origin("http://127.0.0.1:50000/v2/x").unwrap());
        assert!(!registry.same_origin("https://elsewhere.test/upload").unwrap());
    }
}
