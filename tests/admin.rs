//! The admin API: health, readiness, metrics, stats, tokens, purges and
//! inspection (also through the `cache` command of the binary).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use common::{Route, TestOrigin, TestProxy, client, get};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_caching-proxy");

async fn admin(
    proxy: &TestProxy,
    method: Method,
    path: &str,
    body: &str,
    token: Option<&str>,
) -> (StatusCode, String) {
    admin_as(proxy, method, path, body, token, None).await
}

async fn admin_as(
    proxy: &TestProxy,
    method: Method,
    path: &str,
    body: &str,
    token: Option<&str>,
    host: Option<&str>,
) -> (StatusCode, String) {
    let mut request = Request::builder().method(method).uri(format!(
        "http://{}{}",
        proxy.running().admin_addr(),
        path
    ));
    if let Some(host) = host {
        request = request.header("host", host);
    }
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = client()
        .request(
            request
                .body(Full::new(Bytes::from(body.to_owned())))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

async fn admin_json(proxy: &TestProxy, method: Method, path: &str, body: &str) -> Value {
    let (status, text) = admin(proxy, method, path, body, None).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    serde_json::from_str(&text).unwrap()
}

/// A metric's value from Prometheus text: `name{labels} value`.
fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn health_readiness_metrics_and_stats() {
    let origin = TestOrigin::start().await;
    origin.route("/m", Route::ok("m"));
    let proxy = TestProxy::start(&origin.url()).await;
    assert_eq!(
        admin(&proxy, Method::GET, "/healthz", "", None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        admin(&proxy, Method::GET, "/readyz", "", None).await.0,
        StatusCode::OK
    );

    let (_, before) = admin(&proxy, Method::GET, "/metrics", "", None).await;
    get(&proxy.url("/m")).await;
    get(&proxy.url("/m")).await;
    let (status, after) = admin(&proxy, Method::GET, "/metrics", "", None).await;
    assert_eq!(status, StatusCode::OK);
    for line in after
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').unwrap();
        assert!(value.parse::<f64>().is_ok(), "not a sample: {line}");
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {line}"
        );
    }
    assert!(after.trim_end().ends_with("# EOF"));
    let requests = "caching_proxy_requests_total{route=\"default\",method=\"GET\"";
    assert_eq!(metric(&after, requests) - metric(&before, requests), 2.0);
    assert_eq!(
        metric(&after, "caching_proxy_cache_hits_total")
            - metric(&before, "caching_proxy_cache_hits_total"),
        1.0
    );
    assert_eq!(metric(&after, "caching_proxy_cache_entries"), 1.0);
    assert!(
        metric(
            &after,
            "caching_proxy_origin_request_duration_seconds_count{origin=\"default\"}"
        ) >= 1.0
    );

    let stats = admin_json(&proxy, Method::GET, "/stats", "").await;
    assert_eq!(stats["cache"]["entries"], 1);
    assert_eq!(stats["cache"]["hits"], 1);
    assert_eq!(stats["cache"]["misses"], 1);
    assert_eq!(stats["requests"], 2);
}

#[tokio::test]
async fn a_configured_token_is_required() {
    let origin = TestOrigin::start().await;
    let proxy =
        TestProxy::start_with(&origin.url(), |c| c.admin.token = Some("s3cret".into())).await;
    assert_eq!(
        admin(&proxy, Method::GET, "/healthz", "", None).await.0,
        StatusCode::OK,
        "health needs no token"
    );
    assert_eq!(
        admin(&proxy, Method::GET, "/stats", "", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        admin(&proxy, Method::GET, "/stats", "", Some("wrong"))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        admin(&proxy, Method::POST, "/purge", "{\"all\":true}", None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        admin(&proxy, Method::GET, "/stats", "", Some("s3cret"))
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn purges_by_url_prefix_tag_and_all_are_each_followed_by_a_miss() {
    let origin = TestOrigin::start().await;
    for path in ["/a/1", "/a/2", "/b/1", "/t/1", "/t/2", "/v"] {
        origin.route(
            path,
            Route::ok(path.to_owned())
                .header("surrogate-key", "group-t")
                .header("cache-control", "max-age=600"),
        );
    }
    origin.route("/v", Route::echo().header("vary", "accept-language"));
    let proxy = TestProxy::start(&origin.url()).await;
    let host = format!("http://{}", proxy.addr);
    let warm = |paths: &'static [&'static str]| {
        let proxy = &proxy;
        async move {
            for path in paths {
                get(&proxy.url(path)).await;
                assert_eq!(get(&proxy.url(path)).await.x_cache(), "HIT", "{path}");
            }
        }
    };
    warm(&["/a/1", "/a/2", "/b/1", "/t/1"]).await;
    let hit = get(&proxy.url("/t/1")).await;
    assert!(
        hit.header("surrogate-key").is_none(),
        "tag fields are stripped for clients"
    );

    let purged = admin_json(
        &proxy,
        Method::POST,
        "/purge",
        &format!("{{\"url\":\"{host}/a/1\"}}"),
    )
    .await;
    assert_eq!(purged["purged"], 1);
    assert_eq!(get(&proxy.url("/a/1")).await.x_cache(), "MISS");
    assert_eq!(get(&proxy.url("/a/2")).await.x_cache(), "HIT");

    let purged = admin_json(
        &proxy,
        Method::POST,
        "/purge",
        &format!("{{\"prefix\":\"{host}/a/\"}}"),
    )
    .await;
    assert_eq!(purged["purged"], 2);
    assert_eq!(get(&proxy.url("/a/2")).await.x_cache(), "MISS");

    let purged = admin_json(&proxy, Method::POST, "/purge", "{\"tag\":\"group-t\"}").await;
    assert!(purged["purged"].as_u64().unwrap() >= 3, "{purged}");
    assert_eq!(get(&proxy.url("/t/1")).await.x_cache(), "MISS");

    // PURGE names one URL, as Varnish and Squid users expect.
    get(&proxy.url("/b/1")).await;
    let purge = Method::from_bytes(b"PURGE").unwrap();
    let (status, body) = admin_as(
        &proxy,
        purge,
        "/b/1",
        "",
        None,
        Some(&proxy.addr.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(get(&proxy.url("/b/1")).await.x_cache(), "MISS");

    let purged = admin_json(&proxy, Method::POST, "/purge", "{\"all\":true}").await;
    assert!(purged["purged"].as_u64().unwrap() >= 1);
    assert_eq!(get(&proxy.url("/b/1")).await.x_cache(), "MISS");
    let (status, _) = admin(
        &proxy,
        Method::POST,
        "/purge",
        "{\"url\":\"x\",\"all\":true}",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_revalidated_entry_keeps_its_tags_unless_the_304_names_new_ones() {
    let origin = TestOrigin::start().await;
    let route = |tag: Option<&str>| {
        let route = Route::ok("body")
            .header("cache-control", "no-cache")
            .etag("\"e\"");
        match tag {
            Some(tag) => route.header("surrogate-key", tag),
            None => route,
        }
    };
    origin.route("/r", route(Some("first")));
    let proxy = TestProxy::start(&origin.url()).await;
    let purge = |tag: &'static str| {
        let proxy = &proxy;
        async move {
            let body = format!("{{\"tag\":\"{tag}\"}}");
            admin_json(proxy, Method::POST, "/purge", &body).await["purged"].as_u64()
        }
    };
    assert_eq!(get(&proxy.url("/r")).await.x_cache(), "MISS");
    // A 304 without tag fields: the entry keeps the tags it was stored with.
    origin.route("/r", route(None));
    assert_eq!(get(&proxy.url("/r")).await.x_cache(), "HIT");
    assert_eq!(purge("first").await, Some(1));
    assert_eq!(get(&proxy.url("/r")).await.x_cache(), "MISS");
    // A 304 with its own tags: they replace the stored ones.
    origin.route("/r", route(Some("second")));
    assert_eq!(get(&proxy.url("/r")).await.x_cache(), "HIT");
    assert_eq!(origin.statuses("/r"), vec![200, 304, 200, 304]);
    assert_eq!(purge("first").await, Some(0));
    assert_eq!(purge("second").await, Some(1));
}

#[tokio::test]
async fn purged_entries_stay_gone_after_a_restart() {
    let origin = TestOrigin::start().await;
    origin.route("/keep", Route::ok("k"));
    origin.route("/drop", Route::ok("d"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.json");
    let clock = Arc::new(caching_proxy::clock::ManualClock::default());
    let mut first = TestProxy::start_on(&origin.url(), file.clone(), clock.clone(), |_| {}).await;
    common::get_as(&first.url("/keep"), "h").await;
    common::get_as(&first.url("/drop"), "h").await;
    let purged = admin_json(
        &first,
        Method::POST,
        "/purge",
        "{\"url\":\"http://h/drop\"}",
    )
    .await;
    assert_eq!(purged["purged"], 1);
    let snapshot = std::fs::read_to_string(&file).unwrap();
    assert!(
        !snapshot.contains("h/drop") && snapshot.contains("h/keep"),
        "{snapshot}"
    );
    first.stop().await;

    let second = TestProxy::start_on(&origin.url(), file, clock, |_| {}).await;
    assert_eq!(
        common::get_as(&second.url("/keep"), "h").await.x_cache(),
        "HIT"
    );
    assert_eq!(
        common::get_as(&second.url("/drop"), "h").await.x_cache(),
        "MISS"
    );
}

#[tokio::test]
async fn a_snapshot_can_be_asked_for_and_is_written_in_the_background() {
    let origin = TestOrigin::start().await;
    origin.route("/a", Route::ok("a"));
    let proxy = TestProxy::start_with(&origin.url(), |config| {
        config.cache.write_delay = std::time::Duration::from_secs(3600);
    })
    .await;
    common::get_as(&proxy.url("/a"), "h").await;
    let before = std::fs::read_to_string(&proxy.cache_file).unwrap_or_default();
    assert!(!before.contains("h/a"), "written before it was asked for");
    let mut writes = proxy.running().snapshot_writes();
    writes.borrow_and_update();
    let (status, text) = admin(&proxy, Method::POST, "/snapshot", "", None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{text}");
    tokio::time::timeout(std::time::Duration::from_secs(10), writes.changed())
        .await
        .expect("no snapshot within 10 s")
        .unwrap();
    let snapshot = std::fs::read_to_string(&proxy.cache_file).unwrap();
    assert!(snapshot.contains("h/a"), "{snapshot}");
}

fn cache_command(proxy: &TestProxy, args: &[&str]) -> Value {
    let output = Command::new(BIN)
        .arg("--cache-file")
        .arg(&proxy.cache_file)
        .arg("cache")
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cache_command_lists_shows_explains_and_purges() {
    let origin = TestOrigin::start().await;
    origin.route(
        "/products",
        Route::ok("[1]")
            .header("cache-control", "max-age=300")
            .header("cache-tag", "catalog"),
    );
    origin.route(
        "/private",
        Route::ok("p").header("cache-control", "private"),
    );
    let proxy = TestProxy::start(&origin.url()).await;
    get(&proxy.url("/products")).await;
    get(&proxy.url("/products")).await;
    get(&proxy.url("/private")).await;
    let url = proxy.url("/products");

    let list = cache_command(&proxy, &["list", "--filter", "/prod"]);
    assert_eq!(list["total"], 1);
    assert_eq!(list["entries"][0]["url"], url.as_str());
    assert_eq!(list["entries"][0]["hits"], 1);
    assert_eq!(list["entries"][0]["tags"][0], "catalog");

    let show = cache_command(&proxy, &["show", &url]);
    let headers = show["variants"][0]["headers"].as_array().unwrap();
    assert!(
        headers
            .iter()
            .any(|h| h[0] == "cache-control" && h[1] == "max-age=300"),
        "{show}"
    );
    assert_eq!(show["variants"][0]["fresh"], true);

    let hit = cache_command(&proxy, &["explain", &url]);
    assert_eq!(hit["verdict"], "HIT");
    assert!(
        hit["reason"].as_str().unwrap().starts_with("fresh for"),
        "{hit}"
    );
    let private = cache_command(&proxy, &["explain", &proxy.url("/private")]);
    assert_eq!(private["verdict"], "MISS");
    assert!(
        private["reason"].as_str().unwrap().contains("private"),
        "{private}"
    );
    let unknown = cache_command(&proxy, &["explain", &proxy.url("/never")]);
    assert_eq!(unknown["reason"], "not in the cache");

    let purged = cache_command(&proxy, &["purge", "--tag", "catalog"]);
    assert_eq!(purged["purged"], 1);
    assert_eq!(get(&proxy.url("/products")).await.x_cache(), "MISS");
    let stats = cache_command(&proxy, &["stats"]);
    assert_eq!(stats["cache"]["hits"], 1);
}
