//! The request path end to end: a real origin, the real proxy, real HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::disallowed_methods)] // tests time themselves

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{Route, TestOrigin, TestProxy, client, get, raw_exchange, raw_origin, send};
use http::{Request, StatusCode};
use http_body_util::Full;

#[tokio::test]
async fn miss_then_hit_contacts_the_origin_once() {
    let origin = TestOrigin::start().await;
    origin.route(
        "/products",
        Route::ok("[1,2,3]").header("content-type", "application/json"),
    );
    let proxy = TestProxy::start(&origin.url()).await;

    let first = get(&proxy.url("/products")).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.x_cache(), "MISS");
    assert_eq!(&first.body[..], b"[1,2,3]");

    let second = get(&proxy.url("/products")).await;
    assert_eq!(second.x_cache(), "HIT");
    assert_eq!(&second.body[..], b"[1,2,3]");
    assert_eq!(second.header("content-type"), Some("application/json"));
    assert_eq!(second.header("age"), Some("0"));
    assert_eq!(origin.hits("/products"), 1);
}

#[tokio::test]
async fn the_query_string_is_part_of_the_key() {
    let origin = TestOrigin::start().await;
    origin.route("/search", Route::echo());
    let proxy = TestProxy::start(&origin.url()).await;

    assert_eq!(get(&proxy.url("/search?q=a")).await.x_cache(), "MISS");
    assert_eq!(get(&proxy.url("/search?q=b")).await.x_cache(), "MISS");
    assert_eq!(get(&proxy.url("/search?q=a")).await.x_cache(), "HIT");
    assert_eq!(origin.hits("/search?q=a"), 1);
    assert_eq!(origin.hits("/search?q=b"), 1);
}

#[tokio::test]
async fn post_passes_through_with_its_body_and_invalidates_the_url() {
    let origin = TestOrigin::start().await;
    origin.route("/items", Route::echo());
    let proxy = TestProxy::start(&origin.url()).await;
    let client = client();

    assert_eq!(get(&proxy.url("/items")).await.x_cache(), "MISS");
    assert_eq!(get(&proxy.url("/items")).await.x_cache(), "HIT");

    let post = Request::post(proxy.url("/items"))
        .body(Full::new(Bytes::from_static(b"{\"name\":\"x\"}")))
        .unwrap();
    let answer = send(&client, post).await;
    assert_eq!(answer.x_cache(), "MISS");
    assert_eq!(&answer.body[..], b"POST {\"name\":\"x\"}");

    let post_again = Request::post(proxy.url("/items"))
        .body(Full::new(Bytes::from_static(b"y")))
        .unwrap();
    assert_eq!(
        &send(&client, post_again).await.body[..],
        b"POST y",
        "POST is never cached"
    );
    assert_eq!(
        get(&proxy.url("/items")).await.x_cache(),
        "MISS",
        "POST invalidated the GET entry"
    );
    assert_eq!(origin.hits("/items"), 4);
}

#[tokio::test]
async fn head_is_answered_from_a_stored_get_and_never_stores_an_empty_body() {
    let origin = TestOrigin::start().await;
    origin.route("/page", Route::ok("hello world"));
    let proxy = TestProxy::start(&origin.url()).await;
    let client = client();
    let head = || {
        Request::head(proxy.url("/page"))
            .body(Full::default())
            .unwrap()
    };

    let first = send(&client, head()).await;
    assert_eq!(first.x_cache(), "MISS");
    assert!(first.body.is_empty());

    let get_after_head = get(&proxy.url("/page")).await;
    assert_eq!(
        get_after_head.x_cache(),
        "MISS",
        "a HEAD miss stored nothing"
    );
    assert_eq!(&get_after_head.body[..], b"hello world");

    let head_hit = send(&client, head()).await;
    assert_eq!(head_hit.x_cache(), "HIT");
    assert_eq!(head_hit.header("content-length"), Some("11"));
    assert!(head_hit.body.is_empty());
    assert_eq!(origin.hits("/page"), 2);
}

#[tokio::test]
async fn a_5_mib_body_is_intact_on_miss_and_hit() {
    let body: Vec<u8> = (0..5 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let origin = TestOrigin::start().await;
    origin.route("/big", Route::ok(body.clone()));
    let proxy = TestProxy::start(&origin.url()).await;

    let miss = get(&proxy.url("/big")).await;
    assert_eq!(miss.x_cache(), "MISS");
    assert_eq!(miss.body.len(), body.len());
    assert!(miss.body[..] == body[..]);
    let hit = get(&proxy.url("/big")).await;
    assert_eq!(hit.x_cache(), "HIT");
    assert!(hit.body[..] == body[..]);
    assert_eq!(origin.hits("/big"), 1);
}

#[tokio::test]
async fn bodies_over_max_object_size_stream_through_uncached() {
    let body = vec![b'z'; 300 * 1024];
    let origin = TestOrigin::start().await;
    origin.route("/sized", Route::ok(body.clone()));
    origin.route("/chunked", Route::ok(body.clone()).chunked(16 * 1024));
    origin.route("/small-chunked", Route::ok("tiny").chunked(2));
    let proxy =
        TestProxy::start_with(&origin.url(), |c| c.cache.max_object_size = 100 * 1024).await;

    for path in ["/sized", "/chunked"] {
        for _ in 0..2 {
            let answer = get(&proxy.url(path)).await;
            assert_eq!(answer.x_cache(), "MISS", "{path}");
            assert_eq!(answer.body.len(), body.len(), "{path} arrives whole");
        }
        assert_eq!(origin.hits(path), 2, "{path} is not stored");
    }
    assert_eq!(get(&proxy.url("/small-chunked")).await.x_cache(), "MISS");
    let hit = get(&proxy.url("/small-chunked")).await;
    assert_eq!(hit.x_cache(), "HIT", "a small chunked body is stored");
    assert_eq!(&hit.body[..], b"tiny");
}

#[tokio::test]
async fn entries_expire_after_the_ttl() {
    let origin = TestOrigin::start().await;
    origin.route("/ttl", Route::ok("v"));
    let proxy = TestProxy::start_with(&origin.url(), |c| {
        common::set_cache_ttl(c, Some(Duration::from_secs(60)))
    })
    .await;

    assert_eq!(get(&proxy.url("/ttl")).await.x_cache(), "MISS");
    proxy.clock.advance(Duration::from_secs(59));
    let hit = get(&proxy.url("/ttl")).await;
    assert_eq!(hit.x_cache(), "HIT");
    assert!(hit.header("age").unwrap().parse::<u64>().unwrap() >= 59);
    proxy.clock.advance(Duration::from_secs(2));
    assert_eq!(get(&proxy.url("/ttl")).await.x_cache(), "MISS");
    assert_eq!(origin.hits("/ttl"), 2);
}

#[tokio::test]
async fn origin_freshness_is_respected_and_capped_by_the_ttl() {
    let origin = TestOrigin::start().await;
    origin.route(
        "/short",
        Route::ok("s").header("cache-control", "max-age=10"),
    );
    origin.route(
        "/long",
        Route::ok("l").header("cache-control", "public, max-age=3600"),
    );
    let proxy = TestProxy::start_with(&origin.url(), |c| {
        common::set_cache_ttl(c, Some(Duration::from_secs(60)))
    })
    .await;

    get(&proxy.url("/short")).await;
    get(&proxy.url("/long")).await;
    proxy.clock.advance(Duration::from_secs(11));
    assert_eq!(
        get(&proxy.url("/short")).await.x_cache(),
        "MISS",
        "max-age=10 expired"
    );
    assert_eq!(get(&proxy.url("/long")).await.x_cache(), "HIT");
    proxy.clock.advance(Duration::from_secs(50));
    assert_eq!(
        get(&proxy.url("/long")).await.x_cache(),
        "MISS",
        "capped at the 60 s TTL"
    );
}

#[tokio::test]
async fn uncacheable_responses_are_not_stored() {
    let origin = TestOrigin::start().await;
    origin.route(
        "/no-store",
        Route::ok("a").header("cache-control", "no-store"),
    );
    origin.route(
        "/private",
        Route::ok("b").header("cache-control", "private, max-age=60"),
    );
    origin.route("/cookie", Route::ok("c").header("set-cookie", "session=1"));
    origin.route("/missing", Route::ok("d").status(404));
    origin.route("/vary-star", Route::ok("e").header("vary", "*"));
    let proxy = TestProxy::start(&origin.url()).await;

    for path in ["/no-store", "/private", "/cookie", "/missing", "/vary-star"] {
        assert_eq!(get(&proxy.url(path)).await.x_cache(), "MISS", "{path}");
        assert_eq!(
            get(&proxy.url(path)).await.x_cache(),
            "MISS",
            "{path} again"
        );
        assert_eq!(origin.hits(path), 2, "{path}");
    }
    let cookie = get(&proxy.url("/cookie")).await;
    assert_eq!(
        cookie.header("set-cookie"),
        Some("session=1"),
        "passed to the client"
    );
}

#[tokio::test]
async fn requests_with_credentials_are_not_stored_unless_public() {
    let origin = TestOrigin::start().await;
    origin.route("/me", Route::ok("mine"));
    origin.route(
        "/shared",
        Route::ok("ours").header("cache-control", "public, max-age=60"),
    );
    let proxy = TestProxy::start(&origin.url()).await;
    let client = client();
    let with_auth = |path: &str| {
        Request::get(proxy.url(path))
            .header("authorization", "Bearer t")
            .body(Full::default())
            .unwrap()
    };

    send(&client, with_auth("/me")).await;
    assert_eq!(get(&proxy.url("/me")).await.x_cache(), "MISS");
    send(&client, with_auth("/shared")).await;
    assert_eq!(get(&proxy.url("/shared")).await.x_cache(), "HIT");
}

#[tokio::test]
async fn vary_selects_the_variant() {
    let origin = TestOrigin::start().await;
    origin.route("/v", Route::ok("x").header("vary", "Accept-Language"));
    let proxy = TestProxy::start(&origin.url()).await;
    let client = client();
    let lang = |l: &str| {
        Request::get(proxy.url("/v"))
            .header("accept-language", l)
            .body(Full::default())
            .unwrap()
    };

    assert_eq!(send(&client, lang("en")).await.x_cache(), "MISS");
    assert_eq!(send(&client, lang("en")).await.x_cache(), "HIT");
    assert_eq!(
        send(&client, lang("de")).await.x_cache(),
        "MISS",
        "another variant is not served"
    );
}

#[tokio::test]
async fn unreachable_origin_is_502() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let proxy = TestProxy::start(&format!("http://127.0.0.1:{port}")).await;
    let answer = get(&proxy.url("/")).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert_eq!(&answer.body[..], b"502 Bad Gateway\n");
    assert_eq!(answer.x_cache(), "MISS");
}

#[tokio::test]
async fn slow_origin_is_504() {
    let origin = TestOrigin::start().await;
    origin.route("/slow", Route::ok("late").delay(Duration::from_secs(3)));
    let proxy = TestProxy::start_with(&origin.url(), |c| {
        c.origins[0].timeout = Duration::from_secs(1)
    })
    .await;
    let started = std::time::Instant::now();
    let answer = get(&proxy.url("/slow")).await;
    assert_eq!(answer.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(&answer.body[..], b"504 Gateway Timeout\n");
    assert!(started.elapsed() < Duration::from_millis(2900));
}

#[tokio::test]
async fn concurrent_misses_make_one_origin_request() {
    let origin = TestOrigin::start().await;
    origin.route(
        "/hot",
        Route::ok("popular").delay(Duration::from_millis(300)),
    );
    let proxy = TestProxy::start(&origin.url()).await;
    let url = proxy.url("/hot");
    let requests: Vec<_> = (0..32)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { get(&url).await })
        })
        .collect();
    let mut hits = 0;
    for request in requests {
        let answer = request.await.unwrap();
        assert_eq!(&answer.body[..], b"popular");
        hits += usize::from(answer.x_cache() == "HIT");
    }
    assert_eq!(origin.hits("/hot"), 1);
    assert_eq!(hits, 31, "every follower is served from the cache");
}

#[tokio::test]
async fn a_truncated_origin_body_is_not_stored_and_the_client_sees_it() {
    let (addr, connections) = raw_origin(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nCache-Control: max-age=60\r\n\r\nonly ten b",
    )
    .await;
    let proxy = TestProxy::start(&format!("http://{addr}")).await;
    for _ in 0..2 {
        let raw = raw_exchange(proxy.addr, b"GET /t HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
        assert!(raw.contains("x-cache: MISS"), "{raw}");
        assert!(
            raw.ends_with("only ten b"),
            "closed after the partial body: {raw}"
        );
    }
    assert_eq!(
        *connections.lock().unwrap(),
        2,
        "never served from the cache"
    );
}

#[tokio::test]
async fn bad_host_headers_are_400() {
    let origin = TestOrigin::start().await;
    let proxy = TestProxy::start(&origin.url()).await;
    for raw in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
    ] {
        let answer = raw_exchange(proxy.addr, raw).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    }
    assert_eq!(origin.hits("/"), 0);
}

#[tokio::test]
async fn forwarding_headers_are_set_and_hop_by_hop_headers_removed() {
    let origin = TestOrigin::start().await;
    origin.route(
        "/h",
        Route::ok("h")
            .header("keep-alive", "timeout=5")
            .header("x-origin", "1"),
    );
    let proxy = TestProxy::start(&origin.url()).await;
    let request = Request::get(proxy.url("/h"))
        .header("host", "Example.COM:80")
        .header("connection", "x-private")
        .header("x-private", "secret")
        .header("x-forwarded-host", "evil")
        .header("x-original-url", "/admin")
        .body(Full::default())
        .unwrap();
    let answer = send(&client(), request).await;
    assert!(answer.header("keep-alive").is_none());
    assert_eq!(answer.header("x-origin"), Some("1"));
    assert_eq!(answer.header("via"), Some("1.1 caching-proxy"));

    let seen = origin.last_headers("/h");
    assert_eq!(seen.get("host").unwrap(), &origin.addr.to_string());
    assert_eq!(seen.get("x-forwarded-host").unwrap(), "example.com");
    assert_eq!(seen.get("x-forwarded-for").unwrap(), "127.0.0.1");
    assert_eq!(seen.get("x-forwarded-proto").unwrap(), "http");
    assert!(seen.get("x-private").is_none());
    assert!(seen.get("x-original-url").is_none());
    assert!(seen.get("via").is_some());
}

#[tokio::test]
async fn the_origin_path_prefix_is_honoured() {
    let origin = TestOrigin::start().await;
    origin.route("/api/x", Route::ok("prefixed"));
    let proxy = TestProxy::start(&format!("{}/api/", origin.url())).await;
    let answer = get(&proxy.url("/x?y=1")).await;
    assert_eq!(&answer.body[..], b"prefixed");
    assert_eq!(origin.hits("/api/x?y=1"), 1);
}

#[tokio::test]
async fn a_get_with_a_body_passes_through_uncached() {
    let origin = TestOrigin::start().await;
    origin.route("/q", Route::echo());
    let proxy = TestProxy::start(&origin.url()).await;
    let client = client();
    let with_body = || {
        Request::get(proxy.url("/q"))
            .body(Full::new(Bytes::from_static(b"filter")))
            .unwrap()
    };
    assert_eq!(&send(&client, with_body()).await.body[..], b"GET filter");
    assert_eq!(&send(&client, with_body()).await.body[..], b"GET filter");
    assert_eq!(
        get(&proxy.url("/q")).await.x_cache(),
        "MISS",
        "nothing was stored"
    );
    assert_eq!(origin.hits("/q"), 3);
}

#[tokio::test]
async fn h2c_clients_are_served() {
    let origin = TestOrigin::start().await;
    origin.route("/h2", Route::ok("two"));
    let proxy = TestProxy::start(&origin.url()).await;
    let client: common::TestClient =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build_http();
    let request = || {
        Request::get(proxy.url("/h2"))
            .body(Full::default())
            .unwrap()
    };
    let first = send(&client, request()).await;
    assert_eq!(first.x_cache(), "MISS");
    let second = send(&client, request()).await;
    assert_eq!(second.x_cache(), "HIT");
    assert_eq!(&second.body[..], b"two");
}

#[tokio::test]
async fn http2_streams_of_one_connection_do_not_wait_for_a_slow_one() {
    let origin = TestOrigin::start().await;
    origin.route("/slow", Route::ok("late").delay(Duration::from_secs(60)));
    for i in 0..100 {
        origin.route(&format!("/fast/{i}"), Route::ok(format!("fast {i}")));
    }
    let proxy = TestProxy::start(&origin.url()).await;
    let client: common::TestClient =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build_http();
    let fetch = |path: String| {
        let client = client.clone();
        let request = Request::get(proxy.url(&path))
            .body(Full::default())
            .unwrap();
        async move { send(&client, request).await }
    };
    // The slow stream first, then a hundred others, all at once.
    let slow = tokio::spawn(fetch("/slow".to_string()));
    origin.wait_for_hits("/slow", 1).await;
    let fast: Vec<_> = (0..100)
        .map(|i| tokio::spawn(fetch(format!("/fast/{i}"))))
        .collect();
    // A guard, not a measure: a connection that ran its streams one at a
    // time would wait here for the slow one's minute.
    let all_fast = async {
        for (i, answer) in fast.into_iter().enumerate() {
            let answer = answer.await.unwrap();
            assert_eq!(answer.body, format!("fast {i}").as_bytes());
        }
    };
    tokio::time::timeout(Duration::from_secs(30), all_fast)
        .await
        .expect("the other streams were held behind the slow one");
    assert!(!slow.is_finished(), "the slow stream is still waiting");
    slow.abort();
}

#[tokio::test]
async fn keep_alive_connections_serve_hits_back_to_back() {
    let origin = TestOrigin::start().await;
    origin.route("/ka", Route::ok("k"));
    let proxy = TestProxy::start(&origin.url()).await;
    let raw = raw_exchange(
        proxy.addr,
        b"GET /ka HTTP/1.1\r\nHost: x\r\n\r\nGET /ka HTTP/1.1\r\nHost: x\r\n\r\nGET /ka HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw.matches("HTTP/1.1 200").count(), 3, "{raw}");
    assert_eq!(raw.matches("x-cache: HIT").count(), 2, "{raw}");
}

#[tokio::test]
async fn recently_uncacheable_urls_are_not_coalesced() {
    let origin = TestOrigin::start().await;
    origin.route(
        "/live",
        Route::ok("now")
            .header("cache-control", "no-store")
            .delay(Duration::from_millis(500)),
    );
    let proxy = TestProxy::start(&origin.url()).await;
    get(&proxy.url("/live")).await;

    // Coalesced, followers would wait for the leader and then ask the
    // origin themselves: two origin round trips. Uncoalesced: one.
    let started = std::time::Instant::now();
    let requests: Vec<_> = (0..8)
        .map(|_| {
            let url = proxy.url("/live");
            tokio::spawn(async move { get(&url).await })
        })
        .collect();
    for request in requests {
        assert_eq!(&request.await.unwrap().body[..], b"now");
    }
    assert!(
        started.elapsed() < Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(origin.hits("/live"), 9);
}

#[tokio::test]
async fn connect_and_trace_are_refused() {
    let origin = TestOrigin::start().await;
    origin.route("/", Route::echo());
    let proxy = TestProxy::start(&origin.url()).await;
    let trace = send(
        &client(),
        Request::builder()
            .method("TRACE")
            .uri(proxy.url("/"))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(trace.status, StatusCode::METHOD_NOT_ALLOWED);
    let connect = raw_exchange(
        proxy.addr,
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(connect.starts_with("HTTP/1.1 405"), "{connect}");
    assert_eq!(origin.hits("/"), 0);
}
