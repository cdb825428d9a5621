//! The immutable snapshot a request reads: where to forward and how to
//! cache. Held behind `ArcSwap` in [`crate::proxy::Proxy`] and loaded once
//! per request, so that a later reload can replace it in one store.

use std::time::Duration;

use crate::config::Config;
use crate::error::Error;
use crate::proxy::upstream::Upstream;

/// Everything a request needs from configuration.
#[derive(Debug)]
pub struct Runtime {
    /// The pooled client to the origin.
    pub upstream: Upstream,
    /// Identifies the origin in cache keys.
    pub origin_id: String,
    /// Default lifetime and cap of cached entries.
    pub ttl: Option<Duration>,
    /// Larger responses are not stored.
    pub max_object_size: u64,
    /// The scheme clients use to reach us (for `X-Forwarded-Proto`).
    pub client_scheme: &'static str,
    /// The port dropped from `Host` when normalizing it.
    pub client_default_port: u16,
}

impl Runtime {
    /// Builds the snapshot for `config`.
    pub fn from_config(config: &Config) -> Result<Self, Error> {
        Ok(Runtime {
            upstream: Upstream::new(config.origin.clone())?,
            origin_id: config.origin.id(),
            ttl: config.cache.ttl,
            max_object_size: config.cache.max_object_size,
            client_scheme: "http",
            client_default_port: 80,
        })
    }
}
