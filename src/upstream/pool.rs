//! Connections to one server of an origin, kept open between requests: hyper's
//! connection-level client under a small pool of our own.
//!
//! hyper-util's general-purpose client hashes a pool key per checkout and
//! per return, and spawns a task per HTTP/1.1 response to put the
//! connection back once its body is read; with one origin per pool none of
//! that is needed. An HTTP/1.1 connection goes back into the pool as soon
//! as the response head arrives and is handed out again once hyper reports
//! it ready (its body read to the end); an HTTP/2 connection (chosen by
//! ALPN) is shared by up to 100 requests, then another is opened. Requests
//! in flight to the server are bounded (`max_connections`). TCP, TLS and
//! the connect timeout stay with `dial`'s connector.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::time::Instant;

use http::header::{CONNECTION, HOST, USER_AGENT};
use http::uri::{Parts, PathAndQuery, Uri};
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::client::legacy::connect::Connection;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tower_service::Service;

use super::SetupError;
use super::body::UpstreamBody;
use super::dial::{Connector, Target, caused_by_timeout};
use super::held::StreamSlot;
use super::limit::{Limit, Place};
use crate::config::Origin;
use crate::error::{BoxError, RequestError};

/// How many kept connections one request tries before opening its own.
const MAX_KEPT_TRIES: u32 = 4;
/// Kept HTTP/1.1 connections one checkout looks at, at most.
const MAX_LOOKED_AT: usize = 16;
/// Streams in flight on one HTTP/2 connection before another is opened:
/// hyper does not tell the server's `SETTINGS_MAX_CONCURRENT_STREAMS`,
/// and RFC 9113 recommends servers allow at least 100.
const HTTP2_STREAMS: usize = 100;

/// The pooled connections to one server.
pub struct Pool {
    connector: Connector,
    /// The server as dialed.
    server: Target,
    /// `scheme://authority`, what the connector dials.
    uri: Uri,
    /// The upstream `Host` for HTTP/1.1 (the default port left out).
    host: HeaderValue,
    idle_timeout: Duration,
    connect_timeout: Duration,
    /// Requests in flight to the server at most (`max_connections`).
    limit: Arc<Limit>,
    /// The server chose HTTP/2: new connections are opened one at a time,
    /// so that a burst shares one instead of opening one each.
    speaks_http2: AtomicBool,
    opening_http2: tokio::sync::Mutex<()>,
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    /// HTTP/1.1 connections, least recently handed out first: idle ones,
    /// and ones still delivering a response body.
    http1: VecDeque<Http1>,
    /// HTTP/2 connections, each shared by up to [`HTTP2_STREAMS`] requests.
    http2: Vec<Http2>,
    /// Whether the task that closes idle connections runs.
    reaping: bool,
}

struct Http1 {
    sender: http1::SendRequest<UpstreamBody>,
    /// When it last went back into the pool (its response head had
    /// arrived; its body may still have been on the way).
    used: Instant,
}

struct Http2 {
    sender: http2::SendRequest<UpstreamBody>,
    /// Requests on it whose response is not done with.
    streams: Arc<AtomicUsize>,
    /// When a request last took it.
    used: Instant,
}

/// A request that failed, and the request itself when it was never
/// sent (no connection could be made), so that it can go elsewhere.
#[derive(Debug)]
pub struct SendFailure {
    /// What went wrong.
    pub error: RequestError,
    /// The request, untouched, when none of it left.
    pub unsent: Option<Request<UpstreamBody>>,
}

impl From<RequestError> for SendFailure {
    fn from(error: RequestError) -> Self {
        SendFailure {
            error,
            unsent: None,
        }
    }
}

/// A connection ready for one request.
enum Conn {
    Http1(http1::SendRequest<UpstreamBody>),
    Http2(http2::SendRequest<UpstreamBody>, StreamSlot),
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("server", &self.server.name)
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// A pool dialing `server` (one of `origin`'s, or its own authority)
    /// through `connector` (TCP, TLS, connect timeout); requests name the
    /// origin's `Host`.
    pub fn new(origin: &Origin, server: Target, connector: Connector) -> Result<Self, SetupError> {
        let uri = Uri::builder()
            .scheme(origin.scheme.as_str())
            .authority(server.authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|source| SetupError::Address {
                origin: origin.name.clone(),
                source,
            })?;
        Ok(Pool {
            connector,
            server,
            uri,
            host: upstream_host(origin)?,
            idle_timeout: origin.pool_idle_timeout,
            connect_timeout: origin.connect_timeout,
            limit: Limit::new(origin.max_connections as usize),
            speaks_http2: AtomicBool::new(false),
            opening_http2: tokio::sync::Mutex::new(()),
            kept: Mutex::default(),
        })
    }

    /// The server it dials.
    pub fn server(&self) -> &Target {
        &self.server
    }

    /// Whether a request may go to the server without waiting.
    pub fn has_room(&self) -> bool {
        self.limit.has_room()
    }

    /// A place among the server's requests in flight, if one is free now.
    pub fn try_admit(&self) -> Option<Place> {
        self.limit.try_take()
    }

    /// A place among the server's requests in flight, waiting at most
    /// `wait` for one (then a 503 that says when to try again).
    pub async fn admit(&self, wait: Duration) -> Result<Place, RequestError> {
        if let Some(place) = self.limit.try_take() {
            return Ok(place);
        }
        tokio::time::timeout(wait, self.limit.take())
            .await
            .map_err(|_| RequestError::OriginBusy(wait))
    }

    /// Sends `request` (absolute URI) on a kept connection, or on a new
    /// one; a request that a kept connection closed under before sending
    /// it is sent again on another. An HTTP/2 response comes with its
    /// stream's place, to hold until its body is done with.
    pub async fn send(
        self: &Arc<Self>,
        mut request: Request<UpstreamBody>,
    ) -> Result<(Response<Incoming>, Option<StreamSlot>), SendFailure> {
        // HTTP/1.1 rewrites the target to origin form; a retry may go out
        // over HTTP/2, which needs it absolute.
        let target = request.uri().clone();
        // Kept connections may each turn out closed; after a few, a new one.
        let mut kept_tries = 0;
        loop {
            kept_tries += 1;
            let kept = if kept_tries <= MAX_KEPT_TRIES {
                self.checkout()
            } else {
                None
            };
            let (conn, reused) = match kept {
                Some(conn) => (conn, true),
                None => match self.open().await {
                    Ok(opened) => opened,
                    Err(error) => {
                        return Err(SendFailure {
                            error,
                            unsent: Some(request),
                        });
                    }
                },
            };
            let sent = match conn {
                Conn::Http1(mut sender) => {
                    let request = origin_form(request, &self.host);
                    let sent = sender.try_send_request(request).await;
                    if sent.is_ok() {
                        self.keep_http1(sender);
                    }
                    sent.map(|response| (response, None))
                }
                Conn::Http2(mut sender, slot) => {
                    if sender.ready().await.is_err() && reused {
                        continue; // closed meanwhile: another connection
                    }
                    let sent = sender.try_send_request(request).await;
                    sent.map(|response| (response, Some(slot)))
                }
            };
            match sent {
                Ok(answer) => return Ok(answer),
                Err(mut err) => match err.take_message() {
                    Some(unsent) if reused => {
                        request = unsent;
                        *request.uri_mut() = target.clone();
                    }
                    _ => {
                        let error = RequestError::OriginFailed(Box::new(err.into_error()));
                        return Err(SendFailure::from(error));
                    }
                },
            }
        }
    }

    /// An active health check: `GET path` on a connection of its own,
    /// closed afterwards, so that what it says is about the server now.
    /// Healthy is a 2xx or 3xx answer (as nginx's checks have it).
    pub async fn check(self: &Arc<Self>, path: &PathAndQuery) -> Result<StatusCode, RequestError> {
        let conn = Box::pin(self.connect(false)).await?;
        let request = Request::get(path.clone())
            .header(USER_AGENT, "caching-proxy health check")
            .body(http_body_util::Either::Right(http_body_util::Empty::new()))
            .map_err(|e| RequestError::OriginFailed(Box::new(e)))?;
        let sent = match conn {
            Conn::Http1(mut sender) => {
                let mut request = origin_form(request, &self.host);
                request
                    .headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
                sender.send_request(request).await
            }
            Conn::Http2(mut sender, _slot) => {
                let mut request = request;
                let mut parts = self.uri.clone().into_parts();
                parts.path_and_query = Some(path.clone());
                if let Ok(uri) = Uri::from_parts(parts) {
                    *request.uri_mut() = uri;
                }
                sender.send_request(request).await
            }
        };
        let status = sent
            .map_err(|e| RequestError::OriginFailed(Box::new(e)))?
            .status();
        Ok(status)
    }

    fn lock(&self) -> MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new connection; for a server that speaks HTTP/2, opened by one
    /// request at a time, and taken from the pool instead when another
    /// request's new connection has room by then.
    async fn open(self: &Arc<Self>) -> Result<(Conn, bool), RequestError> {
        if !self.speaks_http2.load(Ordering::Acquire) {
            // Boxed: connecting (TCP, TLS, handshake) is a large future
            // that every request would otherwise carry and move.
            return Ok((Box::pin(self.connect(true)).await?, false));
        }
        let _one_at_a_time = self.opening_http2.lock().await;
        match self.checkout() {
            Some(conn) => Ok((conn, true)),
            None => Ok((Box::pin(self.connect(true)).await?, false)),
        }
    }

    /// A kept connection that can take a request now. Closed ones, and
    /// idle ones past the idle timeout, are dropped on the way.
    fn checkout(&self) -> Option<Conn> {
        let now = Instant::now();
        let mut kept = self.lock();
        kept.http2.retain(|c| !c.sender.is_closed());
        // Streams multiplex: open is enough, readiness is awaited.
        if let Some(shared) = kept
            .http2
            .iter_mut()
            .find(|c| c.streams.load(Ordering::Acquire) < HTTP2_STREAMS)
        {
            shared.used = now;
            let slot = StreamSlot::take(&shared.streams);
            return Some(Conn::Http2(shared.sender.clone(), slot));
        }
        // The oldest first: most likely done with its body. A bounded look,
        // so that many slow bodies cannot make every checkout long.
        for _ in 0..kept.http1.len().min(MAX_LOOKED_AT) {
            let candidate = kept.http1.pop_front()?;
            if candidate.sender.is_closed() {
                continue;
            }
            if candidate.sender.is_ready() {
                if now.duration_since(candidate.used) > self.idle_timeout {
                    continue;
                }
                return Some(Conn::Http1(candidate.sender));
            }
            // Still delivering a body.
            kept.http1.push_back(candidate);
        }
        None
    }

    fn keep_http1(self: &Arc<Self>, sender: http1::SendRequest<UpstreamBody>) {
        let mut kept = self.lock();
        kept.http1.push_back(Http1 {
            sender,
            used: Instant::now(),
        });
        self.start_reaper(&mut kept);
    }

    /// Starts the task that closes idle connections, unless it runs.
    fn start_reaper(self: &Arc<Self>, kept: &mut Kept) {
        if !kept.reaping {
            kept.reaping = true;
            tokio::spawn(reap(Arc::downgrade(self), self.idle_timeout));
        }
    }

    /// Drops idle connections past the idle timeout; `false` once none is
    /// kept (the reaper then stops until a connection is kept again).
    fn close_idle(&self) -> bool {
        let now = Instant::now();
        let mut kept = self.lock();
        let expired =
            |c: &Http1| c.sender.is_ready() && now.duration_since(c.used) > self.idle_timeout;
        kept.http1.retain(|c| !c.sender.is_closed() && !expired(c));
        kept.http2.retain(|c| {
            let idle = c.streams.load(Ordering::Acquire) == 0
                && now.duration_since(c.used) > self.idle_timeout;
            !c.sender.is_closed() && !idle
        });
        kept.reaping = !kept.http1.is_empty() || !kept.http2.is_empty();
        kept.reaping
    }

    /// Opens a connection: HTTP/2 when TLS negotiated it, else HTTP/1.1.
    /// A kept HTTP/2 connection is shared with later requests.
    async fn connect(self: &Arc<Self>, keep: bool) -> Result<Conn, RequestError> {
        let mut connector = self.connector.clone();
        let io = match connector.call(self.uri.clone()).await {
            Ok(io) => io,
            Err(err) if caused_by_timeout(err.as_ref()) => {
                return Err(RequestError::OriginTimeout(self.connect_timeout));
            }
            Err(err) => return Err(RequestError::OriginConnect(err)),
        };
        let handshake_failed =
            |err: hyper::Error| RequestError::OriginConnect(Box::new(err) as BoxError);
        if io.connected().is_negotiated_h2() {
            let (sender, connection) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .handshake(io)
                .await
                .map_err(handshake_failed)?;
            tokio::spawn(drive(connection));
            let streams = Arc::new(AtomicUsize::new(0));
            let slot = StreamSlot::take(&streams);
            if keep {
                self.speaks_http2.store(true, Ordering::Release);
                let mut kept = self.lock();
                kept.http2.push(Http2 {
                    sender: sender.clone(),
                    streams,
                    used: Instant::now(),
                });
                self.start_reaper(&mut kept);
            }
            Ok(Conn::Http2(sender, slot))
        } else {
            let (sender, connection) = http1::handshake(io).await.map_err(handshake_failed)?;
            tokio::spawn(drive(connection));
            Ok(Conn::Http1(sender))
        }
    }
}

/// Runs a connection until it closes.
async fn drive<C: Future<Output = hyper::Result<()>>>(connection: C) {
    if let Err(err) = connection.await {
        tracing::debug!(error = %err, "origin connection ended with an error");
    }
}

/// Closes idle connections every idle timeout (at least every second)
/// while the pool lives and keeps any.
async fn reap(pool: Weak<Pool>, every: Duration) {
    loop {
        tokio::time::sleep(every.max(Duration::from_secs(1))).await;
        match pool.upgrade() {
            Some(pool) if pool.close_idle() => {}
            _ => break,
        }
    }
}

/// The `Host` an HTTP/1.1 origin is sent: its authority, without the
/// scheme's default port.
fn upstream_host(origin: &Origin) -> Result<HeaderValue, SetupError> {
    let host = match origin.authority.port_u16() {
        Some(port) if port == origin.scheme.default_port() => origin.authority.host(),
        _ => origin.authority.as_str(),
    };
    HeaderValue::from_str(host).map_err(|e| SetupError::Address {
        origin: origin.name.clone(),
        source: e.into(),
    })
}

/// HTTP/1.1 asks for the path alone, naming the origin in `Host`.
fn origin_form(request: Request<UpstreamBody>, host: &HeaderValue) -> Request<UpstreamBody> {
    let (mut parts, body) = request.into_parts();
    let mut path = Parts::default();
    path.path_and_query = parts.uri.path_and_query().cloned();
    if let Ok(path) = Uri::from_parts(path) {
        parts.uri = path;
    }
    parts.headers.insert(HOST, host.clone());
    Request::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Either, Empty};

    fn origin(url: &str) -> Origin {
        Origin::parse(url, Duration::from_secs(1)).unwrap()
    }

    #[test]
    fn host_leaves_out_the_default_port_only() {
        for (url, host) in [
            ("http://a.test:80", "a.test"),
            ("https://a.test:443/v2", "a.test"),
            ("http://a.test:8080", "a.test:8080"),
            ("https://a.test:80", "a.test:80"),
            ("http://[::1]:3000", "[::1]:3000"),
        ] {
            assert_eq!(upstream_host(&origin(url)).unwrap(), host, "{url}");
        }
    }

    #[test]
    fn http1_requests_carry_the_path_and_the_origin_host() {
        let request = Request::get("http://a.test:8080/p/q?x=1")
            .header(HOST, "client.test")
            .body(Either::Right(Empty::new()))
            .unwrap();
        let request = origin_form(request, &HeaderValue::from_static("a.test:8080"));
        assert_eq!(request.uri(), "/p/q?x=1");
        assert_eq!(request.headers().get_all(HOST).iter().count(), 1);
        assert_eq!(request.headers()[HOST], "a.test:8080");
    }
}
