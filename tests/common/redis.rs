//! Real `redis-server`s for the shared-tier tests, on free loopback
//! ports, with no persistence: one server, or a Redis Cluster of three
//! masters; stopped by their PIDs when dropped. Readiness is read from
//! the server's own log ("Ready to accept connections", "Cluster state
//! changed: ok"). On a machine without Redis the Debian package is
//! installed first (as `.ci/run` does); a test that needs Redis fails,
//! never skips, when it cannot start.

use std::process::{Command, Stdio};
use std::sync::Once;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;
use tokio::sync::mpsc;

use super::binary::free_port;

/// How long a server may take to say it is ready.
const READY_WITHIN: Duration = Duration::from_secs(20);

pub struct RedisServer {
    child: Child,
    pub port: u16,
    log: mpsc::UnboundedReceiver<String>,
}

impl RedisServer {
    /// Starts one and waits until it accepts connections.
    pub async fn start() -> Self {
        let mut server = Self::spawn(free_port(), &[]);
        server.wait_for_log("Ready to accept connections").await;
        server
    }

    /// Starts one on `port` (a restart of a server that was there).
    pub async fn start_on(port: u16) -> Self {
        let mut server = Self::spawn(port, &[]);
        server.wait_for_log("Ready to accept connections").await;
        server
    }

    fn spawn(port: u16, extra: &[&str]) -> Self {
        ensure_installed();
        let mut child = tokio::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (lines, log) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        RedisServer { child, port, log }
    }

    /// Waits for a line of the server's log that contains `needle`.
    async fn wait_for_log(&mut self, needle: &str) {
        let found = async {
            while let Some(line) = self.log.recv().await {
                if line.contains(needle) {
                    return true;
                }
            }
            false
        };
        let port = self.port;
        match tokio::time::timeout(READY_WITHIN, found).await {
            Ok(true) => {}
            Ok(false) => panic!("redis-server on port {port} exited before '{needle}'"),
            Err(_) => panic!("redis-server on port {port} did not log '{needle}'"),
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Sends a signal (`-STOP`, `-CONT`) to the server we started.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("running").to_string();
        let sent = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(sent.success());
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // A stopped server must run again to die of the kill.
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .args(["-CONT", &pid.to_string()])
                .status();
        }
        let _ = self.child.start_kill();
    }
}

/// A Redis Cluster of three masters (no replicas), all slots assigned.
#[allow(dead_code)] // not every test binary starts a cluster
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
    _dir: tempfile::TempDir,
}

#[allow(dead_code)]
impl RedisCluster {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut nodes = Vec::new();
        for n in 0..3 {
            let conf = dir.path().join(format!("nodes-{n}.conf"));
            let conf = conf.to_str().unwrap().to_owned();
            let args = ["--cluster-enabled", "yes", "--cluster-config-file", &conf];
            let mut node = RedisServer::spawn(cluster_port(), &args);
            node.wait_for_log("Ready to accept connections").await;
            nodes.push(node);
        }
        let addresses: Vec<String> = nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli runs (it comes with redis-server)");
        assert!(created.success(), "redis-cli --cluster create failed");
        // Usable once every node has seen every slot assigned.
        for node in &mut nodes {
            node.wait_for_log("Cluster state changed: ok").await;
        }
        RedisCluster { nodes, _dir: dir }
    }

    pub fn seeds(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }
}

/// A free port whose cluster bus port (port + 10000) is free too.
fn cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// Installs Debian's `redis-server` once per test binary if it is missing,
/// so that `cargo test` runs on a fresh machine.
fn ensure_installed() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let present = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if present {
            return;
        }
        let installed = Command::new("sh")
            .args([
                "-c",
                "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server",
            ])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        assert!(
            installed,
            "redis-server is missing and could not be installed (apt-get install redis-server)"
        );
    });
}
