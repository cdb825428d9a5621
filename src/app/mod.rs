//! Assembles a running proxy from a validated [`Config`]: bind every
//! listener, restore the snapshot, start the server, the snapshot writer,
//! the control endpoint and the config watcher; and takes it down in
//! stages. `main` and the integration tests both go through [`start`].

mod error;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::accept::BindError;
use crate::admin::Admin;
use crate::cache::Store;
use crate::cache::persist::{self, LoadLimits, Snapshotter, files};
use crate::cache::purge::LogPosition;
use crate::clock::SharedClock;
use crate::config::{Config, ConfigError, ConfigSource};
use crate::dashboard::Dashboard;
use crate::error::chain;
use crate::metrics::Metrics;
use crate::proxy::Proxy;
use crate::reload::{self, Live, ReloadEvent, Reloader};
use crate::runtime::Runtime;
use crate::server::ListenerSet;
use crate::shared::SharedTier;
pub use error::StartupError;

/// How long a start waits to apply the purges it missed.
const CATCH_UP_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

/// A proxy that is serving.
#[derive(Debug)]
pub struct RunningProxy {
    local_addr: SocketAddr,
    admin_addr: SocketAddr,
    proxy: Arc<Proxy>,
    reloader: Arc<Reloader>,
    snapshotter: Arc<Snapshotter>,
    dashboard: Arc<Dashboard>,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

/// Starts serving `config`; it can be changed with [`Reloader::apply`].
pub async fn start(config: Config, clock: SharedClock) -> Result<RunningProxy, StartupError> {
    start_inner(config, None, clock).await
}

/// Loads `source`, starts serving it, and (with a config file) watches the
/// file and applies its edits live.
pub async fn start_from(
    source: ConfigSource,
    clock: SharedClock,
) -> Result<RunningProxy, StartupError> {
    let loading = source.clone();
    let config = tokio::task::spawn_blocking(move || loading.load()).await??;
    start_inner(config, Some(source), clock).await
}

async fn start_inner(
    config: Config,
    source: Option<ConfigSource>,
    clock: SharedClock,
) -> Result<RunningProxy, StartupError> {
    let metrics = Metrics::new();
    let runtime = Runtime::build(&config, None, &metrics)?;
    let retention = runtime.retention;
    let store = Store::new(
        config.cache.max_size,
        clock.clone(),
        retention,
        metrics.evictions.clone(),
    );
    let shared = match &config.cache.shared {
        Some(shared) => Some(
            SharedTier::new(
                shared.clone(),
                store.clone(),
                retention,
                metrics.shared.clone(),
            )
            .map_err(StartupError::SharedTier)?,
        ),
        None => None,
    };
    let proxy = Arc::new(Proxy::new(
        runtime,
        store.clone(),
        clock.clone(),
        metrics.clone(),
        shared.clone(),
    ));
    let cancel = CancellationToken::new();

    // Bind first (all listeners or none), so that a taken port fails before
    // anything else happens.
    let mut listeners = ListenerSet::new(proxy.clone(), cancel.child_token());
    let wanted: Vec<SocketAddr> = config.listeners.iter().map(|l| l.address).collect();
    let bound = listeners.bind_missing(&wanted)?;
    let local_addr = match bound.first() {
        Some((configured, listener)) => listener
            .local_addr()
            .map_err(|e| BindError::new(*configured, e))?,
        None => return Err(ConfigError::invalid("listeners", "none to serve").into()),
    };

    let snapshotter = Arc::new(Snapshotter::new(
        store.clone(),
        config.cache.file.clone(),
        metrics.snapshot.clone(),
    ));
    let mut loading = Loading::start(&config, &proxy, &snapshotter, clock.now());
    let position = loading.position().await;
    if let Some(tier) = &shared {
        // Purges this instance missed while it was down apply to what is
        // loaded already, and keep out what the load reads after them.
        tier.start_from(position.as_ref());
        if !tier.catch_up(CATCH_UP_WITHIN).await {
            tracing::warn!(
                redis = %tier.stats()["redis"],
                "shared tier unreachable at start: serving the snapshot; purges it missed apply when Redis answers"
            );
        }
    }
    // A small snapshot is in memory before the first request; a large one
    // goes on loading while requests are served.
    let restored = loading.finished_within(config.cache.load_wait).await;
    let dashboard = Dashboard::new(proxy.clone(), config.cache.max_size);
    let (admin, admin_listener) = Admin::bind(
        config.admin.address,
        config.admin.token.clone(),
        proxy.clone(),
        snapshotter.clone(),
        dashboard.clone(),
    )
    .await?;
    let admin_addr = admin.address();
    listeners.start(bound, &config.limits);
    admin.set_ready();

    tracing::info!(
        addresses = ?listeners.addresses().iter().map(|(_, bound)| bound.to_string()).collect::<Vec<_>>(),
        origins = ?config.origins.iter().map(|o| o.id()).collect::<Vec<_>>(),
        cache_file = %config.cache.file.display(),
        restored = restored.map_or_else(|| "loading in the background".to_owned(), |n| n.to_string()),
        "listening"
    );
    let mut tasks = vec![
        tokio::spawn(
            snapshotter
                .clone()
                .run(config.cache.write_delay, cancel.clone()),
        ),
        tokio::spawn(admin.serve(admin_listener, cancel.clone())),
    ];
    let watched = source.as_ref().and_then(|s| s.path.clone());
    let reloader = Arc::new(Reloader::new(
        source,
        proxy.clone(),
        Live { listeners, config },
    ));
    if let Some(path) = watched {
        tasks.push(reload::watch_file(reloader.clone(), path, cancel.clone())?);
    }
    tasks.push(tokio::spawn(
        dashboard.clone().run(reloader.events(), cancel.clone()),
    ));
    if let Some(tier) = shared {
        tasks.push(tokio::spawn(tier.clone().follow_log(cancel.clone())));
        tasks.push(tokio::spawn(tier.clone().probe_while_open(cancel.clone())));
        tasks.push(tokio::spawn(tier.follow_announcements(cancel.clone())));
    }
    Ok(RunningProxy {
        local_addr,
        admin_addr,
        proxy,
        reloader,
        snapshotter,
        dashboard,
        cancel,
        tasks,
    })
}

/// The snapshot being read into the store on a blocking thread, while the
/// proxy starts and then serves: the write-behind waits for its end (a
/// write before would lose what is not read yet), purges since its start
/// keep out what they remove, and a fill since its start is newer than
/// what the snapshot holds for that key.
struct Loading {
    head: Option<tokio::sync::oneshot::Receiver<Option<LogPosition>>>,
    done: Option<JoinHandle<usize>>,
}

/// Opens the snapshot writes again when the load is over (also when the
/// loading thread panics: a write waiting for it would wait for ever).
struct LoadGate(Arc<Snapshotter>);

impl Drop for LoadGate {
    fn drop(&mut self) {
        self.0.end_load();
    }
}

impl Loading {
    /// Cleans the temp files a killed process left and starts reading the
    /// snapshot.
    fn start(
        config: &Config,
        proxy: &Arc<Proxy>,
        snapshotter: &Arc<Snapshotter>,
        now: SystemTime,
    ) -> Self {
        let path = config.cache.file.clone();
        let limits = LoadLimits {
            max_file_bytes: config
                .cache
                .max_size
                .saturating_mul(2)
                .saturating_add(16 << 20),
            max_object_size: config.cache.max_object_size,
        };
        let proxy = proxy.clone();
        let snapshotter = snapshotter.clone();
        snapshotter.begin_load();
        let (tell_head, head) = tokio::sync::oneshot::channel();
        let done = tokio::task::spawn_blocking(move || {
            // Writes go on once the load ends, however it ends.
            let gate = LoadGate(snapshotter);
            let started = crate::clock::Stopwatch::start();
            let removed = files::remove_stale_temps(&path);
            if removed > 0 {
                tracing::info!(removed, "removed temp files that an earlier process left");
            }
            let runtime = proxy.runtime();
            let store = proxy.store();
            let since = store.purge_count();
            let mut stored = 0;
            let report = persist::load_after_head(
                &path,
                now,
                limits,
                |key| runtime.placement_of(key),
                |position| {
                    let _ = tell_head.send(position);
                },
                |key, entry| stored += usize::from(store.restore_loading(since, key, entry)),
            );
            drop(gate);
            let dropped = report.invalid + report.unrouted;
            if dropped > 0 {
                tracing::warn!(
                    invalid = report.invalid,
                    unrouted = report.unrouted,
                    "snapshot entries dropped: they failed a check, or no route serves them now"
                );
                proxy.metrics().snapshot_dropped.inc_by(dropped as u64);
            }
            tracing::info!(
                entries = stored,
                expired = report.expired,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "snapshot loaded"
            );
            stored
        });
        Loading {
            head: Some(head),
            done: Some(done),
        }
    }

    /// The fleet's purge log position the snapshot reflects, once read.
    async fn position(&mut self) -> Option<LogPosition> {
        match self.head.take() {
            Some(head) => head.await.ok().flatten(),
            None => None,
        }
    }

    /// Waits at most `wait` for the whole snapshot; how many entries it
    /// restored, or `None` if it is still loading.
    async fn finished_within(&mut self, wait: std::time::Duration) -> Option<usize> {
        let done = self.done.as_mut()?;
        match tokio::time::timeout(wait, done).await {
            Ok(Ok(stored)) => {
                self.done = None;
                Some(stored)
            }
            Ok(Err(err)) => {
                self.done = None;
                tracing::error!(error = %err, "the snapshot load failed");
                Some(0)
            }
            Err(_) => None,
        }
    }
}

impl RunningProxy {
    /// The bound address of the first listener.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Configured and bound address of every listener.
    pub async fn listener_addresses(&self) -> Vec<(SocketAddr, SocketAddr)> {
        self.reloader.listener_addresses().await
    }

    /// The loopback control endpoint.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// Counts completed snapshot writes (to await the write-behind).
    pub fn snapshot_writes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.snapshotter.writes()
    }

    /// What the dashboard shows.
    pub fn dashboard(&self) -> &Arc<Dashboard> {
        &self.dashboard
    }

    /// The request path (and through it the cache).
    pub fn proxy(&self) -> &Arc<Proxy> {
        &self.proxy
    }

    /// Applies configuration changes (SIGHUP, tests).
    pub fn reloader(&self) -> &Arc<Reloader> {
        &self.reloader
    }

    /// Reload outcomes as they happen.
    pub fn reload_events(&self) -> watch::Receiver<ReloadEvent> {
        self.reloader.events()
    }

    /// Stops accepting, lets in-flight requests finish (bounded grace),
    /// then writes the snapshot.
    pub async fn shutdown(self) -> Result<(), StartupError> {
        self.cancel.cancel();
        let listeners = self
            .reloader
            .take_listeners(ListenerSet::new(self.proxy.clone(), self.cancel.clone()))
            .await;
        listeners.shutdown().await;
        for task in self.tasks {
            if let Err(err) = task.await {
                tracing::error!(error = %err, "a background task failed");
            }
        }
        let snapshotter = self.snapshotter.clone();
        let written = tokio::task::spawn_blocking(move || snapshotter.write_now()).await?;
        match written {
            Ok(entries) => tracing::info!(entries, "cache snapshot written; stopped"),
            // A full disk or a read-only directory is no reason to fail a
            // clean stop: the previous snapshot is intact (writes are
            // atomic) and says what it said.
            Err(err) => tracing::error!(
                error = %chain(&err),
                "final cache snapshot not written; the previous one is kept; stopped"
            ),
        }
        Ok(())
    }
}
