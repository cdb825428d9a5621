//! One access-log line per request, written when the response body is
//! done (sent, or abandoned), so that duration and bytes are the real ones.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// The normalized Host, once checked.
    pub host: Option<String>,
    /// The route's name, once routed.
    pub route: Option<Arc<str>>,
    /// The origin's name, once routed.
    pub origin: Option<Arc<str>>,
    /// Time to the origin's response headers, if the origin was asked.
    pub origin_time: Arc<OriginTime>,
}

/// Time to the origin's response headers, in microseconds (`u64::MAX`: the
/// origin was not asked). Shared with the exchange that asks it.
#[derive(Debug)]
pub struct OriginTime(AtomicU64);

impl Default for OriginTime {
    fn default() -> Self {
        OriginTime(AtomicU64::new(u64::MAX))
    }
}

impl OriginTime {
    /// Records how long the origin took.
    pub fn set(&self, elapsed: std::time::Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX - 1);
        self.0.store(micros, Ordering::Relaxed);
    }

    fn millis(&self) -> Option<f64> {
        let micros = self.0.load(Ordering::Relaxed);
        (micros != u64::MAX).then(|| micros as f64 / 1000.0)
    }
}

impl AccessRecord {
    /// Starts timing a request.
    pub fn start(client: SocketAddr, method: Method, target: &str) -> Self {
        AccessRecord {
            client,
            method,
            target: target.to_owned(),
            started: Instant::now(),
            host: None,
            route: None,
            origin: None,
            origin_time: Arc::default(),
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
        let record = &self.record;
        tracing::info!(
            target: "access",
            client = %record.client,
            method = %record.method,
            host = record.host.as_deref().unwrap_or("-"),
            path = %record.target,
            status = self.status.as_u16(),
            cache = self.cache.as_str(),
            reason = self.cache.reason(),
            route = record.route.as_deref().unwrap_or("-"),
            origin = record.origin.as_deref().unwrap_or("-"),
            origin_ms = record.origin_time.millis(),
            duration_ms = record.started.elapsed().as_micros() as f64 / 1000.0,
            bytes = self.bytes,
            complete,
        );
    }
}
