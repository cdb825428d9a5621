//! The shared tier's Redis client against a real `redis-server` and a
//! real three-node Redis Cluster: values round-trip with their expiry; a
//! Redis that stops answering costs one timeout per call until the
//! breaker opens, then nothing; the tier is used again once Redis is back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use futures_util::StreamExt;

use caching_proxy::breaker::State;
use caching_proxy::shared::client::{SharedClient, TierError};
use caching_proxy::shared::lease;
use common::redis::{RedisCluster, RedisServer};

// Generous for a loaded CI machine (the first call also connects);
// loopback answers in well under a millisecond.
const TIMEOUT: Duration = Duration::from_millis(250);
const COOL_DOWN: Duration = Duration::from_millis(200);

#[tokio::test]
async fn values_round_trip_and_expire_as_set() {
    let redis = RedisServer::start().await;
    let client = SharedClient::new(&redis.url(), TIMEOUT, COOL_DOWN).unwrap();
    assert_eq!(client.get("cp:absent").await.unwrap(), None);
    let value = vec![0u8, 1, 2, 255, b'x'];
    client
        .set("cp:k", &value, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(client.get("cp:k").await.unwrap().unwrap(), value);

    let direct = redis::Client::open(redis.url()).unwrap();
    let mut direct = direct.get_multiplexed_async_connection().await.unwrap();
    let ttl: i64 = redis::cmd("PTTL")
        .arg("cp:k")
        .query_async(&mut direct)
        .await
        .unwrap();
    assert!((29_000..=30_000).contains(&ttl), "expires as set: {ttl} ms");

    assert_eq!(client.delete(&["cp:k", "cp:absent"]).await.unwrap(), 1);
    assert_eq!(client.get("cp:k").await.unwrap(), None);
}

#[tokio::test]
async fn a_redis_that_stops_answering_is_skipped_then_used_again_when_back() {
    let redis = RedisServer::start().await;
    let client = SharedClient::new(&redis.url(), TIMEOUT, COOL_DOWN).unwrap();
    client
        .set("cp:k", b"v", Duration::from_secs(30))
        .await
        .unwrap();

    redis.signal("-STOP");
    for _ in 0..3 {
        let started = tokio::time::Instant::now();
        let err = client.get("cp:k").await.unwrap_err();
        assert!(matches!(err, TierError::Timeout(_)), "{err:?}");
        assert!(started.elapsed() < TIMEOUT * 5, "bounded by the timeout");
    }
    let opened = tokio::time::Instant::now();
    assert_eq!(client.state(), State::Open);
    let err = client.get("cp:k").await.unwrap_err();
    assert!(matches!(err, TierError::Skipped), "{err:?}");

    redis.signal("-CONT");
    let err = client.get("cp:k").await.unwrap_err();
    assert!(
        matches!(err, TierError::Skipped),
        "skipped until the cool-down is over, even with Redis back: {err:?}"
    );
    assert!(!client.probe().await, "no probe before the cool-down");
    // The cool-down is the behaviour under test: wait it out once; then
    // one probe (the tier's background task makes it) closes the breaker.
    tokio::time::sleep_until(opened + COOL_DOWN).await;
    assert!(client.probe().await);
    assert_eq!(
        client.get("cp:k").await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
    assert_eq!(client.state(), State::Closed);
}

#[tokio::test]
async fn a_redis_that_is_not_there_fails_calls_quickly_and_never_panics() {
    let port = common::binary::free_port();
    let client = SharedClient::new(&format!("redis://127.0.0.1:{port}"), TIMEOUT, COOL_DOWN)
        .expect("a client is made without connecting");
    for _ in 0..3 {
        let err = client.get("cp:k").await.unwrap_err();
        assert!(
            matches!(err, TierError::Redis(_) | TierError::Timeout(_)),
            "asked, and failed: {err:?}"
        );
    }
    assert_eq!(client.state(), State::Open);
    let err = client.get("cp:k").await.unwrap_err();
    assert!(matches!(err, TierError::Skipped), "then skipped: {err:?}");
    assert!(SharedClient::new("http://not-redis", TIMEOUT, COOL_DOWN).is_err());
}

#[tokio::test]
async fn a_redis_cluster_holds_keys_on_every_node_through_one_client() {
    let cluster = RedisCluster::start().await;
    let seeds = cluster.seeds();
    let seeds: Vec<&str> = seeds.iter().map(String::as_str).collect();
    let client = SharedClient::cluster(&seeds, Duration::from_secs(2), COOL_DOWN).unwrap();
    // Enough keys to land in every node's slots (redirections followed).
    for n in 0..60 {
        let key = format!("cp:key-{n}");
        client
            .set(&key, key.as_bytes(), Duration::from_secs(30))
            .await
            .unwrap();
    }
    for n in 0..60 {
        let key = format!("cp:key-{n}");
        assert_eq!(client.get(&key).await.unwrap().unwrap(), key.as_bytes());
    }
    let mut held = Vec::new();
    for node in &cluster.nodes {
        let direct = redis::Client::open(node.url()).unwrap();
        let mut direct = direct.get_multiplexed_async_connection().await.unwrap();
        let keys: i64 = redis::cmd("DBSIZE").query_async(&mut direct).await.unwrap();
        held.push(keys);
    }
    assert!(
        held.iter().all(|&keys| keys > 0),
        "every node holds some: {held:?}"
    );
    assert_eq!(held.iter().sum::<i64>(), 60);
    assert_eq!(client.delete(&["cp:key-0"]).await.unwrap(), 1);
}

#[tokio::test]
async fn a_lease_has_one_owner_who_alone_renews_and_releases_it() {
    let redis = RedisServer::start().await;
    let a = SharedClient::new(&redis.url(), TIMEOUT, COOL_DOWN).unwrap();
    let b = SharedClient::new(&redis.url(), TIMEOUT, COOL_DOWN).unwrap();
    let key = "cp:{tag}:lease";
    let long = Duration::from_secs(30);

    assert!(lease::take(&a, key, "node-a", long).await.unwrap());
    assert!(
        !lease::take(&b, key, "node-b", long).await.unwrap(),
        "one owner"
    );
    assert!(!lease::renew(&b, key, "node-b", long).await.unwrap());
    assert!(!lease::release(&b, key, "node-b").await.unwrap());
    assert!(lease::renew(&a, key, "node-a", long).await.unwrap());
    assert!(lease::release(&a, key, "node-a").await.unwrap());
    assert!(
        lease::take(&b, key, "node-b", long).await.unwrap(),
        "released: free"
    );
    assert!(lease::release(&b, key, "node-b").await.unwrap());

    // A lease that is not renewed expires (Redis announces it), and the
    // next taker gets it; the old owner can then neither renew nor release
    // the new one's.
    let direct = redis::Client::open(redis.url()).unwrap();
    let mut config = direct.get_multiplexed_async_connection().await.unwrap();
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("notify-keyspace-events")
        .arg("Ex")
        .query_async(&mut config)
        .await
        .unwrap();
    let mut expirations = direct.get_async_pubsub().await.unwrap();
    expirations
        .subscribe("__keyevent@0__:expired")
        .await
        .unwrap();
    assert!(
        lease::take(&a, key, "node-a", Duration::from_millis(50))
            .await
            .unwrap()
    );
    let expired = tokio::time::timeout(Duration::from_secs(5), async {
        let mut messages = expirations.on_message();
        messages
            .next()
            .await
            .unwrap()
            .get_payload::<String>()
            .unwrap()
    })
    .await
    .expect("the lease expires");
    assert_eq!(expired, key);
    assert!(lease::take(&b, key, "node-b", long).await.unwrap());
    assert!(!lease::renew(&a, key, "node-a", long).await.unwrap());
    assert!(!lease::release(&a, key, "node-a").await.unwrap());
    assert!(lease::release(&b, key, "node-b").await.unwrap());
}
