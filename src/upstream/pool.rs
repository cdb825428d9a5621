//! Connections to one origin, kept open between requests: hyper's
//! connection-level client under a small pool of our own.
//!
//! hyper-util's general-purpose client hashes a pool key per checkout and
//! per return, and spawns a task per HTTP/1.1 response to put the
//! connection back once its body is read; with one origin per pool none of
//! that is needed. An HTTP/1.1 connection goes back into the pool as soon
//! as the response head arrives and is handed out again once hyper reports
//! it ready (its body read to the end); one HTTP/2 connection (chosen by
//! ALPN) is shared by every request. TCP, TLS and the connect timeout stay
//! with hyper-util's connector and hyper-rustls.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::time::Instant;

use http::header::HOST;
use http::uri::{Parts, Uri};
use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::{Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tower_service::Service;

use super::SetupError;
use super::body::UpstreamBody;
use crate::config::Origin;
use crate::error::{BoxError, RequestError};

/// How many kept connections one request tries before opening its own.
const MAX_KEPT_TRIES: u32 = 4;

/// The pooled connections to one origin.
pub struct Pool {
    connector: HttpsConnector<HttpConnector>,
    /// `scheme://authority`, what the connector dials.
    target: Uri,
    /// The upstream `Host` for HTTP/1.1 (the default port left out).
    host: HeaderValue,
    idle_timeout: Duration,
    connect_timeout: Duration,
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    /// HTTP/1.1 connections, least recently handed out first: idle ones,
    /// and ones still delivering a response body.
    http1: VecDeque<Http1>,
    /// The HTTP/2 connection every request shares, once one is open.
    http2: Option<http2::SendRequest<UpstreamBody>>,
    /// Whether the task that closes idle connections runs.
    reaping: bool,
}

struct Http1 {
    sender: http1::SendRequest<UpstreamBody>,
    /// When it last went back into the pool (its response head had
    /// arrived; its body may still have been on the way).
    used: Instant,
}

/// A connection ready for one request.
enum Conn {
    Http1(http1::SendRequest<UpstreamBody>),
    Http2(http2::SendRequest<UpstreamBody>),
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// A pool dialing `server` (one of `origin`'s, or its own authority)
    /// through `connector` (TCP, TLS, connect timeout); requests name the
    /// origin's `Host`.
    pub fn new(
        origin: &Origin,
        server: &http::uri::Authority,
        connector: HttpsConnector<HttpConnector>,
    ) -> Result<Self, SetupError> {
        let target = Uri::builder()
            .scheme(origin.scheme.as_str())
            .authority(server.clone())
            .path_and_query("/")
            .build()
            .map_err(|source| SetupError::Address {
                origin: origin.name.clone(),
                source,
            })?;
        Ok(Pool {
            connector,
            target,
            host: upstream_host(origin)?,
            idle_timeout: origin.pool_idle_timeout,
            connect_timeout: origin.connect_timeout,
            kept: Mutex::default(),
        })
    }

    /// Sends `request` (absolute URI) on a kept connection, or on a new
    /// one; a request that a kept connection closed under before sending
    /// it is sent again on another.
    pub async fn send(
        self: &Arc<Self>,
        mut request: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, RequestError> {
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
                // Boxed: connecting (TCP, TLS, handshake) is a large
                // future that every request would otherwise carry and move.
                None => (Box::pin(self.connect()).await?, false),
            };
            let sent = match conn {
                Conn::Http1(mut sender) => {
                    let request = origin_form(request, &self.host);
                    let sent = sender.try_send_request(request).await;
                    if sent.is_ok() {
                        self.keep_http1(sender);
                    }
                    sent
                }
                Conn::Http2(mut sender) => {
                    if sender.ready().await.is_err() && reused {
                        continue; // closed meanwhile: another connection
                    }
                    sender.try_send_request(request).await
                }
            };
            match sent {
                Ok(response) => return Ok(response),
                Err(mut err) => match err.take_message() {
                    Some(unsent) if reused => {
                        request = unsent;
                        *request.uri_mut() = target.clone();
                    }
                    _ => return Err(RequestError::OriginFailed(Box::new(err.into_error()))),
                },
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A kept connection that can take a request now. Closed ones, and
    /// idle ones past the idle timeout, are dropped on the way.
    fn checkout(&self) -> Option<Conn> {
        let now = Instant::now();
        let mut kept = self.lock();
        if let Some(shared) = &kept.http2 {
            // Streams multiplex: open is enough, readiness is awaited.
            if !shared.is_closed() {
                return Some(Conn::Http2(shared.clone()));
            }
            kept.http2 = None;
        }
        for _ in 0..kept.http1.len() {
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
        kept.reaping = !kept.http1.is_empty();
        kept.reaping
    }

    /// Opens a connection: HTTP/2 when TLS negotiated it, else HTTP/1.1.
    async fn connect(&self) -> Result<Conn, RequestError> {
        let mut connector = self.connector.clone();
        let io = match connector.call(self.target.clone()).await {
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
            self.lock().http2 = Some(sender.clone());
            Ok(Conn::Http2(sender))
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

/// Whether a timeout (an I/O `TimedOut`) is somewhere in `err`'s chain.
pub fn caused_by_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
        }
        cause = e.source();
    }
    false
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

    #[test]
    fn timeouts_are_found_anywhere_in_the_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("wrapped")]
        struct Wrapped(#[source] std::io::Error);

        let timed_out = Wrapped(std::io::Error::from(std::io::ErrorKind::TimedOut));
        let refused = Wrapped(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(caused_by_timeout(&timed_out));
        assert!(!caused_by_timeout(&refused));
    }
}
