//! The partial-content side of a fill (RFC 9111 sections 3.3 and 3.4):
//! which range the origin is asked for, and how a stored piece and the
//! origin's answer for the rest of it become the whole response.

use std::ops::Range;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_RANGE, IF_RANGE, RANGE};
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use http_body_util::{Either, Empty};

use super::super::exchange::Stored;
use crate::cache::partial::{self, Piece};
use crate::upstream::UpstreamBody;

/// What a fill asks the origin for.
#[derive(Clone)]
pub(in crate::proxy) enum RangeAsk {
    /// The whole response (a client's range is answered from it).
    Whole,
    /// The client's range, stored as a piece.
    Client,
    /// The rest of a stored piece (`Range`, with `If-Range` when the piece
    /// has a strong `ETag`), for a request that wants all of it.
    Rest(Stored, Range<u64>),
}

impl RangeAsk {
    /// What to ask for a request without a usable entry: the client's
    /// range, or the rest of `piece` (a stored piece that does not hold
    /// what is asked) when the request wants the whole and one range
    /// completes it.
    pub(in crate::proxy) fn for_request(request: &HeaderMap, piece: Option<Stored>) -> Self {
        if request.contains_key(RANGE) {
            return RangeAsk::Client;
        }
        let rest = piece.and_then(|stored| {
            let rest = Piece::of(&stored.1)?.rest()?;
            Some((stored, rest))
        });
        match rest {
            Some((stored, rest)) => RangeAsk::Rest(stored, rest),
            None => RangeAsk::Whole,
        }
    }
}

/// Adds what `ask` asks to the request for the origin (the cache's own
/// fetch has the client's `Range` removed); returns the request headers
/// the storage policy is to judge the answer by when they are not the
/// client's (a piece is stored only as the answer to a range).
pub(super) fn ask(
    ask: &RangeAsk,
    client: &HeaderMap,
    upstream: &mut HeaderMap,
) -> Option<HeaderMap> {
    match ask {
        RangeAsk::Whole => None,
        RangeAsk::Client => {
            for name in [RANGE, IF_RANGE] {
                if let Some(value) = client.get(&name) {
                    upstream.insert(name, value.clone());
                }
            }
            None
        }
        RangeAsk::Rest((_, piece), rest) => {
            // To the end is asked as `bytes=N-`, the usual spelling.
            let to_end = Piece::of(piece).is_some_and(|p| p.end < p.complete);
            let value = match to_end {
                true => format!("bytes={}-", rest.start),
                false => partial::range_value(rest),
            };
            let mut judged = client.clone();
            if let Ok(value) = HeaderValue::from_str(&value) {
                upstream.insert(RANGE, value.clone());
                judged.insert(RANGE, value);
            }
            let strong = piece
                .etag()
                .filter(|tag| !tag.as_bytes().starts_with(b"W/"));
            if let Some(tag) = strong {
                upstream.insert(IF_RANGE, tag);
            }
            Some(judged)
        }
    }
}

/// The same request without the range, for when the origin's answer to
/// the rest cannot complete the piece.
pub(super) fn whole_request(
    ask: &RangeAsk,
    sent: &Request<UpstreamBody>,
) -> Option<Request<UpstreamBody>> {
    let RangeAsk::Rest(..) = ask else {
        return None;
    };
    let mut request = Request::new(Either::Right(Empty::new()));
    *request.method_mut() = sent.method().clone();
    *request.uri_mut() = sent.uri().clone();
    *request.version_mut() = sent.version();
    *request.headers_mut() = sent.headers().clone();
    request.headers_mut().remove(RANGE);
    request.headers_mut().remove(IF_RANGE);
    Some(request)
}

/// How the origin answered a request for the rest of a piece.
pub(super) enum Rest {
    /// Not such a request, or answered with the whole (a 200).
    NotAsked,
    /// The rest of the same representation: the stored bytes that go
    /// before and after the origin's body to make the whole.
    Completes {
        before: Bytes,
        after: Bytes,
        complete: u64,
    },
    /// A 206 that is not the rest of it: ask again for the whole.
    Unusable,
}

/// Judges the origin's answer (`status`, `headers`) to `ask`.
pub(super) fn judge(ask: &RangeAsk, status: StatusCode, headers: &HeaderMap) -> Rest {
    let RangeAsk::Rest((_, stored), rest) = ask else {
        return Rest::NotAsked;
    };
    if status != StatusCode::PARTIAL_CONTENT {
        return Rest::NotAsked;
    }
    let (Some(piece), Some(answer)) = (Piece::of(stored), Piece::of_headers(headers)) else {
        return Rest::Unusable;
    };
    let same = partial::same_representation(&stored.headers, headers);
    if !same
        || answer.start != rest.start
        || answer.end != rest.end
        || answer.complete != piece.complete
    {
        return Rest::Unusable;
    }
    let body = stored.body.clone();
    let (before, after) = if piece.start == 0 {
        (body, Bytes::new())
    } else {
        (Bytes::new(), body)
    };
    Rest::Completes {
        before,
        after,
        complete: piece.complete,
    }
}

/// The client's headers for the whole response made from the rest.
pub(super) fn whole_headers(headers: &mut HeaderMap, complete: u64) {
    headers.remove(CONTENT_RANGE);
    headers.insert(CONTENT_LENGTH, HeaderValue::from(complete));
}
