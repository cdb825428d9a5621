//! Live reload: edits apply without dropping listeners or connections; bad
//! edits are refused whole and the old config keeps serving.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::{FileProxy, LISTENER, Route, TestOrigin, get_as, origin_toml};
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

async fn origins() -> (TestOrigin, TestOrigin) {
    let a = TestOrigin::start().await;
    let b = TestOrigin::start().await;
    a.route("/", Route::ok("from a"));
    b.route("/", Route::ok("from b").header("cache-control", "no-store"));
    a.route("/kept", Route::ok("kept"));
    (a, b)
}

fn config(listeners: &str, a: &TestOrigin, b: &TestOrigin, route_to: &str) -> String {
    format!(
        "{listeners}{}{}[[routes]]\norigin = \"{route_to}\"\n",
        origin_toml("a", &a.url()),
        origin_toml("b", &b.url())
    )
}

async fn body_of(url: &str) -> String {
    String::from_utf8(get_as(url, "h").await.body.to_vec()).unwrap()
}

/// Sends a GET for `/` on an already open HTTP/1.1 connection.
async fn get_on(sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>) -> String {
    let request = Request::get("/")
        .header("host", "h")
        .body(Full::default())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

#[tokio::test]
async fn an_edit_by_rename_reroutes_while_an_open_connection_keeps_working() {
    let (a, b) = origins().await;
    let proxy = FileProxy::start(&config(LISTENER, &a, &b, "a")).await;
    let mut events = proxy.running().reload_events();

    let stream = tokio::net::TcpStream::connect(proxy.running().local_addr())
        .await
        .unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    assert_eq!(get_on(&mut sender).await, "from a");

    proxy.edit(&config(LISTENER, &a, &b, "b"));
    let event = FileProxy::next_reload(&mut events).await;
    assert!(event.result.is_ok(), "{event:?}");
    // The event is sent after the swap: new connections see it at once.
    assert_eq!(body_of(&proxy.url("/")).await, "from b");
    assert_eq!(
        get_on(&mut sender).await,
        "from b",
        "the old connection serves the new routes"
    );
}

#[tokio::test]
async fn an_invalid_edit_is_refused_and_the_old_config_keeps_serving() {
    let (a, b) = origins().await;
    let proxy = FileProxy::start(&config(LISTENER, &a, &b, "a")).await;
    let mut events = proxy.running().reload_events();

    proxy.edit("[[listeners]]\naddress = \"127.0.0.1:0\"\n[[routes]\n");
    let event = FileProxy::next_reload(&mut events).await;
    let error = event.result.unwrap_err().to_string();
    assert!(error.contains("proxy.toml:3:"), "{error}");
    assert_eq!(body_of(&proxy.url("/")).await, "from a");

    proxy.edit(&config(LISTENER, &a, &b, "nowhere"));
    let error = FileProxy::next_reload(&mut events)
        .await
        .result
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("routes[0].origin: unknown origin 'nowhere'"),
        "{error}"
    );
    assert_eq!(body_of(&proxy.url("/")).await, "from a");
}

#[tokio::test]
async fn listeners_are_added_and_removed() {
    let (a, b) = origins().await;
    let second = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = FileProxy::start(&config(LISTENER, &a, &b, "a")).await;
    let mut events = proxy.running().reload_events();
    let first = proxy.running().local_addr();

    let both = format!("{LISTENER}[[listeners]]\naddress = \"{second}\"\n");
    proxy.edit(&config(&both, &a, &b, "a"));
    let summary = FileProxy::next_reload(&mut events).await.result.unwrap();
    assert!(
        summary.contains(&format!("listeners added: {second}")),
        "{summary}"
    );
    assert_eq!(body_of(&format!("http://{second}/")).await, "from a");
    assert_eq!(body_of(&format!("http://{first}/")).await, "from a");

    let only_second = format!("[[listeners]]\naddress = \"{second}\"\n");
    proxy.edit(&config(&only_second, &a, &b, "a"));
    let summary = FileProxy::next_reload(&mut events).await.result.unwrap();
    assert!(
        summary.contains("listeners removed: 127.0.0.1:0"),
        "{summary}"
    );
    assert!(
        tokio::net::TcpStream::connect(first).await.is_err(),
        "the removed listener is closed"
    );
    assert_eq!(body_of(&format!("http://{second}/")).await, "from a");
}

#[tokio::test]
async fn a_reload_whose_new_port_is_taken_is_refused_as_a_whole() {
    let (a, b) = origins().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap();
    let proxy = FileProxy::start(&config(LISTENER, &a, &b, "a")).await;
    let mut events = proxy.running().reload_events();

    let with_taken = format!("{LISTENER}[[listeners]]\naddress = \"{taken_addr}\"\n");
    proxy.edit(&config(&with_taken, &a, &b, "b"));
    let error = FileProxy::next_reload(&mut events)
        .await
        .result
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(&format!("port {} is already in use", taken_addr.port())),
        "{error}"
    );
    assert_eq!(
        body_of(&proxy.url("/")).await,
        "from a",
        "routes did not change either"
    );
    assert_eq!(proxy.running().listener_addresses().await.len(), 1);
}

#[tokio::test]
async fn cached_entries_survive_a_reload() {
    let (a, b) = origins().await;
    let proxy = FileProxy::start(&config(LISTENER, &a, &b, "a")).await;
    let mut events = proxy.running().reload_events();
    assert_eq!(get_as(&proxy.url("/kept"), "h").await.x_cache(), "MISS");

    let with_ttl = format!("{}[cache]\nttl = 600\n", config(LISTENER, &a, &b, "a"));
    proxy.edit(&with_ttl);
    let summary = FileProxy::next_reload(&mut events).await.result.unwrap();
    assert!(summary.contains("cache.ttl: none -> 10m"), "{summary}");
    assert_eq!(get_as(&proxy.url("/kept"), "h").await.x_cache(), "HIT");
    assert_eq!(a.hits("/kept"), 1);
}

#[cfg(unix)]
#[tokio::test]
async fn a_kubernetes_style_symlink_swap_is_picked_up() {
    use std::os::unix::fs::symlink;
    let (a, b) = origins().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // ConfigMap layout: proxy.toml -> ..data/proxy.toml, ..data -> ..v1
    std::fs::create_dir(root.join("..v1")).unwrap();
    std::fs::write(root.join("..v1/proxy.toml"), config(LISTENER, &a, &b, "a")).unwrap();
    symlink("..v1", root.join("..data")).unwrap();
    symlink("..data/proxy.toml", root.join("proxy.toml")).unwrap();
    let source = caching_proxy::config::ConfigSource {
        path: Some(root.join("proxy.toml")),
        overrides: Default::default(),
    };
    let clock = std::sync::Arc::new(caching_proxy::clock::ManualClock::default());
    let running = caching_proxy::app::start_from(source, clock).await.unwrap();
    let mut events = running.reload_events();
    let url = format!("http://{}/", running.local_addr());
    assert_eq!(body_of(&url).await, "from a");

    // The kubelet's atomic update: a new directory, a new link, renamed over.
    std::fs::create_dir(root.join("..v2")).unwrap();
    std::fs::write(root.join("..v2/proxy.toml"), config(LISTENER, &a, &b, "b")).unwrap();
    symlink("..v2", root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();

    let event = FileProxy::next_reload(&mut events).await;
    assert!(event.result.is_ok(), "{event:?}");
    assert_eq!(body_of(&url).await, "from b");
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_edit_applies_while_other_files_in_the_directory_keep_changing() {
    let (a, b) = origins().await;
    let proxy = FileProxy::start(&config(LISTENER, &a, &b, "a")).await;
    let mut events = proxy.running().reload_events();
    // The snapshot and a log beside the config, written more often than
    // any debounce waits, for as long as the test runs.
    let dir = proxy.path.parent().unwrap().to_owned();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writing = stop.clone();
    let writer = std::thread::spawn(move || {
        let mut n = 0u64;
        while !writing.load(std::sync::atomic::Ordering::Relaxed) {
            n += 1;
            std::fs::write(dir.join("proxy.log"), format!("line {n}\n")).unwrap();
            std::fs::write(dir.join("cache.json.tmp-1"), n.to_string()).unwrap();
            std::fs::rename(dir.join("cache.json.tmp-1"), dir.join("other.json")).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    });
    proxy.edit(&config(LISTENER, &a, &b, "b"));
    let event = FileProxy::next_reload(&mut events).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert!(event.result.is_ok(), "{event:?}");
    assert_eq!(body_of(&proxy.url("/")).await, "from b");
    assert_eq!(
        event.attempt, 1,
        "the other files' writes caused no reload attempt of their own"
    );
}

#[tokio::test]
async fn a_removed_config_file_is_reported_and_the_old_config_keeps_serving() {
    let (a, b) = origins().await;
    let proxy = FileProxy::start(&config(LISTENER, &a, &b, "a")).await;
    let mut events = proxy.running().reload_events();

    std::fs::remove_file(&proxy.path).unwrap();
    let error = FileProxy::next_reload(&mut events)
        .await
        .result
        .unwrap_err()
        .to_string();
    assert!(error.contains("proxy.toml was removed"), "{error}");
    assert_eq!(body_of(&proxy.url("/")).await, "from a");

    proxy.edit(&config(LISTENER, &a, &b, "b"));
    assert!(FileProxy::next_reload(&mut events).await.result.is_ok());
    assert_eq!(body_of(&proxy.url("/")).await, "from b");
}
