//! The primary cache key: origin, normalized authority, path and raw query.
//!
//! GET and HEAD share a key (only GET responses are stored). The key is an
//! `Arc<str>` so that cloning it into the coalescing map or the store is a
//! reference-count bump.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

/// Separates a primary key from its variant's hash in a variant key.
const VARIANT_SEPARATOR: char = '\u{1f}';

/// Identifies one stored resource (before `Vary`), or one variant of it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CacheKey(Arc<str>);

impl CacheKey {
    /// The key for `path_and_query` on `authority` (already normalized, see
    /// [`crate::proxy::request`]) served by the origin `origin_id`.
    pub fn new(origin_id: &str, authority: &str, path_and_query: &str) -> Self {
        let mut key =
            String::with_capacity(origin_id.len() + authority.len() + path_and_query.len() + 1);
        key.push_str(origin_id);
        key.push(' ');
        key.push_str(authority);
        key.push_str(path_and_query);
        CacheKey(key.into())
    }

    /// The key of one variant of `primary`: its text, the separator and a
    /// hash of the request values that select it.
    pub fn variant(primary: &CacheKey, values_hash: u64) -> Self {
        let mut hex = [0u8; 16];
        for (i, digit) in hex.iter_mut().enumerate() {
            *digit = b"0123456789abcdef"[((values_hash >> (60 - 4 * i)) & 0xf) as usize];
        }
        let hex = std::str::from_utf8(&hex).unwrap_or_default();
        let mut key = String::with_capacity(primary.0.len() + 1 + hex.len());
        key.push_str(&primary.0);
        key.push(VARIANT_SEPARATOR);
        key.push_str(hex);
        CacheKey(key.into())
    }

    /// Whether `text` is a variant key.
    pub fn is_variant(text: &str) -> bool {
        text.contains(VARIANT_SEPARATOR)
    }

    /// The primary key part of a key's text (all of it for a primary key).
    pub fn primary_of(text: &str) -> &str {
        text.split_once(VARIANT_SEPARATOR)
            .map_or(text, |(primary, _)| primary)
    }

    /// The primary key of this key (itself if it is one).
    pub fn primary(&self) -> CacheKey {
        if Self::is_variant(&self.0) {
            CacheKey::from_text(Self::primary_of(&self.0))
        } else {
            self.clone()
        }
    }

    /// Rebuilds a key from its text (the snapshot stores it so).
    pub fn from_text(text: &str) -> Self {
        CacheKey(text.into())
    }

    /// The key as text: `origin-id authority/path?query`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `authority/path?query`, without the origin and any variant suffix.
    pub fn url(&self) -> &str {
        let rest = self.0.split_once(' ').map_or(&*self.0, |(_, rest)| rest);
        Self::primary_of(rest)
    }
}

impl Borrow<str> for CacheKey {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_host_are_part_of_the_key() {
        let a = CacheKey::new("http://o", "example.com", "/p?x=1");
        let b = CacheKey::new("http://o", "example.com", "/p?x=2");
        let c = CacheKey::new("http://o", "other.com", "/p?x=1");
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, CacheKey::new("http://o", "example.com", "/p?x=1"));
        assert_eq!(a.as_str(), "http://o example.com/p?x=1");
        assert_eq!(a.url(), "example.com/p?x=1");
        assert_eq!(CacheKey::from_text("http://o h/p\u{1f}abc").url(), "h/p");
    }

    #[test]
    fn the_raw_query_is_kept_as_sent() {
        let a = CacheKey::new("http://o", "h", "/p?a=1&b=2");
        let b = CacheKey::new("http://o", "h", "/p?b=2&a=1");
        assert_ne!(a, b, "query order is significant to origins");
    }

    #[test]
    fn variant_keys_name_their_primary() {
        let primary = CacheKey::new("http://o", "h", "/p");
        let variant = CacheKey::variant(&primary, 0x0123_4567_89ab_cdef);
        assert_eq!(variant.as_str(), "http://o h/p\u{1f}0123456789abcdef");
        assert!(CacheKey::is_variant(variant.as_str()));
        assert!(!CacheKey::is_variant(primary.as_str()));
        assert_eq!(variant.primary(), primary);
        assert_eq!(primary.primary(), primary);
        assert_eq!(variant.url(), "h/p");
    }

    #[test]
    fn round_trips_through_text() {
        let a = CacheKey::new("https://o/api", "h:8080", "/");
        assert_eq!(CacheKey::from_text(a.as_str()), a);
    }
}
