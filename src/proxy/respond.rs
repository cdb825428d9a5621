//! Responses the proxy builds itself: a hit from a stored entry, and the
//! short plain-text error answers.

use std::time::SystemTime;

use http::header::{AGE, CACHE_CONTROL, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use super::body::ProxyBody;
use crate::cache::CachedResponse;
use crate::error::Error;

/// The `Content-Length` the origin announced, if any.
pub(super) fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

pub(super) fn hit_response(
    entry: &CachedResponse,
    head: bool,
    now: SystemTime,
) -> Response<ProxyBody> {
    let body = if head {
        ProxyBody::Empty
    } else {
        ProxyBody::full(entry.body.clone())
    };
    let mut response = Response::new(body);
    *response.status_mut() = entry.status;
    *response.headers_mut() = entry.headers.clone();
    response
        .headers_mut()
        .insert(AGE, HeaderValue::from(entry.age(now).as_secs()));
    response
}

/// A short plain-text answer; the cause goes to the log, not the client.
pub(super) fn error_response(err: &Error) -> Response<ProxyBody> {
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
    if status == StatusCode::BAD_REQUEST {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
