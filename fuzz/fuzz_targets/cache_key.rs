//! The cache key from a request's Host and target: never panics; a key is
//! built only from a Host the proxy accepts, and two spellings of one
//! authority give one key.
#![no_main]

use caching_proxy::cache::CacheKey;
use caching_proxy::proxy::request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    let (host, target) = data.split_at(split);
    let target = target.get(1..).unwrap_or_default();
    let Ok(mut built) = http::Request::get("/").header(http::header::HOST, host).body(()) else {
        return;
    };
    if let Ok(uri) = http::Uri::try_from(target) {
        *built.uri_mut() = uri;
    }
    let Ok(authority) = request::authority(&built, 80) else {
        return;
    };
    assert!(!authority.is_empty() && !authority.contains('@'));
    assert_eq!(authority, authority.to_ascii_lowercase());
    let key = CacheKey::new("http://o", &authority, request::path_and_query(&built));
    assert!(key.url().starts_with(&authority));
    let upper = http::Request::get("/")
        .header(http::header::HOST, authority.to_ascii_uppercase())
        .body(())
        .ok();
    if let Some(again) = upper.and_then(|r| request::authority(&r, 80).ok()) {
        assert_eq!(again, authority);
    }
});
