//! A DNS cache in front of ureq's resolver.
//!
//! Parallel downloads open several connections to one mirror at once. Measured on the CI machine
//! kind: with a lookup per connection, downloads arrived in bursts every 5 s (the system
//! resolver's timeout) and the 101 packages of `recipes/debian-python.toml` took 20 s; with one
//! cached lookup, 4 s. One lookup per host and run is enough: a build lasts seconds, not hours.

use std::collections::HashMap;
use std::sync::Mutex;

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

#[derive(Debug, Default)]
pub struct CachingResolver {
    inner: DefaultResolver,
    /// One lock for lookups too, so concurrent first requests wait for one answer.
    cache: Mutex<HashMap<String, ResolvedSocketAddrs>>,
}

impl Resolver for CachingResolver {
    fn resolve(&self, uri: &Uri, config: &Config, timeout: NextTimeout) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let key = uri.authority().map(|a| a.as_str().to_string()).unwrap_or_default();
        let mut cache = self.cache.lock().expect("resolver cache");
        if let Some(addrs) = cache.get(&key) {
            return Ok(addrs.clone());
        }
        let addrs = self.inner.resolve(uri, config, timeout)?;
        cache.insert(key, addrs.clone());
        Ok(addrs)
    }
}
