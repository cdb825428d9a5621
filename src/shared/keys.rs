//! The names the shared tier uses in Redis. Every key of one URL carries
//! the same hash tag (`{...}`, a hash of its primary cache key), so on a
//! Redis Cluster they live in one slot and can be read, written and
//! deleted together; `prefix` keeps fleets that share a Redis apart (it
//! must hold no `{`, or the cluster would hash by the prefix instead).

use crate::cache::CacheKey;

/// Key names under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Names under `prefix` (`cp:` by default in the configuration).
    pub fn new(prefix: &str) -> Self {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    /// Where the stored response of `key` (a primary or variant key) is
    /// kept. The whole key text is part of the name, so two URLs can never
    /// share a value, whatever their hashes.
    pub fn entry(&self, key: &CacheKey) -> String {
        format!("{}{}:e:{}", self.prefix, tag(key), key.as_str())
    }

    /// The `Vary` names of `key`'s URL (`a,b`), when its responses vary.
    pub fn vary(&self, key: &CacheKey) -> String {
        format!("{}{}:vary", self.prefix, tag(key))
    }

    /// The lease of the fetch of `key`'s URL.
    pub fn lease(&self, key: &CacheKey) -> String {
        format!("{}{}:lease", self.prefix, tag(key))
    }

    /// The channel that announces fills (the message: the primary key).
    /// One channel for all URLs: an instance subscribes once.
    pub fn filled_channel(&self) -> String {
        format!("{}filled", self.prefix)
    }

    /// The channel on which instances confirm purges (`node id`).
    pub fn acks_channel(&self) -> String {
        format!("{}acks", self.prefix)
    }

    /// The hash of instances and when each was last seen (Unix ms).
    pub fn members(&self) -> String {
        format!("{}members", self.prefix)
    }

    /// The purge log's identity: made once, lost only with Redis's data.
    pub fn log_identity(&self) -> String {
        format!("{}log", self.prefix)
    }

    /// The note that `key`'s URL was not storable (hit-for-pass).
    pub fn not_stored(&self, key: &CacheKey) -> String {
        format!("{}{}:pass", self.prefix, tag(key))
    }

    /// The stream of purges and invalidations.
    pub fn purges(&self) -> String {
        format!("{}purges", self.prefix)
    }
}

/// `{hash of the primary key}`: the same for every variant of a URL.
fn tag(key: &CacheKey) -> String {
    let hash = xxhash_rust::xxh3::xxh3_64(key.primary_text().as_bytes());
    format!("{{{hash:016x}}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_a_url_shares_one_hash_tag() {
        let keys = Keys::new("cp:");
        let primary = CacheKey::new("http://o", "h", "/a?b");
        let variant = CacheKey::variant(&primary, 42);
        let tag_of = |name: &str| name[3..name.find('}').unwrap() + 1].to_owned();
        let tag = tag_of(&keys.entry(&primary));
        for name in [
            keys.entry(&variant),
            keys.lease(&primary),
            keys.lease(&variant),
            keys.vary(&variant),
            keys.not_stored(&variant),
        ] {
            assert!(name.starts_with("cp:{"), "{name}");
            assert_eq!(tag_of(&name), tag, "{name}");
        }
        assert_ne!(keys.entry(&primary), keys.entry(&variant));
        assert!(keys.entry(&primary).ends_with("http://o h/a?b"));
    }

    #[test]
    fn urls_and_fleets_are_kept_apart() {
        let a = CacheKey::new("http://o", "h", "/a");
        let b = CacheKey::new("http://o", "h", "/b");
        let keys = Keys::new("cp:");
        assert_ne!(keys.lease(&a), keys.lease(&b));
        assert_ne!(Keys::new("other:").entry(&a), keys.entry(&a));
        assert_eq!(keys.purges(), "cp:purges");
    }
}
