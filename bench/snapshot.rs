//! Snapshot write and load time for 100,000 entries of 1 KiB
//! (`cargo bench --bench snapshot`; bench/run.sh includes it in its report).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
#![allow(clippy::disallowed_methods)] // a benchmark times itself

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use caching_proxy::cache::persist::{self, Snapshotter};
use caching_proxy::cache::store::{Retention, Store};
use caching_proxy::cache::vary::VaryValues;
use caching_proxy::cache::{CacheKey, CachedResponse, ReuseRules};
use caching_proxy::clock::SystemClock;
use caching_proxy::metrics::Metrics;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, DATE};
use http::{HeaderMap, HeaderValue, StatusCode};

const ENTRIES: usize = 100_000;

fn main() {
    let metrics = Metrics::new();
    let store = Store::new(
        1 << 30,
        Arc::new(SystemClock),
        Retention::default(),
        metrics.evictions.clone(),
    );
    let body = Bytes::from(vec![b'x'; 1024]);
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    headers.insert(
        DATE,
        HeaderValue::from_static("Tue, 24 Nov 2026 10:00:00 GMT"),
    );
    let now = SystemTime::now();
    for n in 0..ENTRIES {
        let entry = CachedResponse::new(
            StatusCode::OK,
            headers.clone(),
            body.clone(),
            now,
            Some(Duration::from_secs(3600)),
            Duration::ZERO,
            VaryValues::default(),
            ReuseRules::default(),
        );
        store.insert(
            CacheKey::new(
                "http://127.0.0.1:8080",
                "localhost:3000",
                &format!("/u/{n}"),
            ),
            entry,
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.json");
    let snapshotter = Snapshotter::new(store, path.clone(), metrics.snapshot.clone());

    let started = Instant::now();
    let written = snapshotter.write_now().unwrap();
    let write = started.elapsed();
    let size = std::fs::metadata(&path).unwrap().len();

    let started = Instant::now();
    let limits = persist::LoadLimits {
        max_file_bytes: u64::MAX,
        max_object_size: u64::MAX,
    };
    let mut loaded = 0;
    persist::load(
        &path,
        SystemTime::now(),
        limits,
        |_| persist::Placement::Ttl(None),
        |_, _| loaded += 1,
    );
    let load = started.elapsed();
    assert_eq!(loaded, ENTRIES);

    println!(
        "snapshot of {written} x 1 KiB entries: write {:.0} ms, load {:.0} ms, {:.1} MB on disk",
        write.as_secs_f64() * 1000.0,
        load.as_secs_f64() * 1000.0,
        size as f64 / 1e6
    );
}
