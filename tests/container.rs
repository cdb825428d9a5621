//! The container image's contract, checked without a container engine: the
//! shipped `docker/proxy.toml` with its paths moved under a temp root, the
//! binary run as a non-root user that owns only the cache volume, the
//! health check command, and SIGTERM saving the cache on the volume.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::binary::{BIN, Running, free_port};
use common::{Route, TestOrigin, get_as};

const NOBODY: u32 = 65534;

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// The image's config, rewritten for a temp root and local ports.
fn image_config(root: &Path, origin: &str, port: u16, admin: u16) -> String {
    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docker/proxy.toml"))
            .unwrap();
    assert!(shipped.contains("file = \"/var/lib/caching-proxy/cache.json\""));
    assert!(shipped.contains("address = \"[::]:3000\""));
    assert!(shipped.contains("address = \"127.0.0.1:9901\""));
    shipped
        .replace(
            "/var/lib/caching-proxy",
            &root.join("var/lib/caching-proxy").display().to_string(),
        )
        .replace("[::]:3000", &format!("127.0.0.1:{port}"))
        .replace("127.0.0.1:9901", &format!("127.0.0.1:{admin}"))
        .replace("http://origin:8080", origin)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_image_entrypoint_contract_holds_outside_a_container() {
    let origin = TestOrigin::start().await;
    origin.route("/c", Route::ok("contained"));
    let root = tempfile::tempdir().unwrap();
    let etc = root.path().join("etc/caching-proxy");
    let volume = root.path().join("var/lib/caching-proxy");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::create_dir_all(&volume).unwrap();
    let (port, admin) = (free_port(), free_port());
    std::fs::write(
        etc.join("proxy.toml"),
        image_config(root.path(), &origin.url(), port, admin),
    )
    .unwrap();

    let as_root = is_root();
    let mut command = if as_root {
        // The image runs as a non-root user that can write only the volume.
        use std::os::unix::fs::PermissionsExt;
        std::os::unix::fs::chown(&volume, Some(NOBODY), Some(NOBODY)).unwrap();
        for dir in [
            root.path().to_path_buf(),
            root.path().join("var"),
            root.path().join("var/lib"),
            root.path().join("etc"),
            etc.clone(),
        ] {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let mut c = Command::new("setpriv");
        c.args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            BIN,
        ]);
        c
    } else {
        Command::new(BIN)
    };
    command
        .arg("--config")
        .arg(etc.join("proxy.toml"))
        .current_dir("/");
    let proxy = Running::spawn(command);
    let line = proxy.wait_for_line("listening");
    assert!(!line.contains("ERROR"), "{line}");

    let url = format!("http://127.0.0.1:{port}/c");
    assert_eq!(get_as(&url, "h").await.x_cache(), "MISS");
    assert_eq!(get_as(&url, "h").await.x_cache(), "HIT");

    let health = Command::new(BIN)
        .args([
            "--health-check",
            &format!("http://127.0.0.1:{admin}/readyz"),
        ])
        .output()
        .unwrap();
    assert!(
        health.status.success(),
        "{}",
        String::from_utf8_lossy(&health.stderr)
    );
    let unhealthy = Command::new(BIN)
        .args([
            "--health-check",
            &format!("http://127.0.0.1:{}/readyz", free_port()),
        ])
        .output()
        .unwrap();
    assert!(!unhealthy.status.success());

    let status = proxy.terminate();
    assert!(status.success(), "SIGTERM exits 0: {status}");
    let snapshot = volume.join("cache.json");
    let saved = std::fs::read_to_string(&snapshot).unwrap();
    assert!(saved.contains("h/c"), "{saved}");
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let meta = std::fs::metadata(&snapshot).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        if as_root {
            assert_eq!(meta.uid(), NOBODY, "written by the non-root user");
        }
    }
}
