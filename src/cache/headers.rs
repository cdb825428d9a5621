//! Stored response headers, compact: one buffer holds every value back to
//! back, then per field 5 bytes (one byte naming a common header, or "the
//! next uncommon name", with a bit for a sensitive value; and where its
//! value ends), then the field count. A
//! `HeaderMap` rounds its capacity up to a power of two and allocates every
//! value apart (about 1.3 KB for a typical response), and even a list of
//! `(HeaderName, HeaderValue)` pairs costs 72 bytes a field. A hit builds
//! the `HeaderMap` hyper sends from it: common names are constants, others
//! are reference-counted clones, values are slices of the shared buffer.

use bytes::{Bytes, BytesMut};

use super::footprint::{SHARED_COUNT, allocated};
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue};

/// How many names are stored as an index (fewer than `UNCOMMON`).
const COMMON_NAMES: usize = 31;
/// Names stored as their index here.
const COMMON: [HeaderName; COMMON_NAMES] = [
    header::ACCEPT_RANGES,
    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
    header::ACCESS_CONTROL_ALLOW_HEADERS,
    header::ACCESS_CONTROL_ALLOW_METHODS,
    header::ACCESS_CONTROL_ALLOW_ORIGIN,
    header::ACCESS_CONTROL_EXPOSE_HEADERS,
    header::ACCESS_CONTROL_MAX_AGE,
    header::AGE,
    header::ALT_SVC,
    header::CACHE_CONTROL,
    header::CONTENT_DISPOSITION,
    header::CONTENT_ENCODING,
    header::CONTENT_LANGUAGE,
    header::CONTENT_LENGTH,
    header::CONTENT_LOCATION,
    header::CONTENT_SECURITY_POLICY,
    header::CONTENT_TYPE,
    header::DATE,
    header::ETAG,
    header::EXPIRES,
    header::LAST_MODIFIED,
    header::LINK,
    header::LOCATION,
    header::REFERRER_POLICY,
    header::SERVER,
    header::SET_COOKIE,
    header::STRICT_TRANSPORT_SECURITY,
    header::VARY,
    header::X_CONTENT_TYPE_OPTIONS,
    header::X_FRAME_OPTIONS,
    header::X_XSS_PROTECTION,
];
/// The field's name is the next one in `StoredHeaders::uncommon`.
const UNCOMMON: u8 = 0x7f;
/// Set in a field's name byte when the value is sensitive.
const SENSITIVE: u8 = 0x80;
const _: () = assert!(COMMON_NAMES < UNCOMMON as usize);

/// Bytes a field takes in the block: its name byte (an index into
/// `COMMON`, or `UNCOMMON`; with `SENSITIVE` set for a sensitive value),
/// then where its value ends (`u32`, little-endian; it starts where the
/// previous one ended).
const FIELD_BYTES: usize = 5;
/// Bytes of the field count at the block's end.
const COUNT_BYTES: usize = 2;

/// Response headers as stored with an entry: one allocation for the
/// usual response (40 bytes inline, a test checks).
#[derive(Debug, Clone, Default)]
pub struct StoredHeaders {
    /// Every value, in order, back to back; then every field
    /// ([`FIELD_BYTES`] each); then
    /// the number of fields (`u16`, little-endian). Empty when there are
    /// no fields.
    block: Bytes,
    /// Names not in `COMMON`, in order (usually none: no allocation).
    /// Boxed in a struct so that the pointer is thin (8 bytes, not 16).
    uncommon: Option<Box<Uncommon>>,
}

/// The names of fields stored as `UNCOMMON`, in order.
#[derive(Debug, Clone)]
struct Uncommon(Box<[HeaderName]>);

/// Where one field's value lies in the block.
#[derive(Debug, Clone, Copy)]
struct Line {
    start: usize,
    end: usize,
    sensitive: bool,
}

/// Decodes the fields of a block one at a time (a plain loop, which the
/// compiler inlines where iterator adaptors were not).
struct Lines<'a> {
    fields: &'a [u8],
    values_end: usize,
    start: usize,
    uncommon: std::slice::Iter<'a, HeaderName>,
}

impl<'a> Iterator for Lines<'a> {
    type Item = (&'a HeaderName, Line);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let (&[name, e0, e1, e2, e3], rest) = self.fields.split_first_chunk::<FIELD_BYTES>()?;
        self.fields = rest;
        let end = u32::from_le_bytes([e0, e1, e2, e3]) as usize;
        if end < self.start || end > self.values_end {
            self.fields = &[];
            return None;
        }
        let line = Line {
            start: self.start,
            end,
            sensitive: name & SENSITIVE != 0,
        };
        self.start = end;
        let name = match COMMON.get(usize::from(name & !SENSITIVE)) {
            Some(name) => name,
            None => self.uncommon.next()?,
        };
        Some((name, line))
    }
}

impl StoredHeaders {
    /// Copies `map`'s values and fields into one exact buffer. Header
    /// blocks past 4 GiB of values or 65,535 fields (impossible through
    /// hyper's limits) are cut at the field that overflows.
    pub fn from_map(map: &HeaderMap) -> Self {
        if map.is_empty() {
            return StoredHeaders::default();
        }
        let values_len: usize = map.iter().map(|(_, v)| v.len()).sum();
        let mut block = BytesMut::with_capacity(values_len + map.len() * FIELD_BYTES + COUNT_BYTES);
        let mut kept: u16 = 0;
        for (_, value) in map {
            if u32::try_from(block.len() + value.len()).is_err() || kept == u16::MAX {
                break;
            }
            block.extend_from_slice(value.as_bytes());
            kept += 1;
        }
        let mut uncommon = Vec::new();
        let mut end: u32 = 0;
        for (name, value) in map.iter().take(usize::from(kept)) {
            // Within u32: the values were kept only while their sum fit.
            end = end.saturating_add(u32::try_from(value.len()).unwrap_or(u32::MAX));
            let index = COMMON.iter().position(|common| common == name);
            let name = match index.and_then(|i| u8::try_from(i).ok()) {
                Some(index) => index,
                None => {
                    uncommon.push(name.clone());
                    UNCOMMON
                }
            };
            let sensitive = if value.is_sensitive() { SENSITIVE } else { 0 };
            block.extend_from_slice(&[name | sensitive]);
            block.extend_from_slice(&end.to_le_bytes());
        }
        block.extend_from_slice(&kept.to_le_bytes());
        StoredHeaders {
            block: block.freeze(),
            uncommon: (!uncommon.is_empty())
                .then(|| Box::new(Uncommon(uncommon.into_boxed_slice()))),
        }
    }

    /// How many fields, read from the block's end.
    #[inline]
    fn count(&self) -> usize {
        match self.block.len().checked_sub(COUNT_BYTES) {
            Some(at) => usize::from(u16::from_le_bytes([self.block[at], self.block[at + 1]])),
            None => 0,
        }
    }

    /// Where the values end and the fields begin.
    #[inline]
    fn values_end(&self) -> usize {
        self.block
            .len()
            .saturating_sub(COUNT_BYTES + self.count() * FIELD_BYTES)
    }

    /// A `HeaderMap` with these headers, for a response: with room for
    /// the fields the proxy adds (`Age`, `Via`, `X-Cache`, `Cache-Status`,
    /// `Content-Range`), so adding them never grows and rehashes the map.
    pub fn to_map(&self) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.count() + 5);
        for (name, line) in self.lines() {
            // Not `self.iter()`: its `filter_map` is not inlined here, and
            // this runs on every hit.
            if let Some(value) = self.value(line) {
                map.append(name.clone(), value);
            }
        }
        map
    }

    /// Whether a field named `name` is stored (no value is built).
    pub fn contains(&self, name: &HeaderName) -> bool {
        self.lines().any(|(n, _)| n == name)
    }

    /// The first value of `name`.
    pub fn get(&self, name: impl AsRef<str>) -> Option<HeaderValue> {
        let name = name.as_ref();
        self.lines()
            .find(|(n, _)| n.as_str() == name)
            .and_then(|(_, line)| self.value(line))
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = HeaderValue> + 'a {
        self.lines()
            .filter(move |(n, _)| *n == name)
            .filter_map(|(_, line)| self.value(line))
    }

    /// Every name and value, in order. Values share the stored buffer.
    pub fn iter(&self) -> impl Iterator<Item = (&HeaderName, HeaderValue)> {
        self.lines()
            .filter_map(|(name, line)| Some((name, self.value(line)?)))
    }

    /// Every name and the bytes of its value, in order, without building a
    /// `HeaderValue`: the shared buffer is read, not shared (for the
    /// weigher and the snapshot; only answers need values of their own).
    pub fn raw(&self) -> impl Iterator<Item = (&HeaderName, &[u8])> {
        self.lines()
            .filter_map(|(name, line)| Some((name, self.block.get(line.start..line.end)?)))
    }

    /// Every field's name and where its value lies, without building the
    /// value: lookups by name only build the values they return.
    fn lines(&self) -> Lines<'_> {
        let values_end = self.values_end();
        let fields_end = self.block.len().saturating_sub(COUNT_BYTES);
        Lines {
            fields: self.block.get(values_end..fields_end).unwrap_or_default(),
            values_end,
            start: 0,
            uncommon: self
                .uncommon
                .as_deref()
                .map_or(&[][..], |names| &names.0)
                .iter(),
        }
    }

    /// A field's value: a slice of the shared buffer. Every value was a
    /// valid `HeaderValue` when it was stored.
    #[inline(always)]
    fn value(&self, line: Line) -> Option<HeaderValue> {
        let mut value =
            HeaderValue::from_maybe_shared(self.block.slice(line.start..line.end)).ok()?;
        value.set_sensitive(line.sensitive);
        Some(value)
    }

    /// Whether every value is text as [`HeaderValue::to_str`] has it
    /// (visible ASCII and tabs): one pass over the shared buffer, no value
    /// built.
    pub fn is_text(&self) -> bool {
        self.block[..self.values_end()]
            .iter()
            .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
    }

    /// Bytes its allocations take: the block (and the count the first
    /// shared value adds to it), and the uncommon names.
    pub fn heap_bytes(&self) -> usize {
        let block = match self.block.len() {
            0 => 0,
            len => allocated(len) + SHARED_COUNT,
        };
        let uncommon = self.uncommon.as_deref().map_or(0, |names| {
            allocated(size_of::<Uncommon>())
                + allocated(size_of_val::<[HeaderName]>(&names.0))
                + names
                    .0
                    .iter()
                    .map(|n| allocated(n.as_str().len()) + SHARED_COUNT)
                    .sum::<usize>()
        });
        block + uncommon
    }

    /// How many header lines.
    pub fn len(&self) -> usize {
        self.count()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{CONTENT_TYPE, SET_COOKIE};

    #[test]
    fn is_text_agrees_with_to_str() {
        for raw in [&b"text/plain"[..], b"a\tb", b"caf\xe9", b"\x80x", b""] {
            let mut map = HeaderMap::new();
            map.insert(CONTENT_TYPE, HeaderValue::from_bytes(raw).unwrap());
            map.insert("x-other", HeaderValue::from_static("plain"));
            let stored = StoredHeaders::from_map(&map);
            let expected = map.values().all(|v| v.to_str().is_ok());
            assert_eq!(stored.is_text(), expected, "{raw:?}");
        }
    }

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
        assert_eq!(std::mem::size_of::<StoredHeaders>(), 40);
    }

    #[test]
    fn uncommon_names_keep_their_places_and_values_keep_sensitivity() {
        let mut map = HeaderMap::new();
        map.insert("x-first", HeaderValue::from_static("1"));
        map.insert(CONTENT_TYPE, HeaderValue::from_static("text/html"));
        map.append("x-second", HeaderValue::from_static("2"));
        map.append("x-second", HeaderValue::from_static(""));
        let mut secret = HeaderValue::from_static("s=3");
        secret.set_sensitive(true);
        map.insert(SET_COOKIE, secret);
        map.insert("x-third", HeaderValue::from_bytes(b"caf\xe9").unwrap());
        let stored = StoredHeaders::from_map(&map);
        let expected: Vec<_> = map.iter().map(|(n, v)| (n.clone(), v.clone())).collect();
        let got: Vec<_> = stored.iter().map(|(n, v)| (n.clone(), v)).collect();
        assert_eq!(got, expected);
        assert_eq!(stored.uncommon.as_ref().map_or(0, |names| names.0.len()), 4);
        assert!(
            stored.contains(&SET_COOKIE) && stored.contains(&HeaderName::from_static("x-third"))
        );
        assert!(!stored.contains(&http::header::ETAG));
        assert!(!stored.contains(&HeaderName::from_static("x-fourth")));
        assert!(stored.get("set-cookie").unwrap().is_sensitive());
        let raw: Vec<_> = stored.raw().map(|(n, v)| (n.clone(), v.to_vec())).collect();
        let built: Vec<_> = got
            .iter()
            .map(|(n, v)| (n.clone(), v.as_bytes().to_vec()))
            .collect();
        assert_eq!(raw, built, "raw bytes are the values, in order");
        assert!(!stored.get("content-type").unwrap().is_sensitive());
    }

    #[test]
    fn no_fields_take_no_buffer() {
        let stored = StoredHeaders::from_map(&HeaderMap::new());
        assert!(stored.is_empty() && stored.block.is_empty());
        assert_eq!(stored.to_map(), HeaderMap::new());
        let mut empty_value = HeaderMap::new();
        empty_value.insert("x-empty", HeaderValue::from_static(""));
        assert_eq!(StoredHeaders::from_map(&empty_value).to_map(), empty_value);
    }

    proptest::proptest! {
        #[test]
        fn any_header_map_round_trips(
            fields in proptest::collection::vec(
                (0usize..6, proptest::collection::vec(
                    proptest::sample::select(b"ab \t\x80\xff09".to_vec()), 0..40), proptest::bool::ANY),
                0..24,
            )
        ) {
            let names = ["content-type", "etag", "x-one", "x-two", "set-cookie", "date"];
            let mut map = HeaderMap::new();
            for (name, value, sensitive) in fields {
                let mut value = HeaderValue::from_bytes(&value).unwrap();
                value.set_sensitive(sensitive);
                map.append(HeaderName::from_static(names[name]), value);
            }
            let stored = StoredHeaders::from_map(&map);
            proptest::prop_assert_eq!(stored.len(), map.len());
            let got: Vec<_> = stored.iter().map(|(n, v)| (n.clone(), v.is_sensitive(), v)).collect();
            let expected: Vec<_> = map.iter().map(|(n, v)| (n.clone(), v.is_sensitive(), v.clone())).collect();
            proptest::prop_assert_eq!(got, expected);
            proptest::prop_assert_eq!(
                stored.is_text(),
                map.values().all(|v| v.to_str().is_ok())
            );
        }
    }
}
