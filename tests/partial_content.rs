//! Partial content: a range answer (206) is stored and later ranges inside
//! it are hits; pieces of one version are combined into the whole; a full
//! GET after a piece asks the origin only for the rest; and on a route
//! that slices, range requests fill aligned slices and a full GET after
//! them fetches only the slices still missing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Route, TestOrigin, TestProxy, get, get_with};
use http_body_util::BodyExt;

/// A body whose every byte says where it is.
fn object(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn ranged(body: &[u8], tag: &str) -> Route {
    Route::ok(body.to_vec())
        .header("cache-control", "max-age=300")
        .etag(tag)
        .ranges()
}

#[tokio::test]
async fn a_stored_range_answers_the_ranges_inside_it() {
    let body = object(10_000);
    let origin = TestOrigin::start().await;
    origin.route("/f", ranged(&body, "\"v1\""));
    let proxy = TestProxy::start(&origin.url()).await;

    let first = get_with(&proxy.url("/f"), &[("range", "bytes=100-199")]).await;
    assert_eq!((first.status.as_u16(), first.x_cache()), (206, "MISS"));
    assert_eq!(&first.body[..], &body[100..200]);
    assert_eq!(
        origin.ranges_asked("/f"),
        [Some("bytes=100-199".to_owned())]
    );

    let inside = get_with(&proxy.url("/f"), &[("range", "bytes=120-150")]).await;
    assert_eq!((inside.status.as_u16(), inside.x_cache()), (206, "HIT"));
    assert_eq!(inside.header("content-range"), Some("bytes 120-150/10000"));
    assert_eq!(&inside.body[..], &body[120..151]);
    assert_eq!(origin.hits("/f"), 1);

    let outside = get_with(&proxy.url("/f"), &[("range", "bytes=500-599")]).await;
    assert_eq!((outside.status.as_u16(), outside.x_cache()), (206, "MISS"));
    assert_eq!(&outside.body[..], &body[500..600]);
}

#[tokio::test]
async fn pieces_that_cover_the_object_become_the_whole() {
    let body = object(10_000);
    let origin = TestOrigin::start().await;
    origin.route("/f", ranged(&body, "\"v1\""));
    let proxy = TestProxy::start(&origin.url()).await;

    get_with(&proxy.url("/f"), &[("range", "bytes=0-4999")]).await;
    let second = get_with(&proxy.url("/f"), &[("range", "bytes=4000-")]).await;
    assert_eq!(&second.body[..], &body[4000..]);
    assert_eq!(origin.hits("/f"), 2);

    let whole = get(&proxy.url("/f")).await;
    assert_eq!((whole.status.as_u16(), whole.x_cache()), (200, "HIT"));
    assert_eq!(whole.header("content-length"), Some("10000"));
    assert!(whole.header("content-range").is_none());
    assert_eq!(&whole.body[..], &body[..], "combined byte for byte");
    assert_eq!(origin.hits("/f"), 2, "no request for the combined whole");
}

#[tokio::test]
async fn a_full_get_after_a_piece_asks_only_for_the_rest() {
    let body = object(10_000);
    let origin = TestOrigin::start().await;
    origin.route("/f", ranged(&body, "\"v1\""));
    let proxy = TestProxy::start(&origin.url()).await;

    get_with(&proxy.url("/f"), &[("range", "bytes=0-999")]).await;
    let whole = get(&proxy.url("/f")).await;
    assert_eq!((whole.status.as_u16(), whole.x_cache()), (200, "MISS"));
    assert_eq!(&whole.body[..], &body[..]);
    assert_eq!(
        origin.ranges_asked("/f"),
        [
            Some("bytes=0-999".to_owned()),
            Some("bytes=1000-".to_owned())
        ]
    );
    assert_eq!(
        origin.last_headers("/f")["if-range"],
        "\"v1\"",
        "the rest only if it is still the same version"
    );
    let again = get(&proxy.url("/f")).await;
    assert_eq!((again.x_cache(), &again.body[..]), ("HIT", &body[..]));
    assert_eq!(origin.hits("/f"), 2);
}

#[tokio::test]
async fn a_piece_of_an_older_version_is_not_joined_to_a_newer_one() {
    let old = object(10_000);
    let new: Vec<u8> = old.iter().map(|b| b.wrapping_add(1)).collect();
    let origin = TestOrigin::start().await;
    origin.route("/f", ranged(&old, "\"v1\""));
    let proxy = TestProxy::start(&origin.url()).await;
    get_with(&proxy.url("/f"), &[("range", "bytes=0-999")]).await;

    origin.route("/f", ranged(&new, "\"v2\""));
    let whole = get(&proxy.url("/f")).await;
    assert_eq!(whole.status.as_u16(), 200);
    assert_eq!(
        &whole.body[..],
        &new[..],
        "If-Range failed: the whole new version"
    );
    let hit = get(&proxy.url("/f")).await;
    assert_eq!((hit.x_cache(), &hit.body[..]), ("HIT", &new[..]));
}

const SLICE: usize = 64 * 1024;

async fn sliced(origin: &TestOrigin) -> TestProxy {
    TestProxy::start_with(&origin.url(), |config| {
        config.routes[0].slice = Some(SLICE as u64);
    })
    .await
}

/// The range the proxy asks for slice `index` (the last one too: the
/// origin answers with what there is).
fn slice_range(index: usize) -> Option<String> {
    Some(format!(
        "bytes={}-{}",
        index * SLICE,
        (index + 1) * SLICE - 1
    ))
}

#[tokio::test]
async fn range_requests_fill_slices_and_a_full_get_fetches_only_the_missing_ones() {
    let len = 4 * SLICE + 1000; // five slices, the last one short
    let body = object(len);
    let origin = TestOrigin::start().await;
    origin.route("/video.mp4", ranged(&body, "\"v1\""));
    let proxy = sliced(&origin).await;
    let url = proxy.url("/video.mp4");

    // A player's range in the middle: slices 1 and 2.
    let range = format!("bytes={}-{}", SLICE + 100, 2 * SLICE + 100);
    let played = get_with(&url, &[("range", &range)]).await;
    assert_eq!((played.status.as_u16(), played.x_cache()), (206, "MISS"));
    let expected = format!("bytes {}-{}/{len}", SLICE + 100, 2 * SLICE + 100);
    assert_eq!(played.header("content-range"), Some(expected.as_str()));
    assert_eq!(&played.body[..], &body[SLICE + 100..2 * SLICE + 101]);
    assert_eq!(
        origin.ranges_asked("/video.mp4"),
        [slice_range(1), slice_range(2)]
    );

    // The whole file: only slices 0, 3 and 4 go to the origin.
    let whole = get(&url).await;
    assert_eq!(whole.status.as_u16(), 200);
    assert_eq!(
        whole.header("content-length"),
        Some(len.to_string().as_str())
    );
    assert_eq!(whole.body.len(), len);
    assert!(whole.body[..] == body[..], "assembled byte for byte");
    assert_eq!(
        origin.ranges_asked("/video.mp4")[2..],
        [slice_range(0), slice_range(3), slice_range(4)]
    );

    // Everything is stored now: a suffix range and the whole are hits.
    let tail = get_with(&url, &[("range", "bytes=-1500")]).await;
    assert_eq!((tail.status.as_u16(), tail.x_cache()), (206, "HIT"));
    assert_eq!(&tail.body[..], &body[len - 1500..]);
    let again = get(&url).await;
    assert!(again.body[..] == body[..]);
    assert_eq!(origin.hits("/video.mp4"), 5, "each slice fetched once");

    let past = get_with(&url, &[("range", &format!("bytes={}-", len + 10))]).await;
    assert_eq!(past.status.as_u16(), 416);
}

#[tokio::test]
async fn slices_of_two_versions_are_never_joined() {
    let len = 3 * SLICE;
    let old = object(len);
    let origin = TestOrigin::start().await;
    origin.route("/v", ranged(&old, "\"v1\""));
    let proxy = sliced(&origin).await;
    let url = proxy.url("/v");
    get_with(&url, &[("range", "bytes=0-10")]).await; // slice 0 of v1

    let new: Vec<u8> = old.iter().map(|b| b.wrapping_add(1)).collect();
    origin.route("/v", ranged(&new, "\"v2\""));
    let response = common::client()
        .request(http::Request::get(&url).body(Default::default()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let read = response.into_body().collect().await;
    assert!(read.is_err(), "broken off where the version changes");
}

#[tokio::test]
async fn an_origin_that_ignores_ranges_is_cached_whole() {
    let body = object(2 * SLICE);
    let origin = TestOrigin::start().await;
    origin.route(
        "/plain",
        Route::ok(body.clone()).header("cache-control", "max-age=300"),
    );
    let proxy = sliced(&origin).await;
    let url = proxy.url("/plain");
    let first = get_with(&url, &[("range", "bytes=10-20")]).await;
    assert_eq!(
        first.status.as_u16(),
        200,
        "the origin's whole answer, relayed"
    );
    let hit = get_with(&url, &[("range", "bytes=10-20")]).await;
    assert_eq!((hit.status.as_u16(), hit.x_cache()), (206, "HIT"));
    assert_eq!(&hit.body[..], &body[10..21]);
    assert_eq!(origin.hits("/plain"), 1);
}
