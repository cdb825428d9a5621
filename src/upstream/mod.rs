//! The client towards one origin: HTTP/1.1 or HTTP/2 (ALPN) over TCP or
//! rustls, with webpki roots and the ring provider chosen explicitly, its
//! connections kept by `pool`. Failures are classified by type,
//! never by message text.

use std::sync::Arc;
use std::time::Duration;

use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{Method, Request, Response, Version};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::connect::HttpConnector;

pub mod balance;
pub mod body;
mod pool;

use crate::clock::Stopwatch;
use crate::config::Origin;
use crate::error::{OriginFailure, RequestError};
use crate::metrics::Metrics;
use balance::{Balancer, Picked, ServerSpec};
use body::{BodyError, BodyFailures, OriginBody, client_body_fault};
use pool::Pool;

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

/// Failures in a row that take one of several servers out.
const FALL: u32 = 3;
/// How long a server that failed is left out before one request tries it
/// (nginx's `fail_timeout`).
const BACK_OFF: Duration = Duration::from_secs(10);

/// No server of the origin can take the request now (all are out).
#[derive(Debug, thiserror::Error)]
#[error("no server of origin '{0}' is up")]
pub struct NoServerUp(String);

/// The client towards one origin: one connection pool per server.
#[derive(Debug, Clone)]
pub struct Upstream {
    origin: Arc<Origin>,
    name: Arc<str>,
    metrics: Metrics,
    /// One per server (one in all for an origin with one URL).
    pools: Arc<[Arc<Pool>]>,
    /// Chooses among several servers (`None`: one server).
    balancer: Option<Arc<Balancer>>,
    /// Counts bodies that did not end well (held: no label lookup).
    body_failures: BodyFailures,
}

impl Upstream {
    /// Builds the pooled client for `origin`.
    pub fn new(origin: Origin, metrics: Metrics) -> Result<Self, SetupError> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(origin.connect_timeout));
        http.set_keepalive(Some(Duration::from_secs(60)));
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(&origin)?)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let name: Arc<str> = origin.name.as_str().into();
        let (pools, balancer) = if origin.servers.is_empty() {
            let pool = Arc::new(Pool::new(&origin, &origin.authority, connector)?);
            (vec![pool], None)
        } else {
            let mut pools = Vec::with_capacity(origin.servers.len());
            for server in &origin.servers {
                pools.push(Arc::new(Pool::new(
                    &origin,
                    &server.authority,
                    connector.clone(),
                )?));
            }
            let specs = origin
                .servers
                .iter()
                .map(|s| ServerSpec {
                    name: s.authority.to_string(),
                    weight: s.weight,
                    backup: s.backup,
                })
                .collect();
            let balancer = Balancer::new(specs, origin.balance, FALL, BACK_OFF);
            (pools, Some(Arc::new(balancer)))
        };
        Ok(Upstream {
            body_failures: BodyFailures {
                stalled: metrics.origin_error_counter(&name, OriginFailure::BodyTimeout),
                broken: metrics.origin_error_counter(&name, OriginFailure::BodyBroken),
            },
            name,
            pools: pools.into(),
            balancer,
            origin: Arc::new(origin),
            metrics,
        })
    }

    /// The origin's servers and their state (`None`: it has one URL).
    pub fn balancer(&self) -> Option<&Arc<Balancer>> {
        self.balancer.as_ref()
    }

    /// The origin this pool talks to.
    pub fn origin(&self) -> &Origin {
        &self.origin
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
        let result = match &self.balancer {
            None => self
                .send_to(&self.pools[0], request)
                .await
                .map(|response| (response, None)),
            Some(balancer) => self
                .send_to_one_of(balancer, request)
                .await
                .map(|(response, server)| (response, Some(server))),
        };
        let result = match result {
            Ok((response, server)) => {
                self.metrics.origin_answered(&self.name, started.elapsed());
                let read_timeout = self.origin.read_timeout;
                let failures = self.body_failures.clone();
                return Ok(response.map(|body| {
                    OriginBody::new(body, read_timeout, failures).from_server(server)
                }));
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
            self.metrics.origin_failed(&self.name, kind);
        }
        Err(result)
    }
}

impl Upstream {
    /// One attempt on one server's pool, bounded by the origin's timeout.
    async fn send_to(
        &self,
        pool: &Arc<Pool>,
        request: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, RequestError> {
        let timeout = self.origin.timeout;
        match tokio::time::timeout(timeout, pool.send(request)).await {
            Ok(Ok(response)) => check_framing(response),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(RequestError::OriginTimeout(timeout)),
        }
    }

    /// Sends to a server the balancer picks; after a connect failure or a
    /// reset before any response, a request without a body goes to another
    /// (at most `retries` times). A server's failures before a response
    /// count against it; with none up, the answer is a 502 at once.
    async fn send_to_one_of(
        &self,
        balancer: &Balancer,
        request: Request<UpstreamBody>,
    ) -> Result<(Response<Incoming>, Picked), RequestError> {
        let key = request.uri().to_string();
        // Only a safe request without a body is sent again: a POST that
        // reached a server before its connection broke may have been acted on.
        let safe = matches!(
            *request.method(),
            Method::GET | Method::HEAD | Method::OPTIONS
        );
        let again =
            (safe && http_body::Body::is_end_stream(request.body())).then(|| copy_of(&request));
        let mut request = Some(request);
        let mut tried = Vec::new();
        loop {
            let Some(picked) = balancer.pick(&key, &tried) else {
                return Err(RequestError::OriginConnect(Box::new(NoServerUp(
                    self.origin.name.clone(),
                ))));
            };
            let Some(this) = request.take().or_else(|| again.as_ref().map(copy_of)) else {
                return Err(RequestError::OriginConnect(Box::new(NoServerUp(
                    self.origin.name.clone(),
                ))));
            };
            let result = self.send_to(&self.pools[picked.index()], this).await;
            let server = picked.server();
            let failure = result.as_ref().err().and_then(OriginFailure::of);
            match failure {
                None => {
                    if server.succeeded() {
                        tracing::info!(origin = %self.name, server = %server.spec.name, "origin server answering again");
                    }
                    return result.map(|response| (response, picked));
                }
                Some(kind) => {
                    let before_response = matches!(
                        kind,
                        OriginFailure::Connect | OriginFailure::Closed | OriginFailure::Reset
                    );
                    let counts = before_response || kind == OriginFailure::Timeout;
                    if counts && server.failed() {
                        tracing::warn!(
                            origin = %self.name,
                            server = %server.spec.name,
                            error = %kind.as_str(),
                            "origin server taken out after failures in a row"
                        );
                    }
                    let retries_left = tried.len() < self.origin.retries as usize;
                    if !(before_response && retries_left && again.is_some()) {
                        return result.map(|response| (response, picked));
                    }
                    self.metrics.origin_failed(&self.name, kind);
                    tried.push(picked.index());
                }
            }
        }
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

/// rustls with the ring provider (chosen explicitly, so that no other
/// crate's provider choice can change it), the webpki roots compiled into
/// the binary, and the origin's extra roots.
fn tls_config(origin: &Origin) -> Result<rustls::ClientConfig, SetupError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for cert in &origin.extra_roots {
        roots
            .add(cert.clone())
            .map_err(|source| SetupError::CaCertificate {
                origin: origin.name.clone(),
                source,
            })?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| SetupError::Tls {
            origin: origin.name.clone(),
            source,
        })?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
