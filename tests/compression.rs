//! Content codings end to end: browsers' many `Accept-Encoding` spellings
//! make a few variants of an origin that compresses, a compressible
//! response the origin sent uncompressed is stored compressed once and
//! every client gets it in a coding it takes, and what must not be
//! transformed is not.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Answer, Route, TestOrigin, TestProxy, decode, get_with};

/// What browsers and tools send (Chrome and Firefox since 2024, Safari,
/// Edge, older browsers, curl, wget, Go, Python, a CDN's health check),
/// each with the coding it prefers among br, zstd, gzip and identity.
const BROWSERS: [(&str, &str); 12] = [
    ("gzip, deflate, br, zstd", "br"),
    ("gzip, deflate, br", "br"),
    ("br, gzip, deflate", "br"),
    ("gzip,deflate,br", "br"),
    ("gzip, deflate, br;q=1.0, *;q=0.5", "br"),
    ("br;q=1.0, gzip;q=0.8, *;q=0.1", "br"),
    ("gzip, deflate", "gzip"),
    ("gzip", "gzip"),
    ("deflate, gzip;q=1.0, *;q=0.5", "gzip"),
    ("identity", "identity"),
    ("", "identity"),
    ("deflate", "identity"),
];

/// A page that compresses well (about 60 KiB).
fn page() -> Vec<u8> {
    (0..2000)
        .flat_map(|i| {
            format!("<li class=\"item\">product {i} in the catalogue</li>\n").into_bytes()
        })
        .collect()
}

fn coding(answer: &Answer) -> Option<&str> {
    answer.header("content-encoding")
}

async fn get_encoded(proxy: &TestProxy, path: &str, accept: &str) -> Answer {
    if accept.is_empty() {
        get_with(&proxy.url(path), &[]).await
    } else {
        get_with(&proxy.url(path), &[("accept-encoding", accept)]).await
    }
}

#[tokio::test]
async fn browser_accept_encodings_make_one_variant_per_coding() {
    let origin = TestOrigin::start().await;
    let page = page();
    origin.route(
        "/compressing",
        Route::ok(page.clone())
            .header("content-type", "text/html")
            .header("cache-control", "max-age=300")
            .negotiated(),
    );
    let proxy = TestProxy::start(&origin.url()).await;
    for round in 0..2 {
        for (accept, preferred) in BROWSERS {
            let answer = get_encoded(&proxy, "/compressing", accept).await;
            assert_eq!(
                answer.status,
                200,
                "{accept}: {}",
                String::from_utf8_lossy(&answer.body)
            );
            let expected = (preferred != "identity").then_some(preferred);
            assert_eq!(coding(&answer), expected, "{accept} (round {round})");
            assert_eq!(decode(coding(&answer), &answer.body), page, "{accept}");
            if round == 1 {
                assert_eq!(answer.x_cache(), "HIT", "{accept}");
            }
        }
    }
    assert_eq!(
        origin.hits("/compressing"),
        3,
        "br, gzip and identity, once each"
    );
    let stats = proxy.running().proxy().store().usage();
    assert_eq!(stats.entries, 3);
}

#[tokio::test]
async fn an_uncompressed_page_is_stored_compressed_once_for_every_client() {
    let origin = TestOrigin::start().await;
    let page = page();
    origin.route(
        "/plain",
        Route::ok(page.clone())
            .header("content-type", "text/html; charset=utf-8")
            .header("cache-control", "max-age=300")
            .etag("\"v1\""),
    );
    let proxy = TestProxy::start(&origin.url()).await;

    let first = get_encoded(&proxy, "/plain", "gzip, deflate, br, zstd").await;
    assert_eq!(first.x_cache(), "MISS");
    assert_eq!(
        coding(&first),
        Some("br"),
        "the miss is compressed as it streams, in the client's best coding"
    );
    assert_eq!(decode(Some("br"), &first.body), page);
    assert!(first.header("vary").unwrap().contains("Accept-Encoding"));
    assert_eq!(first.header("etag"), Some("W/\"v1\""));
    assert_eq!(first.header("content-length"), None);

    // The entry is stored in that coding: the bytes the miss sent.
    let br = get_encoded(&proxy, "/plain", "br").await;
    assert_eq!(br.x_cache(), "HIT");
    assert_eq!(coding(&br), Some("br"));
    assert!(br.body == first.body, "the stored bytes are the ones sent");
    assert!(br.body.len() < page.len() / 5, "{} bytes", br.body.len());
    assert_eq!(decode(Some("br"), &br.body), page);
    assert_eq!(
        br.header("etag"),
        Some("W/\"v1\""),
        "a transformed body's ETag is weak"
    );
    assert_eq!(
        br.header("content-length"),
        Some(br.body.len().to_string().as_str())
    );

    // The others get it in the best coding they take, re-encoded as it
    // is sent, or decoded.
    for (accept, expected) in [
        ("zstd", Some("zstd")),
        ("gzip", Some("gzip")),
        ("identity", None),
        ("", None),
    ] {
        let answer = get_encoded(&proxy, "/plain", accept).await;
        assert_eq!(answer.x_cache(), "HIT", "{accept}");
        assert_eq!(coding(&answer), expected, "{accept}");
        assert_eq!(decode(expected, &answer.body), page, "{accept}");
        assert_eq!(answer.header("etag"), Some("W/\"v1\""));
        assert_eq!(
            answer.header("content-length"),
            None,
            "{accept}: not known before it is sent"
        );
    }
    assert_eq!(origin.hits("/plain"), 1, "one stored entry served them all");
}

#[tokio::test]
async fn a_client_without_brotli_makes_the_entry_gzip() {
    let origin = TestOrigin::start().await;
    let page = page();
    origin.route(
        "/data.json",
        Route::ok(page.clone())
            .header("content-type", "application/json")
            .header("cache-control", "max-age=300"),
    );
    let proxy = TestProxy::start(&origin.url()).await;
    assert_eq!(
        get_encoded(&proxy, "/data.json", "").await.x_cache(),
        "MISS"
    );
    let gzip = get_encoded(&proxy, "/data.json", "gzip, deflate").await;
    assert_eq!(gzip.x_cache(), "HIT");
    assert_eq!(
        coding(&gzip),
        Some("gzip"),
        "gzip when the filling client takes no coding"
    );
    assert_eq!(decode(Some("gzip"), &gzip.body), page);
}

#[tokio::test]
async fn what_must_not_be_transformed_is_stored_as_it_came() {
    let origin = TestOrigin::start().await;
    let page = page();
    origin.route(
        "/no-transform",
        Route::ok(page.clone())
            .header("content-type", "text/html")
            .header("cache-control", "max-age=300, no-transform"),
    );
    origin.route(
        "/image",
        Route::ok(page.clone())
            .header("content-type", "image/png")
            .header("cache-control", "max-age=300"),
    );
    origin.route(
        "/small",
        Route::ok("<p>short</p>")
            .header("content-type", "text/html")
            .header("cache-control", "max-age=300"),
    );
    let proxy = TestProxy::start(&origin.url()).await;
    for path in ["/no-transform", "/image", "/small"] {
        assert_eq!(
            get_encoded(&proxy, path, "gzip, br").await.x_cache(),
            "MISS"
        );
        let again = get_encoded(&proxy, path, "gzip, br").await;
        assert_eq!(again.x_cache(), "HIT", "{path}");
        assert_eq!(coding(&again), None, "{path}");
        assert_eq!(again.header("etag"), None);
    }
    let range = get_with(
        &proxy.url("/no-transform"),
        &[("range", "bytes=0-9"), ("accept-encoding", "gzip")],
    )
    .await;
    assert_eq!(range.status, 206);
    assert_eq!(&range.body[..], &page[..10]);
}

#[tokio::test]
async fn an_origin_gzip_body_is_decoded_for_a_client_that_does_not_take_it() {
    let origin = TestOrigin::start().await;
    let page = page();
    let gzipped = {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(&page).unwrap();
        encoder.finish().unwrap()
    };
    origin.route(
        "/pre",
        Route::ok(gzipped.clone())
            .header("content-type", "text/html")
            .header("content-encoding", "gzip")
            .header("cache-control", "max-age=300"),
    );
    let proxy = TestProxy::start(&origin.url()).await;
    let first = get_encoded(&proxy, "/pre", "gzip").await;
    assert_eq!(coding(&first), Some("gzip"));
    assert_eq!(
        &first.body[..],
        &gzipped[..],
        "an encoded body is never re-encoded"
    );
    let plain = get_encoded(&proxy, "/pre", "identity").await;
    assert_eq!(plain.x_cache(), "HIT");
    assert_eq!(coding(&plain), None);
    assert_eq!(&plain.body[..], &page[..]);
    assert_eq!(origin.hits("/pre"), 1);
}
