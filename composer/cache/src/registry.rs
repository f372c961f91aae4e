//! `oci://HOST[:PORT]/REPO`: results kept in a registry repository, through the one network
//! client's distribution API. A step result is a tagged artifact manifest; an input is a blob,
//! asked for by its digest.

use std::io::Read;

use composer_client::registry::{Registry, RegistryError};
use composer_store::Sha256;

use crate::{BlobSource, CacheError, Remote};

pub struct RegistryCache {
    name: String,
    registry: Registry,
}

impl RegistryCache {
    pub fn new(name: String, registry: Registry) -> RegistryCache {
        RegistryCache { name, registry }
    }

    fn error(&self, e: RegistryError) -> CacheError {
        if e.is_unavailable() {
            CacheError::Unavailable { cache: self.name.clone(), source: Box::new(e) }
        } else {
            CacheError::Registry(e)
        }
    }
}

impl Remote for RegistryCache {
    fn name(&self) -> &str {
        &self.name
    }

    fn manifest(&self, tag: &str) -> Result<Option<Vec<u8>>, CacheError> {
        Ok(self.registry.manifest(tag).map_err(|e| self.error(e))?.map(|(bytes, _)| bytes))
    }

    fn blob(&self, sha256: &Sha256) -> Result<Option<Box<dyn Read + Send + '_>>, CacheError> {
        Ok(self.registry.blob(&sha256.oci()).map_err(|e| self.error(e))?.map(|r| r as Box<dyn Read + Send>))
    }

    fn has_blob(&self, sha256: &Sha256, size: Option<u64>) -> Result<bool, CacheError> {
        self.registry.has_blob(&sha256.oci(), size).map_err(|e| self.error(e))
    }

    fn put_blob(&self, sha256: &Sha256, size: u64, source: &dyn BlobSource) -> Result<(), CacheError> {
        self.registry.put_blob(&sha256.oci(), size, source).map_err(|e| self.error(e))
    }

    fn mount(&self, sha256: &Sha256, size: u64, from: &str) -> Result<bool, CacheError> {
        self.registry.mount(&sha256.oci(), size, from).map_err(|e| self.error(e))
    }

    fn put_manifest(&self, tag: &str, manifest: &[u8]) -> Result<(), CacheError> {
        self.registry
            .put_manifest(tag, "application/vnd.oci.image.manifest.v1+json", manifest)
            .map_err(|e| self.error(e))
    }
}
