//! The cache survives restarts through `cache.json`, tolerates a broken
//! file, and can be cleared while an instance runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::disallowed_methods)] // tests time themselves

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
    let ttl = |c: &mut caching_proxy::config::Config| {
        common::set_cache_ttl(c, Some(Duration::from_secs(60)))
    };

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

    let outcome = clear_cache(&proxy.cache_file, None).await.unwrap();
    assert_eq!(
        outcome,
        ClearOutcome::Instance {
            purged: 1,
            snapshot_error: None
        }
    );
    assert_eq!(get(&proxy.url("/x")).await.x_cache(), "MISS");
    assert_eq!(origin.hits("/x"), 2);
}

#[tokio::test]
async fn clear_cache_without_an_instance_empties_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.json");
    std::fs::write(&file, b"{\"version\":1,\"entries\":[{\"key\":\"k\"}]}").unwrap();
    assert_eq!(
        clear_cache(&file, None).await.unwrap(),
        ClearOutcome::FileOnly
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "{\"version\":1,\"entries\":[]}"
    );
}

/// A snapshot document with `entries` (JSON objects, written out).
fn snapshot(entries: &[String]) -> String {
    format!("{{\"version\":1,\"entries\":[{}]}}", entries.join(","))
}

/// One entry for `key`, stored now, fresh for an hour.
fn entry(key: &str, status: u16, headers: &str, body_base64: &str) -> String {
    let now = caching_proxy::clock::unix_millis(std::time::SystemTime::now());
    format!(
        r#"{{"key":"{key}","status":{status},"headers":{headers},"body":"{body_base64}","stored_at":{now},"expires_at":{}}}"#,
        now + 3_600_000
    )
}

async fn start_on_file(origin: &TestOrigin, file: &std::path::Path) -> TestProxy {
    TestProxy::start_on(
        &origin.url(),
        file.to_owned(),
        Arc::new(ManualClock::default()),
        |_| {},
    )
    .await
}

#[tokio::test]
async fn snapshot_entries_are_checked_like_origin_responses() {
    let origin = TestOrigin::start().await;
    for path in ["/switch", "/length", "/good"] {
        origin.route(path, Route::ok("from origin"));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.json");
    let key = |path: &str| format!("{} cache.test{path}", origin.url());
    std::fs::write(
        &file,
        snapshot(&[
            entry(&key("/switch"), 101, "[]", ""),
            entry(
                &key("/length"),
                200,
                r#"[["content-length","999"],["transfer-encoding","chunked"]]"#,
                "aGk=",
            ),
            entry(&key("/good"), 200, "[]", "aGk="),
        ]),
    )
    .unwrap();
    let proxy = start_on_file(&origin, &file).await;

    let switch = get_as(&proxy.url("/switch"), "cache.test").await;
    assert_eq!(
        (switch.status.as_u16(), switch.x_cache()),
        (200, "MISS"),
        "a 101 is never served from the file"
    );
    let length = get_as(&proxy.url("/length"), "cache.test").await;
    assert_eq!(length.x_cache(), "HIT");
    assert_eq!(
        length.header("content-length"),
        Some("2"),
        "framing rebuilt from the body"
    );
    assert_eq!(length.header("transfer-encoding"), None);
    assert_eq!(&length.body[..], b"hi");
    assert_eq!(
        get_as(&proxy.url("/good"), "cache.test").await.x_cache(),
        "HIT"
    );
    let stats = get(&format!("http://{}/stats", proxy.running().admin_addr())).await;
    let stats: serde_json::Value = serde_json::from_slice(&stats.body).unwrap();
    assert_eq!(stats["snapshot"]["dropped_on_load"], 1);
}

#[tokio::test]
async fn an_oversized_file_or_a_directory_is_moved_aside_unread() {
    let origin = TestOrigin::start().await;
    origin.route("/x", Route::ok("x"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.json");
    // A small cache: a file past 2 x 1 MiB + 16 MiB cannot be its snapshot.
    std::fs::write(&file, vec![b' '; 20 << 20]).unwrap();
    let small = |c: &mut caching_proxy::config::Config| {
        c.cache.max_size = 1 << 20;
        c.cache.max_object_size = 1 << 19;
    };
    let mut proxy = TestProxy::start_on(
        &origin.url(),
        file.clone(),
        Arc::new(ManualClock::default()),
        small,
    )
    .await;
    assert!(!file.exists(), "moved aside");
    assert_eq!(get(&proxy.url("/x")).await.x_cache(), "MISS");
    proxy.stop().await;

    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir(&file).unwrap();
    let mut proxy = start_on_file(&origin, &file).await;
    assert!(
        !file.is_dir(),
        "the directory is moved aside like a corrupt file"
    );
    get(&proxy.url("/x")).await;
    proxy.stop().await;
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(
        written.contains("/x"),
        "the stop wrote a snapshot where the directory was"
    );
    let aside = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".corrupt-")
        })
        .count();
    assert_eq!(aside, 2);
}

#[tokio::test]
async fn temp_files_a_killed_process_left_are_removed_at_start() {
    let origin = TestOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.json");
    // What `kill -9` during a write leaves: the temp file of a pid that
    // no longer runs.
    let stale = dir.path().join("cache.json.tmp-4294967294");
    std::fs::write(&stale, b"{\"version\":1,\"entr").unwrap();
    let _proxy = start_on_file(&origin, &file).await;
    assert!(!stale.exists());
}

#[tokio::test]
async fn a_route_with_a_longer_ttl_keeps_it_across_a_restart() {
    let origin = TestOrigin::start().await;
    origin.route(
        "/long/x",
        Route::ok("long").header("cache-control", "max-age=300"),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.json");
    let clock = Arc::new(ManualClock::default());
    let routes = |c: &mut caching_proxy::config::Config| {
        common::set_cache_ttl(c, Some(Duration::from_secs(60)));
        let mut long = c.routes[0].clone();
        long.name = "long".into();
        long.path_prefix = "/long/".into();
        long.ttl = Some(Duration::from_secs(600));
        c.routes.insert(0, long);
    };
    let mut first = TestProxy::start_on(&origin.url(), file.clone(), clock.clone(), routes).await;
    assert_eq!(get_as(&first.url("/long/x"), "h").await.x_cache(), "MISS");
    first.stop().await;

    clock.advance(Duration::from_secs(120));
    let second = TestProxy::start_on(&origin.url(), file, clock, routes).await;
    assert_eq!(
        get_as(&second.url("/long/x"), "h").await.x_cache(),
        "HIT",
        "fresh for 300 s under a 600 s route, whatever [cache] ttl says"
    );
}

#[tokio::test]
async fn a_variant_written_with_another_hash_is_still_found() {
    let origin = TestOrigin::start().await;
    origin.route(
        "/v",
        Route::ok("from origin").header("vary", "accept-language"),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.json");
    // As an older build wrote it: its own hash after the separator.
    let key = format!("{} cache.test/v\\u001f0123456789abcdef", origin.url());
    let variant = entry(&key, 200, r#"[["vary","accept-language"]]"#, "ZGU=").replace(
        r#""expires_at""#,
        r#""vary":[["accept-language","de"]],"expires_at""#,
    );
    std::fs::write(&file, snapshot(&[variant])).unwrap();
    let proxy = start_on_file(&origin, &file).await;
    let request = http::Request::get(proxy.url("/v"))
        .header("host", "cache.test")
        .header("accept-language", "de")
        .body(http_body_util::Full::default())
        .unwrap();
    let answer = common::send(&common::client(), request).await;
    assert_eq!(answer.x_cache(), "HIT");
    assert_eq!(&answer.body[..], b"de");
    assert_eq!(origin.hits("/v"), 0);
}

/// Polls `check` every 10 ms for at most 10 s: the snapshot is read on
/// another thread, with no event of its own per entry.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_snapshot_loads_while_requests_are_served() {
    use std::io::Write;
    let origin = TestOrigin::start().await;
    for path in ["/first", "/filled", "/purged", "/rest"] {
        origin.route(path, Route::ok(format!("origin {path}")));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.json");
    // A pipe stands for a file too large to read at once: the test says
    // when the rest of it arrives.
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&file)
            .status()
            .unwrap()
            .success()
    );
    let key = |path: &str| format!("{} cache.test{path}", origin.url());
    let base64 = |text: &str| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(text)
    };
    let stored = |path: &str| entry(&key(path), 200, "[]", &base64(&format!("snapshot {path}")));
    let head = format!("{{\"version\":1,\"entries\":[{},", stored("/first"));
    let rest = format!(
        "{},{},{}]}}",
        stored("/filled"),
        stored("/purged"),
        stored("/rest")
    );
    let (go_on, rest_wanted) = std::sync::mpsc::channel::<()>();
    let pipe = file.clone();
    let writer = std::thread::spawn(move || {
        let mut pipe = std::fs::OpenOptions::new().write(true).open(pipe).unwrap();
        pipe.write_all(head.as_bytes()).unwrap();
        pipe.flush().unwrap();
        rest_wanted.recv().unwrap();
        pipe.write_all(rest.as_bytes()).unwrap();
    });

    let proxy = TestProxy::start_on(
        &origin.url(),
        file.clone(),
        Arc::new(ManualClock::default()),
        |c| c.cache.load_wait = Duration::ZERO,
    )
    .await;
    let stats_url = format!("http://{}/stats", proxy.running().admin_addr());
    let loading = async || {
        let stats: serde_json::Value = serde_json::from_slice(&get(&stats_url).await.body).unwrap();
        stats["snapshot"]["loading"] == true
    };
    // Serving while the rest of the file has not even arrived.
    eventually("the first entry is restored", async || {
        get_as(&proxy.url("/first"), "cache.test").await.x_cache() == "HIT"
    })
    .await;
    assert!(loading().await, "stats say the snapshot is loading");
    let filled = get_as(&proxy.url("/filled"), "cache.test").await;
    assert_eq!(
        (filled.x_cache(), &filled.body[..]),
        ("MISS", &b"origin /filled"[..])
    );
    // A purge answers at once; its snapshot write waits for the load.
    let purge = http::Request::post(format!("http://{}/purge", proxy.running().admin_addr()))
        .body(http_body_util::Full::new(bytes::Bytes::from(
            r#"{"url": "http://cache.test/purged"}"#,
        )))
        .unwrap();
    let answer = tokio::time::timeout(
        Duration::from_secs(10),
        common::send(&common::client(), purge),
    )
    .await
    .expect("the purge answers while the file is still being read");
    let answer: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(
        answer["snapshot"], "written once the snapshot being loaded is read",
        "{answer}"
    );

    let mut writes = proxy.running().snapshot_writes();
    let written_before = *writes.borrow_and_update();
    go_on.send(()).unwrap();
    writer.join().unwrap();
    // The purge's write, held until the load ended, replaces the file.
    tokio::time::timeout(
        Duration::from_secs(10),
        writes.wait_for(|n| *n > written_before),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(!loading().await, "the load is over");
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let keys: Vec<&str> = written["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    for path in ["/first", "/filled", "/rest"] {
        assert!(keys.iter().any(|k| k.ends_with(path)), "{path} in {keys:?}");
    }
    assert!(!keys.iter().any(|k| k.ends_with("/purged")), "{keys:?}");

    let answer = |path: &'static str| {
        let proxy = &proxy;
        async move { get_as(&proxy.url(path), "cache.test").await }
    };
    let rest = answer("/rest").await;
    assert_eq!(
        (rest.x_cache(), &rest.body[..]),
        ("HIT", &b"snapshot /rest"[..])
    );
    let filled = answer("/filled").await;
    assert_eq!(
        (filled.x_cache(), &filled.body[..]),
        ("HIT", &b"origin /filled"[..]),
        "the fill since the start is newer than the snapshot's entry"
    );
    let purged = answer("/purged").await;
    assert_eq!(
        (purged.x_cache(), &purged.body[..]),
        ("MISS", &b"origin /purged"[..]),
        "purged while loading: the snapshot's entry stays out"
    );
    assert_eq!(origin.hits("/rest"), 0);
    assert_eq!(origin.hits("/first"), 0);
}
