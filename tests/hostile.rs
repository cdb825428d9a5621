//! Hostile clients: oversized or malformed request heads, ambiguous
//! framing, tricks that would change a stored response without changing
//! its key. Each gets a clear status, nothing ambiguous reaches an origin,
//! and nothing of it is stored.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Route, TestOrigin, TestProxy, get, raw_exchange};

async fn proxy() -> (TestOrigin, TestProxy) {
    let origin = TestOrigin::start().await;
    origin.route("/", Route::ok("root").header("cache-control", "max-age=60"));
    origin.route("/echo", Route::echo());
    let proxy = TestProxy::start(&origin.url()).await;
    (origin, proxy)
}

fn status_of(answer: &str) -> &str {
    answer.split(' ').nth(1).unwrap_or("<no answer>")
}

#[tokio::test]
async fn oversized_request_heads_are_refused_before_reaching_the_origin() {
    let (origin, proxy) = proxy().await;
    let big_value = "v".repeat(100 * 1024);
    let many: String = (0..101).map(|i| format!("x-f{i}: 1\r\n")).collect();
    let long_path = format!("/{}", "p".repeat(9 * 1024));
    for (request, status) in [
        (
            format!("GET / HTTP/1.1\r\nHost: h\r\nX-Big: {big_value}\r\n\r\n"),
            "431",
        ),
        (format!("GET / HTTP/1.1\r\nHost: h\r\n{many}\r\n"), "431"),
        (
            format!("GET {long_path} HTTP/1.1\r\nHost: h\r\n\r\n"),
            "414",
        ),
    ] {
        let answer = raw_exchange(proxy.addr, request.as_bytes()).await;
        assert_eq!(
            status_of(&answer),
            status,
            "{}",
            &answer[..answer.len().min(200)]
        );
    }
    assert_eq!(origin.hits("/"), 0, "nothing reached the origin");
    assert!(origin.hits(&long_path) == 0);
    // Within the limits, all is well.
    let many: String = (0..90).map(|i| format!("x-f{i}: 1\r\n")).collect();
    let answer = raw_exchange(
        proxy.addr,
        format!("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n{many}\r\n").as_bytes(),
    )
    .await;
    assert_eq!(status_of(&answer), "200");
}

#[tokio::test]
async fn a_host_with_a_port_past_65535_is_400() {
    let (origin, proxy) = proxy().await;
    for host in ["h:65536", "h:99999", "[::1]:70000"] {
        let answer = raw_exchange(
            proxy.addr,
            format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes(),
        )
        .await;
        assert_eq!(status_of(&answer), "400", "{host}: {answer}");
    }
    assert_eq!(origin.hits("/"), 0);
}

#[tokio::test]
async fn ambiguous_request_framing_is_400_and_closes_the_connection() {
    let (origin, proxy) = proxy().await;
    for raw in [
        // Two different lengths, and a length that is no number.
        "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
        "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 4x\r\n\r\nabcd",
        "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: -4\r\n\r\nabcd",
        // A coding the proxy cannot frame by, or chunked not last.
        "POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\nabcd",
        "POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
        // Obsolete line folding, and a field without a colon.
        "GET / HTTP/1.1\r\nHost: h\r\nX-Folded: a\r\n b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nno colon here\r\n\r\n",
        // A space before the colon.
        "GET / HTTP/1.1\r\nHost : h\r\n\r\n",
    ] {
        let answer = raw_exchange(proxy.addr, raw.as_bytes()).await;
        let status = status_of(&answer);
        assert!(
            status == "400" || status == "501",
            "{raw:?} answered {answer:?}"
        );
        let lower = answer.to_ascii_lowercase();
        assert!(
            lower.contains("connection: close") || !lower.contains("keep-alive"),
            "{raw:?}: {answer}"
        );
    }
    assert_eq!(
        origin.hits("/echo"),
        0,
        "nothing ambiguous reached the origin"
    );
    assert_eq!(origin.hits("/"), 0);
}

#[tokio::test]
async fn content_length_with_transfer_encoding_is_framed_by_the_coding_alone_and_the_connection_closed()
 {
    let (origin, proxy) = proxy().await;
    // Request smuggling's classic: a front end that trusted Content-Length
    // would take "0\r\n\r\nGET..." as a 4-byte body's start. RFC 9112
    // section 6.1: the coding wins, and the connection must close after
    // the answer, so nothing after the chunked body is ever read as a
    // request.
    for raw in [
        "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n",
    ] {
        let answer = raw_exchange(proxy.addr, raw.as_bytes()).await;
        assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{answer}"
        );
        assert!(answer.ends_with("POST "), "an empty chunked body: {answer}");
    }
    assert_eq!(origin.hits("/smuggled"), 0);
    let forwarded = origin.last_headers("/echo");
    assert!(forwarded.get("content-length").is_none(), "{forwarded:?}");
}

#[tokio::test]
async fn a_pipelined_second_request_cannot_hide_in_a_body() {
    let (origin, proxy) = proxy().await;
    // With Content-Length the body is 5 bytes; a smuggler hopes the proxy
    // and the origin disagree on where the second request starts.
    let raw = "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET /echo HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    let answer = raw_exchange(proxy.addr, raw.as_bytes()).await;
    assert_eq!(answer.matches("HTTP/1.1 200").count(), 2, "{answer}");
    assert!(answer.contains("POST hello"), "{answer}");
    assert!(answer.contains("GET "), "{answer}");
    assert_eq!(origin.hits("/echo"), 2);
}

#[tokio::test]
async fn the_proxys_own_errors_are_never_stored() {
    let origin = TestOrigin::start().await;
    let url = origin.url();
    origin.stop();
    let proxy = TestProxy::start(&url).await;
    let answer = get(&proxy.url("/")).await;
    assert_eq!(answer.status, 502);
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    assert_eq!(answer.x_cache(), "MISS");
    let again = get(&proxy.url("/")).await;
    assert_eq!(again.status, 502, "not served from the cache");
    assert_eq!(again.x_cache(), "MISS");
}

#[tokio::test]
async fn a_cookie_never_fills_a_shared_entry_unless_the_response_says_public() {
    let origin = TestOrigin::start().await;
    origin.route(
        "/mine",
        Route::ok("personal").header("cache-control", "max-age=60"),
    );
    origin.route(
        "/ours",
        Route::ok("shared").header("cache-control", "public, max-age=60"),
    );
    let proxy = TestProxy::start(&origin.url()).await;
    let with_cookie = |path: &str| {
        http::Request::get(proxy.url(path))
            .header("cookie", "session=alice")
            .body(http_body_util::Full::default())
            .unwrap()
    };
    common::send(&common::client(), with_cookie("/mine")).await;
    let other = get(&proxy.url("/mine")).await;
    assert_eq!(
        other.x_cache(),
        "MISS",
        "alice's answer is not served to others"
    );
    common::send(&common::client(), with_cookie("/ours")).await;
    assert_eq!(get(&proxy.url("/ours")).await.x_cache(), "HIT");
}

#[tokio::test]
async fn a_pathological_vary_is_not_stored() {
    let origin = TestOrigin::start().await;
    origin.route(
        "/wide",
        Route::ok("w")
            .header("cache-control", "max-age=60")
            .header("vary", "a, b, c, d, e, f, g, h, i"),
    );
    origin.route(
        "/agent",
        Route::ok("u")
            .header("cache-control", "max-age=60")
            .header("vary", "user-agent"),
    );
    let proxy = TestProxy::start(&origin.url()).await;
    let first = get(&proxy.url("/wide")).await;
    assert!(
        first
            .header("cache-status")
            .unwrap()
            .contains("vary-too-wide"),
        "{:?}",
        first.header("cache-status")
    );
    assert_eq!(get(&proxy.url("/wide")).await.x_cache(), "MISS");
    let long_agent = |agent: String| {
        http::Request::get(proxy.url("/agent"))
            .header("user-agent", agent)
            .body(http_body_util::Full::default())
            .unwrap()
    };
    let client = common::client();
    for _ in 0..2 {
        let answer = common::send(&client, long_agent("x".repeat(5000))).await;
        assert_eq!(
            answer.x_cache(),
            "MISS",
            "5000 bytes of User-Agent key no variant"
        );
    }
    common::send(&client, long_agent("curl/8".into())).await;
    assert_eq!(
        common::send(&client, long_agent("curl/8".into()))
            .await
            .x_cache(),
        "HIT"
    );
}
