//! Live configuration: a reload builds a whole new [`Runtime`] and swaps it
//! in one store; listeners whose address is unchanged keep their sockets
//! and connections, new ones are bound first (all or nothing), removed ones
//! drain. The config file's directory is watched (editors and Kubernetes
//! ConfigMaps replace files by rename or symlink swap), events are
//! debounced, and the file is reloaded when its content changed.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::{Mutex, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigSource};
use crate::error::Error;
use crate::proxy::Proxy;
use crate::runtime::Runtime;
use crate::server::ListenerSet;

/// Quiet time after the last file event before the file is read.
const DEBOUNCE: Duration = Duration::from_millis(150);

/// The outcome of the latest reload attempt, for tests and operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadEvent {
    /// Counts attempts, successful or not.
    pub attempt: u64,
    /// What changed, or why the new config was refused.
    pub result: Result<String, String>,
}

/// What is running now.
#[derive(Debug)]
pub struct Live {
    /// The listeners being served.
    pub listeners: ListenerSet,
    /// The config in force.
    pub config: Config,
}

/// Applies new configurations to a running proxy, one at a time.
#[derive(Debug)]
pub struct Reloader {
    source: Option<ConfigSource>,
    proxy: Arc<Proxy>,
    live: Mutex<Live>,
    events: watch::Sender<ReloadEvent>,
}

impl Reloader {
    /// A reloader for what `live` serves, reading `source` on reload.
    pub fn new(source: Option<ConfigSource>, proxy: Arc<Proxy>, live: Live) -> Self {
        let (events, _) = watch::channel(ReloadEvent {
            attempt: 0,
            result: Ok("started".into()),
        });
        Reloader {
            source,
            proxy,
            live: Mutex::new(live),
            events,
        }
    }

    /// Reload outcomes as they happen.
    pub fn events(&self) -> watch::Receiver<ReloadEvent> {
        self.events.subscribe()
    }

    /// Configured and bound address of every listener.
    pub async fn listener_addresses(&self) -> Vec<(SocketAddr, SocketAddr)> {
        self.live.lock().await.listeners.addresses()
    }

    /// Reads the config source again and applies it (SIGHUP).
    pub async fn reload(&self, why: &str) -> Result<String, Error> {
        let Some(source) = self.source.clone() else {
            return self.report(
                why,
                Err(Error::Config("no configuration file to reload".into())),
            );
        };
        let loaded = tokio::task::spawn_blocking(move || source.load()).await;
        let config = match loaded {
            Ok(result) => result,
            Err(e) => Err(Error::Internal(e.to_string())),
        };
        self.apply_result(why, config).await
    }

    /// Parses `text` as the config file and applies it.
    pub async fn reload_text(&self, why: &str, text: String) -> Result<String, Error> {
        let Some(source) = self.source.clone() else {
            return self.report(
                why,
                Err(Error::Config("no configuration file to reload".into())),
            );
        };
        let parsed =
            tokio::task::spawn_blocking(move || source.parse(&text, source.path.as_deref())).await;
        let config = match parsed {
            Ok(result) => result,
            Err(e) => Err(Error::Internal(e.to_string())),
        };
        self.apply_result(why, config).await
    }

    /// Applies `config` as a whole, or nothing of it.
    pub async fn apply(&self, why: &str, config: Config) -> Result<String, Error> {
        self.apply_result(why, Ok(config)).await
    }

    async fn apply_result(
        &self,
        why: &str,
        config: Result<Config, Error>,
    ) -> Result<String, Error> {
        let result = match config {
            Ok(config) => self.swap(config).await,
            Err(err) => Err(err),
        };
        self.report(why, result)
    }

    async fn swap(&self, config: Config) -> Result<String, Error> {
        let mut live = self.live.lock().await;
        let runtime = Runtime::build(&config, Some(&self.proxy.runtime()), self.proxy.metrics())?;
        let wanted: Vec<SocketAddr> = config.listeners.iter().map(|l| l.address).collect();
        let bound = live.listeners.bind_missing(&wanted)?;
        let added: Vec<SocketAddr> = bound.iter().map(|(address, _)| *address).collect();
        let routes_before = self.proxy.runtime().route_names();
        self.proxy.swap_runtime(Arc::new(runtime));
        live.listeners.start(bound, &config.limits);
        let removed = live.listeners.stop_unwanted(&wanted);
        let summary = describe_changes(
            &live.config,
            &config,
            &added,
            &removed,
            &routes_before,
            &self.proxy.runtime().route_names(),
        );
        live.config = config;
        Ok(summary)
    }

    fn report(&self, why: &str, result: Result<String, Error>) -> Result<String, Error> {
        let attempt = self.events.borrow().attempt + 1;
        self.proxy.metrics().reloaded(result.is_ok());
        match &result {
            Ok(summary) => tracing::info!(trigger = why, "configuration reloaded: {summary}"),
            Err(err) => tracing::error!(
                trigger = why,
                "configuration reload refused, the running configuration stays: {}",
                err.chain()
            ),
        }
        let event = ReloadEvent {
            attempt,
            result: result.as_ref().map(Clone::clone).map_err(Error::chain),
        };
        self.events.send_replace(event);
        result
    }

    /// Gives up the listeners (at shutdown).
    pub async fn take_listeners(&self, replacement: ListenerSet) -> ListenerSet {
        std::mem::replace(&mut self.live.lock().await.listeners, replacement)
    }
}

/// One line saying what a reload changed, with warnings for settings that
/// only apply at the next start.
fn describe_changes(
    old: &Config,
    new: &Config,
    added: &[SocketAddr],
    removed: &[SocketAddr],
    routes_before: &[String],
    routes_after: &[String],
) -> String {
    let mut parts = Vec::new();
    let list = |addrs: &[SocketAddr]| {
        addrs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !added.is_empty() {
        parts.push(format!("listeners added: {}", list(added)));
    }
    if !removed.is_empty() {
        parts.push(format!("listeners removed: {}", list(removed)));
    }
    let names = |c: &Config| {
        c.origins
            .iter()
            .map(|o| format!("{}={}", o.name, o.id()))
            .collect::<Vec<_>>()
    };
    let (old_origins, new_origins) = (names(old), names(new));
    let origins_added: Vec<_> = new_origins
        .iter()
        .filter(|o| !old_origins.contains(o))
        .cloned()
        .collect();
    let origins_removed: Vec<_> = old_origins
        .iter()
        .filter(|o| !new_origins.contains(o))
        .cloned()
        .collect();
    if !origins_added.is_empty() {
        parts.push(format!("origins added: {}", origins_added.join(", ")));
    }
    if !origins_removed.is_empty() {
        parts.push(format!("origins removed: {}", origins_removed.join(", ")));
    }
    if routes_before != routes_after {
        parts.push(format!("routes: {}", routes_after.join("; ")));
    }
    for (changed, what) in [
        (old.cache.file != new.cache.file, "cache.file"),
        (old.cache.max_size != new.cache.max_size, "cache.max_size"),
        (
            old.cache.write_delay != new.cache.write_delay,
            "cache.write_delay",
        ),
        (old.admin != new.admin, "admin.address"),
        (old.limits != new.limits, "limits (for listeners that stay)"),
    ] {
        if changed {
            tracing::warn!("{what} changed: it applies at the next restart, not live");
            parts.push(format!("{what} needs a restart"));
        }
    }
    if parts.is_empty() {
        "no change in listeners, origins or routes".into()
    } else {
        parts.join("; ")
    }
}

fn content_hash(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

/// Watches the directory of `path` and reloads when the file's content
/// changes, until `cancel` fires.
pub fn watch_file(
    reloader: Arc<Reloader>,
    path: PathBuf,
    cancel: CancellationToken,
) -> Result<JoinHandle<()>, Error> {
    let (events, mut received) = mpsc::channel::<()>(1);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            // A full channel already holds a wake-up: nothing is lost.
            let _ = events.try_send(());
        }
    })
    .map_err(|e| Error::Config(format!("cannot watch {}: {e}", path.display())))?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_owned();
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|e| Error::Config(format!("cannot watch {}: {e}", dir.display())))?;
    let mut last = std::fs::read(&path).ok().map(|b| content_hash(&b));
    Ok(tokio::spawn(async move {
        // The watcher stops when dropped: keep it for the task's lifetime.
        let _watcher = watcher;
        loop {
            tokio::select! {
                got = received.recv() => if got.is_none() { return },
                () = cancel.cancelled() => return,
            }
            loop {
                tokio::select! {
                    () = tokio::time::sleep(DEBOUNCE) => break,
                    got = received.recv() => if got.is_none() { return },
                    () = cancel.cancelled() => return,
                }
            }
            let Ok(bytes) = tokio::fs::read(&path).await else {
                tracing::debug!(path = %path.display(), "config file not readable right now; waiting for the next change");
                continue;
            };
            let hash = content_hash(&bytes);
            if last == Some(hash) {
                continue;
            }
            last = Some(hash);
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let _ = reloader.reload_text("file changed", text).await;
        }
    }))
}
