//! Header rules for a proxy: hop-by-hop removal (RFC 9110 section 7.6.1),
//! forwarding headers towards the origin, `Via` and `X-Cache` towards the
//! client.

use http::header::{
    CONNECTION, HOST, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING,
    UPGRADE, VIA,
};
use http::{HeaderMap, HeaderName, HeaderValue, Version};

/// `X-Cache`: whether the body came from the cache.
pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");
/// `X-Cache: HIT`
pub const HIT: HeaderValue = HeaderValue::from_static("HIT");
/// `X-Cache: MISS`
pub const MISS: HeaderValue = HeaderValue::from_static("MISS");

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
/// Request headers some frameworks treat as the real URL: they would let a
/// client change a response without changing its cache key.
const URL_OVERRIDES: [HeaderName; 2] = [
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-rewrite-url"),
];

/// How many fixed hop-by-hop fields there are.
const HOP_BY_HOP_COUNT: usize = 9;

/// Hop-by-hop fields (RFC 9110 section 7.6.1, and the obsolete ones
/// still seen).
static HOP_BY_HOP: [HeaderName; HOP_BY_HOP_COUNT] = [
    CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
];

/// Removes hop-by-hop headers: the fixed list and every header named in
/// `Connection` (all of its lines). One pass over the names notes which of
/// the fixed list are present (usually none, or `Connection` alone), so
/// nothing is hashed or allocated for absent ones; the common `keep-alive`
/// option is in that list already, so it is not turned into a name again.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let mut present = [false; HOP_BY_HOP_COUNT];
    for name in headers.keys() {
        if let Some(index) = hop_by_hop_index(name) {
            present[index] = true;
        }
    }
    if !present.contains(&true) {
        return;
    }
    if present[0] {
        let named: Vec<HeaderName> = headers
            .get_all(CONNECTION)
            .iter()
            .flat_map(|value| value.as_bytes().split(|b| *b == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|option| !option.eq_ignore_ascii_case(b"keep-alive"))
            .filter_map(|name| HeaderName::from_bytes(name).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for (name, present) in HOP_BY_HOP.iter().zip(present) {
        if present {
            headers.remove(name);
        }
    }
}

/// `W/"tag"` for a strong `"tag"`; `None` when it is weak already.
pub fn weakened(etag: &HeaderValue) -> Option<HeaderValue> {
    let tag = etag.as_bytes();
    if tag.starts_with(b"W/") {
        return None;
    }
    HeaderValue::from_bytes(&[b"W/", tag].concat()).ok()
}

/// Adds `Accept-Encoding` to `Vary` unless it is named already (the
/// response's coding depends on the request's from now on).
pub fn add_vary_accept_encoding(headers: &mut HeaderMap) {
    let named = headers.get_all(http::header::VARY).iter().any(|value| {
        value.as_bytes().split(|b| *b == b',').any(|name| {
            let name = name.trim_ascii();
            name == b"*" || name.eq_ignore_ascii_case(b"accept-encoding")
        })
    });
    if !named {
        headers.append(
            http::header::VARY,
            http::HeaderValue::from_static("Accept-Encoding"),
        );
    }
}

/// Removes every field named in `names`, after one pass over the present
/// names has found any of them: usually none is there, and comparing names
/// costs less than hashing each absent one to probe for it.
pub fn remove_all(headers: &mut HeaderMap, names: &[HeaderName]) {
    if has_any(headers, names) {
        for name in names {
            headers.remove(name);
        }
    }
}

/// Whether any field named in `names` is present (one pass, no hashing).
pub fn has_any(headers: &HeaderMap, names: &[HeaderName]) -> bool {
    headers.keys().any(|name| names.contains(name))
}

/// Where `name` is in [`HOP_BY_HOP`] (names are lower case).
fn hop_by_hop_index(name: &HeaderName) -> Option<usize> {
    Some(match name.as_str() {
        "connection" => 0,
        "keep-alive" => 1,
        "proxy-connection" => 2,
        "proxy-authenticate" => 3,
        "proxy-authorization" => 4,
        "te" => 5,
        "trailer" => 6,
        "transfer-encoding" => 7,
        "upgrade" => 8,
        _ => return None,
    })
}

/// What the proxy tells the origin about the client.
#[derive(Debug, Clone, Copy)]
pub struct Forwarded<'a> {
    /// The client's IP, as a header value.
    pub client_ip: &'a HeaderValue,
    /// The scheme the client used to reach us.
    pub proto: &'static str,
    /// The normalized `Host` the request was keyed by.
    pub host: &'a str,
    /// The HTTP version the client spoke.
    pub version: Version,
}

/// Prepares a client's request headers for the origin: hop-by-hop headers
/// and `Host` go (the client sets `Host` from the origin URL), the
/// forwarding headers are added, URL-override headers are dropped.
pub fn forward_request_headers(headers: &mut HeaderMap, forwarded: &Forwarded<'_>) {
    remove_hop_by_hop(headers);
    headers.remove(HOST);
    remove_all(headers, &URL_OVERRIDES);
    let xff = match headers.get(X_FORWARDED_FOR) {
        Some(previous) => {
            let mut joined = Vec::with_capacity(previous.len() + 2 + forwarded.client_ip.len());
            joined.extend_from_slice(previous.as_bytes());
            joined.extend_from_slice(b", ");
            joined.extend_from_slice(forwarded.client_ip.as_bytes());
            HeaderValue::from_bytes(&joined).ok()
        }
        None => Some(forwarded.client_ip.clone()),
    };
    if let Some(value) = xff {
        headers.insert(X_FORWARDED_FOR, value);
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(forwarded.proto));
    // Always the keyed host, never a value the client chose.
    if let Ok(value) = HeaderValue::from_str(forwarded.host) {
        headers.insert(X_FORWARDED_HOST, value);
    }
    headers.append(VIA, via(forwarded.version));
}

/// Adds this proxy to a response's `Via` and sets `X-Cache`.
pub fn finish_response_headers(headers: &mut HeaderMap, version: Version, hit: bool) {
    headers.append(VIA, via(version));
    headers.insert(X_CACHE, if hit { HIT } else { MISS });
}

/// `Via` entry for a message received in `version` (static: no
/// formatting per response).
fn via(version: Version) -> HeaderValue {
    HeaderValue::from_static(match version {
        Version::HTTP_09 => "0.9 caching-proxy",
        Version::HTTP_10 => "1.0 caching-proxy",
        Version::HTTP_2 => "2 caching-proxy",
        Version::HTTP_3 => "3 caching-proxy",
        _ => "1.1 caching-proxy",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(HeaderName::from_static(n), HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn hop_by_hop_and_connection_listed_headers_go() {
        let mut h = map(&[
            ("connection", "x-secret, Keep-Alive"),
            ("connection", "x-other"),
            ("x-secret", "1"),
            ("x-other", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("te", "trailers"),
            ("proxy-authorization", "Basic x"),
            ("content-type", "text/plain"),
        ]);
        remove_hop_by_hop(&mut h);
        let left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["content-type"]);

        let mut h = map(&[("connection", "close"), ("close", "1"), ("server", "nginx")]);
        remove_hop_by_hop(&mut h);
        let left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["server"]);
    }

    #[test]
    fn remove_all_removes_every_line_of_the_named_fields_and_nothing_else() {
        let names = [
            HeaderName::from_static("surrogate-key"),
            http::header::IF_NONE_MATCH,
        ];
        let mut h = map(&[
            ("surrogate-key", "a"),
            ("surrogate-key", "b"),
            ("if-none-match", "\"x\""),
            ("server", "nginx"),
        ]);
        assert!(has_any(&h, &names));
        remove_all(&mut h, &names);
        let left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["server"]);
        assert!(!has_any(&h, &names));
        remove_all(&mut h, &names);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn every_fixed_hop_by_hop_name_is_found_where_it_is_listed() {
        for (index, name) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(hop_by_hop_index(name), Some(index), "{name}");
            let mut h = HeaderMap::new();
            h.insert(name, HeaderValue::from_static("x"));
            h.insert(http::header::ACCEPT, HeaderValue::from_static("*/*"));
            remove_hop_by_hop(&mut h);
            assert!(h.get(name).is_none(), "{name}");
            assert_eq!(h.len(), 1);
        }
        assert_eq!(hop_by_hop_index(&http::header::ACCEPT), None);
    }

    #[test]
    fn forwarding_headers_are_set_from_our_view() {
        let mut h = map(&[
            ("host", "evil.example"),
            ("x-forwarded-host", "evil.example"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-original-url", "/admin"),
            ("accept", "*/*"),
        ]);
        forward_request_headers(
            &mut h,
            &Forwarded {
                client_ip: &HeaderValue::from_static("127.0.0.1"),
                proto: "http",
                host: "example.com",
                version: Version::HTTP_11,
            },
        );
        assert!(h.get(HOST).is_none());
        assert!(h.get("x-original-url").is_none());
        assert_eq!(h.get("x-forwarded-host").unwrap(), "example.com");
        assert_eq!(h.get("x-forwarded-for").unwrap(), "10.0.0.1, 127.0.0.1");
        assert_eq!(h.get("x-forwarded-proto").unwrap(), "http");
        assert_eq!(h.get(VIA).unwrap(), "1.1 caching-proxy");
        assert_eq!(h.get("accept").unwrap(), "*/*");
    }

    #[test]
    fn response_gets_via_and_x_cache() {
        let mut h = map(&[("via", "1.1 upstream")]);
        finish_response_headers(&mut h, Version::HTTP_2, true);
        let via: Vec<_> = h.get_all(VIA).iter().collect();
        assert_eq!(via, ["1.1 upstream", "2 caching-proxy"]);
        assert_eq!(h.get(X_CACHE).unwrap(), "HIT");
    }
}
