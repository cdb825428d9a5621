//! Client request checks: the authority a request is keyed and forwarded
//! by, and its path. Malformed requests are refused here with 400.

use http::{Request, Version};

use super::RequestLimits;
use http::header::HOST;
use http::uri::Authority;

use crate::error::RequestError;

/// The request's authority, normalized: host lower-cased, the listener's
/// default port dropped. Taken from the request URI (HTTP/2 `:authority`,
/// HTTP/1.1 absolute form) or else the one `Host` header.
pub fn authority<B>(request: &Request<B>, default_port: u16) -> Result<String, RequestError> {
    let mut hosts = request.headers().get_all(HOST).iter();
    let host_header = hosts.next();
    if hosts.next().is_some() {
        return Err(RequestError::BadRequest("more than one Host header"));
    }
    let authority = match (request.uri().authority(), host_header) {
        (Some(authority), _) => authority.clone(),
        (None, Some(value)) => {
            if let Some(normalized) = plain_host(value.as_bytes(), default_port) {
                return Ok(normalized);
            }
            Authority::try_from(value.as_bytes())
                .map_err(|_| RequestError::BadRequest("invalid Host header"))?
        }
        (None, None) => return Err(RequestError::BadRequest("missing Host header")),
    };
    normalize(&authority, default_port)
}

/// The common `Host` without parsing it as an authority: a lower-case name
/// or IPv4 address and maybe a numeric port, normalized as [`normalize`]
/// would. `None` for anything else (upper case, IPv6, credentials, odd
/// ports), which takes the full path.
fn plain_host(value: &[u8], default_port: u16) -> Option<String> {
    let (host, port) = match value.iter().position(|b| *b == b':') {
        Some(colon) => (&value[..colon], Some(&value[colon + 1..])),
        None => (value, None),
    };
    let plain = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-');
    if host.is_empty() || !host.iter().all(plain) {
        return None;
    }
    let port = match port {
        None => None,
        Some(digits)
            if (1..=5).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit) =>
        {
            Some(std::str::from_utf8(digits).ok()?.parse::<u16>().ok()?)
        }
        Some(_) => return None,
    };
    let mut normalized = String::with_capacity(value.len());
    normalized.push_str(std::str::from_utf8(host).ok()?);
    if let Some(port) = port.filter(|port| *port != default_port) {
        normalized.push(':');
        normalized.push_str(itoa::Buffer::new().format(port));
    }
    Some(normalized)
}

/// `host[:port]` as cache keys spell it: host lower-cased, `default_port`
/// dropped. Also used to match purge URLs and `Location` targets.
pub fn normalize(authority: &Authority, default_port: u16) -> Result<String, RequestError> {
    if authority.as_str().contains('@') {
        return Err(RequestError::BadRequest("credentials in Host"));
    }
    let host = authority.host();
    if host.is_empty() {
        return Err(RequestError::BadRequest("empty Host"));
    }
    let mut normalized = String::with_capacity(host.len() + 6);
    normalized.push_str(host);
    normalized.make_ascii_lowercase();
    match authority.port() {
        Some(port) if port.as_u16() == default_port => {}
        Some(port) => {
            normalized.push(':');
            normalized.push_str(itoa::Buffer::new().format(port.as_u16()));
        }
        // A colon after the host (past an IPv6 literal's brackets) with no
        // port that parses: empty, or above 65535.
        None if authority.as_str()[host.len()..].contains(':') => {
            return Err(RequestError::BadRequest("invalid port in Host"));
        }
        None => {}
    }
    Ok(normalized)
}

/// Checks what hyper's parser does not bound by itself: the target's
/// length (414), and for HTTP/2 the number of fields (431; HTTP/1.1's are
/// capped where they are parsed).
pub fn within_limits<B>(request: &Request<B>, limits: &RequestLimits) -> Result<(), RequestError> {
    let uri = request.uri();
    let target = uri.path_and_query().map_or(0, |pq| pq.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len());
    if target > limits.max_uri_bytes {
        return Err(RequestError::UriTooLong(limits.max_uri_bytes));
    }
    if request.version() == Version::HTTP_2 && request.headers().len() > limits.max_headers {
        return Err(RequestError::HeadersTooLarge("too many header fields"));
    }
    Ok(())
}

/// The path and raw query the client asked for (`/` if none).
pub fn path_and_query<B>(request: &Request<B>) -> &str {
    request
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_hosts(hosts: &[&str]) -> Request<()> {
        let mut builder = Request::builder().uri("/p");
        for host in hosts {
            builder = builder.header(HOST, *host);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn host_is_normalized() {
        assert_eq!(
            authority(&with_hosts(&["Example.COM"]), 80).unwrap(),
            "example.com"
        );
        assert_eq!(
            authority(&with_hosts(&["example.com:80"]), 80).unwrap(),
            "example.com"
        );
        assert_eq!(
            authority(&with_hosts(&["example.com:8080"]), 80).unwrap(),
            "example.com:8080"
        );
        assert_eq!(
            authority(&with_hosts(&["[::1]:3000"]), 80).unwrap(),
            "[::1]:3000"
        );
    }

    /// What the full path (parse as an authority, then normalize) makes of
    /// a Host value.
    fn parsed(value: &str, default_port: u16) -> Option<String> {
        let authority = Authority::try_from(value.as_bytes()).ok()?;
        normalize(&authority, default_port).ok()
    }

    #[test]
    fn plain_hosts_skip_parsing_and_agree_with_it() {
        for value in [
            "example.com",
            "example.com:80",
            "example.com:080",
            "example.com:8080",
            "127.0.0.1:18201",
            "a-b.c",
            "x.",
        ] {
            let fast = plain_host(value.as_bytes(), 80);
            assert!(fast.is_some(), "{value}");
            assert_eq!(fast, parsed(value, 80), "{value}");
        }
        for value in [
            "Example.com",
            "[::1]:80",
            "u@h",
            "h:",
            "h:99999",
            "h:+1",
            "",
            ":80",
            "a b",
        ] {
            assert_eq!(plain_host(value.as_bytes(), 80), None, "{value}");
        }
    }

    proptest::proptest! {
        #[test]
        fn plain_hosts_never_disagree_with_the_parser(
            value in "[a-zA-Z0-9.:@\\[\\]-]{0,12}",
            default_port in proptest::prop_oneof![proptest::strategy::Just(80u16), proptest::strategy::Just(443u16), 0u16..]
        ) {
            if let Some(fast) = plain_host(value.as_bytes(), default_port) {
                proptest::prop_assert_eq!(Some(fast), parsed(&value, default_port));
            }
        }
    }

    #[test]
    fn absolute_form_wins_over_host() {
        let req = Request::builder()
            .uri("http://Origin.test/p")
            .header(HOST, "other")
            .body(())
            .unwrap();
        assert_eq!(authority(&req, 80).unwrap(), "origin.test");
    }

    #[test]
    fn bad_hosts_are_refused() {
        for hosts in [
            &[][..],
            &["a", "b"],
            &["a b"],
            &["user@h"],
            &[""],
            &["h:"],
            &["h:65536"],
            &["h:99999"],
            &["[::1]:70000"],
        ] {
            let err = authority(&with_hosts(hosts), 80).unwrap_err();
            assert_eq!(
                err.status(),
                http::StatusCode::BAD_REQUEST,
                "Host {hosts:?}"
            );
        }
    }
}
