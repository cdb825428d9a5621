//! The client towards one origin: HTTP/1.1 or HTTP/2 (ALPN) over TCP or
//! rustls, with webpki roots and the ring provider chosen explicitly, its
//! connections kept by `proxy/pool.rs`. Failures are classified by type,
//! never by message text.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Version};
use http_body_util::{Either, Empty};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::connect::HttpConnector;

use super::pool::Pool;
use crate::config::Origin;
use crate::error::Error;
use crate::metrics::Metrics;

/// A request body towards the origin: the client's, or none (background
/// revalidation).
pub type UpstreamBody = Either<Incoming, Empty<Bytes>>;

/// A connection pool to one origin.
#[derive(Debug, Clone)]
pub struct Upstream {
    origin: Arc<Origin>,
    name: Arc<str>,
    metrics: Metrics,
    pool: Arc<Pool>,
}

impl Upstream {
    /// Builds the pooled client for `origin`.
    pub fn new(origin: Origin, metrics: Metrics) -> Result<Self, Error> {
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
        Ok(Upstream {
            name: origin.name.as_str().into(),
            pool: Arc::new(Pool::new(&origin, connector)?),
            origin: Arc::new(origin),
            metrics,
        })
    }

    /// The origin this pool talks to.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Sends `request` (absolute URI, headers prepared) and waits for the
    /// response headers, at most the origin's timeout.
    pub async fn send(
        &self,
        mut request: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, Error> {
        // The pool picks HTTP/1.1 or HTTP/2 per connection; the client's own
        // version must not force one.
        *request.version_mut() = Version::HTTP_11;
        let timeout = self.origin.timeout;
        let started = std::time::Instant::now();
        let result = match tokio::time::timeout(timeout, self.pool.send(request)).await {
            Ok(result) => result,
            Err(_) => Err(Error::OriginTimeout(timeout)),
        };
        match &result {
            Ok(_) => self.metrics.origin_answered(&self.name, started.elapsed()),
            Err(Error::OriginTimeout(_)) => self.metrics.origin_failed(&self.name, "timeout"),
            Err(Error::OriginConnect(_)) => self.metrics.origin_failed(&self.name, "connect"),
            Err(_) => self.metrics.origin_failed(&self.name, "reset"),
        }
        result
    }
}

/// rustls with the ring provider (chosen explicitly, so that no other
/// crate's provider choice can change it), the webpki roots compiled into
/// the binary, and the origin's extra roots.
fn tls_config(origin: &Origin) -> Result<rustls::ClientConfig, Error> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for cert in &origin.extra_roots {
        roots
            .add(cert.clone())
            .map_err(|e| Error::Config(format!("unusable CA certificate: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
