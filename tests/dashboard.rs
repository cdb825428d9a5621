//! The dashboard on the admin listener: a self-contained page, and the
//! JSON it (and `caching-proxy top`) reads: rates, hit ratios, routes, the
//! top URLs, events and alerts, as traffic, purges and reloads make them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Route, TestOrigin, TestProxy, get, get_as, get_with};
use serde_json::Value;

fn admin_url(proxy: &TestProxy, path: &str) -> String {
    format!("http://{}{path}", proxy.running().admin_addr())
}

async fn dashboard(proxy: &TestProxy) -> Value {
    let answer = get(&admin_url(proxy, "/dashboard.json")).await;
    assert_eq!(answer.status, 200);
    serde_json::from_slice(&answer.body).unwrap()
}

#[tokio::test]
async fn the_page_is_one_self_contained_file() {
    let origin = TestOrigin::start().await;
    let proxy = TestProxy::start(&origin.url()).await;
    let page = get(&admin_url(&proxy, "/")).await;
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.body.len() < 60_000, "{} bytes", page.body.len());
    let text = String::from_utf8_lossy(&page.body);
    for outside in ["http://", "https://", "src=\"//", "href=\"//", "@import"] {
        assert!(
            !text.contains(outside),
            "the page refers outside: {outside}"
        );
    }
    assert!(text.contains("fetch(\"dashboard.json\""));
    let policy = page.header("content-security-policy").unwrap();
    assert!(policy.contains("default-src 'none'") && policy.contains("connect-src 'self'"));
}

#[tokio::test]
async fn traffic_shows_as_rates_hit_ratios_routes_and_top_urls() {
    let origin = TestOrigin::start().await;
    origin.route("/hot", Route::ok(vec![b'h'; 1000]));
    for i in 0..10 {
        origin.route(
            &format!("/cold-{i}"),
            Route::ok("c").header("cache-control", "no-store"),
        );
    }
    let proxy = TestProxy::start(&origin.url()).await;
    let board = proxy.running().dashboard();
    board.sample_now();
    // 1 miss then 199 hits of 1000 bytes; 100 passes of one byte.
    for _ in 0..200 {
        get_as(&proxy.url("/hot"), "cache.test").await;
    }
    for i in 0..100 {
        get_as(&proxy.url(&format!("/cold-{}", i % 10)), "cache.test").await;
    }
    board.sample_now();
    let d = dashboard(&proxy).await;
    let now = &d["current"];
    assert_eq!(now["requests_total"], 300);
    assert_eq!(now["hits_total"], 199);
    assert_eq!(now["misses_total"], 101);
    let ratio = now["hit_ratio"].as_f64().unwrap();
    assert!((ratio - 199.0 / 300.0).abs() < 1e-9, "{ratio}");
    let by_bytes = now["byte_hit_ratio"].as_f64().unwrap();
    let expected = 199_000.0 / (199_000.0 + 1_000.0 + 100.0);
    assert!(
        (by_bytes - expected).abs() < 1e-9,
        "{by_bytes} vs {expected}"
    );
    assert!(now["requests_per_s"].as_f64().unwrap() > 0.0);
    assert!(now["origin_p50_ms"].as_f64().is_some(), "{now}");
    assert_eq!(now["cache_entries"], 1);

    let route = &d["routes"][0];
    assert_eq!(route["route"], "default");
    assert_eq!(route["requests_total"], 300);
    assert_eq!(route["errors_per_s"], 0.0);

    let hits = d["top"]["hits"].as_array().unwrap();
    assert_eq!(hits[0]["url"], "cache.test/hot", "{hits:?}");
    let misses = d["top"]["misses"].as_array().unwrap();
    assert!(
        misses
            .iter()
            .all(|u| u["url"].as_str().unwrap().starts_with("cache.test/cold-")),
        "{misses:?}"
    );
    assert!(
        d["alerts"].as_array().unwrap().is_empty(),
        "{}",
        d["alerts"]
    );
}

#[tokio::test]
async fn a_failing_origin_a_refused_reload_and_a_purge_are_said_in_words() {
    let origin = TestOrigin::start().await;
    origin.route("/broken", Route::ok("down").status(503));
    let proxy = TestProxy::start(&origin.url()).await;
    let board = proxy.running().dashboard();
    board.sample_now();
    for _ in 0..20 {
        assert_eq!(get(&proxy.url("/broken")).await.status, 503);
    }
    board.sample_now();
    let purge = get_with(&admin_url(&proxy, "/purge"), &[]).await;
    assert_eq!(purge.status, 404, "GET /purge is no purge");
    let client = common::client();
    let request = http::Request::post(admin_url(&proxy, "/purge"))
        .body(http_body_util::Full::new(bytes::Bytes::from(
            r#"{"all": true}"#,
        )))
        .unwrap();
    assert_eq!(client.request(request).await.unwrap().status(), 200);
    let refused = proxy
        .running()
        .reloader()
        .reload_text("test", "this is = not [ toml".to_owned())
        .await;
    assert!(refused.is_err());
    // The sampler task records the reload event it is told of.
    let mut recorded = board.recorded();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        recorded.wait_for(|n| *n >= 2),
    )
    .await
    .unwrap()
    .unwrap();
    let d = dashboard(&proxy).await;
    let alerts: Vec<&str> = d["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["text"].as_str().unwrap())
        .collect();
    assert!(
        alerts
            .iter()
            .any(|a| a
                .starts_with("origin 'default' failing: 100% of route 'default' answers are 5xx")),
        "{alerts:?}"
    );
    assert!(
        alerts
            .iter()
            .any(|a| a.starts_with("configuration reload refused")),
        "{alerts:?}"
    );
    let events = d["events"].as_array().unwrap();
    assert_eq!(events[0]["kind"], "reload", "newest first: {events:?}");
    assert_eq!(events[0]["ok"], false);
    assert_eq!(events[1]["kind"], "purge");
    assert_eq!(events[1]["text"], "everything: 0 entries removed");
}

#[tokio::test]
async fn with_a_token_the_page_takes_it_in_its_query_and_nothing_else_does() {
    let origin = TestOrigin::start().await;
    let proxy =
        TestProxy::start_with(&origin.url(), |c| c.admin.token = Some("s3cret".into())).await;
    for path in ["/", "/dashboard.json"] {
        assert_eq!(get(&admin_url(&proxy, path)).await.status, 401, "{path}");
        assert_eq!(
            get(&admin_url(&proxy, &format!("{path}?token=wrong")))
                .await
                .status,
            401
        );
        let with = get(&admin_url(&proxy, &format!("{path}?token=s3cret"))).await;
        assert_eq!(with.status, 200, "{path}");
        let bearer = get_with(
            &admin_url(&proxy, path),
            &[("authorization", "Bearer s3cret")],
        )
        .await;
        assert_eq!(bearer.status, 200, "{path}");
    }
    assert_eq!(
        get(&admin_url(&proxy, "/stats?token=s3cret")).await.status,
        401,
        "the query token is the dashboard's only"
    );
}
