//! `--cache-size` bounds the process, not just the store's own count: peak
//! RSS stays within 1.25 x the cache size + 40 MB while 1 MiB responses
//! fill the cache several times over (with the write-behind snapshotting
//! as it goes), and when a restart loads the full snapshot. (The figures
//! for bigger caches and small entries are in `bench/memory.py`.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::binary::Running;
use common::{Route, TestOrigin, get_as};

const CACHE_MIB: u64 = 32;
const FILLS: usize = 160;
/// Fills in flight at once. Each holds its body outside the cache until
/// it is stored; with eight, a debug build on a loaded machine peaked
/// 1-2% over the bound about one run in ten.
const CLIENTS: usize = 4;

/// The kernel's high-water mark of the process's resident memory.
fn peak_rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

fn bound() -> u64 {
    CACHE_MIB * 1024 * 1024 * 5 / 4 + 40_000_000
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn peak_memory_stays_within_the_cache_size_through_fills_and_a_restart() {
    let origin = TestOrigin::start().await;
    let body = Bytes::from(vec![b'm'; 1 << 20]);
    for n in 0..FILLS {
        origin.route(
            &format!("/big/{n}"),
            Route::ok(body.clone()).header("cache-control", "max-age=3600"),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.json");
    let size = format!("{CACHE_MIB}MiB");
    let args = ["--cache-size", size.as_str()];
    let proxy = Running::start(&origin.url(), &file, &args);

    let workers: Vec<_> = (0..CLIENTS)
        .map(|k| {
            let base = proxy.url("/big/");
            tokio::spawn(async move {
                for n in (k..FILLS).step_by(CLIENTS) {
                    let answer = get_as(&format!("{base}{n}"), "h").await;
                    assert_eq!(answer.body.len(), 1 << 20);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let filled = peak_rss_bytes(proxy.child.id());
    assert!(
        filled <= bound(),
        "peak RSS {filled} B while filling a {CACHE_MIB} MiB cache (bound {} B)",
        bound()
    );
    assert!(proxy.terminate().success());
    let snapshot = std::fs::metadata(&file).unwrap().len();
    assert!(
        snapshot > 20 << 20,
        "a full cache was written: {snapshot} B"
    );

    let restarted = Running::start(&origin.url(), &file, &args);
    // A slow machine may serve before the whole file is read: its log says
    // when it is. A hit then shows the snapshot is in memory.
    restarted.saw_line("snapshot loaded");
    let hit = get_as(&restarted.url(&format!("/big/{}", FILLS - 1)), "h").await;
    assert_eq!(hit.x_cache(), "HIT");
    let loaded = peak_rss_bytes(restarted.child.id());
    assert!(
        loaded <= bound(),
        "peak RSS {loaded} B after loading a {snapshot} B snapshot (bound {} B)",
        bound()
    );
    assert!(restarted.terminate().success());
}
