//! Response bodies: a cached body (shared `Bytes`, never copied), an origin
//! stream passed through, or an origin stream teed into the cache.
//!
//! The tee forwards every frame to the client as it arrives and keeps a
//! reference to each chunk (a `Bytes` clone, no copy). Only a body that
//! ends cleanly within the size limit is stored; an origin error is passed
//! on to hyper, which closes the client connection early, so a truncated
//! response never looks complete and is never cached.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, ETAG};
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body::{Body, Frame, SizeHint};

use super::assembled::{FedBody, JoinedBody};
use super::codec::{self, RecodedBody};
use super::headers;
use super::stream_encoder::StreamEncoder;
use crate::cache::coalesce::FillGuard;
use crate::cache::negotiate::Coding;
use crate::cache::vary::VaryValues;
use crate::cache::{CacheKey, CachedResponse, ReuseRules, Store};
use crate::shared::log_id::LogId;
use crate::shared::{LeaseHold, SharedTier};
use crate::upstream::body::{BodyError, OriginBody};

/// Every response body the proxy sends.
#[derive(Debug)]
pub enum ProxyBody {
    /// No body (HEAD hits, errors without text).
    Empty,
    /// A complete body, sent in one frame.
    Full(Option<Bytes>),
    /// An origin body passed through (boxed: a hit's response, which hyper
    /// moves around, stays as small as it was).
    Stream(Box<OriginBody>),
    /// An origin body passed through and stored when complete.
    Tee(Box<TeeBody>),
    /// A stored compressed body, decoded as it is sent.
    Recoded(Box<RecodedBody>),
    /// A stored piece and the rest of it from the origin.
    Joined(Box<JoinedBody<ProxyBody>>),
    /// A sliced response, fed slice by slice.
    Fed(Box<FedBody>),
}

impl ProxyBody {
    /// A complete body.
    pub fn full(bytes: Bytes) -> Self {
        if bytes.is_empty() {
            ProxyBody::Empty
        } else {
            ProxyBody::Full(Some(bytes))
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            ProxyBody::Empty => Poll::Ready(None),
            ProxyBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            ProxyBody::Stream(origin) => Pin::new(origin.as_mut()).poll_frame(cx),
            ProxyBody::Tee(tee) => Pin::new(tee.as_mut()).poll_frame(cx),
            ProxyBody::Recoded(decoded) => Pin::new(decoded.as_mut()).poll_frame(cx),
            ProxyBody::Joined(joined) => Pin::new(joined.as_mut()).poll_frame(cx),
            ProxyBody::Fed(fed) => Pin::new(fed.as_mut()).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Empty => true,
            ProxyBody::Full(bytes) => bytes.is_none(),
            ProxyBody::Stream(incoming) => incoming.is_end_stream(),
            ProxyBody::Tee(tee) => tee.is_end_stream(),
            ProxyBody::Recoded(decoded) => decoded.is_end_stream(),
            ProxyBody::Joined(joined) => joined.is_end_stream(),
            ProxyBody::Fed(fed) => fed.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Empty => SizeHint::with_exact(0),
            ProxyBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            ProxyBody::Stream(incoming) => incoming.size_hint(),
            ProxyBody::Tee(tee) => tee.size_hint(),
            ProxyBody::Recoded(decoded) => decoded.size_hint(),
            ProxyBody::Joined(joined) => joined.size_hint(),
            ProxyBody::Fed(fed) => fed.size_hint(),
        }
    }
}

/// What is needed to store a response once its body is complete.
#[derive(Debug)]
pub struct Fill {
    /// Where to store it.
    pub store: Store,
    /// Under which primary key (the store adds the variant).
    pub primary: CacheKey,
    /// The origin's status.
    pub status: StatusCode,
    /// The end-to-end headers to store.
    pub headers: HeaderMap,
    /// When the response arrived.
    pub stored_at: SystemTime,
    /// Remaining freshness (`None`: forever).
    pub fresh_for: Option<Duration>,
    /// Age on arrival.
    pub initial_age: Duration,
    /// The request values it varies on.
    pub vary: VaryValues,
    /// How it may be reused once stale.
    pub rules: ReuseRules,
    /// Purge tags.
    pub tags: Vec<Box<str>>,
    /// Releases the coalesced followers when dropped (`None`: nobody waits).
    pub guard: Option<FillGuard>,
    /// [`Store::purge_count`] when the fetch started: a purge since then
    /// that matches keeps the response out.
    pub since: u64,
    /// Where the fleet's copy goes, with a shared tier.
    pub shared: Option<SharedFill>,
    /// The coding to store the body in, if it is to be compressed, and
    /// the smallest body worth it.
    pub compress: Option<(Coding, usize)>,
    /// The largest entry (pieces are combined up to it).
    pub max_object_size: u64,
}

/// The shared tier's part of a fill.
#[derive(Debug)]
pub struct SharedFill {
    /// The tier.
    pub tier: Arc<SharedTier>,
    /// The purge log position when the fetch started.
    pub since: LogId,
    /// The fleet's lease on the fetch, if this instance took it (dropped
    /// without a fill, it is released and the waiters woken).
    pub lease: Option<LeaseHold>,
}

/// An origin body forwarded to the client and collected for the cache,
/// compressed on the way when the client takes the coding it is stored in.
#[derive(Debug)]
pub struct TeeBody {
    inner: OriginBody,
    collected: BytesMut,
    limit: usize,
    fill: Option<Fill>,
    /// Encodes the body as it streams (until its last bytes are out).
    encoder: Option<(Coding, StreamEncoder)>,
}

impl TeeBody {
    /// Tees `inner` into `fill`, giving up on storing past `limit` bytes.
    /// `expected` is the length the origin announced: the buffer is made
    /// that size once.
    pub fn new(inner: OriginBody, limit: usize, fill: Fill, expected: Option<u64>) -> Self {
        let expected = expected
            .and_then(|len| usize::try_from(len).ok())
            .filter(|len| *len <= limit)
            .unwrap_or(0);
        let mut tee = TeeBody {
            inner,
            collected: BytesMut::with_capacity(expected),
            limit,
            fill: Some(fill),
            encoder: None,
        };
        // hyper never polls the body of a 204 (or of an empty one it knows
        // is done), so an empty body is stored now.
        if tee.inner.is_end_stream() {
            tee.complete();
        }
        tee
    }

    /// The same tee, sending and storing the body in `coding` as it
    /// streams (the response's headers must say so).
    pub fn encoding(mut self, coding: Coding, encoder: StreamEncoder) -> Self {
        if !self.inner.is_end_stream() {
            self.encoder = Some((coding, encoder));
        }
        self
    }

    /// Keeps encoded bytes for the cache.
    fn keep(&mut self, bytes: &[u8]) {
        if self.fill.is_some() {
            if self.collected.len() + bytes.len() > self.limit {
                self.give_up();
            } else {
                self.collected.extend_from_slice(bytes);
            }
        }
    }

    /// Polls while encoding: each origin chunk goes through the encoder,
    /// and what it has ready goes to the client and the cache.
    fn poll_encoded(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        loop {
            let Some((_, encoder)) = self.encoder.as_mut() else {
                return Poll::Ready(None);
            };
            let out = match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => encoder.push(&data),
                    Err(_) => continue, // trailers describe the body as it came
                },
                Poll::Ready(Some(Err(err))) => {
                    self.encoder = None;
                    self.give_up();
                    return Poll::Ready(Some(Err(err)));
                }
                Poll::Ready(None) => {
                    let Some((coding, encoder)) = self.encoder.take() else {
                        return Poll::Ready(None);
                    };
                    let tail = encoder.finish();
                    if let Ok(tail) = &tail {
                        self.keep(tail);
                        if let Some(mut fill) = self.fill.take() {
                            mark_compressed(&mut fill, coding);
                            store((fill, exact(std::mem::take(&mut self.collected))));
                        }
                    }
                    tail
                }
            };
            match out {
                Ok(out) if out.is_empty() => continue,
                Ok(out) => {
                    self.keep(&out);
                    return Poll::Ready(Some(Ok(Frame::data(out))));
                }
                Err(err) => {
                    self.encoder = None;
                    self.give_up();
                    return Poll::Ready(Some(Err(BodyError::Decode(err))));
                }
            }
        }
    }

    fn give_up(&mut self) {
        self.fill = None;
        self.collected = BytesMut::new();
    }

    fn complete(&mut self) {
        let Some(fill) = self.fill.take() else { return };
        let body = exact(std::mem::take(&mut self.collected));
        match fill.compress {
            Some((coding, min)) if body.len() >= min => {
                // Compressing is CPU work that grows with the body: never on
                // a runtime thread when there is a runtime to hand it to.
                match tokio::runtime::Handle::try_current() {
                    Ok(runtime) => {
                        runtime.spawn_blocking(move || store(compressed(fill, coding, body)));
                    }
                    Err(_) => store(compressed(fill, coding, body)),
                }
            }
            _ => store((fill, body)),
        }
    }
}

/// The fill and body in `coding`. As it came when compressing does not
/// make it smaller.
fn compressed(mut fill: Fill, coding: Coding, body: Bytes) -> (Fill, Bytes) {
    let encoded = match codec::encode(coding, &body) {
        Ok(Some(encoded)) if encoded.len() < body.len() => encoded,
        Ok(_) => return (fill, body),
        Err(err) => {
            tracing::warn!(error = %err, "compressing a response failed; stored as it came");
            return (fill, body);
        }
    };
    mark_compressed(&mut fill, coding);
    (fill, Bytes::from(encoded))
}

/// A fill's headers for a body stored in `coding` (the coding, `Vary:
/// Accept-Encoding`, a weak `ETag`): one entry now serves every client, so
/// it no longer varies on `Accept-Encoding` itself.
fn mark_compressed(fill: &mut Fill, coding: Coding) {
    let stored = &mut fill.headers;
    stored.insert(CONTENT_ENCODING, HeaderValue::from_static(coding.as_str()));
    headers::add_vary_accept_encoding(stored);
    if let Some(weak) = stored.get(ETAG).and_then(headers::weakened) {
        stored.insert(ETAG, weak);
    }
    fill.vary = std::mem::take(&mut fill.vary).without(&ACCEPT_ENCODING);
}

/// Stores a completed fill in this instance and, with a shared tier, the
/// fleet's.
fn store((fill, body): (Fill, Bytes)) {
    let entry = CachedResponse::new(
        fill.status,
        fill.headers,
        body,
        fill.stored_at,
        fill.fresh_for,
        fill.initial_age,
        fill.vary,
        fill.rules,
    )
    .with_tags(fill.tags);
    let Some((key, stored)) = fill.store.insert_fill(
        fill.since,
        fill.primary.clone(),
        entry,
        fill.max_object_size,
    ) else {
        return; // purged while it was fetched
    };
    if let Some(guard) = fill.guard {
        guard.stored();
    }
    if let Some(shared) = fill.shared {
        let SharedFill { tier, since, lease } = shared;
        tier.fill(fill.primary, key, stored, since, lease);
    }
}

impl Body for TeeBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if this.encoder.is_some() {
            return this.poll_encoded(cx);
        }
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if this.fill.is_some() {
                        if this.collected.len() + data.len() > this.limit {
                            this.give_up();
                        } else {
                            // Copied now, not kept as a slice: a chunk from
                            // hyper shares its read buffer, which would stay
                            // allocated as long as the chunk does.
                            this.collected.extend_from_slice(data);
                            // hyper stops polling once a Content-Length body
                            // is written, so the last chunk may be the end.
                            if this.inner.is_end_stream() {
                                this.complete();
                            }
                        }
                    }
                }
            }
            Poll::Ready(Some(Err(_))) => this.give_up(),
            Poll::Ready(None) => this.complete(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        // While storing or encoding, it must be polled until the origin
        // says it is done.
        self.encoder.is_none() && self.fill.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        match self.encoder {
            Some(_) => SizeHint::default(),
            None => self.inner.size_hint(),
        }
    }
}

/// The collected body in a buffer of its own size: as collected when the
/// buffer was made to measure (the announced length), else copied once
/// more so that the cache does not keep a grown buffer's spare room.
fn exact(collected: BytesMut) -> Bytes {
    if collected.capacity() - collected.len() > collected.len() / 16 {
        Bytes::copy_from_slice(&collected)
    } else {
        collected.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_body_keeps_no_spare_room() {
        let mut grown = BytesMut::with_capacity(4096);
        grown.extend_from_slice(b"abcd");
        let body = exact(grown);
        assert_eq!(&body[..], b"abcd");
        assert!(
            BytesMut::from(body).capacity() < 64,
            "copied out of the grown buffer"
        );
        let mut measured = BytesMut::with_capacity(4);
        measured.extend_from_slice(b"abcd");
        assert_eq!(&exact(measured)[..], b"abcd");
        assert!(exact(BytesMut::new()).is_empty());
    }

    #[tokio::test]
    async fn full_body_is_one_frame() {
        use http_body_util::BodyExt;
        let body = ProxyBody::full(Bytes::from_static(b"hello"));
        assert_eq!(body.size_hint().exact(), Some(5));
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(&collected[..], b"hello");
        assert!(ProxyBody::full(Bytes::new()).is_end_stream());
    }
}
