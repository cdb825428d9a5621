//! How one server of an origin is dialed: TCP (nodelay, keep-alive, the
//! connect timeout) and rustls under hyper-rustls, to the address the
//! system resolver gives at each connect or to one address we resolved,
//! while the URI, SNI and certificate check keep the configured name.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::uri::Authority;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::{GaiAddrs, GaiResolver, Name};
use tower_service::Service;

use super::SetupError;
use crate::config::Origin;

/// The connector every pool dials through.
pub type Connector = HttpsConnector<HttpConnector<Dialer>>;

/// One server to dial.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// Its name in logs and metrics: `host:port`, or `host:port@address`
    /// for one of the addresses a name resolved to.
    pub name: String,
    /// As configured: the URI's authority, hence SNI for TLS.
    pub authority: Authority,
    /// The address dialed (`None`: the system resolver's, per connect).
    pub address: Option<IpAddr>,
}

impl Target {
    /// A configured server, dialed by its name.
    pub fn named(authority: &Authority) -> Self {
        Target {
            name: authority.to_string(),
            authority: authority.clone(),
            address: None,
        }
    }

    /// One address `authority`'s host name resolved to.
    pub fn resolved(authority: &Authority, address: IpAddr) -> Self {
        Target {
            name: format!("{authority}@{address}"),
            authority: authority.clone(),
            address: Some(address),
        }
    }

    /// Whether its host is a name to resolve (not an address literal).
    pub fn is_host_name(authority: &Authority) -> bool {
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        host.parse::<IpAddr>().is_err()
    }
}

/// The system resolver, or one fixed address.
#[derive(Clone)]
pub enum Dialer {
    /// `getaddrinfo` at each connect (on a blocking thread).
    System(GaiResolver),
    /// One address, resolved earlier.
    Fixed(IpAddr),
}

/// The addresses a [`Dialer`] gives.
pub enum Addrs {
    /// From the system resolver.
    System(GaiAddrs),
    /// The fixed one (port 0: the connector sets the URI's port).
    Fixed(Option<SocketAddr>),
}

impl Iterator for Addrs {
    type Item = SocketAddr;

    fn next(&mut self) -> Option<SocketAddr> {
        match self {
            Addrs::System(addrs) => addrs.next(),
            Addrs::Fixed(addr) => addr.take(),
        }
    }
}

impl Service<Name> for Dialer {
    type Response = Addrs;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Addrs>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Dialer::System(resolver) => resolver.poll_ready(cx),
            Dialer::Fixed(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, name: Name) -> Self::Future {
        match self {
            Dialer::System(resolver) => {
                let resolving = resolver.call(name);
                Box::pin(async move { resolving.await.map(Addrs::System) })
            }
            Dialer::Fixed(address) => {
                let addr = SocketAddr::new(*address, 0);
                Box::pin(std::future::ready(Ok(Addrs::Fixed(Some(addr)))))
            }
        }
    }
}

/// The connector for `target` of `origin`, with `tls` (built once per
/// origin).
pub fn connector(origin: &Origin, target: &Target, tls: &rustls::ClientConfig) -> Connector {
    let dialer = match target.address {
        Some(address) => Dialer::Fixed(address),
        None => Dialer::System(GaiResolver::new()),
    };
    let mut http = HttpConnector::new_with_resolver(dialer);
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(origin.connect_timeout));
    http.set_keepalive(Some(Duration::from_secs(60)));
    HttpsConnectorBuilder::new()
        .with_tls_config(tls.clone())
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http)
}

/// rustls with the ring provider (chosen explicitly, so that no other
/// crate's provider choice can change it), the webpki roots compiled into
/// the binary, and the origin's extra roots.
pub fn tls_config(origin: &Origin) -> Result<rustls::ClientConfig, SetupError> {
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

    #[test]
    fn address_literals_are_not_resolved() {
        for (authority, name) in [
            ("127.0.0.1:80", false),
            ("[::1]:8080", false),
            ("localhost:80", true),
            ("api.internal", true),
        ] {
            let authority: Authority = authority.parse().unwrap();
            assert_eq!(Target::is_host_name(&authority), name, "{authority}");
        }
    }

    #[tokio::test]
    async fn a_fixed_dialer_gives_its_one_address() {
        let mut dialer = Dialer::Fixed("::1".parse().unwrap());
        let name: Name = "example.test".parse().unwrap();
        let addrs: Vec<SocketAddr> = dialer.call(name).await.unwrap().collect();
        assert_eq!(addrs, vec!["[::1]:0".parse().unwrap()]);
    }
}
