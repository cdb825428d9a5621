//! Assembles a running proxy from a validated [`Config`]: bind, load the
//! snapshot, start the server, the snapshot writer and the control
//! endpoint; and takes it down in stages. `main` and the integration tests
//! both go through [`start`].

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::admin::Admin;
use crate::cache::Store;
use crate::cache::persist::{self, Snapshotter};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::error::Error;
use crate::proxy::Proxy;
use crate::runtime::Runtime;
use crate::server;

/// A proxy that is serving.
#[derive(Debug)]
pub struct RunningProxy {
    local_addr: SocketAddr,
    admin_addr: SocketAddr,
    proxy: Arc<Proxy>,
    snapshotter: Arc<Snapshotter>,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

/// Binds the listener (first, so that a taken port fails before anything
/// else happens), restores the snapshot and starts serving.
pub async fn start(config: Config, clock: SharedClock) -> Result<RunningProxy, Error> {
    let listener = server::bind(config.listener.address)?;
    let local_addr = listener
        .local_addr()
        .map_err(|e| Error::from_bind(config.listener.address, e))?;
    let runtime = Runtime::from_config(&config)?;

    let store = Store::new(config.cache.max_size, clock.clone());
    let path = config.cache.file.clone();
    let (now, ttl) = (clock.now(), config.cache.ttl);
    let restored = tokio::task::spawn_blocking(move || persist::load(&path, now, ttl))
        .await
        .map_err(|e| Error::Internal(e.to_string()))?;
    let restored_count = restored.len();
    for (key, entry) in restored {
        store.restore(key, entry);
    }

    let proxy = Arc::new(Proxy::new(runtime, store.clone(), clock));
    let snapshotter = Arc::new(Snapshotter::new(store.clone(), config.cache.file.clone()));
    let (admin, admin_listener) = Admin::bind(store, snapshotter.clone()).await?;
    let admin_addr = admin_listener
        .local_addr()
        .map_err(|e| Error::Internal(e.to_string()))?;

    let cancel = CancellationToken::new();
    let tasks = vec![
        tokio::spawn(server::serve(
            listener,
            proxy.clone(),
            config.limits.clone(),
            cancel.clone(),
        )),
        tokio::spawn(
            snapshotter
                .clone()
                .run(config.cache.write_delay, cancel.clone()),
        ),
        tokio::spawn(admin.serve(admin_listener, cancel.clone())),
    ];
    tracing::info!(
        address = %local_addr,
        origin = %config.origin.id(),
        cache_file = %config.cache.file.display(),
        restored = restored_count,
        "listening"
    );
    Ok(RunningProxy {
        local_addr,
        admin_addr,
        proxy,
        snapshotter,
        cancel,
        tasks,
    })
}

impl RunningProxy {
    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The loopback control endpoint.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The request path (and through it the cache).
    pub fn proxy(&self) -> &Arc<Proxy> {
        &self.proxy
    }

    /// Stops accepting, lets in-flight requests finish (bounded grace),
    /// then writes the snapshot.
    pub async fn shutdown(self) -> Result<(), Error> {
        self.cancel.cancel();
        for task in self.tasks {
            if let Err(err) = task.await {
                tracing::error!(error = %err, "a server task failed");
            }
        }
        let snapshotter = self.snapshotter.clone();
        let entries = tokio::task::spawn_blocking(move || snapshotter.write_now())
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;
        tracing::info!(entries, "cache snapshot written; stopped");
        Ok(())
    }
}
