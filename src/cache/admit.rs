//! The checks a stored response read from outside (the snapshot file, the
//! shared tier) must pass before it is served: the same a fresh origin
//! response passes. A stored form is only as trustworthy as whoever wrote
//! the file or the key.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH, TE, TRAILER, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::entry::{CachedResponse, ReuseRules};
use super::partial::Piece;
use super::vary::VaryValues;

/// Header fields an entry may have.
pub const MAX_FIELDS: usize = 500;

/// How far in the future a `stored_at` may lie (clocks differ a little
/// between hosts that share a volume or a Redis).
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// Fields that describe a message's framing or its hop, never a stored
/// representation: dropped (`Content-Length` is rebuilt from the body).
const FRAMING: [HeaderName; 8] = [
    CONNECTION,
    CONTENT_LENGTH,
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
];

/// A stored response's parts, parsed but not yet trusted.
#[derive(Debug)]
pub struct Parts {
    /// The status code as stored.
    pub status: u16,
    /// Header fields, in order.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The body.
    pub body: Bytes,
    /// When it was received from the origin.
    pub stored_at: SystemTime,
    /// When it stops being fresh (`None`: never).
    pub fresh_until: Option<SystemTime>,
    /// Its age when it was received.
    pub initial_age: Duration,
    /// The request values it was selected by.
    pub vary: Vec<(HeaderName, Option<HeaderValue>)>,
    /// How it may be reused.
    pub rules: ReuseRules,
    /// Its purge tags.
    pub tags: Vec<Box<str>>,
}

/// The entry, if its parts are what the proxy itself would have stored
/// now; else why not.
pub fn admit(
    parts: Parts,
    now: SystemTime,
    max_object_size: u64,
) -> Result<CachedResponse, &'static str> {
    let status = StatusCode::from_u16(parts.status).map_err(|_| "invalid status")?;
    if !(200..=599).contains(&parts.status) || status == StatusCode::NOT_MODIFIED {
        return Err("a status that is never stored");
    }
    if parts.headers.len() > MAX_FIELDS {
        return Err("too many header fields");
    }
    if parts.body.len() as u64 > max_object_size {
        return Err("body larger than the object limit");
    }
    if status == StatusCode::NO_CONTENT && !parts.body.is_empty() {
        return Err("a 204 with a body");
    }
    if parts.stored_at > now + CLOCK_SKEW {
        return Err("stored in the future");
    }
    let mut headers = HeaderMap::with_capacity(parts.headers.len());
    for (name, value) in parts.headers {
        if !FRAMING.contains(&name) {
            headers.append(name, value);
        }
    }
    let fresh_for = parts
        .fresh_until
        .map(|until| until.duration_since(parts.stored_at).unwrap_or_default());
    let entry = CachedResponse::new(
        status,
        headers,
        parts.body,
        parts.stored_at,
        fresh_for,
        parts.initial_age,
        VaryValues::from_pairs(parts.vary),
        parts.rules,
    )
    .with_tags(parts.tags);
    if status == StatusCode::PARTIAL_CONTENT && Piece::of(&entry).is_none() {
        return Err("a 206 whose body is not its Content-Range");
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(status: u16, body: &'static [u8]) -> Parts {
        Parts {
            status,
            headers: vec![
                (CONTENT_LENGTH, HeaderValue::from_static("999")),
                (
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain"),
                ),
            ],
            body: Bytes::from_static(body),
            stored_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1000),
            fresh_until: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1060)),
            initial_age: Duration::ZERO,
            vary: Vec::new(),
            rules: ReuseRules::default(),
            tags: Vec::new(),
        }
    }

    const NOW: SystemTime = SystemTime::UNIX_EPOCH;

    #[test]
    fn what_the_proxy_would_store_is_admitted_with_its_length_rebuilt() {
        let now = NOW + Duration::from_secs(1010);
        let entry = admit(parts(200, b"hello"), now, 1 << 20).unwrap();
        assert_eq!(entry.headers.to_map()["content-length"], "5");
        assert_eq!(entry.remaining(now), Some(Duration::from_secs(50)));
    }

    #[test]
    fn what_it_would_not_store_is_refused() {
        let now = NOW + Duration::from_secs(1010);
        for (status, body) in [(101, &b""[..]), (206, b"x"), (304, b""), (204, b"x")] {
            assert!(
                admit(parts(status, body), now, 1 << 20).is_err(),
                "{status}"
            );
        }
        assert!(admit(parts(200, b"too long"), now, 4).is_err());
        let mut piece = parts(206, b"234");
        piece.headers.push((
            http::header::CONTENT_RANGE,
            HeaderValue::from_static("bytes 2-4/10"),
        ));
        assert!(
            admit(piece, now, 1 << 20).is_ok(),
            "a piece of a known length"
        );
        let early = NOW + Duration::from_secs(10);
        assert_eq!(
            admit(parts(200, b"x"), early, 1 << 20).unwrap_err(),
            "stored in the future"
        );
    }
}
