//! `cache.json`: the snapshot that lets the cache survive restarts.
//!
//! Format, version 1:
//! `{"version":1,"fleet":{"log","applied"}?,"entries":[{"key","status",
//! "headers":[[name,value]],"body":base64,"stored_at":ms,
//! "expires_at":ms|null,"initial_age":s,"vary":[[name,value|null]],
//! "rules":{...},"tags":[...]}]}`, times in wall-clock Unix milliseconds.
//! `fleet` (with a shared tier only) is the purge log position the
//! entries reflect: a restart replays the purges after it first.
//!
//! - [`mod@encode`] writes entries one at a time from the live cache (a write
//!   never holds a second copy of it, nor entries moka has let go of).
//! - [`mod@decode`] reads the file as a stream and restores each entry that
//!   passes the checks a fresh origin response would; a file that is not
//!   a version-1 snapshot, or larger than a full cache can write, is moved
//!   aside and the proxy starts empty.
//! - [`files`]: atomic writes (temp file, fsync, rename, mode 0600), the
//!   temp files a killed process left, and moving a bad file aside.
//! - [`writer`]: the write-behind and the shutdown write.

pub mod decode;
pub mod encode;
pub mod files;
mod format;
pub mod writer;

pub use decode::{Limits as LoadLimits, LoadReport, Placement, load, load_after_head};
pub use encode::{encode, encode_into};
pub use files::{write_atomic, write_atomic_with};
pub use writer::{SnapshotCounters, SnapshotError, Snapshotter};

/// The snapshot format this build reads and writes.
pub const VERSION: u32 = 1;

/// An entry with every field set, for the tests of the writer and the
/// reader.
#[cfg(test)]
pub(crate) fn test_entry(
    headers: http::HeaderMap,
    stored_at: std::time::SystemTime,
    fresh_for: Option<u64>,
) -> crate::cache::CachedResponse {
    use std::time::Duration;
    crate::cache::CachedResponse::new(
        http::StatusCode::OK,
        headers,
        bytes::Bytes::from_static(b"\x00binary\xffbody"),
        stored_at,
        fresh_for.map(Duration::from_secs),
        Duration::from_secs(3),
        crate::cache::vary::VaryValues::from_pairs(vec![(
            http::header::ACCEPT,
            Some(http::HeaderValue::from_static("x/y")),
        )]),
        crate::cache::ReuseRules {
            stale_if_error: Duration::from_secs(9),
            ..crate::cache::ReuseRules::default()
        },
    )
}
