//! Live configuration: a reload builds a whole new [`Runtime`] and swaps it
//! in one store; listeners whose address is unchanged keep their sockets
//! and connections, new ones are bound first (all or nothing), removed ones
//! drain. [`watch_file`] applies edits of the config file; `changes`
//! says what each reload changed.

mod changes;
mod file_watch;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::{Mutex, watch};

use crate::accept::BindError;
use crate::config::ConfigError;
use crate::config::{Config, ConfigSource};
use crate::error::chain;
use crate::proxy::Proxy;
use crate::runtime::BuildError;
use crate::runtime::Runtime;
use crate::server::ListenerSet;

pub use file_watch::{MAX_DELAY, WatchError, watch_file};

/// Why a new configuration was refused (the running one stays).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// Started from flags alone: there is no file to read again.
    #[error("no configuration file to reload")]
    NoFile,
    /// The file is gone or unreadable.
    #[error("{} {}; the running configuration stays until the file is back", path.display(), if source.kind() == std::io::ErrorKind::NotFound { "was removed" } else { "cannot be read" })]
    Unreadable {
        /// The config file.
        path: std::path::PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The new file is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Its origins cannot be set up.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// A new listener cannot be bound.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// Reading the file on a blocking thread did not finish (a bug).
    #[error("reading the configuration failed")]
    Task(#[source] tokio::task::JoinError),
}

/// The outcome of the latest reload attempt, for tests and operators.
#[derive(Debug, Clone)]
pub struct ReloadEvent {
    /// Counts attempts, successful or not.
    pub attempt: u64,
    /// What changed, or why the new config was refused.
    pub result: Result<String, Arc<ReloadError>>,
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
    pub async fn reload(&self, why: &str) -> Result<String, Arc<ReloadError>> {
        let Some(source) = self.source.clone() else {
            return self.report(why, Err(ReloadError::NoFile));
        };
        let loaded = tokio::task::spawn_blocking(move || source.load()).await;
        let config = match loaded {
            Ok(result) => result.map_err(ReloadError::from),
            Err(e) => Err(ReloadError::Task(e)),
        };
        self.apply_result(why, config).await
    }

    /// Parses `text` as the config file and applies it.
    pub async fn reload_text(&self, why: &str, text: String) -> Result<String, Arc<ReloadError>> {
        let Some(source) = self.source.clone() else {
            return self.report(why, Err(ReloadError::NoFile));
        };
        let parsed =
            tokio::task::spawn_blocking(move || source.parse(&text, source.path.as_deref())).await;
        let config = match parsed {
            Ok(result) => result.map_err(ReloadError::from),
            Err(e) => Err(ReloadError::Task(e)),
        };
        self.apply_result(why, config).await
    }

    /// Applies `config` as a whole, or nothing of it.
    pub async fn apply(&self, why: &str, config: Config) -> Result<String, Arc<ReloadError>> {
        self.apply_result(why, Ok(config)).await
    }

    async fn apply_result(
        &self,
        why: &str,
        config: Result<Config, ReloadError>,
    ) -> Result<String, Arc<ReloadError>> {
        let result = match config {
            Ok(config) => self.swap(config).await,
            Err(err) => Err(err),
        };
        self.report(why, result)
    }

    async fn swap(&self, config: Config) -> Result<String, ReloadError> {
        let mut live = self.live.lock().await;
        let runtime = Runtime::build(&config, Some(&self.proxy.runtime()), self.proxy.metrics())?;
        let wanted: Vec<SocketAddr> = config.listeners.iter().map(|l| l.address).collect();
        let bound = live.listeners.bind_missing(&wanted)?;
        let added: Vec<SocketAddr> = bound.iter().map(|(address, _)| *address).collect();
        let routes_before = self.proxy.runtime().route_names();
        self.proxy.swap_runtime(Arc::new(runtime));
        live.listeners.start(bound, &config.limits);
        let removed = live.listeners.stop_unwanted(&wanted);
        let summary = changes::describe(
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

    /// Records a reload that could not even read its config (the file was
    /// removed): refused like an invalid one, the running config stays.
    pub fn refuse(&self, why: &str, err: ReloadError) -> Result<String, Arc<ReloadError>> {
        self.report(why, Err(err))
    }

    fn report(
        &self,
        why: &str,
        result: Result<String, ReloadError>,
    ) -> Result<String, Arc<ReloadError>> {
        let result = result.map_err(Arc::new);
        let attempt = self.events.borrow().attempt + 1;
        self.proxy.metrics().reloaded(result.is_ok());
        match &result {
            Ok(summary) => tracing::info!(trigger = why, "configuration reloaded: {summary}"),
            Err(err) => tracing::error!(
                trigger = why,
                "configuration reload refused, the running configuration stays: {}",
                chain(err.as_ref())
            ),
        }
        let event = ReloadEvent {
            attempt,
            result: result.clone(),
        };
        self.events.send_replace(event);
        result
    }

    /// Gives up the listeners (at shutdown).
    pub async fn take_listeners(&self, replacement: ListenerSet) -> ListenerSet {
        std::mem::replace(&mut self.live.lock().await.listeners, replacement)
    }
}
