//! The specified command line, tested on the built binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::disallowed_methods)] // tests time themselves

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::binary::{BIN, Running};
use common::{Route, TestOrigin, get_as};

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

/// `--clear-cache --cache-file FILE` exits 0 and says so.
fn clear_cache_succeeds(file: &Path) {
    let output = Command::new(BIN)
        .args(["--clear-cache", "--cache-file"])
        .arg(file)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "Cache cleared successfully\n"
    );
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_explains_every_flag_and_version_prints() {
    let help = run(&["--help"]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--port",
        "--origin",
        "--cache-ttl",
        "--clear-cache",
        "--timeout",
        "--cache-file",
        "Examples:",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}: {text}");
    }
    let version = run(&["--version"]);
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("caching-proxy {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn ports_outside_1_to_65535_are_usage_errors() {
    for port in ["0", "70000", "-1", "http"] {
        let output = run(&[&format!("--port={port}"), "--origin", "http://127.0.0.1:1"]);
        assert_eq!(output.status.code(), Some(2), "--port {port}");
        assert!(stderr(&output).contains("--port"), "{}", stderr(&output));
    }
}

#[test]
fn port_and_origin_are_required() {
    let output = run(&["--port", "3000"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--origin"));
}

#[test]
fn an_invalid_origin_url_is_one_clear_line() {
    for (value, why) in [
        ("dummyjson.com", "must start with http:// or https://"),
        ("ftp://example.com", "unsupported scheme 'ftp'"),
        ("http://", "invalid"),
    ] {
        let output = run(&["--port", "3000", "--origin", value]);
        assert_eq!(output.status.code(), Some(2), "{value}");
        let text = stderr(&output);
        let expected = format!("error: invalid origin URL '{value}': ");
        assert!(text.starts_with(&expected), "{text}");
        assert!(text.contains(why), "{text}");
        assert_eq!(text.lines().count(), 1, "{text}");
    }
}

#[test]
fn a_port_in_use_is_reported_with_its_number() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(BIN)
        .args(["--port", &port, "--origin", "http://127.0.0.1:1"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(
        text.contains(&format!("error: port {port} is already in use")),
        "{text}"
    );
    assert!(!text.contains("panicked"), "{text}");
}

#[test]
fn a_privileged_port_without_permission_suggests_another() {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .unwrap()
        .stdout
        .starts_with(b"0\n");
    let mut command = if is_root {
        // Root may bind anything: drop to nobody to see what a user sees.
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN]);
        c
    } else {
        Command::new(BIN)
    };
    let output = command
        .args([
            "--port",
            "80",
            "--origin",
            "http://127.0.0.1:1",
            "--cache-file",
            "/tmp/never-written.json",
        ])
        .current_dir("/")
        .output()
        .unwrap();
    let text = stderr(&output);
    if output.status.success() || text.contains("setpriv:") {
        eprintln!("skipped: cannot run as an unprivileged user here ({text})");
        return;
    }
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("permission denied to listen on port 80"),
        "{text}"
    );
    assert!(text.contains("port >= 1024"), "{text}");
}

#[test]
fn clear_cache_empties_the_file_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.json");
    std::fs::write(&file, br#"{"version":1,"entries":[{"key":"k"}]}"#).unwrap();
    clear_cache_succeeds(&file);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        r#"{"version":1,"entries":[]}"#
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn clear_cache_reaches_a_running_instance_and_sigterm_saves_the_cache() {
    let origin = TestOrigin::start().await;
    origin.route("/products", Route::ok("[\"p\"]"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.json");
    let proxy = Running::start(&origin.url(), &file, &["--cache-ttl", "300"]);
    let host = "localhost";

    assert_eq!(
        get_as(&proxy.url("/products"), host).await.x_cache(),
        "MISS"
    );
    assert_eq!(get_as(&proxy.url("/products"), host).await.x_cache(), "HIT");

    clear_cache_succeeds(&file);
    assert_eq!(
        get_as(&proxy.url("/products"), host).await.x_cache(),
        "MISS",
        "memory emptied too"
    );
    assert_eq!(origin.hits("/products"), 2);

    let status = proxy.terminate();
    assert!(status.success(), "SIGTERM exits 0, got {status}");
    let saved = std::fs::read_to_string(&file).unwrap();
    assert!(saved.contains("/products"), "{saved}");

    let restarted = Running::start(&origin.url(), &file, &["--cache-ttl", "300"]);
    let hit = get_as(&restarted.url("/products"), host).await;
    assert_eq!(
        hit.x_cache(),
        "HIT",
        "served from the snapshot after a restart"
    );
    assert_eq!(&hit.body[..], b"[\"p\"]");
    assert_eq!(origin.hits("/products"), 2);
    assert!(restarted.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn running_out_of_file_descriptors_does_not_stop_the_accept_loop() {
    let origin = TestOrigin::start().await;
    origin.route("/fd", Route::ok("still here"));
    let dir = tempfile::tempdir().unwrap();
    let mut limited = Command::new("prlimit");
    limited.args(["--nofile=48:48", BIN]);
    let proxy = Running::start_via(limited, &origin.url(), &dir.path().join("cache.json"), &[]);

    // Hold more connections than the proxy has descriptors for.
    let mut held = Vec::new();
    for _ in 0..80 {
        held.push(
            tokio::net::TcpStream::connect(("127.0.0.1", proxy.port))
                .await
                .unwrap(),
        );
    }
    proxy.wait_for_line("accept failed");
    drop(held);

    // The proxy closes the dropped connections as it notices them: poll,
    // with a deadline, until it has descriptors to reach the origin again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let answer = common::get(&proxy.url("/fd")).await;
        if &answer.body[..] == b"still here" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never recovered: {}",
            answer.status
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(proxy.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_listener_backs_off_when_out_of_file_descriptors() {
    let origin = TestOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let admin = format!("127.0.0.1:{}", common::binary::free_port());
    let mut limited = Command::new("prlimit");
    limited.args(["--nofile=48:48", BIN]);
    let proxy = Running::start_via(
        limited,
        &origin.url(),
        &dir.path().join("cache.json"),
        &["--admin", &admin],
    );
    let mut held = Vec::new();
    for _ in 0..80 {
        held.push(tokio::net::TcpStream::connect(&admin).await.unwrap());
    }
    // Before, the admin loop retried at once, forever: a core at 100%.
    let line = proxy.wait_for_line("accept failed");
    assert!(line.contains("retrying in 100 ms"), "{line}");
    drop(held);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let answer = common::get(&format!("http://{admin}/healthz")).await;
        if answer.status == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the admin API never recovered"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(proxy.terminate().success());
}

fn write_config(dir: &Path, origin: &str) -> std::path::PathBuf {
    let path = dir.join("proxy.toml");
    let text = format!(
        "[cache]\nttl = \"5m\"\n\n[[listeners]]\naddress = \"127.0.0.1:0\"\n\n[[origins]]\nname = \"main\"\nurl = \"{origin}\"\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn check_config_prints_what_it_would_serve() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "http://127.0.0.1:9");
    let output = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .arg("--check-config")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.starts_with("configuration OK: "), "{text}");
    assert!(text.contains("127.0.0.1:0 (http)"), "{text}");
    assert!(text.contains("main -> http://127.0.0.1:9"), "{text}");
    assert!(text.contains("ttl 300s"), "{text}");

    let overridden = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .args([
            "--check-config",
            "--port",
            "8081",
            "--origin",
            "http://127.0.0.1:10/api",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&overridden.stdout);
    assert!(text.contains("[::]:8081 (http)"), "{text}");
    assert!(
        text.contains("default -> http://127.0.0.1:10/api"),
        "{text}"
    );
    assert!(!text.contains("main ->"), "{text}");
}

#[test]
fn check_config_names_the_line_of_a_mistake() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.toml");
    std::fs::write(
        &path,
        "[[listeners]]\naddress = \"127.0.0.1:0\"\nport = 3\n",
    )
    .unwrap();
    let output = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .arg("--check-config")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert!(text.starts_with("error: invalid configuration: "), "{text}");
    assert!(
        text.contains("proxy.toml:3:1: unknown field `port`"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 1, "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_and_a_bad_edit_is_logged() {
    let origin = TestOrigin::start().await;
    origin.route("/", Route::ok("up"));
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &origin.url());
    let mut command = Command::new(BIN);
    command.arg("--config").arg(&path);
    let proxy = Running::start_config(command);
    assert_eq!(&get_as(&proxy.url("/"), "h").await.body[..], b"up");

    proxy.signal("-HUP");
    let line = proxy.wait_for_line("configuration reloaded");
    assert!(line.contains("SIGHUP"), "{line}");

    std::fs::write(&path, "[[listeners]\n").unwrap();
    let line = proxy.wait_for_line("configuration reload refused");
    assert!(line.contains("proxy.toml:1:"), "{line}");
    assert_eq!(
        &get_as(&proxy.url("/"), "h").await.body[..],
        b"up",
        "still serving"
    );
    assert!(proxy.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn text_access_log_lines_name_every_field() {
    let origin = TestOrigin::start().await;
    origin.route("/t", Route::ok("text"));
    let dir = tempfile::tempdir().unwrap();
    let proxy = Running::start(&origin.url(), &dir.path().join("cache.json"), &[]);
    get_as(&format!("{}?q=1", proxy.url("/t")), "example.test").await;
    let line = proxy.wait_for_line(" INFO access: ");
    for field in [
        "client=127.0.0.1:",
        " method=GET ",
        " host=\"example.test\" ",
        " path=/t?q=1 ",
        " status=200 ",
        " cache=\"MISS\" reason=\"stored\" ",
        " origin=\"default\" ",
        " bytes=4 complete=true",
    ] {
        assert!(line.contains(field), "{field:?} missing from {line}");
    }
    assert!(
        line.contains(" origin_ms=") && line.contains(" duration_ms="),
        "{line}"
    );
    assert!(proxy.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn json_access_log_lines_parse() {
    let origin = TestOrigin::start().await;
    origin.route("/j", Route::ok("json"));
    let dir = tempfile::tempdir().unwrap();
    let proxy = Running::start(
        &origin.url(),
        &dir.path().join("cache.json"),
        &["--log-format", "json"],
    );
    get_as(&format!("{}?q=1", proxy.url("/j")), "example.test").await;
    let line = proxy.wait_for_line("\"target\":\"access\"");
    let record: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(record["method"], "GET");
    assert_eq!(record["path"], "/j?q=1");
    assert_eq!(record["host"], "example.test");
    assert_eq!(record["status"], 200);
    assert_eq!(record["cache"], "MISS");
    assert_eq!(record["reason"], "stored");
    assert_eq!(record["origin"], "default");
    assert_eq!(record["bytes"], 4);
    assert!(record["duration_ms"].as_f64().is_some());
    assert!(record["origin_ms"].as_f64().is_some());
    assert!(record["client"].as_str().unwrap().contains("127.0.0.1"));
    assert!(proxy.terminate().success());
}

#[test]
fn completions_and_the_man_page_come_from_the_flags() {
    let man = run(&["generate", "man"]);
    assert!(man.status.success(), "{}", stderr(&man));
    let man = String::from_utf8_lossy(&man.stdout);
    assert!(man.contains(".TH caching-proxy 1"), "{man}");
    for flag in [
        "\\-\\-port",
        "\\-\\-origin",
        "\\-\\-cache\\-ttl",
        "\\-\\-clear\\-cache",
    ] {
        assert!(man.contains(flag), "the man page lacks {flag}");
    }
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef caching-proxy"),
        ("fish", "complete -c caching-proxy"),
    ] {
        let out = run(&["generate", "completions", shell]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains(marker), "{shell}");
        assert!(
            script.contains("clear-cache"),
            "{shell} completes --clear-cache"
        );
    }
    let help = run(&["--help"]);
    assert!(
        !String::from_utf8_lossy(&help.stdout).contains("generate"),
        "a packagers' command, not in --help"
    );
}
