//! The snapshot loader on arbitrary files: never panics, and every entry it
//! restores is one the proxy could have stored (a final status, framing
//! rebuilt from the body, a body within the object limit).
#![no_main]

use std::time::SystemTime;

use caching_proxy::cache::persist::decode::{LoadReport, Limits, Placement, decode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_file_bytes: 1 << 20,
        max_object_size: 1 << 16,
    };
    let mut report = LoadReport::default();
    let mut restore = |_key, entry: caching_proxy::cache::CachedResponse| {
        let status = entry.status.as_u16();
        assert!((200..=599).contains(&status) && status != 206 && status != 304);
        assert!(entry.body.len() <= 1 << 16);
        if status != 204 {
            let length = entry.headers.get(http::header::CONTENT_LENGTH);
            assert_eq!(length.as_ref().and_then(|v| v.to_str().ok()), Some(entry.body.len().to_string().as_str()));
        }
        assert!(!entry.headers.contains(&http::header::TRANSFER_ENCODING));
    };
    let _ = decode(data, SystemTime::now(), limits, &|_| Placement::Ttl(None), &mut restore, &mut report);
});
