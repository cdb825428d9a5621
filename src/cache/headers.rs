//! Stored response headers, compact: an exact-size list whose values all
//! share one buffer. A `HeaderMap` rounds its capacity up to a power of two
//! and allocates every value apart (about 1.3 KB for a typical response);
//! this takes what the headers need. A hit builds the `HeaderMap` hyper
//! sends from it (cloning names and values is reference counting).

use bytes::BytesMut;
use http::{HeaderMap, HeaderName, HeaderValue};

/// Response headers as stored with an entry.
#[derive(Debug, Clone, Default)]
pub struct StoredHeaders(Box<[(HeaderName, HeaderValue)]>);

impl StoredHeaders {
    /// Copies `map` into one buffer. Values that would not be valid after
    /// the copy (none in practice: they were valid before) are skipped.
    pub fn from_map(map: &HeaderMap) -> Self {
        let mut buffer = BytesMut::with_capacity(map.iter().map(|(_, v)| v.len()).sum());
        let mut ranges = Vec::with_capacity(map.len());
        for (name, value) in map {
            let start = buffer.len();
            buffer.extend_from_slice(value.as_bytes());
            ranges.push((name.clone(), start..buffer.len(), value.is_sensitive()));
        }
        let buffer = buffer.freeze();
        let pairs = ranges
            .into_iter()
            .filter_map(|(name, range, sensitive)| {
                let mut value = HeaderValue::from_maybe_shared(buffer.slice(range)).ok()?;
                value.set_sensitive(sensitive);
                Some((name, value))
            })
            .collect();
        StoredHeaders(pairs)
    }

    /// A `HeaderMap` with these headers, for a response.
    pub fn to_map(&self) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.0.len());
        for (name, value) in self.iter() {
            map.append(name.clone(), value.clone());
        }
        map
    }

    /// The first value of `name`.
    pub fn get(&self, name: impl AsRef<str>) -> Option<&HeaderValue> {
        let name = name.as_ref();
        self.0
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, v)| v)
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(
        &'a self,
        name: &'a HeaderName,
    ) -> impl Iterator<Item = &'a HeaderValue> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// Every name and value, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        self.0.iter().map(|(n, v)| (n, v))
    }

    /// How many header lines.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{CONTENT_TYPE, SET_COOKIE};

    #[test]
    fn round_trips_through_a_map() {
        let mut map = HeaderMap::new();
        map.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        map.append(SET_COOKIE, HeaderValue::from_static("a=1"));
        map.append(SET_COOKIE, HeaderValue::from_static("b=2"));
        map.insert(
            HeaderName::from_static("x-custom"),
            HeaderValue::from_static("yes"),
        );
        let stored = StoredHeaders::from_map(&map);
        assert_eq!(stored.len(), 4);
        assert_eq!(stored.get("content-type").unwrap(), "text/plain");
        assert_eq!(stored.get_all(&SET_COOKIE).count(), 2);
        assert_eq!(stored.to_map(), map);
        assert!(StoredHeaders::default().is_empty());
    }
}
