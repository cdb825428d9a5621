//! One access-log line per request, written when the response body is
//! done (sent, or abandoned), so that duration and bytes are the real ones.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body::{Body, Frame, SizeHint};

use super::body::ProxyBody;
use super::cache_status::CacheStatus;

/// The request facts the log line needs, taken before the request is
/// consumed.
#[derive(Debug)]
pub struct AccessRecord {
    client: SocketAddr,
    method: Method,
    target: String,
    started: Instant,
}

impl AccessRecord {
    /// Starts timing a request.
    pub fn start(client: SocketAddr, method: Method, target: &str) -> Self {
        AccessRecord {
            client,
            method,
            target: target.to_owned(),
            started: Instant::now(),
        }
    }
}

/// A response body that logs the request when it is dropped.
#[derive(Debug)]
pub struct LoggedBody {
    inner: ProxyBody,
    record: AccessRecord,
    status: StatusCode,
    cache: CacheStatus,
    bytes: u64,
    finished: bool,
}

impl LoggedBody {
    /// Wraps `inner`; the line is written when the body is dropped.
    pub fn new(
        inner: ProxyBody,
        record: AccessRecord,
        status: StatusCode,
        cache: CacheStatus,
    ) -> Self {
        LoggedBody {
            inner,
            record,
            status,
            cache,
            bytes: 0,
            finished: false,
        }
    }
}

impl Body for LoggedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.len() as u64;
                }
            }
            Poll::Ready(None) => this.finished = true,
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        let complete = self.finished || self.inner.is_end_stream();
        tracing::info!(
            target: "access",
            client = %self.record.client,
            method = %self.record.method,
            path = %self.record.target,
            status = self.status.as_u16(),
            cache = self.cache.as_str(),
            reason = self.cache.reason(),
            duration_ms = self.record.started.elapsed().as_micros() as f64 / 1000.0,
            bytes = self.bytes,
            complete,
        );
    }
}
