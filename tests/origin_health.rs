//! Watching and bounding an origin's servers (real in-process origins on
//! loopback): active checks take a stopped or failing server out after
//! `fall` and bring it back after `rise`, with no client errors; a slow
//! server cannot hold more than its `max_connections` and a full origin
//! answers 503 with `Retry-After`; a reload keeps the connections and the
//! health of the servers it leaves alone; a host name's addresses are
//! its servers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use caching_proxy::config::{ActiveCheck, Balance, Config, Server};
use common::{FileProxy, LISTENER, Route, TestOrigin, TestProxy, client, get};
use http::StatusCode;
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::sync::watch;

fn server(url: &str) -> Server {
    Server {
        authority: url.trim_start_matches("http://").parse().unwrap(),
        weight: 1,
        backup: false,
    }
}

/// Checks of `/healthz` every 50 ms, out after 2 failures, back after 2.
fn checked(config: &mut Config, servers: &[&TestOrigin]) {
    let origin = &mut config.origins[0];
    origin.servers = servers.iter().map(|s| server(&s.url())).collect();
    origin.balance = Balance::RoundRobin;
    origin.health.check = Some(ActiveCheck {
        path: "/healthz".parse().unwrap(),
        interval: Duration::from_millis(50),
        timeout: Duration::from_millis(50),
    });
    origin.health.fall = 2;
    origin.health.rise = 2;
}

async fn origins(n: usize) -> Vec<TestOrigin> {
    let mut all = Vec::new();
    for i in 0..n {
        let origin = TestOrigin::start().await;
        origin.route("/p", uncached(i));
        origin.route("/healthz", Route::ok("ok"));
        all.push(origin);
    }
    all
}

fn uncached(i: usize) -> Route {
    Route::ok(format!("server {i}")).header("cache-control", "no-store")
}

async fn admin_text(admin: std::net::SocketAddr, path: &str) -> String {
    let response = client()
        .get(format!("http://{admin}{path}").parse().unwrap())
        .await
        .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

/// `up` of each server of the first origin, as `/stats` shows it.
async fn up(admin: std::net::SocketAddr) -> Vec<bool> {
    let stats: Value = serde_json::from_str(&admin_text(admin, "/stats").await).unwrap();
    stats["origin_servers"][0]["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["up"].as_bool().unwrap())
        .collect()
}

/// The first origin's notices of server changes.
fn changes(running: &caching_proxy::app::RunningProxy) -> watch::Receiver<u64> {
    let runtime = running.proxy().runtime();
    let route = runtime.route("127.0.0.1", "/").unwrap();
    route.upstream.server_changes()
}

/// Waits (at most 5 s) until `/stats` shows `want`, looking again at each
/// change of a server.
async fn until_up_is(
    admin: std::net::SocketAddr,
    changes: &mut watch::Receiver<u64>,
    want: &[bool],
) {
    let reached = async {
        loop {
            if up(admin).await == want {
                return;
            }
            changes.changed().await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(5), reached)
        .await
        .unwrap_or_else(|_| panic!("servers never {want:?}"));
}

#[tokio::test]
async fn a_stopped_server_is_taken_out_by_checks_and_comes_back_after_rise() {
    let servers = origins(3).await;
    let proxy = TestProxy::start_with(&servers[0].url(), |c| {
        checked(c, &servers.iter().collect::<Vec<_>>());
    })
    .await;
    let admin = proxy.running().admin_addr();
    let mut changes = changes(proxy.running());
    until_up_is(admin, &mut changes, &[true, true, true]).await;
    let stopped = servers[2].addr;
    servers[2].stop();
    until_up_is(admin, &mut changes, &[true, true, false]).await;
    let metrics = admin_text(admin, "/metrics").await;
    let gauge =
        format!("caching_proxy_origin_server_up{{origin=\"default\",server=\"{stopped}\"}} 0");
    assert!(metrics.contains(&gauge), "{metrics}");

    for _ in 0..60 {
        assert_eq!(get(&proxy.url("/p")).await.status, StatusCode::OK);
    }
    let hits: Vec<usize> = servers[..2].iter().map(|s| s.hits("/p")).collect();
    assert_eq!(hits, vec![30, 30], "the two left share the traffic");

    let again = TestOrigin::start_on(stopped).await;
    again.route("/p", uncached(2));
    again.route("/healthz", Route::ok("ok"));
    again.wait_for_hits("/healthz", 2).await;
    until_up_is(admin, &mut changes, &[true, true, true]).await;
    for _ in 0..30 {
        assert_eq!(get(&proxy.url("/p")).await.status, StatusCode::OK);
    }
    assert_eq!(again.hits("/p"), 10, "back in the rotation after rise");
}

#[tokio::test]
async fn a_server_whose_check_fails_gets_no_requests_though_it_answers() {
    let servers = origins(2).await;
    let proxy = TestProxy::start_with(&servers[0].url(), |c| {
        checked(c, &[&servers[0], &servers[1]]);
    })
    .await;
    let admin = proxy.running().admin_addr();
    let mut changes = changes(proxy.running());
    servers[0].route("/healthz", Route::ok("draining").status(503));
    until_up_is(admin, &mut changes, &[false, true]).await;
    for _ in 0..20 {
        assert_eq!(get(&proxy.url("/p")).await.status, StatusCode::OK);
    }
    assert_eq!(servers[0].hits("/p"), 0);
    assert_eq!(servers[1].hits("/p"), 20);
    let stats: Value = serde_json::from_str(&admin_text(admin, "/stats").await).unwrap();
    assert_eq!(stats["origin_servers"][0]["servers"][0]["checked"], "down");
    assert_eq!(stats["origin_servers"][0]["up"], 1);
}

/// A server whose `/p` sends its head and then stalls: the exchange holds
/// its connection until the client lets go of the body.
fn stalling() -> Route {
    Route::ok(vec![b'x'; 64 * 1024])
        .header("cache-control", "no-store")
        .stall_after(1024)
}

#[tokio::test]
async fn a_slow_server_holds_no_more_than_max_connections() {
    let slow = TestOrigin::start().await;
    slow.route("/p", stalling());
    let fast = TestOrigin::start().await;
    fast.route("/p", uncached(1));
    let proxy = TestProxy::start_with(&slow.url(), |c| {
        let origin = &mut c.origins[0];
        origin.servers = vec![server(&slow.url()), server(&fast.url())];
        origin.max_connections = 2;
        origin.read_timeout = Duration::from_secs(30);
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..10 {
        let response = client()
            .get(proxy.url("/p").parse().unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        held.push(response); // its body unread: the slow server's stays busy
    }
    assert_eq!(slow.hits("/p"), 2, "no more than max_connections");
    assert_eq!(fast.hits("/p"), 8, "the rest went to the server with room");
}

#[tokio::test]
async fn with_every_connection_busy_the_answer_is_503_with_retry_after() {
    let slow = TestOrigin::start().await;
    slow.route("/stall", stalling());
    slow.route("/p", uncached(0));
    let proxy = TestProxy::start_with(&slow.url(), |c| {
        let origin = &mut c.origins[0];
        origin.max_connections = 1;
        origin.timeout = Duration::from_millis(300);
        origin.read_timeout = Duration::from_secs(30);
    })
    .await;
    let holding = client()
        .get(proxy.url("/stall").parse().unwrap())
        .await
        .unwrap();
    let busy = get(&proxy.url("/p")).await;
    assert_eq!(busy.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(busy.header("retry-after"), Some("1"));
    assert_eq!(slow.hits("/p"), 0, "it waited, then gave up: not sent");
    drop(holding);
    let served = get(&proxy.url("/p")).await;
    assert_eq!(served.status, StatusCode::OK, "free again once let go");
}

fn pool_toml(servers: &[(&TestOrigin, u32)]) -> String {
    let list: Vec<String> = servers
        .iter()
        .map(|(s, w)| format!("{{ url = \"{}\", weight = {w} }}", s.url()))
        .collect();
    format!(
        "{LISTENER}[admin]\naddress = \"127.0.0.1:0\"\n[[origins]]\nname = \"pool\"\nservers = [{}]\n[origins.health]\npath = \"/healthz\"\ninterval = \"1h\"\ntimeout = \"1s\"\nfall = 1\n[[routes]]\norigin = \"pool\"\n",
        list.join(", ")
    )
}

#[tokio::test]
async fn a_reload_keeps_the_connections_and_health_of_servers_it_leaves_alone() {
    let servers = origins(3).await;
    servers[0].route("/healthz", Route::ok("no").status(503));
    // One check at start (the interval is an hour): server 0 fails it.
    let proxy = FileProxy::start(&pool_toml(&[(&servers[0], 1), (&servers[1], 1)])).await;
    let admin = proxy.running().admin_addr();
    let mut changes = changes(proxy.running());
    until_up_is(admin, &mut changes, &[false, true]).await;
    assert_eq!(get(&proxy.url("/p")).await.status, StatusCode::OK);
    let connections = servers[1].connections();

    let mut events = proxy.running().reload_events();
    servers[0].route("/healthz", Route::ok("ok"));
    proxy.edit(&pool_toml(&[
        (&servers[0], 1),
        (&servers[1], 2),
        (&servers[2], 1),
    ]));
    let event = FileProxy::next_reload(&mut events).await;
    assert!(event.result.is_ok(), "{event:?}");
    assert_eq!(
        up(admin).await,
        vec![false, true, true],
        "server 0 is still out: its state survived, the new one starts up"
    );
    for _ in 0..6 {
        assert_eq!(get(&proxy.url("/p")).await.status, StatusCode::OK);
    }
    assert_eq!(servers[0].hits("/p"), 0);
    assert_eq!(servers[1].hits("/p"), 1 + 4, "weight 2 of 3");
    assert_eq!(servers[2].hits("/p"), 2);
    // The reloaded origin checks each server once, on a connection of its
    // own; the requests went over the connection kept from before.
    servers[1].wait_for_hits("/healthz", 2).await;
    assert_eq!(
        servers[1].connections(),
        connections + 1,
        "its kept connection was reused"
    );
}

#[tokio::test]
async fn a_host_name_is_resolved_and_its_addresses_are_the_servers() {
    let origin = TestOrigin::start().await;
    origin.route("/p", uncached(0));
    let port = origin.addr.port();
    let expected: Vec<String> = {
        let mut ips: Vec<std::net::IpAddr> = tokio::net::lookup_host(("localhost", port))
            .await
            .unwrap()
            .map(|a| a.ip())
            .collect();
        ips.sort_unstable();
        ips.dedup();
        ips.iter()
            .map(|ip| format!("localhost:{port}@{ip}"))
            .collect()
    };
    let proxy = TestProxy::start_with(&origin.url(), |c| {
        let origin = &mut c.origins[0];
        origin.servers = vec![server(&format!("http://localhost:{port}"))];
        origin.authority = format!("localhost:{port}").parse().unwrap();
        origin.resolve_every = Duration::from_secs(1);
    })
    .await;
    let admin = proxy.running().admin_addr();
    let mut changes = changes(proxy.running());
    let names = async {
        loop {
            let stats: Value = serde_json::from_str(&admin_text(admin, "/stats").await).unwrap();
            let names: Vec<String> = stats["origin_servers"][0]["servers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["server"].as_str().unwrap().to_owned())
                .collect();
            if names.iter().all(|n| n.contains('@')) {
                return names;
            }
            changes.changed().await.unwrap();
        }
    };
    let names = tokio::time::timeout(Duration::from_secs(5), names)
        .await
        .expect("resolved within 5 s");
    assert_eq!(names, expected);
    let answer = get(&proxy.url("/p")).await;
    assert_eq!(answer.status, StatusCode::OK);
    let host = origin.last_headers("/p");
    assert_eq!(host["host"], format!("localhost:{port}"), "sent as named");
}
