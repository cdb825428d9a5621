//! A fleet of instances sharing one cache through a real `redis-server`
//! (and a real three-node Redis Cluster): a fill on one instance is a hit
//! on the others, concurrent cold misses make one origin request, a killed
//! lease holder costs at most one more, purges reach every instance (also
//! one that was cut off, and one that was down), and Redis stopped or
//! killed under load costs no request an error.

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::disallowed_methods)] // tests time themselves

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use caching_proxy::clock::ManualClock;
use caching_proxy::config::{RedisTarget, SharedConfig};
use common::redis::{RedisCluster, RedisServer};
use common::relay::Relay;
use common::{Answer, Route, TestOrigin, TestProxy, client, get_as, send};
use futures_util::StreamExt;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use serde_json::Value;

const PREFIX: &str = "cp:";
/// The site's name: behind a load balancer every instance sees it.
const HOST: &str = "fleet.test";

/// A GET with the site's Host, to any instance.
async fn get(url: &str) -> Answer {
    get_as(url, HOST).await
}

fn shared(redis: RedisTarget, node: &str) -> SharedConfig {
    SharedConfig {
        redis,
        prefix: PREFIX.to_owned(),
        // Generous for a shared CI machine; loopback answers in well under 1 ms.
        timeout: Duration::from_millis(250),
        max_object_size: 1 << 20,
        node_id: node.to_owned(),
        lease: Duration::from_millis(600),
    }
}

/// Three instances (a, b, c) on one origin and one Redis target.
struct Fleet {
    origin: TestOrigin,
    nodes: Vec<TestProxy>,
    clock: Arc<ManualClock>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Fleet {
    async fn start(targets: &[RedisTarget]) -> Self {
        let origin = TestOrigin::start().await;
        let clock = Arc::new(ManualClock::default());
        let mut nodes = Vec::new();
        let mut dirs = Vec::new();
        for (target, name) in targets.iter().zip(["a", "b", "c"]) {
            let dir = tempfile::tempdir().unwrap();
            let node = start_node(&origin.url(), dir.path(), &clock, target.clone(), name).await;
            nodes.push(node);
            dirs.push(dir);
        }
        Fleet {
            origin,
            nodes,
            clock,
            _dirs: dirs,
        }
    }

    fn url(&self, node: usize, path: &str) -> String {
        self.nodes[node].url(path)
    }
}

async fn start_node(
    origin: &str,
    dir: &std::path::Path,
    clock: &Arc<ManualClock>,
    target: RedisTarget,
    name: &str,
) -> TestProxy {
    TestProxy::start_on(origin, dir.join("cache.json"), clock.clone(), |config| {
        config.cache.shared = Some(shared(target, name));
    })
    .await
}

fn single(redis: &RedisServer) -> RedisTarget {
    RedisTarget::Single(redis.url())
}

fn cache_status(answer: &Answer) -> &str {
    answer.header("cache-status").unwrap_or("<none>")
}

/// Waits for the next fill announcement on the fleet's channel (the
/// instance's write to the shared tier has landed).
struct Fills(redis::aio::PubSubStream);

impl Fills {
    async fn watch(url: &str) -> Self {
        let mut pubsub = redis::Client::open(url)
            .unwrap()
            .get_async_pubsub()
            .await
            .unwrap();
        pubsub.subscribe(format!("{PREFIX}filled")).await.unwrap();
        Fills(pubsub.into_on_message())
    }

    /// The next announcement within `within`, if one comes.
    async fn within(&mut self, within: Duration) -> Option<String> {
        let message = tokio::time::timeout(within, self.0.next()).await.ok()??;
        Some(String::from_utf8_lossy(message.get_payload_bytes()).into_owned())
    }

    async fn next(&mut self) -> String {
        let message = tokio::time::timeout(Duration::from_secs(5), self.0.next())
            .await
            .expect("a fill is announced")
            .expect("subscribed");
        String::from_utf8(message.get_payload_bytes().to_vec()).unwrap()
    }
}

async fn admin_purge(proxy: &TestProxy, body: &str) -> Value {
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("http://{}/purge", proxy.running().admin_addr()))
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let answer = send(&client(), request).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    serde_json::from_slice(&answer.body).unwrap()
}

#[tokio::test]
async fn a_miss_on_one_instance_is_a_hit_on_the_others_with_the_right_age() {
    let redis = RedisServer::start().await;
    let fleet = Fleet::start(&[single(&redis), single(&redis), single(&redis)]).await;
    fleet.origin.route(
        "/a",
        Route::ok("shared body").header("cache-control", "max-age=60"),
    );
    let mut fills = Fills::watch(&redis.url()).await;

    let first = get(&fleet.url(0, "/a")).await;
    assert_eq!(first.x_cache(), "MISS");
    assert!(fills.next().await.ends_with("/a"));
    // Kept in Redis as long as it can be of use: here its 60 s of freshness
    // (no validators to revalidate with, no stale windows).
    let mut redis_client = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let names: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{PREFIX}*:e:*"))
        .query_async(&mut redis_client)
        .await
        .unwrap();
    assert_eq!(names.len(), 1, "{names:?}");
    let left: i64 = redis::cmd("PTTL")
        .arg(&names[0])
        .query_async(&mut redis_client)
        .await
        .unwrap();
    assert!((55_000..=60_000).contains(&left), "expires in {left} ms");
    fleet.clock.advance(Duration::from_secs(5));

    for node in [1, 2] {
        let hit = get(&fleet.url(node, "/a")).await;
        assert_eq!(hit.status, StatusCode::OK);
        let stats = fleet.nodes[node]
            .running()
            .proxy()
            .shared()
            .unwrap()
            .stats();
        assert_eq!(hit.x_cache(), "HIT", "node {node}: {stats}");
        assert_eq!(&hit.body[..], b"shared body");
        assert!(
            cache_status(&hit).contains("detail=shared"),
            "{}",
            cache_status(&hit)
        );
        let age: u64 = hit.header("age").unwrap().parse().unwrap();
        assert!(
            (5..=6).contains(&age),
            "age {age} counts from the fetch on a"
        );
        // Promoted into the instance's own memory: the next one is its own hit.
        let again = get(&fleet.url(node, "/a")).await;
        assert_eq!(again.x_cache(), "HIT");
        assert!(!cache_status(&again).contains("detail=shared"));
    }
    assert_eq!(fleet.origin.hits("/a"), 1);
    let admin = |path: &'static str, node: usize| {
        let url = format!("http://{}{path}", fleet.nodes[node].running().admin_addr());
        async move { get_as(&url, "localhost").await }
    };
    let ready = admin("/readyz", 1).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&ready.body).contains("shared tier: closed"));
    let metrics = String::from_utf8_lossy(&admin("/metrics", 1).await.body).into_owned();
    assert!(
        metrics.contains("caching_proxy_shared_hits_total 1"),
        "{metrics}"
    );
    let stats: Value = serde_json::from_slice(&admin("/stats", 2).await.body).unwrap();
    assert_eq!(stats["shared"]["node"], "c");
    assert_eq!(stats["shared"]["hits"], 1);

    // Freshness is not extended by a promotion: stale everywhere at 60 s.
    fleet.clock.advance(Duration::from_secs(56));
    let stale = get(&fleet.url(2, "/a")).await;
    assert_ne!(stale.x_cache(), "HIT", "{}", cache_status(&stale));
}

#[tokio::test]
async fn sixty_concurrent_cold_requests_over_three_instances_make_one_origin_request() {
    let redis = RedisServer::start().await;
    let fleet = Fleet::start(&[single(&redis), single(&redis), single(&redis)]).await;
    fleet.origin.route(
        "/cold",
        Route::ok("cold body")
            .header("cache-control", "max-age=60")
            .delay(Duration::from_millis(300)),
    );
    let requests = (0..60).map(|i| get_owned(fleet.url(i % 3, "/cold")));
    let answers = futures_util::future::join_all(requests).await;
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(&answer.body[..], b"cold body");
    }
    assert_eq!(fleet.origin.hits("/cold"), 1, "one fetch for the fleet");
    let waits: u64 = fleet
        .nodes
        .iter()
        .map(|n| n.running().proxy().metrics().shared.fleet_waits.get())
        .sum();
    assert!(
        waits >= 1,
        "the other instances waited for the lease holder"
    );
}

async fn get_owned(url: String) -> Answer {
    get(&url).await
}

#[tokio::test]
async fn an_uncacheable_answer_is_remembered_fleet_wide_so_nobody_queues() {
    let redis = RedisServer::start().await;
    let fleet = Fleet::start(&[single(&redis), single(&redis), single(&redis)]).await;
    fleet.origin.route(
        "/private",
        Route::ok("mine").header("cache-control", "private"),
    );
    let mut fills = Fills::watch(&redis.url()).await;
    assert_eq!(get(&fleet.url(0, "/private")).await.x_cache(), "MISS");
    fills.next().await; // the pass note is announced
    // Slow from now on: a miss that queued behind a lease would wait for it.
    fleet.origin.route(
        "/private",
        Route::ok("mine")
            .header("cache-control", "private")
            .delay(Duration::from_millis(300)),
    );
    let answers =
        futures_util::future::join_all((0..6).map(|i| get_owned(fleet.url(1 + i % 2, "/private"))))
            .await;
    assert!(answers.iter().all(|a| a.status == StatusCode::OK));
    assert_eq!(fleet.origin.hits("/private"), 7, "each went to the origin");
    let waits: u64 = fleet.nodes[1..]
        .iter()
        .map(|n| n.running().proxy().metrics().shared.fleet_waits.get())
        .sum();
    assert_eq!(waits, 0, "nobody waited for a lease on an uncacheable URL");
}

#[tokio::test]
async fn a_killed_lease_holder_costs_at_most_one_more_fetch() {
    let redis = RedisServer::start().await;
    let origin = TestOrigin::start().await;
    origin.route(
        "/slow",
        Route::ok("slow body")
            .header("cache-control", "max-age=60")
            .delay(Duration::from_millis(1500)),
    );
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[[listeners]]\naddress = \"127.0.0.1:{port}\"\n[[origins]]\nname = \"o\"\nurl = \"{origin}\"\n\
         [cache]\nfile = \"cache.json\"\n[cache.shared]\nurl = \"{redis}\"\nnode_id = \"holder\"\nlease = \"600ms\"\ntimeout = \"250ms\"\n",
        port = common::binary::free_port(),
        origin = origin.url(),
        redis = redis.url(),
    );
    let config = dir.path().join("proxy.toml");
    std::fs::write(&config, &toml).unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_caching-proxy"));
    command.arg("--config").arg(&config);
    let holder = common::binary::Running::start_config(command);

    let clock = Arc::new(ManualClock::default());
    let mut waiters = Vec::new();
    let mut dirs = Vec::new();
    for name in ["b", "c"] {
        let d = tempfile::tempdir().unwrap();
        waiters.push(start_node(&origin.url(), d.path(), &clock, single(&redis), name).await);
        dirs.push(d);
    }

    let held = tokio::spawn({
        // Its answer never comes: the holder is killed.
        let request = Request::get(holder.url("/slow"))
            .header("host", HOST)
            .body(Full::default())
            .unwrap();
        async move { client().request(request).await.map(|_| ()) }
    });
    origin.wait_for_hits("/slow", 1).await; // the holder is fetching
    let waiting: Vec<_> = (0..10)
        .map(|i| tokio::spawn(get_owned(waiters[i % 2].url("/slow"))))
        .collect();
    // Both have asked for the lease and wait on it.
    for node in &waiters {
        let metrics = node.running().proxy().metrics().clone();
        tokio::time::timeout(Duration::from_secs(5), async {
            while metrics.shared.fleet_waits.get() == 0 {
                tokio::task::yield_now().await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the instance waits for the holder's lease");
    }
    holder.signal("-KILL");
    let _ = held.await;
    for answer in futures_util::future::join_all(waiting).await {
        let answer = answer.unwrap();
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(&answer.body[..], b"slow body");
    }
    let fetches = origin.hits("/slow");
    assert!(
        fetches <= 2,
        "{fetches} origin fetches: one waiter takes over, not all"
    );
    let takeovers: u64 = waiters
        .iter()
        .map(|n| n.running().proxy().metrics().shared.lease_takeovers.get())
        .sum();
    assert_eq!(takeovers, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_on_one_instance_reaches_the_others_within_milliseconds() {
    let redis = RedisServer::start().await;
    let fleet = Fleet::start(&[single(&redis), single(&redis), single(&redis)]).await;
    let mut fills = Fills::watch(&redis.url()).await;
    // From the append to the last confirmation, and the whole admin answer
    // (which also rewrites the snapshot).
    let mut took = Vec::new();
    let mut answered = Vec::new();
    for round in 0..100 {
        let body = format!("round {round}");
        let path = format!("/p{round}");
        fleet.origin.route(
            &path,
            Route::ok(body.clone()).header("cache-control", "max-age=600"),
        );
        assert_eq!(get(&fleet.url(0, &path)).await.x_cache(), "MISS");
        fills.next().await;
        for node in [1, 2] {
            assert_eq!(
                &get(&fleet.url(node, &path)).await.body[..],
                body.as_bytes()
            );
        }
        let started = std::time::Instant::now();
        let answer = admin_purge(
            &fleet.nodes[0],
            &format!("{{\"url\":\"http://{HOST}{path}\"}}"),
        )
        .await;
        answered.push(started.elapsed());
        took.push(Duration::from_secs_f64(
            answer["fleet"]["took_ms"].as_f64().unwrap() / 1000.0,
        ));
        let confirmed = &answer["fleet"]["confirmed"];
        assert_eq!(confirmed.as_array().unwrap().len(), 3, "{answer}");
        assert_eq!(answer["fleet"]["missing"], serde_json::json!([]));
        // Applied before confirmed: no instance serves the purged body.
        let fresh = format!("round {round}, after the purge");
        fleet.origin.route(
            &path,
            Route::ok(fresh.clone()).header("cache-control", "max-age=600"),
        );
        for node in [1, 2] {
            let after = get(&fleet.url(node, &path)).await;
            assert_eq!(
                &after.body[..],
                fresh.as_bytes(),
                "round {round}, node {node}"
            );
        }
        fleet.clock.advance(Duration::from_secs(1));
    }
    let p = |samples: &mut Vec<Duration>, q: f64| {
        samples.sort();
        samples[((samples.len() as f64 * q).ceil() as usize).max(1) - 1]
    };
    let (p50, p99) = (p(&mut took, 0.5), p(&mut took, 0.99));
    eprintln!(
        "purge fan-out to 2 instances, append to last confirmation: p50 {p50:?}, p99 {p99:?}, max {:?}; \
         whole admin answer: p50 {:?}, p99 {:?}",
        took.last().unwrap(),
        p(&mut answered, 0.5),
        p(&mut answered, 0.99)
    );
    assert!(p99 < Duration::from_millis(100), "fan-out p99 {p99:?}");
}

#[tokio::test]
async fn an_instance_cut_off_from_redis_never_serves_a_purged_body_after_it_reconnects() {
    let redis = RedisServer::start().await;
    let relay = Relay::start(format!("127.0.0.1:{}", redis.port).parse().unwrap()).await;
    let fleet = Fleet::start(&[
        single(&redis),
        RedisTarget::Single(relay.url()),
        single(&redis),
    ])
    .await;
    fleet.origin.route(
        "/x",
        Route::ok("old").header("cache-control", "max-age=600"),
    );
    let mut fills = Fills::watch(&redis.url()).await;
    get(&fleet.url(0, "/x")).await;
    fills.next().await;
    assert_eq!(&get(&fleet.url(1, "/x")).await.body[..], b"old");

    let tier = fleet.nodes[1].running().proxy().shared().unwrap().clone();
    let mut ready = tier.log_ready();
    relay.cut();
    ready.wait_for(|ready| !*ready).await.unwrap();
    fleet.origin.route(
        "/x",
        Route::ok("new").header("cache-control", "max-age=600"),
    );
    let answer = admin_purge(&fleet.nodes[0], "{\"url\":\"http://fleet.test/x\"}").await;
    assert_eq!(
        answer["fleet"]["missing"],
        serde_json::json!(["b"]),
        "{answer}"
    );

    relay.restore();
    tokio::time::timeout(Duration::from_secs(10), ready.wait_for(|ready| *ready))
        .await
        .expect("b reconnects")
        .unwrap();
    let after = get(&fleet.url(1, "/x")).await;
    assert_eq!(&after.body[..], b"new", "{}", cache_status(&after));
}

#[tokio::test]
async fn a_restarted_instance_replays_the_purges_it_missed_before_serving_its_snapshot() {
    let redis = RedisServer::start().await;
    let mut fleet = Fleet::start(&[single(&redis), single(&redis)]).await;
    fleet.origin.route(
        "/r",
        Route::ok("before").header("cache-control", "max-age=600"),
    );
    let mut fills = Fills::watch(&redis.url()).await;
    get(&fleet.url(0, "/r")).await;
    fills.next().await;
    assert_eq!(get(&fleet.url(1, "/r")).await.x_cache(), "HIT");
    let cache_file = fleet.nodes[1].cache_file.clone();
    fleet.nodes[1].stop().await; // writes its snapshot, with its log position

    fleet.origin.route(
        "/r",
        Route::ok("after").header("cache-control", "max-age=600"),
    );
    admin_purge(&fleet.nodes[0], "{\"url\":\"http://fleet.test/r\"}").await;

    let restarted =
        TestProxy::start_on(&fleet.origin.url(), cache_file, fleet.clock.clone(), |c| {
            c.cache.shared = Some(shared(single(&redis), "b"));
        })
        .await;
    let answer = get(&restarted.url("/r")).await;
    assert_eq!(&answer.body[..], b"after", "{}", cache_status(&answer));
}

#[tokio::test]
async fn redis_stopped_or_killed_under_load_costs_no_request_an_error() {
    let mut redis = Some(RedisServer::start().await);
    let target = single(redis.as_ref().unwrap());
    let fleet = Fleet::start(&[target.clone(), target.clone(), target]).await;
    // Each phase asks cold URLs too, so that it needs the shared tier.
    for phase in ["warm", "stopped", "killed"] {
        for i in 0..30 {
            fleet.origin.route(
                &format!("/{phase}/{i}"),
                Route::ok(format!("body {i}")).header("cache-control", "max-age=600"),
            );
        }
    }
    let fleet = Arc::new(fleet);
    let load = |fleet: Arc<Fleet>, phase: &'static str, round: usize| async move {
        let mut worst = Duration::ZERO;
        for i in 0..90 {
            let started = std::time::Instant::now();
            let path = format!("/{phase}/{}", (i + round * 7) % 30);
            let answer = get(&fleet.url(i % 3, &path)).await;
            worst = worst.max(started.elapsed());
            assert!(
                answer.status == StatusCode::OK,
                "status {} with Redis gone",
                answer.status
            );
        }
        worst
    };
    load(fleet.clone(), "warm", 0).await;

    // Subscribed while Redis answers: it will announce the fills once back.
    let mut fills = Fills::watch(&redis.as_ref().unwrap().url()).await;
    redis.as_ref().unwrap().signal("-STOP");
    let mut worst = Duration::ZERO;
    for round in 1..4 {
        worst = worst.max(load(fleet.clone(), "stopped", round).await);
    }
    eprintln!("slowest request while Redis is stopped: {worst:?}");
    assert!(worst < Duration::from_secs(2), "{worst:?}");

    // Back: used again within 2 s (the breaker probes every 500 ms).
    redis.as_ref().unwrap().signal("-CONT");
    let back = std::time::Instant::now();
    let mut n = 0;
    loop {
        n += 1;
        let path = format!("/back{n}");
        fleet.origin.route(
            &path,
            Route::ok("back").header("cache-control", "max-age=600"),
        );
        get(&fleet.url(0, &path)).await;
        // The fill lands in Redis once the tier is used again.
        if fills.within(Duration::from_millis(200)).await.is_none() {
            continue;
        }
        if cache_status(&get(&fleet.url(1, &path)).await).contains("detail=shared") {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(3),
            "shared tier not used again"
        );
    }
    eprintln!(
        "shared tier used again {:?} after Redis returned",
        back.elapsed()
    );

    drop(redis.take()); // killed
    let mut worst = Duration::ZERO;
    for round in 4..7 {
        worst = worst.max(load(fleet.clone(), "killed", round).await);
    }
    eprintln!("slowest request with Redis killed: {worst:?}");
    assert!(worst < Duration::from_secs(2), "{worst:?}");
    let stats = fleet.nodes[0].running().proxy().shared().unwrap().stats();
    assert_eq!(stats["state"], "open", "{stats}");
}

#[tokio::test]
async fn a_fleet_on_a_redis_cluster_shares_fills_fetches_and_purges() {
    let cluster = RedisCluster::start().await;
    let target = RedisTarget::Cluster(cluster.seeds());
    let fleet = Fleet::start(&[target.clone(), target.clone(), target]).await;
    let mut fills = Fills::watch(&cluster.seeds()[0]).await;
    fleet.origin.route(
        "/c",
        Route::ok("clustered").header("cache-control", "max-age=60"),
    );
    assert_eq!(get(&fleet.url(0, "/c")).await.x_cache(), "MISS");
    fills.next().await;
    let hit = get(&fleet.url(1, "/c")).await;
    assert!(
        cache_status(&hit).contains("detail=shared"),
        "{}",
        cache_status(&hit)
    );

    fleet.origin.route(
        "/cold",
        Route::ok("cold")
            .header("cache-control", "max-age=60")
            .delay(Duration::from_millis(300)),
    );
    let answers =
        futures_util::future::join_all((0..30).map(|i| get_owned(fleet.url(i % 3, "/cold")))).await;
    assert!(answers.iter().all(|a| &a.body[..] == b"cold"));
    assert_eq!(fleet.origin.hits("/cold"), 1);

    let answer = admin_purge(&fleet.nodes[2], "{\"all\":true}").await;
    assert_eq!(
        answer["fleet"]["confirmed"].as_array().unwrap().len(),
        3,
        "{answer}"
    );
    fleet.origin.route(
        "/c",
        Route::ok("purged").header("cache-control", "max-age=60"),
    );
    for node in 0..3 {
        assert_eq!(&get(&fleet.url(node, "/c")).await.body[..], b"purged");
    }
    assert_eq!(fleet.origin.hits("/c"), 2, "refetched once for the fleet");
}

#[tokio::test]
async fn a_purge_during_a_fill_keeps_the_old_response_out_of_both_tiers() {
    let redis = RedisServer::start().await;
    let fleet = Arc::new(Fleet::start(&[single(&redis), single(&redis), single(&redis)]).await);
    fleet.origin.route(
        "/f",
        Route::ok("old")
            .header("cache-control", "max-age=600")
            .delay(Duration::from_millis(400)),
    );
    let mut fills = Fills::watch(&redis.url()).await;
    let in_flight = tokio::spawn({
        let url = fleet.url(0, "/f");
        async move { get(&url).await }
    });
    fleet.origin.wait_for_hits("/f", 1).await;
    let answer = admin_purge(&fleet.nodes[1], &format!("{{\"url\":\"http://{HOST}/f\"}}")).await;
    assert_eq!(
        answer["fleet"]["missing"],
        serde_json::json!([]),
        "{answer}"
    );
    fleet.origin.route(
        "/f",
        Route::ok("new").header("cache-control", "max-age=600"),
    );
    // The client whose request was under way gets what it asked for...
    assert_eq!(&in_flight.await.unwrap().body[..], b"old");
    fills.next().await; // ...and the fetch ends
    // ...but neither tier keeps it.
    for node in [2, 0] {
        let answer = get(&fleet.url(node, "/f")).await;
        assert_eq!(
            &answer.body[..],
            b"new",
            "node {node}: {}",
            cache_status(&answer)
        );
    }
}

#[tokio::test]
async fn clear_cache_with_a_shared_tier_empties_every_instance() {
    let redis = RedisServer::start().await;
    let fleet = Fleet::start(&[single(&redis), single(&redis)]).await;
    fleet
        .origin
        .route("/z", Route::ok("z").header("cache-control", "max-age=600"));
    for node in 0..2 {
        get(&fleet.url(node, "/z")).await;
        assert_eq!(get(&fleet.url(node, "/z")).await.x_cache(), "HIT");
    }
    let mut changes: Vec<_> = fleet
        .nodes
        .iter()
        .map(|n| n.running().proxy().store().changes())
        .collect();
    changes.iter_mut().for_each(|c| {
        c.borrow_and_update();
    });
    let elsewhere = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_caching-proxy"))
        .args([
            "--clear-cache",
            "--shared-cache",
            &redis.url(),
            "--cache-file",
        ])
        .arg(elsewhere.path().join("cache.json"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "Cache cleared successfully"
    );
    for (node, change) in changes.iter_mut().enumerate() {
        tokio::time::timeout(Duration::from_secs(5), change.changed())
            .await
            .expect("the purge reaches the instance")
            .unwrap();
        fleet
            .origin
            .route("/z", Route::ok("z2").header("cache-control", "max-age=600"));
        let answer = get(&fleet.url(node, "/z")).await;
        assert_ne!(&answer.body[..], b"z", "node {node}");
    }
}

#[tokio::test]
async fn variants_are_shared_per_request_values() {
    let redis = RedisServer::start().await;
    let fleet = Fleet::start(&[single(&redis), single(&redis)]).await;
    fleet.origin.route(
        "/v",
        Route::ok("varies")
            .header("cache-control", "max-age=60")
            .header("vary", "accept-language"),
    );
    let mut fills = Fills::watch(&redis.url()).await;
    let ask = |node: usize, language: &'static str| {
        let url = fleet.url(node, "/v");
        async move {
            let request = Request::get(url)
                .header("host", HOST)
                .header("accept-language", language)
                .body(Full::default())
                .unwrap();
            send(&client(), request).await
        }
    };
    assert_eq!(ask(0, "en").await.x_cache(), "MISS");
    fills.next().await;
    let shared = ask(1, "en").await;
    assert!(
        cache_status(&shared).contains("detail=shared"),
        "{}",
        cache_status(&shared)
    );
    assert_eq!(ask(1, "fr").await.x_cache(), "MISS", "another variant");
    fills.next().await;
    assert!(cache_status(&ask(0, "fr").await).contains("detail=shared"));
    assert_eq!(fleet.origin.hits("/v"), 2);
}

#[test]
fn the_shared_cache_flag_is_checked_at_the_edge_and_described() {
    let bin = env!("CARGO_BIN_EXE_caching-proxy");
    let run = |url: &str| {
        std::process::Command::new(bin)
            .args([
                "--check-config",
                "--port",
                "3000",
                "--origin",
                "http://127.0.0.1:9",
            ])
            .args(["--shared-cache", url])
            .output()
            .unwrap()
    };
    let good = run("redis://user:secret@127.0.0.1:6379/2");
    assert!(good.status.success(), "{good:?}");
    let text = String::from_utf8_lossy(&good.stdout);
    assert!(
        text.contains("shared tier: redis://***@127.0.0.1:6379/2"),
        "{text}"
    );
    assert!(!text.contains("secret"));
    let bad = run("http://127.0.0.1:6379");
    assert_eq!(bad.status.code(), Some(2));
    let error = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(error.trim().lines().count(), 1, "{error}");
    assert!(error.contains("cache.shared.url"), "{error}");
}

#[tokio::test]
async fn an_instance_empties_its_memory_when_redis_comes_back_empty() {
    let redis = RedisServer::start().await;
    let port = redis.port;
    let fleet = Fleet::start(&[single(&redis), single(&redis)]).await;
    fleet.origin.route(
        "/e",
        Route::ok("before").header("cache-control", "max-age=600"),
    );
    get(&fleet.url(0, "/e")).await;
    assert_eq!(get(&fleet.url(0, "/e")).await.x_cache(), "HIT");
    let tier = fleet.nodes[0].running().proxy().shared().unwrap().clone();
    let mut ready = tier.log_ready();

    // Redis restarts with nothing: purges issued meanwhile would be lost
    // with it, so the instance cannot trust what it holds.
    drop(redis);
    ready.wait_for(|ready| !*ready).await.unwrap();
    let _restarted = RedisServer::start_on(port).await;
    tokio::time::timeout(Duration::from_secs(10), ready.wait_for(|ready| *ready))
        .await
        .expect("reconnects")
        .unwrap();
    assert_ne!(get(&fleet.url(0, "/e")).await.x_cache(), "HIT");
}

#[tokio::test]
async fn an_unsafe_request_on_one_instance_invalidates_the_url_on_all() {
    let redis = RedisServer::start().await;
    let fleet = Fleet::start(&[single(&redis), single(&redis)]).await;
    fleet.origin.route(
        "/item",
        Route::ok("v1").header("cache-control", "max-age=600"),
    );
    let mut fills = Fills::watch(&redis.url()).await;
    get(&fleet.url(0, "/item")).await;
    fills.next().await;
    assert_eq!(get(&fleet.url(1, "/item")).await.x_cache(), "HIT");
    let mut changes = fleet.nodes[1].running().proxy().store().changes();
    changes.borrow_and_update();

    let post = Request::post(fleet.url(0, "/item"))
        .header("host", HOST)
        .body(Full::new(Bytes::from_static(b"update")))
        .unwrap();
    assert_eq!(send(&client(), post).await.status, StatusCode::OK);
    fleet.origin.route(
        "/item",
        Route::ok("v2").header("cache-control", "max-age=600"),
    );
    tokio::time::timeout(Duration::from_secs(5), changes.changed())
        .await
        .expect("the invalidation reaches b")
        .unwrap();
    assert_eq!(&get(&fleet.url(1, "/item")).await.body[..], b"v2");
}

#[tokio::test]
async fn a_cluster_node_stopped_or_killed_under_load_costs_no_request_an_error() {
    let mut cluster = RedisCluster::start().await;
    let target = RedisTarget::Cluster(cluster.seeds());
    let fleet = Arc::new(Fleet::start(&[target.clone(), target.clone(), target]).await);
    for phase in ["warm", "stopped", "killed"] {
        for i in 0..30 {
            fleet.origin.route(
                &format!("/{phase}/{i}"),
                Route::ok(format!("body {i}")).header("cache-control", "max-age=600"),
            );
        }
    }
    let load = |fleet: Arc<Fleet>, phase: &'static str| async move {
        let mut worst = Duration::ZERO;
        for i in 0..90 {
            let started = std::time::Instant::now();
            let answer = get(&fleet.url(i % 3, &format!("/{phase}/{}", i % 30))).await;
            worst = worst.max(started.elapsed());
            assert_eq!(answer.status, StatusCode::OK, "{phase}");
        }
        worst
    };
    load(fleet.clone(), "warm").await;
    cluster.nodes[0].signal("-STOP");
    let stopped = load(fleet.clone(), "stopped").await;
    cluster.nodes[0].signal("-CONT");
    drop(cluster.nodes.remove(1));
    let killed = load(fleet.clone(), "killed").await;
    eprintln!("slowest request: one node stopped {stopped:?}, one node killed {killed:?}");
    assert!(stopped < Duration::from_secs(2) && killed < Duration::from_secs(2));
}

#[tokio::test]
async fn a_revalidation_on_one_instance_refreshes_the_shared_copy() {
    let redis = RedisServer::start().await;
    let fleet = Fleet::start(&[single(&redis), single(&redis)]).await;
    fleet.origin.use_clock(&fleet.clock); // its Date moves with the proxies' clock
    fleet.origin.route(
        "/r",
        Route::ok("same")
            .header("cache-control", "max-age=10")
            .etag("\"v1\""),
    );
    let mut fills = Fills::watch(&redis.url()).await;
    get(&fleet.url(0, "/r")).await;
    fills.next().await;
    fleet.clock.advance(Duration::from_secs(20));
    let revalidated = get(&fleet.url(0, "/r")).await;
    assert!(
        cache_status(&revalidated).contains("fwd-status=304"),
        "{}",
        cache_status(&revalidated)
    );
    fills.next().await;
    let hit = get(&fleet.url(1, "/r")).await;
    assert_eq!(hit.x_cache(), "HIT", "{}", cache_status(&hit));
    assert!(
        cache_status(&hit).contains("detail=shared"),
        "{}",
        cache_status(&hit)
    );
    assert_eq!(fleet.origin.statuses("/r"), vec![200, 304]);
}
