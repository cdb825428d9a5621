//! The client towards one origin: HTTP/1.1 or HTTP/2 (ALPN) over TCP or
//! rustls, one connection pool per server (`pool`, dialed by `dial`), the
//! servers of an origin with several chosen by `balance` and watched by
//! `watch`. Failures are classified by type, never by message text.

use std::sync::Arc;

use arc_swap::ArcSwap;
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{Method, Request, Response, Version};
use hyper::body::Incoming;

pub mod balance;
pub mod body;
mod dial;
mod held;
mod limit;
mod members;
mod pool;
mod watch;

use crate::clock::Stopwatch;
use crate::config::Origin;
use crate::error::{OriginFailure, RequestError};
use crate::metrics::Metrics;
use balance::Balancer;
use body::{BodyError, BodyFailures, OriginBody, client_body_fault};
use held::{Held, StreamSlot};
use members::{Members, Resolved};
use pool::{Pool, SendFailure};

pub use body::UpstreamBody;

/// An origin whose client cannot be set up (found when a configuration
/// is applied, at start or on reload).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A certificate in the origin's `ca_file` is not usable as a root.
    #[error("origin '{origin}': unusable CA certificate")]
    CaCertificate {
        /// The origin's name.
        origin: String,
        /// rustls's reason.
        #[source]
        source: rustls::Error,
    },
    /// rustls refused the client settings.
    #[error("origin '{origin}': TLS setup failed")]
    Tls {
        /// The origin's name.
        origin: String,
        /// rustls's reason.
        #[source]
        source: rustls::Error,
    },
    /// The origin's authority cannot be sent as a URI or `Host`.
    #[error("origin '{origin}': its address cannot be sent upstream")]
    Address {
        /// The origin's name.
        origin: String,
        /// Why.
        #[source]
        source: http::Error,
    },
}

/// No server of the origin can take the request now (all are out).
#[derive(Debug, thiserror::Error)]
#[error("no server of origin '{0}' is up")]
pub struct NoServerUp(String);

/// What the client and its watching task share.
#[derive(Debug)]
pub struct Group {
    origin: Arc<Origin>,
    metrics: Metrics,
    tls: rustls::ClientConfig,
    /// The servers now (swapped when a name resolves differently).
    members: ArcSwap<Members>,
    /// Counts changes of the servers: one taken out or back, the list
    /// re-resolved (for whoever shows or awaits them).
    changes: tokio::sync::watch::Sender<u64>,
}

impl Group {
    /// Tells watchers that a server's state or the list changed.
    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// Ends the watching task with the last clone of the client.
#[derive(Debug)]
struct Watching(tokio::task::JoinHandle<()>);

impl Drop for Watching {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The client towards one origin: one connection pool per server.
#[derive(Debug, Clone)]
pub struct Upstream {
    group: Arc<Group>,
    name: Arc<str>,
    /// Counts bodies that did not end well (held: no label lookup).
    body_failures: BodyFailures,
    _watching: Option<Arc<Watching>>,
}

impl Upstream {
    /// Builds the pooled client for `origin`, taking over the pools and
    /// the health of the servers `previous` (the same origin before a
    /// reload) has too.
    pub fn new(
        origin: Origin,
        metrics: Metrics,
        previous: Option<&Upstream>,
    ) -> Result<Self, SetupError> {
        let tls = dial::tls_config(&origin)?;
        let origin = Arc::new(origin);
        let name: Arc<str> = origin.name.as_str().into();
        let before = previous.map(|p| p.group.members.load_full());
        let members = Members::build(&origin, &Resolved::new(), before.as_deref(), &metrics, &tls)?;
        let group = Arc::new(Group {
            origin,
            tls,
            members: ArcSwap::from_pointee(members),
            metrics: metrics.clone(),
            changes: tokio::sync::watch::Sender::new(0),
        });
        // Outside a runtime (checking a configuration) nothing is watched.
        let watching = match tokio::runtime::Handle::try_current() {
            Ok(runtime) if watch::needed(&group) => {
                let task = runtime.spawn(watch::run(Arc::downgrade(&group)));
                Some(Arc::new(Watching(task)))
            }
            _ => None,
        };
        Ok(Upstream {
            body_failures: BodyFailures {
                stalled: metrics.origin_error_counter(&name, OriginFailure::BodyTimeout),
                broken: metrics.origin_error_counter(&name, OriginFailure::BodyBroken),
            },
            name,
            group,
            _watching: watching,
        })
    }

    /// The origin this pool talks to.
    pub fn origin(&self) -> &Origin {
        &self.group.origin
    }

    /// Its servers' states for `/stats` (`None`: an origin with one URL).
    pub fn servers_stats(&self) -> Option<serde_json::Value> {
        let members = self.group.members.load();
        members.balancer.as_ref()?;
        let servers: Vec<serde_json::Value> = members.servers().iter().map(|s| s.stats()).collect();
        Some(serde_json::json!({
            "origin": self.group.origin.name,
            "up": members.servers().iter().filter(|s| s.is_up()).count(),
            "servers": servers,
        }))
    }

    /// Changes of the servers' states or list, as they happen.
    pub fn server_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.group.changes.subscribe()
    }

    /// Sends `request` (absolute URI, headers prepared) and waits for the
    /// response headers, at most the origin's timeout. The body that comes
    /// back is cut if the origin pauses longer than its read timeout.
    pub async fn send(
        &self,
        mut request: Request<UpstreamBody>,
    ) -> Result<Response<OriginBody>, RequestError> {
        // The pool picks HTTP/1.1 or HTTP/2 per connection; the client's own
        // version must not force one.
        *request.version_mut() = Version::HTTP_11;
        let started = Stopwatch::start();
        let members = self.group.members.load_full();
        let result = match &members.balancer {
            None => (self.send_to(&members.pools[0], request).await).map_err(|f| f.error),
            // Boxed: an origin of several servers is the rarer case, and its
            // larger future would make every request's future larger.
            Some(balancer) => Box::pin(self.send_to_one_of(&members, balancer, request)).await,
        };
        let metrics = &self.group.metrics;
        let result = match result {
            Ok((response, held)) => {
                metrics.origin_answered(&self.name, started.elapsed());
                let read_timeout = self.group.origin.read_timeout;
                let failures = self.body_failures.clone();
                return Ok(response
                    .map(|body| OriginBody::new(body, read_timeout, failures).holding(held)));
            }
            Err(RequestError::OriginFailed(cause)) => match client_body_fault(cause.as_ref()) {
                // Not the origin's fault: the client's body stalled or broke.
                Some(BodyError::ClientTooSlow) => return Err(RequestError::ClientBodyTimeout),
                Some(_) => return Err(RequestError::BadRequest("the request body broke off")),
                None => RequestError::OriginFailed(cause),
            },
            Err(err) => err,
        };
        if let Some(kind) = OriginFailure::of(&result) {
            metrics.origin_failed(&self.name, kind);
        }
        Err(result)
    }
}

impl Upstream {
    /// One attempt on one server's pool: a place among its requests in
    /// flight (waiting at most the origin's timeout), then the response
    /// head within the origin's timeout.
    async fn send_to(
        &self,
        pool: &Arc<Pool>,
        request: Request<UpstreamBody>,
    ) -> Result<(Response<Incoming>, Held), SendFailure> {
        let timeout = self.group.origin.timeout;
        // Waiting for a place is rare: boxed, so that the common path's
        // future does not carry the wait.
        let admitted = match pool.try_admit() {
            Some(permit) => Ok(permit),
            None => Box::pin(pool.admit(timeout)).await,
        };
        let permit = match admitted {
            Ok(permit) => permit,
            Err(error) => {
                return Err(SendFailure {
                    error,
                    unsent: Some(request),
                });
            }
        };
        match tokio::time::timeout(timeout, pool.send(request)).await {
            Ok(Ok((response, stream))) => match check_framing(response) {
                Ok(response) => Ok((response, held(permit, stream))),
                Err(error) => Err(SendFailure::from(error)),
            },
            Ok(Err(failure)) => Err(failure),
            Err(_) => Err(SendFailure::from(RequestError::OriginTimeout(timeout))),
        }
    }

    /// Sends to a server the balancer picks (one with a free connection
    /// while any has one); after a connect failure or a reset before any
    /// response, a request without a body goes to another (at most
    /// `retries` times). A server's failures before a response count
    /// against it; with none up, the answer is a 502 at once.
    async fn send_to_one_of(
        &self,
        members: &Members,
        balancer: &Balancer,
        request: Request<UpstreamBody>,
    ) -> Result<(Response<Incoming>, Held), RequestError> {
        let origin = &self.group.origin;
        // Only the hash needs the URL as text.
        let key = match origin.balance {
            crate::config::Balance::KeyHash => request.uri().to_string(),
            _ => String::new(),
        };
        // Only a safe request without a body is sent again: a POST that
        // reached a server before its connection broke may have been acted on.
        let safe = matches!(
            *request.method(),
            Method::GET | Method::HEAD | Method::OPTIONS
        );
        let may_retry = origin.retries > 0 && members.pools.len() > 1;
        let again = (may_retry && safe && http_body::Body::is_end_stream(request.body()))
            .then(|| copy_of(&request));
        let mut request = request;
        let mut tried = Vec::new();
        loop {
            let has_room = |i: usize| members.pools[i].has_room();
            let Some(picked) = balancer.pick_preferring(&key, &tried, has_room) else {
                return Err(RequestError::OriginConnect(Box::new(NoServerUp(
                    origin.name.clone(),
                ))));
            };
            let failed = match self.send_to(&members.pools[picked.index()], request).await {
                Ok((response, mut held)) => {
                    let server = picked.server();
                    if server.succeeded() {
                        tracing::info!(origin = %self.name, server = %server.spec.name, "origin server answering again");
                        self.group.changed();
                    }
                    held.server = Some(picked);
                    return Ok((response, held));
                }
                Err(failed) => failed,
            };
            let Some(kind) = OriginFailure::of(&failed.error) else {
                return Err(failed.error);
            };
            let before_response = matches!(
                kind,
                OriginFailure::Connect | OriginFailure::Closed | OriginFailure::Reset
            );
            if (before_response || kind == OriginFailure::Timeout) && picked.server().failed() {
                tracing::warn!(
                    origin = %self.name,
                    server = %picked.server().spec.name,
                    error = %kind.as_str(),
                    "origin server taken out after failures in a row"
                );
                self.group.changed();
            }
            // A request never sent (its connection could not be made) goes
            // again as it is, whatever its method; one that may have been
            // sent only when it is safe and has no body.
            let never_sent = failed.unsent.is_some() && kind != OriginFailure::Busy;
            let next = failed
                .unsent
                .or_else(|| again.as_ref().map(copy_of))
                .filter(|_| {
                    (before_response || never_sent) && tried.len() < origin.retries as usize
                });
            let Some(next) = next else {
                return Err(failed.error);
            };
            self.group.metrics.origin_failed(&self.name, kind);
            tried.push(picked.index());
            request = next;
        }
    }
}

/// What a response holds besides its server.
fn held(permit: limit::Place, stream: Option<StreamSlot>) -> Held {
    Held {
        server: None,
        permit: Some(permit),
        stream,
    }
}

/// A bodiless request again, for a retry.
fn copy_of(request: &Request<UpstreamBody>) -> Request<UpstreamBody> {
    let mut copy = Request::new(http_body_util::Either::Right(http_body_util::Empty::new()));
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    copy
}

/// Refuses a response whose framing is ambiguous (RFC 9112 section 6.3:
/// `Transfer-Encoding` with `Content-Length`, or several different
/// lengths): relaying or storing it could let one message be read as two.
fn check_framing(response: Response<Incoming>) -> Result<Response<Incoming>, RequestError> {
    let headers = response.headers();
    let mut lengths = headers.get_all(CONTENT_LENGTH).iter();
    let ambiguous = match lengths.next() {
        None => false,
        Some(first) => {
            headers.contains_key(TRANSFER_ENCODING) || lengths.any(|other| other != first)
        }
    };
    if ambiguous {
        return Err(RequestError::OriginProtocol(
            "both Transfer-Encoding and Content-Length, or several lengths",
        ));
    }
    Ok(response)
}
