//! Response bodies put together from parts: stored bytes around a body
//! that streams (a stored piece completed by the rest from the origin),
//! and a body fed by a task (a sliced response, each slice read from the
//! cache or fetched in turn).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

use crate::upstream::body::BodyError;

/// `before`, then `inner`, then `after`.
#[derive(Debug)]
pub struct JoinedBody<B> {
    before: Option<Bytes>,
    inner: B,
    after: Option<Bytes>,
}

impl<B> JoinedBody<B> {
    /// The body `inner` with stored bytes before and after it.
    pub fn new(before: Bytes, inner: B, after: Bytes) -> Self {
        let some = |b: Bytes| (!b.is_empty()).then_some(b);
        JoinedBody {
            before: some(before),
            inner,
            after: some(after),
        }
    }
}

impl<B> Body for JoinedBody<B>
where
    B: Body<Data = Bytes, Error = BodyError> + Unpin,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if let Some(before) = this.before.take() {
            return Poll::Ready(Some(Ok(Frame::data(before))));
        }
        if !this.inner.is_end_stream() {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(None) => {}
                // Trailers of the middle part would end the body early.
                Poll::Ready(Some(Ok(frame))) if !frame.is_data() => {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                other => return other,
            }
        }
        Poll::Ready(this.after.take().map(|after| Ok(Frame::data(after))))
    }

    fn is_end_stream(&self) -> bool {
        self.before.is_none() && self.inner.is_end_stream() && self.after.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        let stored =
            self.before.as_ref().map_or(0, Bytes::len) + self.after.as_ref().map_or(0, Bytes::len);
        let inner = self.inner.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + stored as u64);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + stored as u64);
        }
        hint
    }
}

/// A body whose chunks a task sends; it ends when the task is done (an
/// error ends it early, and hyper closes the connection: the client sees
/// a response shorter than announced, never a wrong one).
#[derive(Debug)]
pub struct FedBody {
    chunks: mpsc::Receiver<Result<Bytes, BodyError>>,
    left: u64,
}

impl FedBody {
    /// A body of `len` bytes and the sender its task feeds it through.
    pub fn channel(len: u64) -> (mpsc::Sender<Result<Bytes, BodyError>>, Self) {
        // One chunk in flight: the task stays at most one chunk ahead of
        // the client, so a slow client holds one chunk, not the object.
        let (sender, chunks) = mpsc::channel(1);
        (sender, FedBody { chunks, left: len })
    }
}

impl Body for FedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if this.left == 0 {
            return Poll::Ready(None);
        }
        match this.chunks.poll_recv(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.left = this.left.saturating_sub(chunk.len() as u64);
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(err))),
            Poll::Ready(None) => Poll::Ready(Some(Err(BodyError::Slice("ended early")))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    #[tokio::test]
    async fn stored_bytes_go_around_the_streamed_part() {
        let inner = Full::new(Bytes::from_static(b"345")).map_err(|never| match never {});
        let joined = JoinedBody::new(Bytes::from_static(b"012"), inner, Bytes::from_static(b"67"));
        assert_eq!(joined.size_hint().exact(), Some(8));
        let body = joined.collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"01234567");
    }

    #[tokio::test]
    async fn a_fed_body_ends_when_its_length_is_sent_and_fails_when_cut_short() {
        let (sender, body) = FedBody::channel(4);
        tokio::spawn(async move {
            sender.send(Ok(Bytes::from_static(b"ab"))).await.unwrap();
            sender.send(Ok(Bytes::from_static(b"cd"))).await.unwrap();
        });
        assert_eq!(&body.collect().await.unwrap().to_bytes()[..], b"abcd");
        let (sender, body) = FedBody::channel(4);
        tokio::spawn(async move {
            sender.send(Ok(Bytes::from_static(b"ab"))).await.unwrap();
        });
        assert!(body.collect().await.is_err(), "cut short");
    }
}
