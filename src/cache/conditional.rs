//! Clients' conditional requests answered from a stored response (RFC 9110
//! section 13): `If-None-Match` (weak comparison) takes precedence over
//! `If-Modified-Since`; `If-Range` needs a strong validator.

use http::header::{DATE, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, LAST_MODIFIED};
use http::{HeaderMap, HeaderValue};

use super::freshness::http_date;

/// Whether a GET/HEAD with these headers should get `304 Not Modified`
/// for a stored response with `stored` headers.
pub fn not_modified(request: &HeaderMap, stored: &HeaderMap) -> bool {
    let mut if_none_match = request.get_all(IF_NONE_MATCH).iter().peekable();
    if if_none_match.peek().is_some() {
        let Some(etag) = stored.get(ETAG) else {
            // "*" matches any current representation.
            return if_none_match.any(|v| v.as_bytes().trim_ascii() == b"*");
        };
        return if_none_match.any(|line| {
            list(line).any(|candidate| candidate == b"*" || weak_eq(candidate, etag.as_bytes()))
        });
    }
    let Some(since) = request
        .get(IF_MODIFIED_SINCE)
        .and_then(|v| http_date(v.as_bytes()))
    else {
        return false;
    };
    let modified = stored
        .get(LAST_MODIFIED)
        .or_else(|| stored.get(DATE))
        .and_then(|v| http_date(v.as_bytes()));
    modified.is_some_and(|modified| modified <= since)
}

/// Whether an `If-Range` (if any) allows answering a range from the stored
/// response: a strong ETag equal to the stored one, or a date equal to a
/// stored `Last-Modified`.
pub fn if_range_allows(request: &HeaderMap, stored: &HeaderMap) -> bool {
    let Some(condition) = request.get(IF_RANGE) else {
        return true;
    };
    let condition = condition.as_bytes().trim_ascii();
    if condition.starts_with(b"\"") {
        return stored
            .get(ETAG)
            .is_some_and(|etag| strong_eq(condition, etag.as_bytes()));
    }
    match (
        http_date(condition),
        stored
            .get(LAST_MODIFIED)
            .and_then(|v| http_date(v.as_bytes())),
    ) {
        (Some(date), Some(modified)) => date == modified,
        _ => false,
    }
}

/// The entity tags of one header line.
fn list(line: &HeaderValue) -> impl Iterator<Item = &[u8]> {
    line.as_bytes()
        .split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

fn opaque(tag: &[u8]) -> &[u8] {
    tag.strip_prefix(b"W/").unwrap_or(tag)
}

/// Weak comparison: the opaque tags match, weak or not.
fn weak_eq(a: &[u8], b: &[u8]) -> bool {
    opaque(a.trim_ascii()) == opaque(b.trim_ascii())
}

/// Strong comparison: both strong and equal.
fn strong_eq(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (a.trim_ascii(), b.trim_ascii());
    !a.starts_with(b"W/") && !b.starts_with(b"W/") && a == b
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderName;

    fn map(pairs: &[(HeaderName, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(n.clone(), HeaderValue::from_static(v));
        }
        h
    }

    const LM: &str = "Tue, 01 Sep 2026 10:00:00 GMT";
    const EARLIER: &str = "Tue, 01 Sep 2026 09:00:00 GMT";
    const LATER: &str = "Tue, 01 Sep 2026 11:00:00 GMT";

    #[test]
    fn if_none_match_table() {
        let stored = map(&[(ETAG, "\"abc\""), (LAST_MODIFIED, LM)]);
        let weak_stored = map(&[(ETAG, "W/\"abc\"")]);
        type Case<'a> = (&'a HeaderMap, &'a [(HeaderName, &'static str)], bool);
        let cases: &[Case] = &[
            (&stored, &[(IF_NONE_MATCH, "\"abc\"")], true),
            (&stored, &[(IF_NONE_MATCH, "W/\"abc\"")], true),
            (&weak_stored, &[(IF_NONE_MATCH, "\"abc\"")], true),
            (&stored, &[(IF_NONE_MATCH, "\"x\", \"abc\"")], true),
            (
                &stored,
                &[(IF_NONE_MATCH, "\"x\""), (IF_NONE_MATCH, "\"abc\"")],
                true,
            ),
            (&stored, &[(IF_NONE_MATCH, "\"x\"")], false),
            (&stored, &[(IF_NONE_MATCH, "*")], true),
            (&stored, &[(IF_NONE_MATCH, "\"ab\"")], false),
            // If-None-Match wins over If-Modified-Since.
            (
                &stored,
                &[(IF_NONE_MATCH, "\"x\""), (IF_MODIFIED_SINCE, LATER)],
                false,
            ),
            (&stored, &[(IF_MODIFIED_SINCE, LATER)], true),
            (&stored, &[(IF_MODIFIED_SINCE, LM)], true),
            (&stored, &[(IF_MODIFIED_SINCE, EARLIER)], false),
            (&stored, &[(IF_MODIFIED_SINCE, "not a date")], false),
            (&stored, &[], false),
        ];
        for (stored, request, expected) in cases {
            assert_eq!(
                not_modified(&map(request), stored),
                *expected,
                "{request:?} vs {stored:?}"
            );
        }
    }

    #[test]
    fn if_range_needs_a_strong_match() {
        let stored = map(&[(ETAG, "\"abc\""), (LAST_MODIFIED, LM)]);
        assert!(if_range_allows(&HeaderMap::new(), &stored));
        assert!(if_range_allows(&map(&[(IF_RANGE, "\"abc\"")]), &stored));
        assert!(!if_range_allows(&map(&[(IF_RANGE, "W/\"abc\"")]), &stored));
        assert!(!if_range_allows(&map(&[(IF_RANGE, "\"other\"")]), &stored));
        assert!(if_range_allows(&map(&[(IF_RANGE, LM)]), &stored));
        assert!(!if_range_allows(&map(&[(IF_RANGE, EARLIER)]), &stored));
    }
}
