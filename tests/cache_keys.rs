//! A route's key rule: tracking parameters dropped and the query sorted so
//! equivalent URLs share one entry (the origin still gets the URL as
//! sent), request headers added to the key, and the admin API's explain
//! and purge speaking the normalized key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{FileProxy, LISTENER, Route, TestOrigin, client, get, get_with, origin_toml, send};
use http::{Method, Request};
use http_body_util::Full;
use serde_json::Value;

fn keyed_toml(origin: &TestOrigin) -> String {
    format!(
        "{LISTENER}[admin]\naddress = \"127.0.0.1:0\"\n{}
[[routes]]
origin = \"o\"
path_prefix = \"/p\"
key.query = {{ drop = [\"utm_*\", \"fbclid\", \"gclid\"] }}
key.sort_query = true

[[routes]]
origin = \"o\"
path_prefix = \"/d\"
key.headers = [\"X-Device\"]

[[routes]]
origin = \"o\"
",
        origin_toml("o", &origin.url())
    )
}

async fn admin(proxy: &FileProxy, method: Method, path: &str, body: &str) -> Value {
    let request = Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", proxy.running().admin_addr()))
        .body(Full::from(body.to_owned()))
        .unwrap();
    let answer = send(&client(), request).await;
    serde_json::from_slice(&answer.body).unwrap()
}

#[tokio::test]
async fn tracking_parameters_and_order_do_not_split_a_url() {
    let origin = TestOrigin::start().await;
    origin.route(
        "/p",
        Route::ok("product").header("cache-control", "max-age=300"),
    );
    let proxy = FileProxy::start(&keyed_toml(&origin)).await;

    let first = "/p?id=7&utm_source=news&utm_medium=mail";
    assert_eq!(get(&proxy.url(first)).await.x_cache(), "MISS");
    assert_eq!(origin.hits(first), 1, "the origin gets the URL as sent");
    for same in [
        "/p?id=7",
        "/p?fbclid=abc&id=7",
        "/p?gclid=1&id=7&utm_campaign=x",
    ] {
        let answer = get(&proxy.url(same)).await;
        assert_eq!(answer.x_cache(), "HIT", "{same}");
        assert_eq!(&answer.body[..], b"product");
    }
    assert_eq!(
        get(&proxy.url("/p?id=8&utm_source=news")).await.x_cache(),
        "MISS"
    );
    assert_eq!(get(&proxy.url("/p?b=2&a=1")).await.x_cache(), "MISS");
    assert_eq!(
        get(&proxy.url("/p?a=1&b=2")).await.x_cache(),
        "HIT",
        "sorted"
    );

    let explained = admin(
        &proxy,
        Method::GET,
        &format!(
            "/cache/explain?url={}",
            urlencoding(&proxy.url("/p?utm_source=x&id=7"))
        ),
        "",
    )
    .await;
    assert_eq!(explained["verdict"], "HIT", "{explained}");
    let authority = proxy.running().local_addr().to_string();
    assert_eq!(explained["key"], format!("{authority}/p?id=7"));

    let body = format!("{{\"url\": \"{}\"}}", proxy.url("/p?id=7&fbclid=zzz"));
    let purged = admin(&proxy, Method::POST, "/purge", &body).await;
    assert_eq!(purged["purged"], 1, "{purged}");
    assert_eq!(get(&proxy.url("/p?id=7")).await.x_cache(), "MISS");
}

#[tokio::test]
async fn key_headers_select_variants_and_other_routes_keep_the_raw_query() {
    let origin = TestOrigin::start().await;
    origin.route(
        "/d",
        Route::ok("page").header("cache-control", "max-age=300"),
    );
    origin.route(
        "/other",
        Route::ok("o").header("cache-control", "max-age=300"),
    );
    let proxy = FileProxy::start(&keyed_toml(&origin)).await;
    let url = proxy.url("/d");
    let as_device = |device: &'static str| {
        let url = url.clone();
        async move {
            get_with(&url, &[("x-device", device)])
                .await
                .x_cache()
                .to_owned()
        }
    };
    assert_eq!(as_device("mobile").await, "MISS");
    assert_eq!(as_device("mobile").await, "HIT");
    assert_eq!(as_device("desktop").await, "MISS");
    assert_eq!(as_device("desktop").await, "HIT");
    assert_eq!(origin.hits("/d"), 2);

    assert_eq!(
        get(&proxy.url("/other?utm_source=a")).await.x_cache(),
        "MISS"
    );
    assert_eq!(
        get(&proxy.url("/other?utm_source=b")).await.x_cache(),
        "MISS",
        "a route without a key rule keys the query as sent"
    );
}

/// Percent-encodes a URL for a query parameter.
fn urlencoding(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
