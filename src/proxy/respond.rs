//! Responses the proxy builds itself: answers from a stored entry (full,
//! 304 for a client's conditional request, 206 or 416 for a range), and
//! the short plain-text error answers.

use std::time::SystemTime;

use http::header::{
    AGE, CACHE_CONTROL, CONNECTION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_LOCATION,
    CONTENT_RANGE, CONTENT_TYPE, DATE, ETAG, EXPIRES, LAST_MODIFIED, RANGE, RETRY_AFTER, VARY,
};
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use super::body::ProxyBody;
use super::codec::RecodedBody;
use crate::cache::CachedResponse;
use crate::cache::conditional::{if_range_allows, not_modified};
use crate::cache::negotiate::{Accepted, Coding};
use crate::cache::partial::{self, Piece};
use crate::cache::range::{self, RangeAnswer};
use crate::error::RequestError;

/// Headers a 304 carries (RFC 9110 section 15.4.5).
const NOT_MODIFIED_HEADERS: [http::HeaderName; 6] =
    [CACHE_CONTROL, CONTENT_LOCATION, DATE, ETAG, EXPIRES, VARY];

/// Answers a GET or HEAD with `request` headers from `entry`: 304 when the
/// client's validators match, 206/416 for a single range of a stored 200,
/// the whole response otherwise. The body is shared, never copied.
pub(super) fn from_cache(
    entry: &CachedResponse,
    request: &HeaderMap,
    head: bool,
    now: SystemTime,
) -> Response<ProxyBody> {
    let age = HeaderValue::from(entry.age(now).as_secs());
    let mut headers = entry.headers.to_map();
    if entry.status == StatusCode::OK && not_modified(request, &headers) {
        let mut response = Response::new(ProxyBody::Empty);
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        let headers = response.headers_mut();
        for name in NOT_MODIFIED_HEADERS.iter().chain([&LAST_MODIFIED]) {
            for value in entry.headers.get_all(name) {
                headers.append(name.clone(), value.clone());
            }
        }
        headers.insert(AGE, age);
        return response;
    }
    headers.insert(AGE, age);
    if entry.status == StatusCode::PARTIAL_CONTENT {
        return from_piece(entry, headers, request, head);
    }
    if let Some(coding) = entry.decodable_coding() {
        let accepted = Accepted::of(request);
        if !accepted.takes(coding) {
            let to = accepted.preferred_compressed().unwrap_or(Coding::Identity);
            return decoded(entry, headers, coding, to, head);
        }
    }
    let len = entry.body.len();
    let (status, body) = match request.get(RANGE) {
        Some(range) if entry.status == StatusCode::OK && if_range_allows(request, &headers) => {
            match range::answer(range.as_bytes(), len) {
                RangeAnswer::Full => (entry.status, entry.body.clone()),
                RangeAnswer::Partial(bytes) => {
                    let content_range = format!("bytes {}-{}/{len}", bytes.start, bytes.end - 1);
                    if let Ok(value) = HeaderValue::from_str(&content_range) {
                        headers.insert(CONTENT_RANGE, value);
                    }
                    headers.insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
                    (StatusCode::PARTIAL_CONTENT, entry.body.slice(bytes))
                }
                RangeAnswer::Unsatisfiable => {
                    if let Ok(value) = HeaderValue::from_str(&format!("bytes */{len}")) {
                        headers.insert(CONTENT_RANGE, value);
                    }
                    headers.insert(CONTENT_LENGTH, HeaderValue::from(0));
                    (StatusCode::RANGE_NOT_SATISFIABLE, bytes::Bytes::new())
                }
            }
        }
        _ => (entry.status, entry.body.clone()),
    };
    stored_answer(status, headers, body, head)
}

/// A range from a stored piece (a 206): the bytes of it the client asks
/// for, or the piece as stored when it does not hold them (callers ask
/// [`partial::serves`] first; this is never worse than the origin's own
/// answer to that range).
fn from_piece(
    entry: &CachedResponse,
    mut headers: HeaderMap,
    request: &HeaderMap,
    head: bool,
) -> Response<ProxyBody> {
    let mut body = entry.body.clone();
    if let (Some(piece), Some(bytes)) = (Piece::of(entry), partial::answerable(entry, request)) {
        let sent = Piece {
            start: bytes.start,
            end: bytes.end,
            complete: piece.complete,
        };
        if let Ok(value) = HeaderValue::from_str(&sent.content_range()) {
            headers.insert(CONTENT_RANGE, value);
        }
        let offset = |at: u64| usize::try_from(at - piece.start).unwrap_or(usize::MAX);
        body = body.slice(offset(bytes.start)..offset(bytes.end));
        headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    stored_answer(StatusCode::PARTIAL_CONTENT, headers, body, head)
}

/// An answer of stored bytes (none for a HEAD).
fn stored_answer(
    status: StatusCode,
    headers: HeaderMap,
    body: bytes::Bytes,
    head: bool,
) -> Response<ProxyBody> {
    let body = if head {
        ProxyBody::Empty
    } else {
        ProxyBody::full(body)
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// The whole response, its body decoded from `coding` and encoded in `to`
/// as it is sent (for a client that does not take the coding it is stored
/// in; `to` is the best it takes, or identity): no `Content-Length` (not
/// known until encoded), a weak `ETag` (another representation), and no
/// ranges (a range of the decoded body would need decoding up to it; the
/// whole 200 is allowed).
fn decoded(
    entry: &CachedResponse,
    mut headers: HeaderMap,
    coding: Coding,
    to: Coding,
    head: bool,
) -> Response<ProxyBody> {
    match to {
        Coding::Identity => headers.remove(CONTENT_ENCODING),
        _ => headers.insert(CONTENT_ENCODING, HeaderValue::from_static(to.as_str())),
    };
    headers.remove(CONTENT_LENGTH);
    if let Some(weak) = headers.get(ETAG).and_then(super::headers::weakened) {
        headers.insert(ETAG, weak);
    }
    let body = if head {
        ProxyBody::Empty
    } else {
        ProxyBody::Recoded(Box::new(RecodedBody::new(coding, entry.body.clone(), to)))
    };
    let mut response = Response::new(body);
    *response.status_mut() = entry.status;
    *response.headers_mut() = headers;
    response
}

/// A short plain-text answer; the cause goes to the log, not the client.
pub(super) fn error_response(err: &RequestError) -> Response<ProxyBody> {
    let status = err.status();
    let text = format!(
        "{} {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    let mut response = Response::new(ProxyBody::full(text.into()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // After a malformed or oversized request, or a body left unread, the
    // connection's state is unknown: close it.
    if matches!(status.as_u16(), 400 | 408 | 414 | 431) {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    if let RequestError::OriginBusy(_) = err {
        // A server's connections free up within the origin's timeout.
        headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}
