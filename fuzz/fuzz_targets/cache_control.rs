//! Cache-Control (and targeted fields) from arbitrary bytes: never panics,
//! and what it reads is bounded (delta-seconds saturate at 2^31).
#![no_main]

use caching_proxy::cache::control::CacheControl;
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for line in data.split(|b| *b == b'\n') {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append(http::header::CACHE_CONTROL, value.clone());
            headers.append(HeaderName::from_static("cdn-cache-control"), value);
        }
    }
    let request = CacheControl::from_headers(&headers);
    let targets = [HeaderName::from_static("cdn-cache-control")];
    let response = CacheControl::for_response(&headers, &targets);
    for parsed in [request, response] {
        for seconds in [parsed.max_age, parsed.s_maxage, parsed.stale_if_error].into_iter().flatten() {
            assert!(u64::from(seconds) <= 1 << 31);
        }
    }
});
