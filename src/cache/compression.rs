//! When the proxy may compress a response for storing, and in which coding
//! (pure, from the heads): a compressible type (what nginx's `gzip_types`
//! and Varnish compress: text, JSON, JavaScript, XML, SVG, wasm) the origin
//! sent without a content coding, not marked `no-transform`, not partial,
//! not one of the variants of an origin that negotiates codings itself
//! (`Vary: Accept-Encoding`), and not known to be smaller than the minimum. The coding is the best
//! compressed one the request takes, gzip when it takes none (every client
//! that asks for compression at all takes gzip).

use http::header::{ACCEPT_ENCODING, CONTENT_RANGE, CONTENT_TYPE};
use http::{HeaderMap, StatusCode};

use super::control::CacheControl;
use super::negotiate::{Accepted, Coding};
use super::revalidation::declared_length;
use super::vary::Vary;

/// What [`plan`] needs.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// The client's request headers.
    pub request: &'a HeaderMap,
    /// The origin's status.
    pub status: StatusCode,
    /// The origin's response headers.
    pub response: &'a HeaderMap,
    /// The response's `Vary`, as the storage decision read it.
    pub vary: &'a Vary,
    /// Smaller bodies are stored as they came.
    pub min_size: u64,
}

/// The coding to store the response in, or `None` to store it as it came.
pub fn plan(candidate: &Candidate<'_>) -> Option<Coding> {
    let response = candidate.response;
    if matches!(
        candidate.status,
        StatusCode::NO_CONTENT | StatusCode::PARTIAL_CONTENT | StatusCode::NOT_MODIFIED
    ) || response.contains_key(CONTENT_RANGE)
        || Coding::of_content_encoding(response) != Some(Coding::Identity)
        || !compressible(response)
        || CacheControl::from_headers(response).no_transform
        || matches!(candidate.vary, Vary::Fields(names) if names.contains(&ACCEPT_ENCODING))
        || declared_length(response).is_some_and(|len| len < candidate.min_size)
    {
        return None;
    }
    Some(
        Accepted::of(candidate.request)
            .preferred_compressed()
            .unwrap_or(Coding::Gzip),
    )
}

/// Whether the `Content-Type` is one that compresses well.
pub fn compressible(response: &HeaderMap) -> bool {
    let Some(value) = response.get(CONTENT_TYPE) else {
        return false;
    };
    let media = value
        .as_bytes()
        .split(|b| *b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    let Some(slash) = media.iter().position(|b| *b == b'/') else {
        return false;
    };
    let (kind, subtype) = (&media[..slash], &media[slash + 1..]);
    let is = |a: &[u8], b: &[u8]| a.eq_ignore_ascii_case(b);
    let ends = |suffix: &[u8]| {
        subtype.len() > suffix.len() && is(&subtype[subtype.len() - suffix.len()..], suffix)
    };
    if is(kind, b"text") {
        // A stream of events is read as it comes; compressing would hold it.
        !is(subtype, b"event-stream")
    } else if is(kind, b"application") {
        [
            &b"json"[..],
            b"javascript",
            b"x-javascript",
            b"ecmascript",
            b"xml",
            b"wasm",
        ]
        .iter()
        .any(|known| is(subtype, known))
            || ends(b"+json")
            || ends(b"+xml")
    } else {
        is(kind, b"image") && is(subtype, b"svg+xml")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use http::header::{CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, VARY};

    fn heads(pairs: &[(http::HeaderName, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(name.clone(), HeaderValue::from_static(value));
        }
        h
    }

    fn plan_for(request: &HeaderMap, status: u16, response: &HeaderMap) -> Option<Coding> {
        plan(&Candidate {
            request,
            status: StatusCode::from_u16(status).unwrap(),
            response,
            vary: &Vary::from_response(response),
            min_size: 1024,
        })
    }

    #[test]
    fn types() {
        for yes in [
            "text/html; charset=utf-8",
            "text/css",
            "application/json",
            "application/ld+json",
            "application/javascript",
            "application/rss+xml",
            "image/svg+xml",
            "application/wasm",
            "TEXT/PLAIN",
        ] {
            assert!(compressible(&heads(&[(CONTENT_TYPE, yes)])), "{yes}");
        }
        for no in [
            "image/png",
            "video/mp4",
            "application/octet-stream",
            "text/event-stream",
            "html",
            "",
        ] {
            assert!(!compressible(&heads(&[(CONTENT_TYPE, no)])), "{no}");
        }
        assert!(!compressible(&HeaderMap::new()));
    }

    #[test]
    fn coding_follows_the_request() {
        let html = heads(&[(CONTENT_TYPE, "text/html")]);
        let br = heads(&[(ACCEPT_ENCODING, "gzip, deflate, br, zstd")]);
        assert_eq!(plan_for(&br, 200, &html), Some(Coding::Brotli));
        let zstd = heads(&[(ACCEPT_ENCODING, "zstd, gzip;q=0.5")]);
        assert_eq!(plan_for(&zstd, 200, &html), Some(Coding::Zstd));
        assert_eq!(plan_for(&HeaderMap::new(), 200, &html), Some(Coding::Gzip));
        assert_eq!(plan_for(&HeaderMap::new(), 404, &html), Some(Coding::Gzip));
    }

    #[test]
    fn never_transformed() {
        let none = HeaderMap::new();
        for response in [
            heads(&[(CONTENT_TYPE, "text/html"), (CONTENT_ENCODING, "gzip")]),
            heads(&[
                (CONTENT_TYPE, "text/html"),
                (CACHE_CONTROL, "max-age=60, no-transform"),
            ]),
            heads(&[(CONTENT_TYPE, "text/html"), (CONTENT_RANGE, "bytes 0-1/10")]),
            heads(&[(CONTENT_TYPE, "text/html"), (CONTENT_LENGTH, "1023")]),
            heads(&[(CONTENT_TYPE, "image/png")]),
            heads(&[
                (CONTENT_TYPE, "text/html"),
                (VARY, "Cookie, accept-encoding"),
            ]),
        ] {
            assert_eq!(plan_for(&none, 200, &response), None, "{response:?}");
        }
        let html = heads(&[(CONTENT_TYPE, "text/html")]);
        assert_eq!(plan_for(&none, 206, &html), None);
        assert_eq!(plan_for(&none, 204, &html), None);
        let long = heads(&[(CONTENT_TYPE, "text/html"), (CONTENT_LENGTH, "1024")]);
        assert_eq!(plan_for(&none, 200, &long), Some(Coding::Gzip));
    }
}
