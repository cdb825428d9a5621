//! Bodies with deadlines, so that a peer that stops sending cannot hold a
//! request (and every request coalesced behind it) forever:
//!
//! - [`OriginBody`]: an origin's response body must deliver its next frame
//!   within the origin's `read_timeout` (nginx's `proxy_read_timeout`).
//!   On expiry the body ends with an error: hyper cuts the client's
//!   response (visibly truncated: the connection closes before the
//!   announced length or the last chunk) and nothing is stored.
//! - [`ClientBody`]: a client's request body must keep up a minimum rate
//!   after a grace period and never pause longer than the grace (Apache's
//!   `mod_reqtimeout` `body=20,MinRate=500`); else the request is answered
//!   408 and the connection closed.
//!
//! The timer is created only when the peer first makes the body wait: a
//! body that arrives with its head costs no timer.

use std::error::Error as StdError;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use hyper::body::Incoming;
use prometheus_client::metrics::counter::Counter;
use tokio::time::{Instant, Sleep};

use super::held::Held;

/// A request body towards the origin: the client's (held to a minimum
/// rate), or none (background revalidation).
pub type UpstreamBody = http_body_util::Either<ClientBody, http_body_util::Empty<Bytes>>;

/// Why a body ended early.
#[derive(Debug)]
pub enum BodyError {
    /// The origin broke the body off (reset, closed, invalid framing).
    Origin(hyper::Error),
    /// The origin sent nothing for this long.
    OriginStalled(Duration),
    /// The client broke its request body off.
    Client(hyper::Error),
    /// The client sent its request body too slowly.
    ClientTooSlow,
    /// A stored compressed body did not decode.
    Decode(std::io::Error),
    /// A slice of a sliced response could not be had, or was of another
    /// representation than the slices before it.
    Slice(&'static str),
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::Origin(_) => f.write_str("origin body failed"),
            BodyError::OriginStalled(after) => {
                write!(f, "origin sent no body data for {after:?}")
            }
            BodyError::Client(_) => f.write_str("client request body failed"),
            BodyError::ClientTooSlow => f.write_str("client sent its request body too slowly"),
            BodyError::Decode(_) => f.write_str("stored body did not decode"),
            BodyError::Slice(why) => write!(f, "sliced response broken off: {why}"),
        }
    }
}

impl StdError for BodyError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            BodyError::Origin(e) | BodyError::Client(e) => Some(e),
            BodyError::Decode(e) => Some(e),
            BodyError::OriginStalled(_) | BodyError::ClientTooSlow | BodyError::Slice(_) => None,
        }
    }
}

/// How the client's own request body failed, if that is what made a
/// request to the origin fail (it is then not the origin's fault).
pub fn client_body_fault<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a BodyError> {
    let mut cause = Some(err);
    while let Some(e) = cause {
        match e.downcast_ref::<BodyError>() {
            Some(fault @ (BodyError::ClientTooSlow | BodyError::Client(_))) => return Some(fault),
            Some(
                BodyError::Origin(_)
                | BodyError::OriginStalled(_)
                | BodyError::Decode(_)
                | BodyError::Slice(_),
            )
            | None => cause = e.source(),
        }
    }
    None
}

/// A timer made when first needed.
#[derive(Debug, Default)]
struct Deadline(Option<Pin<Box<Sleep>>>);

impl Deadline {
    /// Polls the timer for `at`, making or moving it as needed.
    fn poll_at(&mut self, at: Instant, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.0 {
            Some(sleep) => {
                if sleep.deadline() != at {
                    sleep.as_mut().reset(at);
                }
                sleep.as_mut().poll(cx)
            }
            None => {
                let sleep = self.0.insert(Box::pin(tokio::time::sleep_until(at)));
                sleep.as_mut().poll(cx)
            }
        }
    }
}

/// The origin's counters of bodies that did not end well.
#[derive(Debug, Clone)]
pub struct BodyFailures {
    /// Cut by the read timeout.
    pub stalled: Counter,
    /// Broken off by the origin.
    pub broken: Counter,
}

/// An origin's response body with a deadline between frames.
#[derive(Debug)]
pub struct OriginBody {
    inner: Incoming,
    read_timeout: Duration,
    last: Option<Instant>,
    deadline: Deadline,
    failures: BodyFailures,
    /// What the exchange holds until the body is done with.
    _held: Held,
}

impl OriginBody {
    /// `inner`, cut when no frame arrives for `read_timeout`; failures are
    /// counted in `failures`.
    pub fn new(inner: Incoming, read_timeout: Duration, failures: BodyFailures) -> Self {
        OriginBody {
            inner,
            read_timeout,
            last: None,
            deadline: Deadline::default(),
            failures,
            _held: Held::default(),
        }
    }

    /// Keeps what the exchange holds until this body is dropped.
    pub fn holding(mut self, held: Held) -> Self {
        self._held = held;
        self
    }
}

impl Body for OriginBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Err(err))) => {
                this.failures.broken.inc();
                Poll::Ready(Some(Err(BodyError::Origin(err))))
            }
            Poll::Ready(frame) => {
                this.last = None;
                Poll::Ready(frame.map(|f| f.map_err(BodyError::Origin)))
            }
            Poll::Pending => {
                let since = *this.last.get_or_insert_with(Instant::now);
                ready!(this.deadline.poll_at(since + this.read_timeout, cx));
                this.failures.stalled.inc();
                Poll::Ready(Some(Err(BodyError::OriginStalled(this.read_timeout))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// How fast a client must send its request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinRate {
    /// The longest pause between two reads, and the time before the rate
    /// is required.
    pub grace: Duration,
    /// Bytes per second required after the grace (0: no rate).
    pub bytes_per_second: u64,
}

/// A client's request body, cut when it is sent too slowly.
#[derive(Debug)]
pub struct ClientBody {
    inner: Incoming,
    rate: MinRate,
    started: Instant,
    received: u64,
    last: Instant,
    deadline: Deadline,
}

impl ClientBody {
    /// `inner`, held to `rate`.
    pub fn new(inner: Incoming, rate: MinRate) -> Self {
        let now = Instant::now();
        ClientBody {
            inner,
            rate,
            started: now,
            received: 0,
            last: now,
            deadline: Deadline::default(),
        }
    }
}

/// When a client's next body frame must arrive, having sent `received`
/// bytes since `started`, the last of them at `last`: within the grace of
/// the last one, and early enough to keep the rate.
fn due(rate: MinRate, started: Instant, last: Instant, received: u64) -> Instant {
    let pause = last + rate.grace;
    if rate.bytes_per_second == 0 {
        return pause;
    }
    let credit = Duration::from_secs_f64(received as f64 / rate.bytes_per_second as f64);
    pause.min(started + rate.grace + credit)
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                }
                this.last = Instant::now();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(BodyError::Client(err)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let due = due(this.rate, this.started, this.last, this.received);
                ready!(this.deadline.poll_at(due, cx));
                Poll::Ready(Some(Err(BodyError::ClientTooSlow)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_must_keep_pausing_briefly_and_up_the_rate() {
        let rate = MinRate {
            grace: Duration::from_secs(20),
            bytes_per_second: 500,
        };
        let t0 = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(due(rate, t0, t0, 0), t0 + s(20), "the grace first");
        assert_eq!(
            due(rate, t0, t0 + s(15), 1000),
            t0 + s(22),
            "1000 bytes buy two seconds more than the grace"
        );
        assert_eq!(
            due(rate, t0, t0 + s(1), 1_000_000),
            t0 + s(21),
            "a fast start never allows a pause longer than the grace"
        );
        let no_rate = MinRate {
            bytes_per_second: 0,
            ..rate
        };
        assert_eq!(due(no_rate, t0, t0 + s(100), 1), t0 + s(120));
    }

    #[test]
    fn a_client_body_fault_is_found_anywhere_in_the_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("wrapped")]
        struct Wrapped(#[source] BodyError);
        assert!(matches!(
            client_body_fault(&Wrapped(BodyError::ClientTooSlow)),
            Some(BodyError::ClientTooSlow)
        ));
        let stalled = Wrapped(BodyError::OriginStalled(Duration::from_secs(1)));
        assert!(client_body_fault(&stalled).is_none());
    }
}
