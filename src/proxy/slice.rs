//! Slice mode (nginx's `slice`): on a route that slices, a GET is answered
//! from aligned slices of the object, each asked of the origin with its
//! own range and stored under its own key ([`CacheKey::slice`]). A large
//! object is cached piece by piece as it is read, and a later request
//! fetches only the slices not stored yet.
//!
//! The first slice the request needs comes first: its `Content-Range`
//! gives the object's length and its validators, which every later slice
//! must match (else the body is broken off, as nginx does: a client never
//! gets bytes of two versions joined). The rest are read, from the cache
//! or the origin, by a task that feeds the body one chunk ahead of the
//! client.

use std::ops::Range;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_RANGE, ETAG, IF_RANGE, LAST_MODIFIED, RANGE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Either, Empty};
use tokio::sync::mpsc;

use super::assembled::FedBody;
use super::body::ProxyBody;
use super::cache_status::Fwd;
use super::exchange::{Exchange, Served};
use super::fetch::{self, RangeAsk};
use crate::cache::CacheKey;
use crate::cache::conditional::if_range_allows;
use crate::cache::control::CacheControl;
use crate::cache::partial::{self, Piece};
use crate::error::RequestError;
use crate::upstream::body::BodyError;

/// What one sliced request needs: the client's request, the object's key
/// and the slice size.
struct Slicing {
    exchange: Exchange,
    request: http::request::Parts,
    primary: CacheKey,
    directives: CacheControl,
    size: u64,
}

/// Answers a GET on a route that slices in `size` bytes.
pub(super) async fn serve(
    exchange: Exchange,
    request: Request<crate::upstream::UpstreamBody>,
    primary: CacheKey,
    directives: CacheControl,
    size: u64,
) -> Result<Served, RequestError> {
    let (request, _) = request.into_parts();
    let slicing = Slicing {
        exchange,
        request,
        primary,
        directives,
        size,
    };
    let first_index = first_byte(&slicing.request.headers).map_or(0, |at| at / size);
    let first = slicing.fetch(first_index).await?;
    let Some(piece) = slicing.slice_of(&first, first_index) else {
        // Not a slice (an error, a 416, or the whole object from an origin
        // that ignores ranges): the client gets it as it is.
        return Ok(first);
    };
    let Served { response, cache } = first;
    let (mut parts, body) = response.into_parts();
    let (status, wanted) = match wanted(&slicing.request.headers, &parts.headers, piece.complete) {
        Some(Some(bytes)) => (StatusCode::PARTIAL_CONTENT, bytes),
        Some(None) => {
            drain(body);
            return Ok(Served {
                response: unsatisfiable(parts.headers, piece.complete),
                cache,
            });
        }
        None => (StatusCode::OK, 0..piece.complete),
    };
    parts.status = status;
    parts.headers.remove(CONTENT_RANGE);
    if status == StatusCode::PARTIAL_CONTENT {
        let sent = Piece {
            start: wanted.start,
            end: wanted.end,
            complete: piece.complete,
        };
        if let Ok(value) = HeaderValue::from_str(&sent.content_range()) {
            parts.headers.insert(CONTENT_RANGE, value);
        }
    }
    parts
        .headers
        .insert(CONTENT_LENGTH, HeaderValue::from(wanted.end - wanted.start));
    let (sender, fed) = FedBody::channel(wanted.end - wanted.start);
    let validators = Validators::of(&parts.headers, piece.complete);
    let first = if first_index == wanted.start / size {
        Some(body)
    } else {
        drain(body); // read for the length: a suffix range starts later
        None
    };
    tokio::spawn(slicing.feed(first, validators, wanted, sender));
    Ok(Served {
        response: Response::from_parts(parts, ProxyBody::Fed(Box::new(fed))),
        cache,
    })
}

impl Slicing {
    /// Slice `index`, from the cache or the origin (coalesced, and stored
    /// as it streams, like any fill).
    async fn fetch(&self, index: u64) -> Result<Served, RequestError> {
        let start = index.saturating_mul(self.size);
        let range = partial::range_value(&(start..start.saturating_add(self.size)));
        let mut request = Request::new(Either::Right(Empty::new()));
        *request.uri_mut() = self.request.uri.clone();
        *request.version_mut() = self.request.version;
        *request.headers_mut() = self.request.headers.clone();
        request.headers_mut().remove(IF_RANGE);
        if let Ok(value) = HeaderValue::from_str(&range) {
            request.headers_mut().insert(RANGE, value);
        }
        let key = CacheKey::slice(&self.primary, index);
        let fwd = Fwd::UriMiss;
        fetch::fetch(
            &self.exchange,
            request,
            key,
            None,
            fwd,
            &self.directives,
            RangeAsk::Client,
        )
        .await
    }

    /// The piece `served` is, if it is slice `index` exactly.
    fn slice_of(&self, served: &Served, index: u64) -> Option<Piece> {
        if served.response.status() != StatusCode::PARTIAL_CONTENT {
            return None;
        }
        let piece = Piece::of_headers(served.response.headers())?;
        let start = index.checked_mul(self.size)?;
        let end = start.saturating_add(self.size).min(piece.complete);
        (piece.start == start && piece.end == end).then_some(piece)
    }

    /// Sends `wanted` to the client, slice after slice, starting with
    /// `first` when it is the first slice needed.
    async fn feed(
        self,
        first: Option<ProxyBody>,
        validators: Validators,
        wanted: Range<u64>,
        sender: mpsc::Sender<Result<Bytes, BodyError>>,
    ) {
        let mut first = first;
        let (from, to) = (wanted.start / self.size, (wanted.end - 1) / self.size);
        for index in from..=to {
            let body = match first.take() {
                Some(body) => body,
                None => match self.fetch(index).await {
                    Ok(served) if self.matches(&served, index, &validators) => {
                        served.response.into_body()
                    }
                    Ok(served) => {
                        drain(served.response.into_body());
                        let _ = sender.send(Err(BodyError::Slice("another version"))).await;
                        return;
                    }
                    Err(err) => {
                        tracing::warn!(error = %err.chain(), "fetching a slice failed");
                        let _ = sender.send(Err(BodyError::Slice("origin failed"))).await;
                        return;
                    }
                },
            };
            let at = index * self.size;
            let slice = at..at.saturating_add(self.size).min(validators.complete);
            if !copy(body, slice, &wanted, &sender).await {
                return; // the client left, or the slice was cut short
            }
        }
    }

    /// Whether `served` is slice `index` of the same version.
    fn matches(&self, served: &Served, index: u64, validators: &Validators) -> bool {
        self.slice_of(served, index).is_some_and(|piece| {
            Validators::of(served.response.headers(), piece.complete) == *validators
        })
    }
}

/// What says two slices are of one version: the complete length and the
/// validators.
#[derive(Debug, PartialEq, Eq)]
struct Validators {
    complete: u64,
    etag: Option<HeaderValue>,
    last_modified: Option<HeaderValue>,
}

impl Validators {
    fn of(headers: &HeaderMap, complete: u64) -> Self {
        Validators {
            complete,
            etag: headers.get(ETAG).cloned(),
            last_modified: headers.get(LAST_MODIFIED).cloned(),
        }
    }
}

/// Sends the part of `body` (the bytes of `slice`) inside `wanted`; reads
/// the body to its end either way, so that a slice is stored whole.
/// `false` when the client is gone, or the body failed or was not all of
/// `slice` (the bytes after it would be sent in the wrong place).
async fn copy(
    mut body: ProxyBody,
    slice: Range<u64>,
    wanted: &Range<u64>,
    sender: &mpsc::Sender<Result<Bytes, BodyError>>,
) -> bool {
    let mut offset = slice.start;
    let mut client = true;
    while let Some(frame) = body.frame().await {
        let chunk = match frame {
            Ok(frame) => match frame.into_data() {
                Ok(chunk) => chunk,
                Err(_) => continue, // trailers
            },
            Err(err) => {
                let _ = sender.send(Err(err)).await;
                return false;
            }
        };
        let len = chunk.len() as u64;
        let (start, end) = (wanted.start.max(offset), wanted.end.min(offset + len));
        if client && start < end {
            let part = chunk.slice(to_usize(start - offset)..to_usize(end - offset));
            client = sender.send(Ok(part)).await.is_ok();
        }
        offset += len;
    }
    if offset != slice.end {
        let _ = sender
            .send(Err(BodyError::Slice("a slice of the wrong length")))
            .await;
        return false;
    }
    client
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Reads a slice's body to its end in the background (so it is stored).
fn drain(body: ProxyBody) {
    tokio::spawn(async move {
        let _ = body.collect().await;
    });
}

/// The first byte a `Range: bytes=first-...` asks for.
fn first_byte(request: &HeaderMap) -> Option<u64> {
    let spec = request
        .get(RANGE)?
        .to_str()
        .ok()?
        .trim()
        .strip_prefix("bytes=")?;
    let (first, _) = spec.split_once('-')?;
    (!spec.contains(',')).then_some(())?;
    first.trim().parse().ok()
}

/// The range the client gets of an object of `complete` bytes: `None` for
/// the whole (no range, several, or an `If-Range` that does not hold),
/// `Some(None)` when it cannot be satisfied.
fn wanted(request: &HeaderMap, response: &HeaderMap, complete: u64) -> Option<Option<Range<u64>>> {
    if !if_range_allows(request, response) {
        return None;
    }
    partial::requested(request, complete)
}

/// 416 for a range past the end of the object.
fn unsatisfiable(mut headers: HeaderMap, complete: u64) -> Response<ProxyBody> {
    if let Ok(value) = HeaderValue::from_str(&format!("bytes */{complete}")) {
        headers.insert(CONTENT_RANGE, value);
    }
    headers.insert(CONTENT_LENGTH, HeaderValue::from(0));
    let mut response = Response::new(ProxyBody::Empty);
    *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
    *response.headers_mut() = headers;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranged(value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RANGE, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn the_first_slice_is_the_one_the_range_starts_in() {
        assert_eq!(first_byte(&ranged("bytes=2500000-")), Some(2_500_000));
        assert_eq!(first_byte(&ranged("bytes=10-20")), Some(10));
        assert_eq!(
            first_byte(&ranged("bytes=-500")),
            None,
            "a suffix needs the length"
        );
        assert_eq!(first_byte(&ranged("bytes=0-1,5-6")), None);
        assert_eq!(first_byte(&HeaderMap::new()), None);
    }

    #[test]
    fn the_client_gets_its_range_or_the_whole() {
        let none = HeaderMap::new();
        assert_eq!(
            wanted(&ranged("bytes=-500"), &none, 1000),
            Some(Some(500..1000))
        );
        assert_eq!(wanted(&ranged("bytes=2000-"), &none, 1000), Some(None));
        assert_eq!(wanted(&none, &none, 1000), None);
        let mut stale_condition = ranged("bytes=0-1");
        stale_condition.insert(IF_RANGE, HeaderValue::from_static("\"old\""));
        let mut current = HeaderMap::new();
        current.insert(ETAG, HeaderValue::from_static("\"new\""));
        assert_eq!(wanted(&stale_condition, &current, 1000), None);
    }

    #[tokio::test]
    async fn only_the_wanted_bytes_of_a_slice_are_sent_and_all_are_read() {
        let (sender, mut chunks) = mpsc::channel(8);
        let ten = || ProxyBody::full(Bytes::from_static(b"0123456789"));
        assert!(copy(ten(), 100..110, &(103..105), &sender).await);
        assert_eq!(&chunks.recv().await.unwrap().unwrap()[..], b"34");
        assert!(copy(ten(), 100..110, &(200..300), &sender).await);
        assert!(
            !copy(ten(), 100..120, &(100..120), &sender).await,
            "a slice shorter than its range"
        );
        assert_eq!(chunks.recv().await.unwrap().unwrap().len(), 10);
        assert!(chunks.recv().await.unwrap().is_err());
        drop(sender);
        assert!(chunks.recv().await.is_none(), "nothing of a slice outside");
    }
}
