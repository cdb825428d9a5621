//! HTTP dates (IMF-fixdate, RFC 850, asctime) from arbitrary bytes: never
//! panics; a date that parses formats back to one that parses the same.
#![no_main]

use caching_proxy::cache::freshness::http_date;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(time) = http_date(data) {
        let again = httpdate::fmt_http_date(time);
        assert_eq!(http_date(again.as_bytes()), Some(time), "{again}");
    }
});
