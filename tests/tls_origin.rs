//! HTTPS origins: rustls with SNI and HTTP/2 by ALPN, against a local TLS
//! server whose certificate is signed by a CA made in the test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::tls::{Seen, TestCa, tls_origin};
use common::{TestProxy, get};
use http::{StatusCode, Version};

/// A TLS origin for `localhost` and a proxy that trusts its CA.
async fn proxy_trusting_a_tls_origin() -> (TestProxy, Seen) {
    let ca = TestCa::new();
    let (addr, seen) = tls_origin(&ca).await;
    let origin = format!("https://localhost:{}", addr.port());
    let proxy = TestProxy::start_with(&origin, |c| c.origins[0].extra_roots = vec![ca.der()]).await;
    (proxy, seen)
}

#[tokio::test]
async fn https_origins_are_reached_with_sni_and_http2() {
    let (proxy, seen) = proxy_trusting_a_tls_origin().await;

    let miss = get(&proxy.url("/secure")).await;
    assert_eq!(miss.status, StatusCode::OK);
    assert_eq!(&miss.body[..], b"secure");
    assert_eq!(miss.x_cache(), "MISS");
    assert_eq!(get(&proxy.url("/secure")).await.x_cache(), "HIT");

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, Version::HTTP_2);
    assert_eq!(seen[0].1.as_deref(), Some("localhost"));
}

#[tokio::test]
async fn requests_to_an_http2_origin_share_one_connection() {
    let (proxy, seen) = proxy_trusting_a_tls_origin().await;
    for path in ["/a", "/b", "/c"] {
        assert_eq!(get(&proxy.url(path)).await.x_cache(), "MISS");
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|(version, ..)| *version == Version::HTTP_2));
    assert!(
        seen.iter().all(|(.., port)| *port == seen[0].2),
        "one connection: {seen:?}"
    );
}

#[tokio::test]
async fn an_untrusted_origin_certificate_is_502() {
    let ca = TestCa::new();
    let (addr, seen) = tls_origin(&ca).await;
    let origin = format!("https://localhost:{}", addr.port());
    let proxy = TestProxy::start(&origin).await;
    let answer = get(&proxy.url("/secure")).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert!(
        seen.lock().unwrap().is_empty(),
        "no request crossed an unverified connection"
    );
}

#[tokio::test]
async fn past_100_streams_a_second_http2_connection_is_opened() {
    let (proxy, seen) = proxy_trusting_a_tls_origin().await;
    assert_eq!(get(&proxy.url("/warm")).await.status, StatusCode::OK);
    // 150 requests in flight at once (each answered a second late): 100
    // share the first connection, the other 50 one more, not one each.
    let all: Vec<_> = (0..150)
        .map(|n| tokio::spawn(get_owned(proxy.url(&format!("/slow/{n}")))))
        .collect();
    for one in all {
        assert_eq!(one.await.unwrap(), StatusCode::OK);
    }
    let seen = seen.lock().unwrap().clone();
    let mut ports: Vec<u16> = seen.iter().map(|(.., port)| *port).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 2, "connections by client port: {ports:?}");
}

async fn get_owned(url: String) -> StatusCode {
    get(&url).await.status
}
