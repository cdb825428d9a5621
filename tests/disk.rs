//! The cache file's directory going bad under a running proxy: read-only
//! (a container's read-only root), or its disk full. The proxy starts,
//! serves from memory, says once what it cannot do, keeps the last good
//! snapshot intact, and stops with exit 0. Each case runs the binary in a
//! mount namespace of its own (`unshare -m`, as root) with the directory
//! remounted read-only or on a tiny tmpfs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::binary::{BIN, Running, free_port};
use common::{Route, TestOrigin, get_as};

/// Whether this machine lets a test make a mount namespace (root, and no
/// seccomp policy against it). Where it does not, the test says so.
fn can_unshare_mounts() -> bool {
    let ok = Command::new("unshare")
        .args(["-m", "sh", "-c", "mount -t tmpfs tmpfs /mnt"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipped: `unshare -m` with a tmpfs mount is not permitted here (needs root)");
    }
    ok
}

/// `unshare -m sh -c SCRIPT sh DIR` followed by the proxy's arguments.
fn in_namespace(script: &str, dir: &Path) -> Command {
    let mut command = Command::new("unshare");
    command
        .args(["-m", "sh", "-c", script, "sh"])
        .arg(dir)
        .env("BIN", BIN);
    command
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_directory_still_serves_and_clear_cache_reaches_it_by_address() {
    if !can_unshare_mounts() {
        return;
    }
    let origin = TestOrigin::start().await;
    origin.route(
        "/p",
        Route::ok("body").header("cache-control", "max-age=60"),
    );
    let dir = tempfile::tempdir().unwrap();
    let script = r#"dir="$1"; shift
mount --bind "$dir" "$dir" && mount -o remount,bind,ro "$dir" || exit 97
exec "$BIN" "$@""#;
    let admin = format!("127.0.0.1:{}", free_port());
    let file = dir.path().join("cache.json");
    let proxy = Running::start_via(
        in_namespace(script, dir.path()),
        &origin.url(),
        &file,
        &["--admin", &admin],
    );
    let warning = proxy.saw_line("cannot record the admin address");
    assert!(warning.contains(&format!("--admin {admin}")), "{warning}");

    assert_eq!(get_as(&proxy.url("/p"), "h").await.x_cache(), "MISS");
    assert_eq!(get_as(&proxy.url("/p"), "h").await.x_cache(), "HIT");
    proxy.wait_for_line("cache snapshot not written");

    let cleared = Command::new(BIN)
        .args(["--clear-cache", "--admin", &admin, "--cache-file"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        cleared.status.success(),
        "{}",
        String::from_utf8_lossy(&cleared.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&cleared.stdout),
        "Cache cleared successfully\n"
    );
    let warned = String::from_utf8_lossy(&cleared.stderr);
    assert!(
        warned.contains("could not rewrite its snapshot"),
        "{warned}"
    );
    assert_eq!(
        get_as(&proxy.url("/p"), "h").await.x_cache(),
        "MISS",
        "memory emptied"
    );

    let (status, log) = proxy.terminate_with_log();
    assert!(status.success(), "{status}: {log:?}");
    assert!(
        log.iter()
            .any(|l| l.contains("final cache snapshot not written")),
        "{log:?}"
    );
    let failures = log
        .iter()
        .filter(|l| l.contains("ERROR") && l.contains("snapshot not written"))
        .count();
    assert!(
        failures <= 2,
        "said once while running, once at the stop: {log:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_disk_full_the_last_good_snapshot_stays_and_sigterm_exits_0() {
    if !can_unshare_mounts() {
        return;
    }
    let origin = TestOrigin::start().await;
    for n in 0..10 {
        origin.route(
            &format!("/big/{n}"),
            Route::ok(vec![b'x'; 30_000]).header("cache-control", "max-age=60"),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("fs")).unwrap();
    let seed = br#"{"version":1,"entries":[]}"#;
    std::fs::write(dir.path().join("seed.json"), seed).unwrap();
    // The proxy in the background so that the file can be copied out of
    // the namespace after it stops; TERM is passed on to it.
    let script = r#"dir="$1"; shift
mount -t tmpfs -o size=160k tmpfs "$dir/fs" || exit 97
cp "$dir/seed.json" "$dir/fs/cache.json"
"$BIN" "$@" &
pid=$!
trap 'kill -TERM $pid' TERM
wait $pid; code=$?
if [ $code -gt 128 ]; then wait $pid; code=$?; fi
cp "$dir/fs/cache.json" "$dir/after.json"
ls "$dir/fs" > "$dir/listing"
exit $code"#;
    let proxy = Running::start_via(
        in_namespace(script, dir.path()),
        &origin.url(),
        &dir.path().join("fs/cache.json"),
        &[],
    );
    for n in 0..10 {
        let answer = get_as(&proxy.url(&format!("/big/{n}")), "h").await;
        assert_eq!(answer.body.len(), 30_000);
    }
    proxy.wait_for_line("cache snapshot not written");
    assert_eq!(
        get_as(&proxy.url("/big/3"), "h").await.x_cache(),
        "HIT",
        "serving from memory"
    );

    let (status, log) = proxy.terminate_with_log();
    assert!(
        status.success(),
        "SIGTERM exits 0 with the disk full: {status}: {log:?}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("final cache snapshot not written")),
        "{log:?}"
    );
    let after = std::fs::read(dir.path().join("after.json")).unwrap();
    assert_eq!(after, seed, "the previous snapshot is intact");
    let listing = std::fs::read_to_string(dir.path().join("listing")).unwrap();
    assert!(!listing.contains(".tmp-"), "no temp file left: {listing}");
}
