//! `[cache.shared]`: the Redis (or Redis Cluster) that a fleet of
//! instances shares as its second tier, validated once here.

use std::time::Duration;

use redis::IntoConnectionInfo;

use super::error::ConfigError;
use super::file::SharedSection;
use super::values::{bytes, duration, invalid};

/// The second tier's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedConfig {
    /// Where it is.
    pub redis: RedisTarget,
    /// Namespace of this fleet's keys (no `{`, so that a cluster hashes
    /// keys by their URL's tag, not by the prefix).
    pub prefix: String,
    /// Every Redis operation's own timeout; beyond it the tier is skipped
    /// for that request.
    pub timeout: Duration,
    /// Larger responses stay in each instance's own memory.
    pub max_object_size: u64,
    /// This instance's name in the fleet (purge confirmations, leases).
    pub node_id: String,
    /// A fetch lease lasts this long unless its holder renews it (a
    /// holder that dies is replaced after at most this long).
    pub lease: Duration,
}

/// One Redis server, or the seed nodes of a Redis Cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// `redis://` or `rediss://` URL.
    Single(String),
    /// Seed node URLs.
    Cluster(Vec<String>),
}

impl RedisTarget {
    /// The URLs, for logs and `--check-config` (passwords hidden).
    pub fn describe(&self) -> String {
        let hide = |url: &String| match url.rfind('@') {
            Some(at) => {
                let scheme_end = url.find("://").map_or(0, |i| i + 3);
                format!("{}***{}", &url[..scheme_end], &url[at..])
            }
            None => url.clone(),
        };
        match self {
            RedisTarget::Single(url) => hide(url),
            RedisTarget::Cluster(urls) => {
                format!(
                    "cluster {}",
                    urls.iter().map(hide).collect::<Vec<_>>().join(", ")
                )
            }
        }
    }
}

const DEFAULT_TIMEOUT: Duration = Duration::from_millis(20);
const DEFAULT_LEASE: Duration = Duration::from_secs(2);
const DEFAULT_MAX_OBJECT: u64 = 1024 * 1024;
/// Values above this are refused by Redis (`proto-max-bulk-len`).
const MAX_OBJECT_LIMIT: u64 = 512 * 1024 * 1024;

/// Validates `section`; `port` is the first listener's, for the default
/// node id.
pub(super) fn validate_shared(
    section: &SharedSection,
    port: u16,
) -> Result<SharedConfig, ConfigError> {
    let redis = match (&section.url, &section.urls) {
        (Some(url), None) => RedisTarget::Single(redis_url("cache.shared.url", url)?),
        (None, Some(urls)) if !urls.is_empty() => RedisTarget::Cluster(
            urls.iter()
                .enumerate()
                .map(|(i, url)| redis_url(&format!("cache.shared.urls[{i}]"), url))
                .collect::<Result<_, _>>()?,
        ),
        (None, Some(_)) => {
            return Err(invalid("cache.shared.urls", "must name at least one node"));
        }
        (Some(_), Some(_)) => {
            return Err(invalid(
                "cache.shared",
                "give url (one server) or urls (cluster seeds), not both",
            ));
        }
        (None, None) => {
            return Err(invalid(
                "cache.shared",
                "needs url = \"redis://host:6379\" or urls = [...]",
            ));
        }
    };
    let prefix = section.prefix.clone().unwrap_or_else(|| "cp:".to_owned());
    if prefix.is_empty() || prefix.len() > 64 {
        return Err(invalid("cache.shared.prefix", "must be 1 to 64 bytes"));
    }
    if prefix.contains(['{', '}']) || prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            "cache.shared.prefix",
            "must not hold braces, spaces or control characters",
        ));
    }
    let timeout = match &section.timeout {
        Some(t) => duration(
            "cache.shared.timeout",
            t,
            Duration::from_millis(1),
            Duration::from_secs(10),
        )?,
        None => DEFAULT_TIMEOUT,
    };
    let lease = match &section.lease {
        Some(t) => duration(
            "cache.shared.lease",
            t,
            Duration::from_millis(100),
            Duration::from_secs(600),
        )?,
        None => DEFAULT_LEASE,
    };
    let max_object_size = match &section.max_object_size {
        Some(size) => bytes("cache.shared.max_object_size", size)?,
        None => DEFAULT_MAX_OBJECT,
    };
    if max_object_size > MAX_OBJECT_LIMIT {
        return Err(invalid(
            "cache.shared.max_object_size",
            "must not exceed 512MiB (Redis's largest value)",
        ));
    }
    let node_id = match &section.node_id {
        Some(id) => id.clone(),
        None => format!("{}:{port}", hostname()),
    };
    if node_id.is_empty()
        || node_id.len() > 128
        || node_id.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(invalid(
            "cache.shared.node_id",
            "must be 1 to 128 bytes without spaces",
        ));
    }
    Ok(SharedConfig {
        redis,
        prefix,
        timeout,
        max_object_size,
        node_id,
        lease,
    })
}

/// `--shared-cache URL` alone (a one-shot command without a config file).
pub fn shared_from_url(url: &str) -> Result<SharedConfig, ConfigError> {
    let section = SharedSection {
        url: Some(url.to_owned()),
        ..SharedSection::default()
    };
    validate_shared(&section, 0)
}

fn redis_url(key: &str, url: &str) -> Result<String, ConfigError> {
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Err(invalid(key, "must start with redis:// or rediss://"));
    }
    url.into_connection_info()
        .map_err(|e| ConfigError::invalid_because(key, "is not a Redis URL", e))?;
    Ok(url.to_owned())
}

/// The machine's name (the default node id starts with it).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(url: &str) -> SharedSection {
        SharedSection {
            url: Some(url.to_owned()),
            ..SharedSection::default()
        }
    }

    #[test]
    fn defaults_and_checks() {
        let shared = validate_shared(&section("redis://127.0.0.1:6379"), 3000).unwrap();
        assert_eq!(
            shared.redis,
            RedisTarget::Single("redis://127.0.0.1:6379".into())
        );
        assert_eq!(shared.prefix, "cp:");
        assert_eq!(shared.timeout, Duration::from_millis(20));
        assert_eq!(shared.max_object_size, 1 << 20);
        assert!(shared.node_id.ends_with(":3000"), "{}", shared.node_id);

        let refused = |s: SharedSection| validate_shared(&s, 1).unwrap_err().to_string();
        assert!(refused(section("http://h")).contains("cache.shared.url"));
        assert!(refused(SharedSection::default()).contains("needs url"));
        let mut braced = section("redis://h");
        braced.prefix = Some("a{b}".into());
        assert!(refused(braced).contains("cache.shared.prefix"));
        let both = SharedSection {
            urls: Some(vec!["redis://h".into()]),
            ..section("redis://h")
        };
        assert!(refused(both).contains("not both"));
    }

    #[test]
    fn passwords_are_not_shown() {
        let target = RedisTarget::Single("redis://user:secret@h:6379/2".into());
        assert_eq!(target.describe(), "redis://***@h:6379/2");
    }
}
