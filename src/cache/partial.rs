//! Partial content (RFC 9111 sections 3.3 and 3.4): a stored 206 is a
//! piece, one range of a representation whose complete length is known.
//! A later range inside it is answered from it; pieces of one
//! representation (the same strong `ETag`) that touch are combined, into a
//! complete 200 once they cover it.

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, CONTENT_RANGE, ETAG, RANGE};
use http::{HeaderMap, HeaderValue, StatusCode};

use super::CachedResponse;
use super::headers::StoredHeaders;
use super::range::{self, RangeAnswer};

/// The bytes a 206 holds and the length of the whole representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// First byte held.
    pub start: u64,
    /// One past the last byte held.
    pub end: u64,
    /// The complete length.
    pub complete: u64,
}

impl Piece {
    /// A `Content-Range: bytes first-last/complete` value with a known
    /// complete length (`*` is refused: nothing to combine it into).
    pub fn parse(value: &[u8]) -> Option<Piece> {
        let text = std::str::from_utf8(value).ok()?.trim();
        let spec = text.strip_prefix("bytes ")?;
        let (range, complete) = spec.split_once('/')?;
        let (first, last) = range.split_once('-')?;
        let number = |s: &str| {
            let s = s.trim();
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<u64>().ok())
                .flatten()
        };
        let (first, last, complete) = (number(first)?, number(last)?, number(complete)?);
        (first <= last && last < complete).then_some(Piece {
            start: first,
            end: last + 1,
            complete,
        })
    }

    /// The piece a response's headers describe.
    pub fn of_headers(headers: &HeaderMap) -> Option<Piece> {
        Piece::parse(headers.get(CONTENT_RANGE)?.as_bytes())
    }

    /// The piece a stored 206 holds: its range, or as much of it as its
    /// body has from the first byte (a 206 cut short is an incomplete
    /// response, RFC 9111 section 3.3); `None` for an empty body or one
    /// longer than its range.
    pub fn of(entry: &CachedResponse) -> Option<Piece> {
        if entry.status != StatusCode::PARTIAL_CONTENT || entry.body.is_empty() {
            return None;
        }
        let mut piece = Piece::parse(entry.headers.get(CONTENT_RANGE)?.as_bytes())?;
        let held = entry.body.len() as u64;
        if held > piece.len() {
            return None;
        }
        piece.end = piece.start + held;
        Some(piece)
    }

    /// How many bytes it holds.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Whether it holds no byte (never, for a parsed piece).
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Whether it holds all of `bytes`.
    pub fn holds(&self, bytes: &Range<u64>) -> bool {
        self.start <= bytes.start && bytes.end <= self.end
    }

    /// Whether it is the whole representation.
    pub fn is_whole(&self) -> bool {
        self.start == 0 && self.end == self.complete
    }

    /// Its `Content-Range` value.
    pub fn content_range(&self) -> String {
        format!("bytes {}-{}/{}", self.start, self.end - 1, self.complete)
    }

    /// The `Range` that asks for what completes it, when that is one range
    /// (it starts at 0 or ends at the end).
    pub fn rest(&self) -> Option<Range<u64>> {
        if self.start == 0 && self.end < self.complete {
            Some(self.end..self.complete)
        } else if self.end == self.complete && self.start > 0 {
            Some(0..self.start)
        } else {
            None
        }
    }
}

/// A `Range` request value for `bytes`.
pub fn range_value(bytes: &Range<u64>) -> String {
    format!("bytes={}-{}", bytes.start, bytes.end.saturating_sub(1))
}

/// The single range `request` asks for within a representation of
/// `complete` bytes: `None` without a `Range` this cache interprets (or
/// with several ranges), `Some(None)` when it cannot be satisfied.
pub fn requested(request: &HeaderMap, complete: u64) -> Option<Option<Range<u64>>> {
    let value = request.get(RANGE)?;
    let len = usize::try_from(complete).ok()?;
    match range::answer(value.as_bytes(), len) {
        RangeAnswer::Full => None,
        RangeAnswer::Unsatisfiable => Some(None),
        RangeAnswer::Partial(bytes) => Some(Some(bytes.start as u64..bytes.end as u64)),
    }
}

/// The bytes of `entry` (a piece) that answer `request`, when the piece
/// holds all of the one range it asks for.
pub fn answerable(entry: &CachedResponse, request: &HeaderMap) -> Option<Range<u64>> {
    let piece = Piece::of(entry)?;
    let bytes = requested(request, piece.complete)??;
    piece.holds(&bytes).then_some(bytes)
}

/// Whether `entry` can answer `request`: a complete response always can
/// (it answers a range with 206 or the whole), a piece only a range it
/// holds.
pub fn serves(entry: &CachedResponse, request: &HeaderMap) -> bool {
    entry.status != StatusCode::PARTIAL_CONTENT || answerable(entry, request).is_some()
}

/// Whether two responses are the same representation for combining: the
/// same strong `ETag` (RFC 9111 section 3.4 asks for a strong validator).
pub fn same_representation(a: &StoredHeaders, b: &HeaderMap) -> bool {
    match (a.get(ETAG), b.get(ETAG)) {
        (Some(a), Some(b)) => !a.as_bytes().starts_with(b"W/") && a == b,
        _ => false,
    }
}

/// `stored` and `new` as one entry, when both are pieces of the same
/// representation that overlap or touch and together are at most `largest`
/// bytes: the new piece's headers and times (RFC 9111 section 3.4), a 200
/// when together they are the whole.
pub fn combine(
    stored: &CachedResponse,
    new: &CachedResponse,
    largest: u64,
) -> Option<CachedResponse> {
    let (old, fresh) = (Piece::of(stored)?, Piece::of(new)?);
    let span = old.end.max(fresh.end) - old.start.min(fresh.start);
    if span > largest
        || old.complete != fresh.complete
        || old.start > fresh.end
        || fresh.start > old.end
        || !same_representation(&stored.headers, &new.headers.to_map())
    {
        return None;
    }
    let whole = Piece {
        start: old.start.min(fresh.start),
        end: old.end.max(fresh.end),
        complete: fresh.complete,
    };
    let body = joined(whole, [(old, &stored.body), (fresh, &new.body)])?;
    let mut headers = new.headers.to_map();
    headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    let mut combined = new.clone();
    if whole.is_whole() {
        headers.remove(CONTENT_RANGE);
        combined.status = StatusCode::OK;
    } else {
        headers.insert(
            CONTENT_RANGE,
            HeaderValue::from_str(&whole.content_range()).ok()?,
        );
    }
    combined.body = body;
    Some(combined.with_headers(StoredHeaders::from_map(&headers)))
}

/// What to store for a new `piece` where `stored` is: the two combined
/// when they can be, else the piece; `None` for an unusable piece, or
/// when a complete response is stored there.
pub fn to_store(
    stored: Option<&CachedResponse>,
    piece: CachedResponse,
    largest: u64,
) -> Option<CachedResponse> {
    Piece::of(&piece)?;
    match stored {
        Some(old) if old.status != StatusCode::PARTIAL_CONTENT => None,
        Some(old) => Some(combine(old, &piece, largest).unwrap_or(piece)),
        None => Some(piece),
    }
}

/// The bytes of `whole` from pieces that cover it (later pieces win where
/// they overlap; the bytes are the same representation's).
fn joined(whole: Piece, pieces: [(Piece, &Bytes); 2]) -> Option<Bytes> {
    let len = usize::try_from(whole.len()).ok()?;
    let mut body = BytesMut::zeroed(len);
    for (piece, bytes) in pieces {
        let at = usize::try_from(piece.start - whole.start).ok()?;
        body.get_mut(at..at + bytes.len())?.copy_from_slice(bytes);
    }
    Some(body.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::ReuseRules;
    use crate::cache::vary::VaryValues;
    use std::time::{Duration, SystemTime};

    fn piece_entry(range: &str, body: &'static [u8], etag: Option<&'static str>) -> CachedResponse {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_RANGE, HeaderValue::from_str(range).unwrap());
        if let Some(tag) = etag {
            headers.insert(ETAG, HeaderValue::from_static(tag));
        }
        CachedResponse::new(
            StatusCode::PARTIAL_CONTENT,
            headers,
            Bytes::from_static(body),
            SystemTime::UNIX_EPOCH,
            Some(Duration::from_secs(60)),
            Duration::ZERO,
            VaryValues::default(),
            ReuseRules::default(),
        )
    }

    fn ranged(value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RANGE, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn content_ranges() {
        let p = Piece::parse(b"bytes 4-9/10").unwrap();
        assert_eq!((p.start, p.end, p.complete, p.len()), (4, 10, 10, 6));
        assert_eq!(p.content_range(), "bytes 4-9/10");
        for bad in [
            "bytes 4-9/*",
            "bytes */10",
            "bytes 5-4/10",
            "bytes 0-10/10",
            "items 0-1/2",
            "bytes a-b/c",
            "bytes 0-1",
            "bytes -1-2/5",
        ] {
            assert_eq!(Piece::parse(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn what_completes_a_piece() {
        let prefix = Piece::parse(b"bytes 0-4/10").unwrap();
        assert_eq!(prefix.rest(), Some(5..10));
        assert_eq!(range_value(&(5..10)), "bytes=5-9");
        let suffix = Piece::parse(b"bytes 4-9/10").unwrap();
        assert_eq!(suffix.rest(), Some(0..4));
        assert_eq!(Piece::parse(b"bytes 2-3/10").unwrap().rest(), None);
        assert_eq!(Piece::parse(b"bytes 0-9/10").unwrap().rest(), None);
    }

    #[test]
    fn a_piece_answers_the_ranges_it_holds() {
        let entry = piece_entry("bytes 4-9/10", b"456789", None);
        assert_eq!(answerable(&entry, &ranged("bytes=-5")), Some(5..10));
        assert_eq!(answerable(&entry, &ranged("bytes=6-8")), Some(6..9));
        assert_eq!(answerable(&entry, &ranged("bytes=6-")), Some(6..10));
        assert_eq!(answerable(&entry, &ranged("bytes=0-5")), None);
        assert_eq!(answerable(&entry, &ranged("bytes=20-")), None);
        assert!(!serves(&entry, &HeaderMap::new()), "a full GET needs more");
        assert!(serves(&entry, &ranged("bytes=-1")));
        let short = piece_entry("bytes 4-9/10", b"45", None);
        assert_eq!(
            Piece::of(&short),
            Piece::parse(b"bytes 4-5/10"),
            "cut short"
        );
        assert_eq!(answerable(&short, &ranged("bytes=4-5")), Some(4..6));
        assert_eq!(answerable(&short, &ranged("bytes=4-6")), None);
        let long = piece_entry("bytes 4-5/10", b"456", None);
        assert_eq!(Piece::of(&long), None, "more than its range");
    }

    #[test]
    fn pieces_of_one_representation_combine() {
        let a = piece_entry("bytes 0-4/10", b"01234", Some("\"v1\""));
        let b = piece_entry("bytes 3-7/10", b"34567", Some("\"v1\""));
        let ab = combine(&a, &b, 100).unwrap();
        assert_eq!(ab.status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(&ab.body[..], b"01234567");
        assert_eq!(Piece::of(&ab), Piece::parse(b"bytes 0-7/10"));
        let c = piece_entry("bytes 8-9/10", b"89", Some("\"v1\""));
        let whole = combine(&ab, &c, 100).unwrap();
        assert_eq!(whole.status, StatusCode::OK);
        assert_eq!(&whole.body[..], b"0123456789");
        assert!(!whole.headers.contains(&CONTENT_RANGE));
        assert_eq!(whole.headers.get(CONTENT_LENGTH).unwrap(), "10");
    }

    #[test]
    fn pieces_that_may_differ_do_not_combine() {
        let a = piece_entry("bytes 0-4/10", b"01234", Some("\"v1\""));
        let other = piece_entry("bytes 5-9/10", b"56789", Some("\"v2\""));
        assert!(combine(&a, &other, 100).is_none(), "another ETag");
        let weak = piece_entry("bytes 5-9/10", b"56789", Some("W/\"v1\""));
        let weak_a = piece_entry("bytes 0-4/10", b"01234", Some("W/\"v1\""));
        assert!(combine(&weak_a, &weak, 100).is_none(), "weak tags");
        let untagged = piece_entry("bytes 5-9/10", b"56789", None);
        assert!(combine(&piece_entry("bytes 0-4/10", b"01234", None), &untagged, 100).is_none());
        let gap = piece_entry("bytes 6-9/10", b"6789", Some("\"v1\""));
        assert!(combine(&a, &gap, 100).is_none(), "not touching");
        let longer = piece_entry("bytes 5-9/11", b"56789", Some("\"v1\""));
        assert!(combine(&a, &longer, 100).is_none(), "another length");
        let b = piece_entry("bytes 5-9/10", b"56789", Some("\"v1\""));
        assert!(combine(&a, &b, 9).is_none(), "larger than an entry may be");
        assert!(combine(&a, &b, 10).is_some());
    }
}
