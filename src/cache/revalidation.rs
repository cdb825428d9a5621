//! What revalidating a stored response computes, without doing it: the
//! validators a conditional request carries, the headers a 304 leaves an
//! entry with (RFC 9111 sections 3.2 and 4.3.4), whether a HEAD response
//! describes the stored representation (section 4.3.5), and which
//! failures a stale response may stand in for (RFC 5861 section 4).

use http::header::{
    CONTENT_ENCODING, CONTENT_LENGTH, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED,
};
use http::{HeaderMap, HeaderName, StatusCode};

use super::entry::CachedResponse;

/// The `Content-Length` a response announced, if any.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Adds `entry`'s validators to a request, making it conditional.
pub fn add_validators(request: &mut HeaderMap, entry: &CachedResponse) {
    if let Some(etag) = entry.etag() {
        request.insert(IF_NONE_MATCH, etag);
    }
    if let Some(modified) = entry.last_modified() {
        request.insert(IF_MODIFIED_SINCE, modified);
    }
}

/// The stored headers updated by a 304 (or a matching HEAD response):
/// each field the fresh response has replaces the stored one, except
/// `Content-Length` and `Content-Encoding`, which belong to the stored
/// body, and a strong `ETag` whose weak form is stored.
pub fn merge_fresh_headers(stored: HeaderMap, fresh: &HeaderMap) -> HeaderMap {
    // A body this proxy compressed keeps its coding and its weak ETag: the
    // origin's 304 speaks of the uncompressed representation.
    let keep_etag = match (stored.get(ETAG), fresh.get(ETAG)) {
        (Some(stored), Some(fresh)) => {
            stored.as_bytes().strip_prefix(b"W/") == Some(fresh.as_bytes())
        }
        _ => false,
    };
    let mut merged = stored;
    let kept = |name: &HeaderName| {
        *name == CONTENT_LENGTH || *name == CONTENT_ENCODING || (keep_etag && *name == ETAG)
    };
    for name in fresh.keys().filter(|name| !kept(name)) {
        merged.remove(name);
        for value in fresh.get_all(name) {
            merged.append(name.clone(), value.clone());
        }
    }
    merged
}

/// Whether a HEAD response describes the stored representation: the same
/// strong validator (or the same `Last-Modified` when neither has an
/// ETag), and the same length if it announces one.
pub fn same_representation(entry: &CachedResponse, head: &HeaderMap) -> bool {
    let validators_match = match (entry.etag(), head.get(ETAG)) {
        (Some(stored), Some(fresh)) => stored == fresh,
        (None, None) => entry
            .last_modified()
            .is_some_and(|stored| head.get(LAST_MODIFIED) == Some(&stored)),
        (Some(_), None) | (None, Some(_)) => false,
    };
    let length_matches = declared_length(head).is_none_or(|len| len == entry.body.len() as u64);
    validators_match && length_matches
}

/// The answers a stale response may stand in for (RFC 5861 section 4).
pub fn stale_may_replace(status: StatusCode) -> bool {
    matches!(status.as_u16(), 500 | 502 | 503 | 504)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::ReuseRules;
    use crate::cache::vary::VaryValues;
    use bytes::Bytes;
    use std::time::{Duration, SystemTime};

    fn entry(headers: &[(&str, &str)], body: &'static str) -> CachedResponse {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        CachedResponse::new(
            StatusCode::OK,
            map,
            Bytes::from_static(body.as_bytes()),
            SystemTime::UNIX_EPOCH,
            Some(Duration::from_secs(60)),
            Duration::ZERO,
            VaryValues::default(),
            ReuseRules::default(),
        )
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(n, v)| (http::HeaderName::from_static(n), v.parse().unwrap()))
            .collect()
    }

    #[test]
    fn a_304_replaces_fields_but_not_the_length() {
        let stored = headers(&[("etag", "\"a\""), ("content-length", "5"), ("x-old", "1")]);
        let fresh = headers(&[("etag", "\"b\""), ("content-length", "0")]);
        let merged = merge_fresh_headers(stored, &fresh);
        assert_eq!(merged["etag"], "\"b\"");
        assert_eq!(merged["content-length"], "5");
        assert_eq!(merged["x-old"], "1");
    }

    #[test]
    fn a_304_keeps_the_coding_and_weak_etag_of_a_compressed_body() {
        let stored = headers(&[("etag", "W/\"a\""), ("content-encoding", "br")]);
        let fresh = headers(&[("etag", "\"a\""), ("cache-control", "max-age=9")]);
        let merged = merge_fresh_headers(stored.clone(), &fresh);
        assert_eq!(merged["etag"], "W/\"a\"");
        assert_eq!(merged["content-encoding"], "br");
        assert_eq!(merged["cache-control"], "max-age=9");
        let changed = headers(&[("etag", "\"b\"")]);
        assert_eq!(merge_fresh_headers(stored, &changed)["etag"], "\"b\"");
    }

    #[test]
    fn a_head_matches_by_strong_validator_or_date_and_length() {
        let tagged = entry(&[("etag", "\"v1\"")], "hello");
        assert!(same_representation(
            &tagged,
            &headers(&[("etag", "\"v1\"")])
        ));
        assert!(!same_representation(
            &tagged,
            &headers(&[("etag", "\"v2\"")])
        ));
        assert!(!same_representation(
            &tagged,
            &headers(&[("etag", "\"v1\""), ("content-length", "6")])
        ));
        let dated = entry(&[("last-modified", "Tue, 01 Dec 2026 00:00:00 GMT")], "x");
        assert!(same_representation(
            &dated,
            &headers(&[("last-modified", "Tue, 01 Dec 2026 00:00:00 GMT")])
        ));
        assert!(!same_representation(&dated, &headers(&[])));
    }

    #[test]
    fn validators_make_a_request_conditional() {
        let tagged = entry(
            &[
                ("etag", "\"v1\""),
                ("last-modified", "Tue, 01 Dec 2026 00:00:00 GMT"),
            ],
            "x",
        );
        let mut request = HeaderMap::new();
        add_validators(&mut request, &tagged);
        assert_eq!(request["if-none-match"], "\"v1\"");
        assert!(request.contains_key("if-modified-since"));
        assert!(stale_may_replace(StatusCode::BAD_GATEWAY));
        assert!(!stale_may_replace(StatusCode::NOT_FOUND));
    }
}
