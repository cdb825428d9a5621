//! The reuse an optimal shared cache makes that a merely correct one may
//! not (the public cache test suite's "optimal" cases): lenient dates,
//! heuristically cacheable statuses, 204s, `must-understand`, targeted
//! fields that are not dictionaries, and selecting headers compared by
//! meaning.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use caching_proxy::clock::Clock;
use common::{Route, TestOrigin, TestProxy, get, get_with};

/// Two GETs: whether the second came from the cache.
async fn second_is_a_hit(proxy: &TestProxy, origin: &TestOrigin, path: &str) -> bool {
    let first = get(&proxy.url(path)).await;
    assert_eq!(first.x_cache(), "MISS", "{path}");
    let second = get(&proxy.url(path)).await;
    let hit = second.x_cache() == "HIT";
    assert_eq!(origin.hits(path), if hit { 1 } else { 2 }, "{path}");
    hit
}

/// `at` seconds from the proxy's clock, in the ANSI C `asctime()` form.
fn asctime(proxy: &TestProxy, at: u64) -> String {
    let when = proxy.clock.now() + Duration::from_secs(at);
    let imf = httpdate::fmt_http_date(when); // "Sun, 06 Nov 1994 08:49:37 GMT"
    let (_, rest) = imf.split_once(", ").unwrap();
    let parts: Vec<&str> = rest.split(' ').collect();
    let day: u32 = parts[0].parse().unwrap();
    // Always "Mon": a recipient need not check the weekday.
    format!("Mon {} {day:>2} {} {}", parts[1], parts[3], parts[2])
}

#[tokio::test]
async fn expires_in_the_obsolete_forms_and_any_case_gives_freshness() {
    let origin = TestOrigin::start().await;
    let proxy = TestProxy::start(&origin.url()).await;
    origin.use_clock(&proxy.clock);
    let in_an_hour = proxy.clock.now() + Duration::from_secs(3600);
    let upper = httpdate::fmt_http_date(in_an_hour).to_uppercase();
    let lower_zone = httpdate::fmt_http_date(in_an_hour).replace("GMT", "gMT");
    let ansi = asctime(&proxy, 3600);
    let invalid = httpdate::fmt_http_date(in_an_hour).replace("GMT", "UTC");
    for (path, expires, fresh) in [
        ("/upper", upper.as_str(), true),
        ("/zone", lower_zone.as_str(), true),
        ("/asctime", ansi.as_str(), true),
        ("/utc", invalid.as_str(), false),
    ] {
        origin.route(
            path,
            Route::ok("x")
                .header("expires", expires)
                .header("etag", "\"1\""),
        );
        assert_eq!(
            second_is_a_hit(&proxy, &origin, path).await,
            fresh,
            "Expires: {expires}"
        );
    }
}

#[tokio::test]
async fn a_204_and_heuristically_cacheable_errors_are_reused() {
    let origin = TestOrigin::start().await;
    let proxy = TestProxy::start(&origin.url()).await;
    origin.use_clock(&proxy.clock);
    let day_ago = httpdate::fmt_http_date(proxy.clock.now() - Duration::from_secs(86_400));
    origin.route(
        "/nothing",
        Route::ok("")
            .status(204)
            .header("cache-control", "max-age=60"),
    );
    assert!(second_is_a_hit(&proxy, &origin, "/nothing").await);
    for (path, status) in [("/gone", 410), ("/missing", 404)] {
        origin.route(
            path,
            Route::ok("not here")
                .status(status)
                .header("last-modified", &day_ago),
        );
        assert!(second_is_a_hit(&proxy, &origin, path).await, "{status}");
    }
    origin.route(
        "/error",
        Route::ok("down")
            .status(500)
            .header("last-modified", &day_ago),
    );
    assert!(
        !second_is_a_hit(&proxy, &origin, "/error").await,
        "a 500 needs explicit freshness"
    );
}

#[tokio::test]
async fn must_understand_and_targeted_fields_that_are_not_dictionaries() {
    let origin = TestOrigin::start().await;
    let proxy = TestProxy::start(&origin.url()).await;
    origin.route(
        "/understood",
        Route::ok("x").header("cache-control", "max-age=60, no-store, must-understand"),
    );
    assert!(second_is_a_hit(&proxy, &origin, "/understood").await);
    for (path, targeted) in [
        ("/garbled", "max-age=10000, &&&&&"),
        ("/quoted", "max-age=\"10000\""),
    ] {
        origin.route(
            path,
            Route::ok("x")
                .header("cdn-cache-control", targeted)
                .header("cache-control", "no-store"),
        );
        assert!(!second_is_a_hit(&proxy, &origin, path).await, "{targeted}");
    }
}

#[tokio::test]
async fn an_age_list_counts_its_first_member() {
    let origin = TestOrigin::start().await;
    let proxy = TestProxy::start(&origin.url()).await;
    origin.use_clock(&proxy.clock);
    origin.route(
        "/old",
        Route::ok("x")
            .header("cache-control", "max-age=3600")
            .header("age", "7200, 0"),
    );
    assert!(!second_is_a_hit(&proxy, &origin, "/old").await);
    origin.route(
        "/young",
        Route::ok("x")
            .header("cache-control", "max-age=3600")
            .header("age", "0, 7200"),
    );
    assert!(second_is_a_hit(&proxy, &origin, "/young").await);
}

#[tokio::test]
async fn accept_language_is_compared_by_meaning() {
    let origin = TestOrigin::start().await;
    let proxy = TestProxy::start(&origin.url()).await;
    origin.route(
        "/page",
        Route::ok("hallo")
            .header("cache-control", "max-age=60")
            .header("vary", "Accept-Language"),
    );
    let first = get_with(&proxy.url("/page"), &[("accept-language", "en, de")]).await;
    assert_eq!(first.x_cache(), "MISS");
    for same in ["de, en", "eN, De", " en ,   de", "de;q=1.0, en"] {
        let answer = get_with(&proxy.url("/page"), &[("accept-language", same)]).await;
        assert_eq!(answer.x_cache(), "HIT", "{same}");
    }
    let other = get_with(&proxy.url("/page"), &[("accept-language", "fr")]).await;
    assert_eq!(other.x_cache(), "MISS");
    assert_eq!(origin.hits("/page"), 2);
}
