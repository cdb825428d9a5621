//! The primary cache key: origin, normalized authority, path and raw query.
//!
//! GET and HEAD share a key (only GET responses are stored). The key is an
//! `Arc<str>` so that cloning it into the coalescing map or the store is a
//! reference-count bump. Only this module knows how a key is spelled:
//! everything else asks [`CacheKey`] for its parts, and finds keys by URL
//! with a [`KeyUrl`].

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

/// Separates a primary key from its variant's hash in a variant key.
const VARIANT_SEPARATOR: char = '\u{1f}';

/// Separates the origin from the URL.
const ORIGIN_SEPARATOR: char = ' ';

/// Marks a slice's key: `#` never reaches a key from a request target
/// (a fragment is not sent), so a slice key names no URL of its own.
const SLICE_MARK: &str = "#slice=";

/// The longest key text accepted from outside (a snapshot).
const MAX_KEY_BYTES: usize = 16 * 1024;

/// What a key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyParts<'a> {
    /// The origin's id.
    pub origin: &'a str,
    /// The normalized authority.
    pub authority: &'a str,
    /// The path, without the query.
    pub path: &'a str,
}

/// A request URL as keys hold it (normalized authority, path and raw
/// query), to find the keys of a URL or of a URL prefix on any origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUrl {
    text: String,
    authority_len: usize,
}

impl KeyUrl {
    /// The URL of `path_and_query` on `authority` (normalized).
    pub fn new(authority: &str, path_and_query: &str) -> Self {
        let mut text = String::with_capacity(authority.len() + path_and_query.len());
        text.push_str(authority);
        text.push_str(path_and_query);
        KeyUrl {
            text,
            authority_len: authority.len(),
        }
    }

    /// `authority/path?query` as [`KeyUrl::as_str`] spells it; `None`
    /// without a path.
    pub fn parse(text: &str) -> Option<Self> {
        let slash = text.find('/')?;
        (slash > 0 && text.len() <= MAX_KEY_BYTES)
            .then(|| KeyUrl::new(&text[..slash], &text[slash..]))
    }

    /// `authority/path?query`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The authority.
    pub fn authority(&self) -> &str {
        &self.text[..self.authority_len]
    }

    /// The path and query.
    pub fn path_and_query(&self) -> &str {
        &self.text[self.authority_len..]
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        let target = &self.text[self.authority_len..];
        target.split('?').next().unwrap_or(target)
    }

    /// Whether `key` is (a variant of) this URL.
    pub fn is_url_of(&self, key: &CacheKey) -> bool {
        key.url() == self.text
    }

    /// Whether `key`'s URL starts with this one.
    pub fn is_prefix_of(&self, key: &CacheKey) -> bool {
        key.url().starts_with(&self.text)
    }
}

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
        key.push(ORIGIN_SEPARATOR);
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

    /// The key of slice `index` of `primary` (a route that slices stores
    /// each under its own key).
    pub fn slice(primary: &CacheKey, index: u64) -> Self {
        CacheKey(format!("{}{SLICE_MARK}{index}", primary.0).into())
    }

    /// The text of the resource's own key: the primary key without a
    /// slice mark (a purge of the resource takes its slices too).
    pub fn resource_text(&self) -> &str {
        without_slice(self.primary_text())
    }

    /// The resource's own key for a slice's key; the key itself else.
    pub fn whole(&self) -> CacheKey {
        match self.0.rfind(SLICE_MARK) {
            Some(at) if !self.is_variant() => CacheKey::from_text(&self.0[..at]),
            _ => self.clone(),
        }
    }

    /// Whether this is a variant key.
    pub fn is_variant(&self) -> bool {
        self.0.contains(VARIANT_SEPARATOR)
    }

    /// The text of this key's primary key (all of it for a primary key).
    pub fn primary_text(&self) -> &str {
        primary_of(&self.0)
    }

    /// The primary key of this key (itself if it is one).
    pub fn primary(&self) -> CacheKey {
        if self.is_variant() {
            CacheKey::from_text(self.primary_text())
        } else {
            self.clone()
        }
    }

    /// Its origin, authority and path; `None` for a key the proxy did not
    /// build.
    pub fn parts(&self) -> Option<KeyParts<'_>> {
        let (origin, url) = self.primary_text().split_once(ORIGIN_SEPARATOR)?;
        let (authority, target) = url.split_at(url.find('/')?);
        Some(KeyParts {
            origin,
            authority,
            path: without_slice(target.split('?').next().unwrap_or(target)),
        })
    }

    /// A key read from outside (a snapshot), if it is shaped as the proxy
    /// builds them: `origin-id authority/path?query`, maybe a variant
    /// suffix, of a sane length.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        if text.len() > MAX_KEY_BYTES {
            return Err("key too long");
        }
        let (origin, url) = text.split_once(ORIGIN_SEPARATOR).ok_or("not a cache key")?;
        let url = primary_of(url);
        if origin.is_empty() || !url.contains('/') || url.starts_with('/') {
            return Err("not a cache key");
        }
        Ok(CacheKey::from_text(text))
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
        let rest = self
            .0
            .split_once(ORIGIN_SEPARATOR)
            .map_or(&*self.0, |(_, rest)| rest);
        without_slice(primary_of(rest))
    }
}

fn without_slice(text: &str) -> &str {
    text.rfind(SLICE_MARK).map_or(text, |at| &text[..at])
}

fn primary_of(text: &str) -> &str {
    text.split_once(VARIANT_SEPARATOR)
        .map_or(text, |(primary, _)| primary)
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
        assert!(variant.is_variant());
        assert!(!primary.is_variant());
        assert_eq!(variant.primary_text(), primary.as_str());
        assert_eq!(variant.primary(), primary);
        assert_eq!(primary.primary(), primary);
        assert_eq!(variant.url(), "h/p");
    }

    #[test]
    fn keys_name_their_parts_and_are_found_by_url() {
        let key = CacheKey::variant(&CacheKey::new("http://o/api", "h:8080", "/a/b?q=1"), 7);
        let parts = key.parts().unwrap();
        assert_eq!(parts.origin, "http://o/api");
        assert_eq!(parts.authority, "h:8080");
        assert_eq!(parts.path, "/a/b");
        assert!(KeyUrl::new("h:8080", "/a/b?q=1").is_url_of(&key));
        assert!(!KeyUrl::new("h:8080", "/a/b").is_url_of(&key));
        assert!(KeyUrl::new("h:8080", "/a/").is_prefix_of(&key));
        let url = KeyUrl::new("h", "/x?y");
        assert_eq!((url.authority(), url.path()), ("h", "/x"));
        assert!(CacheKey::parse(key.as_str()).is_ok());
        assert!(CacheKey::parse("no-space").is_err());
        assert!(CacheKey::parse("o /path-without-host").is_err());
    }

    #[test]
    fn slices_name_the_url_they_are_part_of() {
        let primary = CacheKey::new("http://o", "h", "/v.mp4?q=1");
        let slice = CacheKey::slice(&primary, 3);
        assert_eq!(slice.as_str(), "http://o h/v.mp4?q=1#slice=3");
        assert_ne!(slice, primary);
        assert_eq!(slice.url(), "h/v.mp4?q=1");
        assert_eq!(slice.resource_text(), primary.as_str());
        assert_eq!(slice.whole(), primary);
        assert_eq!(primary.whole(), primary);
        assert_eq!(slice.parts().unwrap().path, "/v.mp4");
        let variant = CacheKey::variant(&slice, 1);
        assert_eq!(variant.url(), "h/v.mp4?q=1");
        assert_eq!(variant.resource_text(), primary.as_str());
        assert!(KeyUrl::new("h", "/v.mp4?q=1").is_url_of(&variant));
        assert_eq!(CacheKey::parse(variant.as_str()).unwrap(), variant);
    }

    #[test]
    fn round_trips_through_text() {
        let a = CacheKey::new("https://o/api", "h:8080", "/");
        assert_eq!(CacheKey::from_text(a.as_str()), a);
    }
}
