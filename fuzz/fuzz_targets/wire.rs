//! The shared tier's binary form on arbitrary values: never panics, and
//! every entry it accepts is one the proxy could have stored, and encodes
//! back to a value that decodes to the same entry.
#![no_main]

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use caching_proxy::cache::wire::{decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let Ok(entry) = decode(Bytes::copy_from_slice(data), now, 1 << 16) else {
        return;
    };
    let status = entry.status.as_u16();
    assert!((200..=599).contains(&status) && status != 206 && status != 304);
    assert!(entry.body.len() <= 1 << 16);
    assert!(!entry.headers.contains(&http::header::TRANSFER_ENCODING));
    let again = encode(&entry).expect("a decoded entry fits the form");
    let back = decode(Bytes::from(again), now, 1 << 16).expect("it decodes again");
    assert_eq!(back.body, entry.body);
    assert_eq!(back.headers.to_map(), entry.headers.to_map());
});
