//! The cache survives restarts through `cache.json`, tolerates a broken
//! file, and can be cleared while an instance runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use caching_proxy::admin::client::{ClearOutcome, clear_cache};
use caching_proxy::clock::ManualClock;
use common::{Route, TestOrigin, TestProxy, get, get_as};

#[tokio::test]
async fn a_restart_serves_hits_without_contacting_the_origin() {
    let origin = TestOrigin::start().await;
    origin.route("/kept", Route::ok("persisted body"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.json");
    let clock = Arc::new(ManualClock::default());

    let mut first = TestProxy::start_on(&origin.url(), file.clone(), clock.clone(), |_| {}).await;
    assert_eq!(
        get_as(&first.url("/kept"), "cache.test").await.x_cache(),
        "MISS"
    );
    first.stop().await;

    let second = TestProxy::start_on(&origin.url(), file.clone(), clock, |_| {}).await;
    let answer = get_as(&second.url("/kept"), "cache.test").await;
    assert_eq!(answer.x_cache(), "HIT");
    assert_eq!(&answer.body[..], b"persisted body");
    assert_eq!(origin.hits("/kept"), 1);
}

#[tokio::test]
async fn restored_entries_keep_their_remaining_lifetime() {
    let origin = TestOrigin::start().await;
    origin.route("/ttl", Route::ok("t"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.json");
    let clock = Arc::new(ManualClock::default());
    let ttl = |c: &mut caching_proxy::config::Config| c.set_ttl(Some(Duration::from_secs(60)));

    let mut first = TestProxy::start_on(&origin.url(), file.clone(), clock.clone(), ttl).await;
    get_as(&first.url("/ttl"), "cache.test").await;
    first.stop().await;

    clock.advance(Duration::from_secs(30));
    let mut second = TestProxy::start_on(&origin.url(), file.clone(), clock.clone(), ttl).await;
    assert_eq!(
        get_as(&second.url("/ttl"), "cache.test").await.x_cache(),
        "HIT",
        "30 s of 60 left"
    );
    second.stop().await;

    clock.advance(Duration::from_secs(31));
    let third = TestProxy::start_on(&origin.url(), file, clock, ttl).await;
    assert_eq!(
        get_as(&third.url("/ttl"), "cache.test").await.x_cache(),
        "MISS",
        "expired while down: not restarted at 60 s"
    );
}

#[tokio::test]
async fn the_snapshot_is_written_behind_while_running() {
    let origin = TestOrigin::start().await;
    origin.route("/wb", Route::ok("w"));
    let proxy = TestProxy::start(&origin.url()).await;
    let mut writes = proxy.running().snapshot_writes();
    get(&proxy.url("/wb")).await;
    // The write-behind is debounced: wait for the write it causes.
    tokio::time::timeout(Duration::from_secs(5), writes.changed())
        .await
        .expect("no snapshot written within 5 s")
        .unwrap();
    let text = std::fs::read_to_string(&proxy.cache_file).unwrap();
    assert!(text.starts_with("{\"version\":1,"), "{text}");
    assert!(text.contains("/wb"), "{text}");
}

#[tokio::test]
async fn a_corrupt_snapshot_is_moved_aside_and_the_proxy_starts_empty() {
    let origin = TestOrigin::start().await;
    origin.route("/c", Route::ok("c"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.json");
    std::fs::write(&file, b"{\"version\":1,\"entries\":[{\"key\":").unwrap();

    let proxy = TestProxy::start_on(
        &origin.url(),
        file.clone(),
        Arc::new(ManualClock::default()),
        |_| {},
    )
    .await;
    assert_eq!(get(&proxy.url("/c")).await.x_cache(), "MISS");
    assert_eq!(get(&proxy.url("/c")).await.x_cache(), "HIT");
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.starts_with("cache.json.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "the broken file is kept for inspection");
}

#[tokio::test]
async fn clear_cache_empties_a_running_instance() {
    let origin = TestOrigin::start().await;
    origin.route("/x", Route::ok("x"));
    let proxy = TestProxy::start(&origin.url()).await;
    get(&proxy.url("/x")).await;
    assert_eq!(get(&proxy.url("/x")).await.x_cache(), "HIT");

    let outcome = clear_cache(&proxy.cache_file).await.unwrap();
    assert_eq!(outcome, ClearOutcome::Instance { purged: 1 });
    assert_eq!(get(&proxy.url("/x")).await.x_cache(), "MISS");
    assert_eq!(origin.hits("/x"), 2);
}

#[tokio::test]
async fn clear_cache_without_an_instance_empties_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.json");
    std::fs::write(&file, b"{\"version\":1,\"entries\":[{\"key\":\"k\"}]}").unwrap();
    assert_eq!(clear_cache(&file).await.unwrap(), ClearOutcome::FileOnly);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "{\"version\":1,\"entries\":[]}"
    );
}
