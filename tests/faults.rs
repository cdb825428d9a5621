//! Origins that misbehave: a body that stops half-way, a response whose
//! framing is ambiguous; and clients that go away or send too slowly. The
//! client sees a clear status or a visibly cut response, nothing is stored,
//! and every case is counted.

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::disallowed_methods)] // tests time themselves

mod common;

use std::time::Duration;

use common::{Route, TestOrigin, TestProxy, client, get, paced_origin, raw_exchange, raw_origin};
use http::Request;
use http_body_util::{BodyExt, Full};
use tokio::io::AsyncWriteExt;

/// `name{labels} value` from the admin API's metrics (0 when absent).
async fn metric(proxy: &TestProxy, prefix: &str) -> f64 {
    let url = format!("http://{}/metrics", proxy.running().admin_addr());
    let text = String::from_utf8(get(&url).await.body.to_vec()).unwrap();
    text.lines()
        .filter(|line| line.starts_with(prefix))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn a_stalled_origin_body_is_cut_after_the_read_timeout_and_not_stored() {
    let origin = TestOrigin::start().await;
    origin.route(
        "/stall",
        Route::ok(vec![b'x'; 10_000])
            .header("cache-control", "max-age=60")
            .stall_after(1_000),
    );
    let proxy = TestProxy::start_with(&origin.url(), |c| {
        c.origins[0].read_timeout = Duration::from_millis(300);
    })
    .await;

    let cut = async {
        let response = client()
            .request(
                Request::get(proxy.url("/stall"))
                    .body(Full::default())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "the head had arrived");
        assert_eq!(response.headers()["content-length"], "10000");
        response.into_body().collect().await
    };
    // Without the read timeout this waits as long as the origin stalls.
    let body = tokio::time::timeout(Duration::from_secs(10), cut)
        .await
        .expect("the client was held by a stalled origin");
    assert!(body.is_err(), "the response is visibly cut, never complete");

    origin.route(
        "/stall",
        Route::ok("whole").header("cache-control", "max-age=60"),
    );
    let again = get(&proxy.url("/stall")).await;
    assert_eq!(again.x_cache(), "MISS", "nothing was stored");
    assert_eq!(&again.body[..], b"whole");
    assert_eq!(origin.hits("/stall"), 2);
    let stalls = metric(
        &proxy,
        r#"caching_proxy_origin_errors_total{origin="default",kind="body_timeout"}"#,
    )
    .await;
    assert_eq!(stalls, 1.0);
}

#[tokio::test]
async fn requests_coalesced_behind_a_stalled_fill_are_released() {
    let origin = TestOrigin::start().await;
    origin.route(
        "/stall",
        Route::ok(vec![b'x'; 10_000])
            .header("cache-control", "max-age=60")
            .stall_after(100),
    );
    let proxy = TestProxy::start_with(&origin.url(), |c| {
        c.origins[0].read_timeout = Duration::from_millis(300);
    })
    .await;
    let url = proxy.url("/stall");
    let fetch = |url: String| async move {
        let response = client()
            .request(Request::get(url).body(Full::default()).unwrap())
            .await
            .unwrap();
        response.into_body().collect().await.is_ok()
    };
    let both = async { tokio::join!(fetch(url.clone()), fetch(url.clone())) };
    let (first, second) = tokio::time::timeout(Duration::from_secs(10), both)
        .await
        .expect("a follower waited on a stalled leader");
    assert!(!first && !second, "both responses are cut");
}

#[tokio::test]
async fn an_origin_response_with_ambiguous_framing_is_a_502_and_not_stored() {
    for raw in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nCache-Control: max-age=60\r\n\r\n5\r\nhello\r\n0\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\nCache-Control: max-age=60\r\n\r\nhello!",
        b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\nCache-Control: max-age=60\r\n\r\nhello",
    ] {
        let (addr, count) = raw_origin(raw).await;
        let proxy = TestProxy::start(&format!("http://{addr}")).await;
        for _ in 0..2 {
            let answer = get(&proxy.url("/")).await;
            assert_eq!(answer.status, 502, "{}", String::from_utf8_lossy(raw));
            assert_eq!(answer.header("cache-control"), Some("no-store"));
        }
        assert_eq!(*count.lock().unwrap(), 2, "the second request went to the origin too");
        let protocol = metric(&proxy, r#"caching_proxy_origin_errors_total{origin="default",kind="protocol"}"#).await;
        assert_eq!(protocol, 2.0, "{}", String::from_utf8_lossy(raw));
    }
}

#[tokio::test]
async fn a_client_that_sends_its_body_too_slowly_gets_408_and_is_closed() {
    let origin = TestOrigin::start().await;
    origin.route("/upload", Route::echo());
    let proxy = TestProxy::start_with(&origin.url(), |c| {
        c.limits.client_body_timeout = Duration::from_secs(1);
    })
    .await;
    let answer = raw_exchange(
        proxy.addr,
        b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\nonly ten b",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    let slow = metric(
        &proxy,
        r#"caching_proxy_requests_total{route="default",method="POST",cache="ERROR",status="4xx"}"#,
    )
    .await;
    assert_eq!(slow, 1.0);
}

#[tokio::test]
async fn a_client_that_goes_away_during_the_origin_trip_is_counted_as_499() {
    let origin = TestOrigin::start().await;
    origin.route("/slow", Route::ok("late").delay(Duration::from_secs(3)));
    let proxy = TestProxy::start(&origin.url()).await;
    let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .unwrap();
    // Wait until the request is at the origin, then hang up.
    origin.wait_for_hits("/slow", 1).await;
    drop(stream);
    let counted = r#"caching_proxy_client_closed_requests_total{route="default"}"#;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while metric(&proxy, counted).await < 1.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the abandoned request was not counted"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let logged = metric(
        &proxy,
        r#"caching_proxy_requests_total{route="default",method="GET",cache="ERROR",status="4xx"}"#,
    )
    .await;
    assert_eq!(logged, 1.0, "counted with nginx's 499 among the requests");
}

#[tokio::test]
async fn a_body_that_keeps_coming_is_not_cut() {
    // 20 chunks spread over more than the read timeout in total, each
    // within it: the read timeout is between reads, not for the body.
    let addr = paced_origin(20, Duration::from_millis(30)).await;
    let proxy = TestProxy::start_with(&format!("http://{addr}"), |c| {
        c.origins[0].read_timeout = Duration::from_millis(200);
    })
    .await;
    let answer = get(&proxy.url("/")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body.len(), 20 * 10);
}
