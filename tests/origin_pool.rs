//! Connections to the origin: kept between requests, replaced when the
//! origin closed them, dropped when idle past the configured time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Route, TestOrigin, TestProxy, get, raw_origin};
use http::StatusCode;

#[tokio::test]
async fn sequential_requests_reuse_the_origin_connection() {
    let origin = TestOrigin::start().await;
    origin.route("/p", Route::ok("pass").header("cache-control", "no-store"));
    let proxy = TestProxy::start(&origin.url()).await;
    for _ in 0..10 {
        let answer = get(&proxy.url("/p")).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(&answer.body[..], b"pass");
    }
    assert_eq!(origin.hits("/p"), 10);
    // One connection carries them all; a second may open if a request
    // arrives before hyper has marked the first idle again.
    assert!(
        origin.connections() <= 2,
        "{} connections for 10 sequential requests",
        origin.connections()
    );
}

#[tokio::test]
async fn a_connection_the_origin_closed_is_replaced_without_an_error() {
    // Keep-alive by its headers, but closed after every response: each
    // kept connection is dead by the next request (or dies under it).
    let (addr, connections) =
        raw_origin(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nCache-Control: no-store\r\n\r\nok")
            .await;
    let proxy = TestProxy::start(&format!("http://{addr}")).await;
    for _ in 0..5 {
        let answer = get(&proxy.url("/c")).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(&answer.body[..], b"ok");
    }
    assert_eq!(*connections.lock().unwrap(), 5);
}

#[tokio::test]
async fn idle_connections_past_the_idle_timeout_are_not_reused() {
    let origin = TestOrigin::start().await;
    origin.route("/i", Route::ok("idle").header("cache-control", "no-store"));
    let proxy = TestProxy::start_with(&origin.url(), |config| {
        config.origins[0].pool_idle_timeout = Duration::ZERO;
    })
    .await;
    for _ in 0..3 {
        assert_eq!(get(&proxy.url("/i")).await.status, StatusCode::OK);
    }
    assert_eq!(
        origin.connections(),
        3,
        "every connection expired when idle"
    );
}
