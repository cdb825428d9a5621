//! RFC 9111 behaviour end to end: revalidation, Vary, stale-while-
//! revalidate, stale-if-error, invalidation, ranges, HEAD, request
//! directives, targeted cache control and Cache-Status.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Answer, Route, TestOrigin, TestProxy, client, get, send};
use http::{Request, StatusCode};
use http_body_util::Full;

async fn request(proxy: &TestProxy, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut builder = Request::builder().method(method).uri(proxy.url(path));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    send(&client(), builder.body(Full::default()).unwrap()).await
}

fn cache_status(answer: &Answer) -> &str {
    answer.header("cache-status").unwrap_or("<none>")
}

#[tokio::test]
async fn a_stale_entry_is_revalidated_and_a_304_refreshes_it() {
    let origin = TestOrigin::start().await;
    origin.route(
        "/r",
        Route::ok("body v1")
            .header("cache-control", "max-age=10")
            .etag("\"v1\""),
    );
    let proxy = TestProxy::start(&origin.url()).await;
    origin.use_clock(&proxy.clock);

    assert_eq!(get(&proxy.url("/r")).await.x_cache(), "MISS");
    proxy.clock.advance(Duration::from_secs(11));
    origin.route(
        "/r",
        Route::ok("body v1")
            .header("cache-control", "max-age=10")
            .header("x-version", "2")
            .etag("\"v1\""),
    );
    let revalidated = get(&proxy.url("/r")).await;
    assert_eq!(
        revalidated.x_cache(),
        "HIT",
        "the body still comes from the cache"
    );
    assert_eq!(&revalidated.body[..], b"body v1");
    let status = cache_status(&revalidated);
    // Date has one-second resolution: the refreshed entry has 9 or 10 s left.
    assert!(
        status.starts_with("caching-proxy; fwd=stale; fwd-status=304; ttl="),
        "{status}"
    );
    assert!(
        status.ends_with("ttl=10") || status.ends_with("ttl=9"),
        "{status}"
    );
    assert_eq!(
        revalidated.header("x-version"),
        Some("2"),
        "the 304's headers replace the stored ones"
    );
    assert_eq!(
        origin.last_headers("/r").get("if-none-match").unwrap(),
        "\"v1\""
    );
    assert_eq!(origin.statuses("/r"), vec![200, 304]);

    let hit = get(&proxy.url("/r")).await;
    assert_eq!(hit.x_cache(), "HIT");
    assert_eq!(hit.header("x-version"), Some("2"));
    assert!(cache_status(&hit).starts_with("caching-proxy; hit"));
    assert_eq!(origin.hits("/r"), 2);
}

#[tokio::test]
async fn a_changed_resource_replaces_the_entry() {
    let origin = TestOrigin::start().await;
    origin.route(
        "/c",
        Route::ok("old")
            .header("cache-control", "max-age=10")
            .etag("\"a\""),
    );
    let proxy = TestProxy::start(&origin.url()).await;
    get(&proxy.url("/c")).await;
    proxy.clock.advance(Duration::from_secs(11));
    origin.route(
        "/c",
        Route::ok("new")
            .header("cache-control", "max-age=10")
            .etag("\"b\""),
    );
    let changed = get(&proxy.url("/c")).await;
    assert_eq!(changed.x_cache(), "MISS");
    assert_eq!(&changed.body[..], b"new");
    assert_eq!(cache_status(&changed), "caching-proxy; fwd=stale; stored");
    let hit = get(&proxy.url("/c")).await;
    assert_eq!((hit.x_cache(), &hit.body[..]), ("HIT", &b"new"[..]));
}

#[tokio::test]
async fn no_cache_responses_are_revalidated_on_every_use() {
    let origin = TestOrigin::start().await;
    origin.route(
        "/nc",
        Route::ok("checked")
            .header("cache-control", "no-cache")
            .etag("\"n\""),
    );
    let proxy = TestProxy::start(&origin.url()).await;
    for expected in ["MISS", "HIT", "HIT"] {
        let answer = get(&proxy.url("/nc")).await;
        assert_eq!(answer.x_cache(), expected);
        assert_eq!(&answer.body[..], b"checked");
    }
    assert_eq!(origin.statuses("/nc"), vec![200, 304, 304]);
}

#[tokio::test]
async fn client_conditionals_get_304_from_a_fresh_entry() {
    let origin = TestOrigin::start().await;
    origin.route(
        "/cond",
        Route::ok("x")
            .header("cache-control", "max-age=60")
            .header("last-modified", "Tue, 01 Sep 2026 10:00:00 GMT")
            .etag("W/\"w\""),
    );
    let proxy = TestProxy::start(&origin.url()).await;
    get(&proxy.url("/cond")).await;

    let by_etag = request(&proxy, "GET", "/cond", &[("if-none-match", "\"w\"")]).await;
    assert_eq!(by_etag.status, StatusCode::NOT_MODIFIED);
    assert_eq!(by_etag.x_cache(), "HIT");
    assert_eq!(by_etag.header("etag"), Some("W/\"w\""));
    assert!(by_etag.body.is_empty());
    let by_date = request(
        &proxy,
        "GET",
        "/cond",
        &[("if-modified-since", "Wed, 02 Sep 2026 10:00:00 GMT")],
    )
    .await;
    assert_eq!(by_date.status, StatusCode::NOT_MODIFIED);
    let etag_wins = request(
        &proxy,
        "GET",
        "/cond",
        &[
            ("if-none-match", "\"other\""),
            ("if-modified-since", "Wed, 02 Sep 2026 10:00:00 GMT"),
        ],
    )
    .await;
    assert_eq!(etag_wins.status, StatusCode::OK);
    assert_eq!(origin.hits("/cond"), 1);
}

#[tokio::test]
async fn vary_keeps_variants_side_by_side() {
    let origin = TestOrigin::start().await;
    origin.route(
        "/v",
        Route::echo()
            .header("vary", "Accept-Language")
            .header("cache-control", "max-age=60"),
    );
    let proxy = TestProxy::start(&origin.url()).await;
    let lang = |l: &'static str| [("accept-language", l)];
    assert_eq!(
        request(&proxy, "GET", "/v", &lang("en")).await.x_cache(),
        "MISS"
    );
    let de = request(&proxy, "GET", "/v", &lang("de")).await;
    assert_eq!(de.x_cache(), "MISS");
    assert_eq!(cache_status(&de), "caching-proxy; fwd=vary-miss; stored");
    assert_eq!(
        request(&proxy, "GET", "/v", &lang("en")).await.x_cache(),
        "HIT"
    );
    assert_eq!(
        request(&proxy, "GET", "/v", &lang("de")).await.x_cache(),
        "HIT"
    );
    assert_eq!(
        request(&proxy, "GET", "/v", &[("accept-language", " en ")])
            .await
            .x_cache(),
        "HIT"
    );
    assert_eq!(origin.hits("/v"), 2);
}

#[tokio::test]
async fn stale_while_revalidate_serves_stale_and_refreshes_in_the_background() {
    let origin = TestOrigin::start().await;
    origin.route(
        "/swr",
        Route::ok("v1").header("cache-control", "max-age=1, stale-while-revalidate=60"),
    );
    let proxy = TestProxy::start(&origin.url()).await;
    get(&proxy.url("/swr")).await;
    proxy.clock.advance(Duration::from_secs(5));
    origin.route(
        "/swr",
        Route::ok("v2").header("cache-control", "max-age=100, stale-while-revalidate=60"),
    );

    let mut changes = proxy.running().proxy().store().changes();
    let stale = get(&proxy.url("/swr")).await;
    assert_eq!(stale.x_cache(), "HIT");
    assert_eq!(&stale.body[..], b"v1");
    assert!(
        cache_status(&stale).ends_with("detail=stale-while-revalidate"),
        "{}",
        cache_status(&stale)
    );

    // The refresh is a background task: wait for the store to change.
    tokio::time::timeout(Duration::from_secs(5), changes.changed())
        .await
        .expect("never refreshed")
        .unwrap();
    let refreshed = get(&proxy.url("/swr")).await;
    assert_eq!(
        (refreshed.x_cache(), &refreshed.body[..]),
        ("HIT", &b"v2"[..])
    );
    assert_eq!(origin.hits("/swr"), 2, "one background request");
}

#[tokio::test]
async fn stale_if_error_covers_origin_failures_unless_must_revalidate() {
    let origin = TestOrigin::start().await;
    origin.route(
        "/sie",
        Route::ok("kept").header("cache-control", "max-age=1, stale-if-error=60"),
    );
    origin.route(
        "/strict",
        Route::ok("strict").header(
            "cache-control",
            "max-age=1, stale-if-error=60, must-revalidate",
        ),
    );
    let proxy = TestProxy::start(&origin.url()).await;
    get(&proxy.url("/sie")).await;
    get(&proxy.url("/strict")).await;
    proxy.clock.advance(Duration::from_secs(5));
    origin.route("/sie", Route::ok("broken").status(503));
    origin.route("/strict", Route::ok("broken").status(503));

    let covered = get(&proxy.url("/sie")).await;
    assert_eq!(covered.status, StatusCode::OK);
    assert_eq!(&covered.body[..], b"kept");
    assert!(cache_status(&covered).ends_with("detail=stale-if-error"));
    let strict = get(&proxy.url("/strict")).await;
    assert_eq!(strict.status, StatusCode::SERVICE_UNAVAILABLE);

    proxy.clock.advance(Duration::from_secs(120));
    assert_eq!(
        get(&proxy.url("/sie")).await.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "window over"
    );
}

#[tokio::test]
async fn grace_covers_an_unreachable_origin() {
    let origin = TestOrigin::start().await;
    origin.route(
        "/g",
        Route::ok("graceful").header("cache-control", "max-age=1"),
    );
    origin.route(
        "/nograce",
        Route::ok("n").header("cache-control", "max-age=1"),
    );
    let proxy =
        TestProxy::start_with(&origin.url(), |c| c.cache.grace = Duration::from_secs(300)).await;
    get(&proxy.url("/g")).await;
    proxy.clock.advance(Duration::from_secs(10));
    origin.stop();

    let answer = get(&proxy.url("/g")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(&answer.body[..], b"graceful");
    assert!(cache_status(&answer).ends_with("detail=stale-if-error"));
    assert_eq!(
        get(&proxy.url("/nograce")).await.status,
        StatusCode::BAD_GATEWAY,
        "nothing stored to fall back on"
    );
    proxy.clock.advance(Duration::from_secs(300));
    assert_eq!(
        get(&proxy.url("/g")).await.status,
        StatusCode::BAD_GATEWAY,
        "grace is over"
    );
}

#[tokio::test]
async fn unsafe_methods_invalidate_the_url_and_its_location() {
    let origin = TestOrigin::start().await;
    origin.route(
        "/list",
        Route::ok("list").header("cache-control", "max-age=60"),
    );
    origin.route(
        "/item",
        Route::ok("item").header("cache-control", "max-age=60"),
    );
    origin.route(
        "/create",
        Route::ok("created").status(201).header("location", "/item"),
    );
    let proxy = TestProxy::start(&origin.url()).await;
    get(&proxy.url("/list")).await;
    get(&proxy.url("/item")).await;
    assert_eq!(get(&proxy.url("/item")).await.x_cache(), "HIT");

    let created = request(&proxy, "POST", "/create", &[]).await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(
        cache_status(&created),
        "caching-proxy; fwd=method; detail=method"
    );
    assert_eq!(
        get(&proxy.url("/item")).await.x_cache(),
        "MISS",
        "Location invalidated"
    );
    assert_eq!(
        get(&proxy.url("/list")).await.x_cache(),
        "HIT",
        "other URLs untouched"
    );

    request(&proxy, "DELETE", "/list", &[]).await;
    assert_eq!(get(&proxy.url("/list")).await.x_cache(), "MISS");
}

#[tokio::test]
async fn ranges_are_answered_from_a_stored_response() {
    let origin = TestOrigin::start().await;
    origin.route(
        "/bytes",
        Route::ok("0123456789")
            .header("cache-control", "max-age=60")
            .etag("\"r\""),
    );
    origin.route(
        "/uncached",
        Route::ok("abcdef").header("cache-control", "max-age=60"),
    );
    let proxy = TestProxy::start(&origin.url()).await;
    get(&proxy.url("/bytes")).await;

    let partial = request(&proxy, "GET", "/bytes", &[("range", "bytes=2-5")]).await;
    assert_eq!(partial.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&partial.body[..], b"2345");
    assert_eq!(partial.header("content-range"), Some("bytes 2-5/10"));
    assert_eq!(partial.x_cache(), "HIT");
    let suffix = request(&proxy, "GET", "/bytes", &[("range", "bytes=-3")]).await;
    assert_eq!(&suffix.body[..], b"789");
    let outside = request(&proxy, "GET", "/bytes", &[("range", "bytes=20-")]).await;
    assert_eq!(outside.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(outside.header("content-range"), Some("bytes */10"));
    let if_range_fails = request(
        &proxy,
        "GET",
        "/bytes",
        &[("range", "bytes=0-1"), ("if-range", "\"old\"")],
    )
    .await;
    assert_eq!(if_range_fails.status, StatusCode::OK);
    assert_eq!(origin.hits("/bytes"), 1);

    let miss = request(&proxy, "GET", "/uncached", &[("range", "bytes=0-1")]).await;
    assert_eq!(miss.x_cache(), "MISS");
    assert_eq!(
        origin.last_headers("/uncached").get("range").unwrap(),
        "bytes=0-1",
        "the range went forward"
    );
    assert_eq!(
        get(&proxy.url("/uncached")).await.x_cache(),
        "HIT",
        "an origin that ignores ranges answered the whole: stored"
    );
}

#[tokio::test]
async fn head_uses_the_stored_get_and_refreshes_its_headers() {
    let origin = TestOrigin::start().await;
    origin.route(
        "/h",
        Route::ok("full body")
            .header("cache-control", "max-age=5")
            .etag("\"h\""),
    );
    let proxy = TestProxy::start(&origin.url()).await;
    get(&proxy.url("/h")).await;
    let head_hit = request(&proxy, "HEAD", "/h", &[]).await;
    assert_eq!(head_hit.x_cache(), "HIT");
    assert_eq!(head_hit.header("content-length"), Some("9"));

    proxy.clock.advance(Duration::from_secs(6));
    origin.route(
        "/h",
        Route::ok("full body")
            .header("cache-control", "max-age=60")
            .header("x-fresh", "yes")
            .etag("\"h\""),
    );
    let head = request(&proxy, "HEAD", "/h", &[]).await;
    assert_eq!(head.x_cache(), "MISS");
    let get_after = get(&proxy.url("/h")).await;
    assert_eq!(
        get_after.x_cache(),
        "HIT",
        "the HEAD response refreshed the stored GET"
    );
    assert_eq!(get_after.header("x-fresh"), Some("yes"));
    assert_eq!(
        &get_after.body[..],
        b"full body",
        "the body is never replaced by a HEAD"
    );
}

#[tokio::test]
async fn request_directives_are_obeyed() {
    let origin = TestOrigin::start().await;
    origin.route(
        "/d",
        Route::ok("d")
            .header("cache-control", "max-age=60")
            .etag("\"d\""),
    );
    let proxy = TestProxy::start(&origin.url()).await;
    origin.use_clock(&proxy.clock);

    let nothing = request(&proxy, "GET", "/d", &[("cache-control", "only-if-cached")]).await;
    assert_eq!(nothing.status, StatusCode::GATEWAY_TIMEOUT);
    get(&proxy.url("/d")).await;
    let cached = request(&proxy, "GET", "/d", &[("cache-control", "only-if-cached")]).await;
    assert_eq!((cached.status, cached.x_cache()), (StatusCode::OK, "HIT"));

    let reload = request(&proxy, "GET", "/d", &[("cache-control", "no-cache")]).await;
    assert_eq!(reload.x_cache(), "HIT");
    assert!(cache_status(&reload).starts_with("caching-proxy; fwd=stale; fwd-status=304; ttl="));
    assert_eq!(origin.statuses("/d"), vec![200, 304]);
    request(&proxy, "GET", "/d", &[("pragma", "no-cache")]).await;
    assert_eq!(origin.hits("/d"), 3);

    proxy.clock.advance(Duration::from_secs(10));
    request(&proxy, "GET", "/d", &[("cache-control", "max-age=5")]).await;
    assert_eq!(origin.hits("/d"), 4, "older than the client accepts");
    proxy.clock.advance(Duration::from_secs(100));
    let stale_ok = request(&proxy, "GET", "/d", &[("cache-control", "max-stale")]).await;
    assert_eq!(stale_ok.x_cache(), "HIT");
    assert_eq!(origin.hits("/d"), 4);
}

#[tokio::test]
async fn targeted_cache_control_wins_for_this_cache() {
    let origin = TestOrigin::start().await;
    origin.route(
        "/t",
        Route::ok("t")
            .header("cache-control", "no-store")
            .header("cdn-cache-control", "max-age=60"),
    );
    let proxy = TestProxy::start(&origin.url()).await;
    assert_eq!(get(&proxy.url("/t")).await.x_cache(), "MISS");
    let hit = get(&proxy.url("/t")).await;
    assert_eq!(hit.x_cache(), "HIT");
    assert_eq!(
        hit.header("cache-control"),
        Some("no-store"),
        "passed on for caches downstream"
    );
}

#[tokio::test]
async fn cache_status_says_why_a_response_was_not_stored() {
    let origin = TestOrigin::start().await;
    origin.route("/p", Route::ok("p").header("cache-control", "private"));
    origin.route("/s", Route::ok("s"));
    let proxy = TestProxy::start(&origin.url()).await;
    assert_eq!(
        cache_status(&get(&proxy.url("/p")).await),
        "caching-proxy; fwd=uri-miss; detail=private"
    );
    assert_eq!(
        cache_status(&get(&proxy.url("/s")).await),
        "caching-proxy; fwd=uri-miss; stored"
    );
    assert_eq!(
        cache_status(&get(&proxy.url("/s")).await),
        "caching-proxy; hit"
    );
}

#[tokio::test]
async fn authorization_responses_are_stored_when_must_revalidate_allows() {
    let origin = TestOrigin::start().await;
    origin.route(
        "/a",
        Route::ok("a").header("cache-control", "max-age=60, must-revalidate"),
    );
    let proxy = TestProxy::start(&origin.url()).await;
    request(&proxy, "GET", "/a", &[("authorization", "Bearer x")]).await;
    assert_eq!(
        request(&proxy, "GET", "/a", &[("authorization", "Bearer x")])
            .await
            .x_cache(),
        "HIT"
    );
}
