//! The built binary as a child process: started with its stderr lines
//! forwarded to a channel, stopped by its PID.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_caching-proxy");

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The binary serving in the background; killed by PID if the test fails.
pub struct Running {
    pub child: Child,
    pub port: u16,
    lines: mpsc::Receiver<String>,
    /// Every line read from `lines` so far.
    history: std::cell::RefCell<Vec<String>>,
}

impl Running {
    /// Starts the binary and waits for its "listening" log line.
    pub fn start(origin: &str, cache_file: &Path, extra: &[&str]) -> Self {
        Self::start_via(Command::new(BIN), origin, cache_file, extra)
    }

    /// Like `start`, through a wrapper command (such as prlimit).
    pub fn start_via(
        mut command: Command,
        origin: &str,
        cache_file: &Path,
        extra: &[&str],
    ) -> Self {
        let port = free_port();
        command
            .args([
                "--port",
                &port.to_string(),
                "--origin",
                origin,
                "--cache-file",
            ])
            .arg(cache_file)
            .args(extra);
        let mut running = Self::spawn(command);
        running.wait_for_line("listening");
        running.port = port;
        running
    }

    /// Starts the binary with a config file listening on 127.0.0.1:0; the
    /// port is read from its "listening" log line.
    pub fn start_config(command: Command) -> Self {
        let mut running = Self::spawn(command);
        let line = running.wait_for_line("listening");
        running.port = line
            .split("127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|digits| digits.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line}"));
        running
    }

    /// Spawns `command` with its stderr lines forwarded to a channel.
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (send, lines) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = send.send(line);
            }
        });
        Running {
            child,
            port: 0,
            lines,
            history: Default::default(),
        }
    }

    pub fn wait_for_line(&self, needle: &str) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(20)) {
                Ok(line) => {
                    self.history.borrow_mut().push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(e) => panic!("no log line with {needle:?}: {e}"),
            }
        }
    }

    /// A line with `needle` logged so far (also before the proxy was
    /// listening), or the next one.
    pub fn saw_line(&self, needle: &str) -> String {
        let seen = self
            .history
            .borrow()
            .iter()
            .find(|l| l.contains(needle))
            .cloned();
        seen.unwrap_or_else(|| self.wait_for_line(needle))
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// Sends a signal (`-HUP`, `-TERM`) to the process we started.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(sent.success());
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(self) -> std::process::ExitStatus {
        self.terminate_with_log().0
    }

    /// SIGTERM, then the exit status and the log lines not read yet.
    pub fn terminate_with_log(mut self) -> (std::process::ExitStatus, Vec<String>) {
        self.signal("-TERM");
        let status = self.child.wait().unwrap();
        // The reader thread ends when the process's stderr closes.
        let mut rest = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            rest.push(line);
        }
        // Not dropped: Drop would kill what already exited.
        std::mem::forget(self);
        (status, rest)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
