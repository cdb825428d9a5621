//! An origin with several servers (real in-process origins on loopback):
//! the split follows the weights, a stopped or resetting server costs GETs
//! nothing (another server answers) and is then left out, a POST is never
//! sent twice, backups answer only when no primary can, `key_hash` keeps a
//! URL on one server, and with every server down a stale entry answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use caching_proxy::config::{Balance, Config, Server};
use common::{Route, TestOrigin, TestProxy, client, get, raw_origin, send};
use http::{Request, StatusCode};
use http_body_util::Full;

fn server(url: &str, weight: u32, backup: bool) -> Server {
    Server {
        authority: url.trim_start_matches("http://").parse().unwrap(),
        weight,
        backup,
    }
}

fn use_servers(config: &mut Config, servers: Vec<Server>, balance: Balance) {
    let origin = &mut config.origins[0];
    origin.servers = servers;
    origin.balance = balance;
    origin.retries = 1;
}

async fn origins(n: usize, path: &str, route: impl Fn(usize) -> Route) -> Vec<TestOrigin> {
    let mut all = Vec::new();
    for i in 0..n {
        let origin = TestOrigin::start().await;
        origin.route(path, route(i));
        all.push(origin);
    }
    all
}

fn uncached(i: usize) -> Route {
    Route::ok(format!("server {i}")).header("cache-control", "no-store")
}

#[tokio::test]
async fn requests_are_split_by_weight() {
    let servers = origins(3, "/p", uncached).await;
    let proxy = TestProxy::start_with(&servers[0].url(), |config| {
        let list = vec![
            server(&servers[0].url(), 1, false),
            server(&servers[1].url(), 1, false),
            server(&servers[2].url(), 2, false),
        ];
        use_servers(config, list, Balance::RoundRobin);
    })
    .await;
    for _ in 0..400 {
        assert_eq!(get(&proxy.url("/p")).await.status, StatusCode::OK);
    }
    let hits: Vec<usize> = servers.iter().map(|s| s.hits("/p")).collect();
    assert_eq!(hits, vec![100, 100, 200]);
}

#[tokio::test]
async fn a_stopped_server_costs_gets_nothing_and_is_then_left_out() {
    let servers = origins(3, "/p", uncached).await;
    let proxy = TestProxy::start_with(&servers[0].url(), |config| {
        let list = servers.iter().map(|s| server(&s.url(), 1, false)).collect();
        use_servers(config, list, Balance::RoundRobin);
    })
    .await;
    servers[2].stop();
    for _ in 0..60 {
        let answer = get(&proxy.url("/p")).await;
        assert_eq!(answer.status, StatusCode::OK, "another server answers");
    }
    let hits: Vec<usize> = servers[..2].iter().map(|s| s.hits("/p")).collect();
    assert_eq!(hits.iter().sum::<usize>(), 60);
    let up: Vec<bool> = balancer_state(&proxy);
    assert_eq!(
        up,
        vec![true, true, false],
        "taken out after failures in a row"
    );
}

fn balancer_state(proxy: &TestProxy) -> Vec<bool> {
    let runtime = proxy.running().proxy().runtime();
    let route = runtime.route("127.0.0.1", "/").unwrap();
    let stats = route.upstream.servers_stats().unwrap();
    stats["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["up"].as_bool().unwrap())
        .collect()
}

#[tokio::test]
async fn a_resetting_server_is_retried_for_get_but_a_post_is_never_sent_twice() {
    let (resetting, accepted) = raw_origin(b"").await;
    let good = origins(1, "/p", |_| Route::echo()).await;
    let proxy = TestProxy::start_with(&good[0].url(), |config| {
        let list = vec![
            server(&format!("http://{resetting}"), 1, false),
            server(&good[0].url(), 1, false),
        ];
        use_servers(config, list, Balance::RoundRobin);
    })
    .await;
    for _ in 0..4 {
        assert_eq!(get(&proxy.url("/p")).await.status, StatusCode::OK);
    }
    assert!(
        *accepted.lock().unwrap() >= 1,
        "the resetting server was tried"
    );

    // Whichever server a POST goes to, it goes to one only.
    let before = good[0].hits("/p");
    let mut refused = 0;
    for _ in 0..4 {
        let post = Request::post(proxy.url("/p"))
            .body(Full::new(Bytes::from_static(b"once")))
            .unwrap();
        let answer = send(&client(), post).await;
        if answer.status == StatusCode::BAD_GATEWAY {
            refused += 1;
        } else {
            assert_eq!(answer.status, StatusCode::OK);
        }
    }
    let delivered = good[0].hits("/p") - before;
    assert!(
        refused >= 1,
        "a POST whose connection broke is not sent again"
    );
    assert_eq!(delivered, 4 - refused, "no POST reached two servers");
}

#[tokio::test]
async fn a_post_that_could_not_connect_goes_to_another_server_once() {
    let servers = origins(2, "/p", |_| Route::echo()).await;
    let proxy = TestProxy::start_with(&servers[0].url(), |config| {
        let list = servers.iter().map(|s| server(&s.url(), 1, false)).collect();
        use_servers(config, list, Balance::RoundRobin);
    })
    .await;
    servers[0].stop();
    for n in 0..6 {
        let post = Request::post(proxy.url("/p"))
            .body(Full::new(Bytes::from(format!("post {n}"))))
            .unwrap();
        let answer = send(&client(), post).await;
        assert_eq!(answer.status, StatusCode::OK, "never sent: sent elsewhere");
        let echoed = String::from_utf8_lossy(&answer.body).into_owned();
        assert!(
            echoed.ends_with(&format!("post {n}")),
            "body intact: {echoed}"
        );
    }
    assert_eq!(servers[1].hits("/p"), 6, "each POST delivered once");
}

#[tokio::test]
async fn backups_answer_only_when_no_primary_can() {
    let servers = origins(2, "/p", uncached).await;
    let proxy = TestProxy::start_with(&servers[0].url(), |config| {
        let list = vec![
            server(&servers[0].url(), 1, false),
            server(&servers[1].url(), 1, true),
        ];
        use_servers(config, list, Balance::RoundRobin);
    })
    .await;
    for _ in 0..10 {
        get(&proxy.url("/p")).await;
    }
    assert_eq!((servers[0].hits("/p"), servers[1].hits("/p")), (10, 0));
    servers[0].stop();
    for _ in 0..10 {
        assert_eq!(get(&proxy.url("/p")).await.status, StatusCode::OK);
    }
    assert_eq!(servers[1].hits("/p"), 10, "the backup took over");
}

#[tokio::test]
async fn key_hash_keeps_each_url_on_one_server() {
    let servers = origins(3, "/", uncached).await;
    for s in &servers {
        for n in 0..30 {
            s.route(&format!("/k{n}"), uncached(0));
        }
    }
    let proxy = TestProxy::start_with(&servers[0].url(), |config| {
        let list = servers.iter().map(|s| server(&s.url(), 1, false)).collect();
        use_servers(config, list, Balance::KeyHash);
    })
    .await;
    for _ in 0..3 {
        for n in 0..30 {
            get(&proxy.url(&format!("/k{n}"))).await;
        }
    }
    for n in 0..30 {
        let path = format!("/k{n}");
        let per_server: Vec<usize> = servers.iter().map(|s| s.hits(&path)).collect();
        assert!(per_server.contains(&3), "{path}: {per_server:?}");
    }
    let used = servers
        .iter()
        .filter(|s| (0..30).any(|n| s.hits(&format!("/k{n}")) > 0));
    assert_eq!(used.count(), 3, "the URLs are spread over all three");
}

#[tokio::test]
async fn with_every_server_down_a_stale_entry_answers_and_else_a_502_comes_at_once() {
    let servers = origins(2, "/s", |i| {
        Route::ok(format!("server {i}")).header("cache-control", "max-age=1")
    })
    .await;
    for s in &servers {
        s.route("/none", uncached(0));
    }
    let proxy = TestProxy::start_with(&servers[0].url(), |config| {
        let list = servers.iter().map(|s| server(&s.url(), 1, false)).collect();
        use_servers(config, list, Balance::RoundRobin);
        config.cache.grace = Duration::from_secs(60);
    })
    .await;
    assert_eq!(get(&proxy.url("/s")).await.status, StatusCode::OK);
    servers.iter().for_each(TestOrigin::stop);
    proxy.clock.advance(Duration::from_secs(5));
    let stale = get(&proxy.url("/s")).await;
    assert_eq!(stale.status, StatusCode::OK);
    assert!(
        stale
            .header("cache-status")
            .unwrap()
            .contains("stale-if-error"),
        "{:?}",
        stale.header("cache-status")
    );
    // Take both out, then a request with nothing stored fails at once.
    for _ in 0..6 {
        get(&proxy.url("/none")).await;
    }
    assert_eq!(balancer_state(&proxy), vec![false, false]);
    let started = tokio::time::Instant::now();
    assert_eq!(
        get(&proxy.url("/none")).await.status,
        StatusCode::BAD_GATEWAY
    );
    let took = started.elapsed();
    assert!(took < Duration::from_millis(500), "{took:?}");
}
