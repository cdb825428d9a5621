//! `Vary` (RFC 9111 section 4.1): the request headers a stored response was
//! selected by, captured when it is stored and compared on every lookup.
//!
//! A stored response is used only for a request whose values of the named
//! headers match the ones captured, after normalizing: `Accept-Encoding` by
//! its preferred coding, `Accept-Language` as a canonical list, any other
//! header by whitespace and joined lines. `Vary: *` never matches, so it is
//! never stored.

use http::header::{ACCEPT_ENCODING, ACCEPT_LANGUAGE, VARY};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::footprint::{SHARED_COUNT, allocated};
use super::key::CacheKey;
use super::negotiate;

/// What a response's `Vary` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vary {
    /// No `Vary`: one response fits every request.
    None,
    /// `Vary: *` (or an unparseable field name): no request can match.
    Star,
    /// The named request headers, lower-cased, de-duplicated, sorted.
    Fields(Vec<HeaderName>),
}

impl Vary {
    /// Reads every `Vary` line of a response.
    pub fn from_response(headers: &HeaderMap) -> Vary {
        let mut names = Vec::new();
        for value in headers.get_all(VARY) {
            for item in value.as_bytes().split(|b| *b == b',') {
                let item = item.trim_ascii();
                if item.is_empty() {
                    continue;
                }
                if item == b"*" {
                    return Vary::Star;
                }
                match HeaderName::from_bytes(item) {
                    Ok(name) => names.push(name),
                    Err(_) => return Vary::Star,
                }
            }
        }
        if names.is_empty() {
            return Vary::None;
        }
        names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        names.dedup();
        Vary::Fields(names)
    }
}

impl Vary {
    /// This `Vary` with `extra` request headers added (a route's
    /// `key.headers`): each is compared as if the response named it.
    pub fn with_fields(self, extra: &[HeaderName]) -> Vary {
        if extra.is_empty() {
            return self;
        }
        let mut names = match self {
            Vary::Star => return Vary::Star,
            Vary::None => Vec::new(),
            Vary::Fields(names) => names,
        };
        names.extend_from_slice(extra);
        names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        names.dedup();
        Vary::Fields(names)
    }
}

/// The request's values for the headers a response varies on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VaryValues(Vec<(HeaderName, Option<HeaderValue>)>);

impl VaryValues {
    /// No values: the response does not vary.
    pub const fn none() -> Self {
        VaryValues(Vec::new())
    }

    /// Captures `request`'s values for `fields`.
    pub fn capture(fields: &[HeaderName], request: &HeaderMap) -> Self {
        VaryValues(
            fields
                .iter()
                .map(|name| (name.clone(), normalized(request, name)))
                .collect(),
        )
    }

    /// Rebuilds captured values (from the snapshot).
    pub fn from_pairs(pairs: Vec<(HeaderName, Option<HeaderValue>)>) -> Self {
        VaryValues(pairs)
    }

    /// The captured name/value pairs.
    pub fn pairs(&self) -> &[(HeaderName, Option<HeaderValue>)] {
        &self.0
    }

    /// Bytes its allocations take (the pairs and each value's buffer).
    pub fn heap_bytes(&self) -> usize {
        let pairs = allocated(self.0.capacity() * size_of::<(HeaderName, Option<HeaderValue>)>());
        let values: usize = self
            .0
            .iter()
            .filter_map(|(_, value)| value.as_ref())
            .map(|value| allocated(value.len()) + SHARED_COUNT)
            .sum();
        pairs + values
    }

    /// The same values without `name`'s.
    pub fn without(self, name: &HeaderName) -> Self {
        let mut pairs = self.0;
        pairs.retain(|(field, _)| field != name);
        VaryValues(pairs)
    }

    /// Whether `request` selects the same variant.
    pub fn matches(&self, request: &HeaderMap) -> bool {
        self.0
            .iter()
            .all(|(name, value)| normalized(request, name).as_ref() == value.as_ref())
    }
}

/// The request's value of one selecting header as the cache compares it:
/// `Accept-Encoding` by the coding it prefers, `Accept-Language` as a
/// canonical list (`negotiate`); any other header with all lines joined
/// and whitespace around list separators removed, so that formatting
/// differences do not split variants.
fn normalized(headers: &HeaderMap, name: &HeaderName) -> Option<HeaderValue> {
    if name == ACCEPT_ENCODING {
        return Some(HeaderValue::from_static(negotiate::encoding_key(headers)));
    }
    if name == ACCEPT_LANGUAGE {
        let lines: Vec<&[u8]> = headers
            .get_all(name)
            .iter()
            .map(HeaderValue::as_bytes)
            .collect();
        if lines.is_empty() {
            return None;
        }
        return HeaderValue::from_bytes(&negotiate::language_key(&lines)).ok();
    }
    let mut joined: Vec<u8> = Vec::new();
    for value in headers.get_all(name) {
        for item in value.as_bytes().split(|b| *b == b',') {
            let item = item.trim_ascii();
            if item.is_empty() {
                continue;
            }
            if !joined.is_empty() {
                joined.push(b',');
            }
            joined.extend_from_slice(item);
        }
    }
    if joined.is_empty() && headers.get(name).is_none() {
        return None;
    }
    HeaderValue::from_bytes(&joined).ok()
}

/// `primary + separator + hash of the variant's request values`, with a
/// hash that is the same in every build (the key is written to the
/// snapshot). A collision cannot serve a wrong variant: lookups compare
/// the stored values too. The shared tier computes it as the store does.
pub fn variant_key(primary: &CacheKey, values: &VaryValues) -> CacheKey {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for (name, value) in values.pairs() {
        hasher.update(name.as_str().as_bytes());
        match value {
            // A length prefix keeps ("a", "bc") apart from ("ab", "c").
            Some(value) => {
                hasher.update(&(value.len() as u64).to_le_bytes());
                hasher.update(value.as_bytes());
            }
            None => hasher.update(&u64::MAX.to_le_bytes()),
        }
    }
    CacheKey::variant(primary, hasher.digest())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(lines: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for line in lines {
            h.append(VARY, HeaderValue::from_static(line));
        }
        h
    }

    #[test]
    fn parses_lists_and_star() {
        assert_eq!(Vary::from_response(&HeaderMap::new()), Vary::None);
        assert_eq!(Vary::from_response(&response(&["*"])), Vary::Star);
        assert_eq!(
            Vary::from_response(&response(&["Accept-Encoding", "accept-encoding, *"])),
            Vary::Star
        );
        assert_eq!(
            Vary::from_response(&response(&[
                "Accept-Language",
                "ACCEPT-ENCODING , accept-language"
            ])),
            Vary::Fields(vec![ACCEPT_ENCODING, ACCEPT_LANGUAGE])
        );
    }

    #[test]
    fn key_headers_join_the_response_fields() {
        let device = HeaderName::from_static("x-device");
        assert_eq!(Vary::None.with_fields(&[]), Vary::None);
        assert_eq!(
            Vary::None.with_fields(std::slice::from_ref(&device)),
            Vary::Fields(vec![device.clone()])
        );
        assert_eq!(
            Vary::Fields(vec![ACCEPT_LANGUAGE, device.clone()])
                .with_fields(std::slice::from_ref(&device)),
            Vary::Fields(vec![ACCEPT_LANGUAGE, device.clone()])
        );
        assert_eq!(Vary::Star.with_fields(&[device]), Vary::Star);
    }

    #[test]
    fn values_match_after_normalizing() {
        let mut first = HeaderMap::new();
        first.insert(ACCEPT_ENCODING, HeaderValue::from_static("gzip, br"));
        let captured = VaryValues::capture(&[ACCEPT_ENCODING], &first);

        let mut same = HeaderMap::new();
        same.append(ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        same.append(ACCEPT_ENCODING, HeaderValue::from_static(" br"));
        assert!(captured.matches(&same));

        let mut other = HeaderMap::new();
        other.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        assert!(!captured.matches(&other));
        assert!(!captured.matches(&HeaderMap::new()));

        let mut spelled_otherwise = HeaderMap::new();
        spelled_otherwise.insert(
            ACCEPT_ENCODING,
            HeaderValue::from_static("br;q=1.0, gzip;q=0.8"),
        );
        assert!(captured.matches(&spelled_otherwise), "both prefer br");

        let mut english = HeaderMap::new();
        english.insert(ACCEPT_LANGUAGE, HeaderValue::from_static("en, de"));
        let captured = VaryValues::capture(&[ACCEPT_LANGUAGE], &english);
        let mut reordered = HeaderMap::new();
        reordered.insert(ACCEPT_LANGUAGE, HeaderValue::from_static("DE ,en"));
        assert!(captured.matches(&reordered));
        assert!(!captured.matches(&HeaderMap::new()));
    }

    proptest::proptest! {
        #[test]
        fn vary_parsing_never_panics(line in ".*", value in ".*") {
            let mut response = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&line) {
                response.insert(VARY, v);
            }
            if let Vary::Fields(names) = Vary::from_response(&response) {
                let mut request = HeaderMap::new();
                if let Ok(v) = HeaderValue::from_str(&value) {
                    request.insert(names[0].clone(), v);
                }
                let captured = VaryValues::capture(&names, &request);
                proptest::prop_assert!(captured.matches(&request));
            }
        }
    }
}
