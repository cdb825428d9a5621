//! Config files: routing by host and path, per-route TTL and policy, TLS
//! listeners and HTTPS origins with a private CA.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::tls::{TestCa, tls_origin};
use common::{FileProxy, LISTENER, Route, TestOrigin, get_as, origin_toml, send};
use http::{Request, StatusCode, Version};
use http_body_util::Full;

async fn two_origins() -> (TestOrigin, TestOrigin) {
    let a = TestOrigin::start().await;
    let b = TestOrigin::start().await;
    for path in ["/", "/x", "/api/x", "/static/s.css"] {
        a.route(path, Route::ok("from a"));
        b.route(path, Route::ok("from b"));
    }
    (a, b)
}

fn body(answer: &common::Answer) -> &str {
    std::str::from_utf8(&answer.body).unwrap()
}

#[tokio::test]
async fn requests_are_routed_by_host_wildcard_and_path_prefix() {
    let (a, b) = two_origins().await;
    let c = TestOrigin::start().await;
    c.route("/api/x", Route::ok("from c"));
    let toml = format!(
        "{LISTENER}{}{}{}
[[routes]]
host = \"a.test\"
origin = \"a\"

[[routes]]
host = \"*.b.test\"
origin = \"b\"

[[routes]]
host = \"a.test\"
path_prefix = \"/api/\"
origin = \"c\"
",
        origin_toml("a", &a.url()),
        origin_toml("b", &b.url()),
        origin_toml("c", &c.url()),
    );
    let proxy = FileProxy::start(&toml).await;

    assert_eq!(body(&get_as(&proxy.url("/x"), "a.test").await), "from a");
    assert_eq!(body(&get_as(&proxy.url("/x"), "A.TEST:80").await), "from a");
    assert_eq!(
        body(&get_as(&proxy.url("/api/x"), "a.test").await),
        "from c",
        "longer prefix wins"
    );
    assert_eq!(
        body(&get_as(&proxy.url("/x"), "www.b.test").await),
        "from b"
    );
    assert_eq!(
        body(&get_as(&proxy.url("/x"), "deep.www.b.test").await),
        "from b"
    );

    let unrouted = get_as(&proxy.url("/x"), "b.test").await;
    assert_eq!(
        unrouted.status,
        StatusCode::NOT_FOUND,
        "*.b.test does not match b.test"
    );
    assert_eq!(body(&unrouted), "404 Not Found\n");
    assert_eq!(
        get_as(&proxy.url("/x"), "other.test").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_same_path_on_two_origins_is_two_cache_entries() {
    let (a, b) = two_origins().await;
    let toml = format!(
        "{LISTENER}{}{}[[routes]]\npath_prefix = \"/static/\"\norigin = \"b\"\n[[routes]]\norigin = \"a\"\n",
        origin_toml("a", &a.url()),
        origin_toml("b", &b.url()),
    );
    let proxy = FileProxy::start(&toml).await;
    assert_eq!(
        body(&get_as(&proxy.url("/static/s.css"), "h").await),
        "from b"
    );
    assert_eq!(body(&get_as(&proxy.url("/x"), "h").await), "from a");
    assert_eq!(
        get_as(&proxy.url("/static/s.css"), "h").await.x_cache(),
        "HIT"
    );
    assert_eq!(b.hits("/static/s.css"), 1);
    assert_eq!(a.hits("/static/s.css"), 0);
}

#[tokio::test]
async fn routes_have_their_own_ttl_and_policy() {
    let origin = TestOrigin::start().await;
    origin.route("/short/x", Route::ok("s"));
    origin.route("/long/x", Route::ok("l"));
    origin.route(
        "/forced/x",
        Route::ok("f").header("cache-control", "no-store"),
    );
    origin.route(
        "/bypassed/x",
        Route::ok("b").header("cache-control", "max-age=600"),
    );
    let toml = format!(
        "{LISTENER}{}
[cache]
ttl = \"100s\"

[[routes]]
path_prefix = \"/short/\"
origin = \"o\"
ttl = 10

[[routes]]
path_prefix = \"/forced/\"
origin = \"o\"
policy = \"force\"
ttl = \"1m\"

[[routes]]
path_prefix = \"/bypassed/\"
origin = \"o\"
policy = \"bypass\"

[[routes]]
origin = \"o\"
",
        origin_toml("o", &origin.url())
    );
    let proxy = FileProxy::start(&toml).await;
    for path in ["/short/x", "/long/x", "/forced/x", "/bypassed/x"] {
        assert_eq!(
            get_as(&proxy.url(path), "h").await.x_cache(),
            "MISS",
            "{path}"
        );
    }
    assert_eq!(
        get_as(&proxy.url("/forced/x"), "h").await.x_cache(),
        "HIT",
        "force ignores no-store"
    );
    assert_eq!(
        get_as(&proxy.url("/bypassed/x"), "h").await.x_cache(),
        "MISS",
        "bypass never caches"
    );

    proxy.clock.advance(Duration::from_secs(11));
    assert_eq!(
        get_as(&proxy.url("/short/x"), "h").await.x_cache(),
        "MISS",
        "route ttl 10 s"
    );
    assert_eq!(
        get_as(&proxy.url("/long/x"), "h").await.x_cache(),
        "HIT",
        "cache ttl 100 s"
    );
    proxy.clock.advance(Duration::from_secs(50));
    assert_eq!(
        get_as(&proxy.url("/forced/x"), "h").await.x_cache(),
        "MISS",
        "forced for 60 s"
    );
    assert_eq!(origin.hits("/bypassed/x"), 2);
}

#[tokio::test]
async fn tls_listeners_speak_http1_and_h2_with_a_certificate_from_the_file() {
    let origin = TestOrigin::start().await;
    origin.route("/t", Route::ok("over tls"));
    let ca = TestCa::new();
    let leaf = ca.leaf();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), &leaf.cert_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), &leaf.key_pem).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let toml = format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\ntls = {{ cert = {:?}, key = {:?} }}\n{}",
        cert.display().to_string(),
        key.display().to_string(),
        origin_toml("o", &origin.url())
    );
    let proxy = FileProxy::start(&toml).await;
    let port = proxy.running().local_addr().port();
    let url = format!("https://localhost:{port}/t");

    for (http2, version, expected_cache) in [
        (false, Version::HTTP_11, "MISS"),
        (true, Version::HTTP_2, "HIT"),
    ] {
        let client = ca.client(http2);
        let response = client
            .request(Request::get(&url).body(Full::default()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.version(), version);
        assert_eq!(response.headers()["x-cache"], expected_cache);
    }
    let seen = origin.last_headers("/t");
    assert_eq!(seen.get("x-forwarded-proto").unwrap(), "https");
    assert_eq!(
        seen.get("x-forwarded-host").unwrap(),
        &format!("localhost:{port}")
    );
}

#[tokio::test]
async fn https_origins_trust_a_ca_file() {
    let ca = TestCa::new();
    let (addr, seen) = tls_origin(&ca).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    let toml = format!(
        "{LISTENER}[[origins]]\nname = \"secure\"\nurl = \"https://localhost:{}\"\nca_file = {:?}\n",
        addr.port(),
        dir.path().join("ca.pem").display().to_string()
    );
    let proxy = FileProxy::start(&toml).await;
    let answer = send(
        &common::client(),
        Request::get(proxy.url("/s")).body(Full::default()).unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(body(&answer), "secure");
    assert_eq!(seen.lock().unwrap().len(), 1);
}
