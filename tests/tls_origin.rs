//! HTTPS origins: rustls with SNI and HTTP/2 by ALPN, against a local TLS
//! server whose certificate is signed by a CA made in the test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::{TestProxy, get};
use http::{Response, StatusCode, Version};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// What the TLS origin saw: the HTTP version and the SNI name.
type Seen = Arc<Mutex<Vec<(Version, Option<String>)>>>;

async fn tls_origin() -> (SocketAddr, CertificateDer<'static>, Seen) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let record = record.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let sni = tls.get_ref().1.server_name().map(str::to_owned);
                let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    record
                        .lock()
                        .unwrap()
                        .push((request.version(), sni.clone()));
                    async move {
                        let mut response = Response::new(Full::new(Bytes::from_static(b"secure")));
                        response
                            .headers_mut()
                            .insert("cache-control", "max-age=60".parse().unwrap());
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, ca.der().clone(), seen)
}

#[tokio::test]
async fn https_origins_are_reached_with_sni_and_http2() {
    let (addr, ca, seen) = tls_origin().await;
    let origin = format!("https://localhost:{}", addr.port());
    let proxy = TestProxy::start_with(&origin, |c| c.origins[0].extra_roots = vec![ca]).await;

    let miss = get(&proxy.url("/secure")).await;
    assert_eq!(miss.status, StatusCode::OK);
    assert_eq!(&miss.body[..], b"secure");
    assert_eq!(miss.x_cache(), "MISS");
    assert_eq!(get(&proxy.url("/secure")).await.x_cache(), "HIT");

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen, vec![(Version::HTTP_2, Some("localhost".to_owned()))]);
}

#[tokio::test]
async fn an_untrusted_origin_certificate_is_502() {
    let (addr, _ca, seen) = tls_origin().await;
    let origin = format!("https://localhost:{}", addr.port());
    let proxy = TestProxy::start(&origin).await;
    let answer = get(&proxy.url("/secure")).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert!(
        seen.lock().unwrap().is_empty(),
        "no request crossed an unverified connection"
    );
}
