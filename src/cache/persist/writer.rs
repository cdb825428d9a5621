//! The snapshot writer: write-behind after changes (on its own thread at
//! the lowest CPU priority, paced by its own duration), on request, and at
//! shutdown. A write that fails (disk full, read-only directory) leaves
//! the previous snapshot intact; the first failure is logged, the rest
//! are counted.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::encode::encode_into;
use super::files::write_atomic_with;
use crate::cache::store::Store;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

/// Write-behind waits at least this many times the last write's duration.
const WRITE_PACING: u32 = 10;

/// A snapshot that could not be written (the previous one is intact).
#[derive(Debug, thiserror::Error)]
#[error("cache file {}", path.display())]
pub struct SnapshotError {
    /// The snapshot path.
    pub path: PathBuf,
    /// What the OS said.
    #[source]
    pub source: std::io::Error,
}

/// What the writer counts (exposed as metrics by whoever registers them).
#[derive(Debug, Clone)]
pub struct SnapshotCounters {
    /// Writes attempted.
    pub writes: Counter,
    /// Writes that failed.
    pub failures: Counter,
    /// How long each write took, in seconds.
    pub duration: Histogram,
    /// Size of the last snapshot written.
    pub bytes: Gauge,
}

impl Default for SnapshotCounters {
    fn default() -> Self {
        SnapshotCounters {
            writes: Counter::default(),
            failures: Counter::default(),
            duration: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            bytes: Gauge::default(),
        }
    }
}

/// Writes the store's snapshot; one write at a time per process.
#[derive(Debug)]
pub struct Snapshotter {
    store: Store,
    writes: watch::Sender<u64>,
    counters: SnapshotCounters,
    path: PathBuf,
    write_lock: Mutex<()>,
    /// The snapshot is being read into the cache: a write now would lose
    /// the entries not read yet, so writes wait for the end of the load.
    loading: Mutex<bool>,
    loaded: Condvar,
    /// The last write failed (its error was logged).
    failing: AtomicBool,
}

impl Snapshotter {
    /// A writer of `store` to `path`.
    pub fn new(store: Store, path: PathBuf, counters: SnapshotCounters) -> Self {
        Snapshotter {
            store,
            writes: watch::Sender::new(0),
            counters,
            path,
            write_lock: Mutex::new(()),
            loading: Mutex::new(false),
            loaded: Condvar::new(),
            failing: AtomicBool::new(false),
        }
    }

    /// Holds every write until [`Snapshotter::end_load`]: the file is being
    /// read into the cache while requests are served.
    pub fn begin_load(&self) {
        *self.loading.lock().unwrap_or_else(|p| p.into_inner()) = true;
    }

    /// The snapshot is read: writes may go on.
    pub fn end_load(&self) {
        *self.loading.lock().unwrap_or_else(|p| p.into_inner()) = false;
        self.loaded.notify_all();
    }

    /// Whether the snapshot is still being read into the cache.
    pub fn is_loading(&self) -> bool {
        *self.loading.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Blocks until no load is under way.
    fn wait_for_load(&self) {
        let mut loading = self.loading.lock().unwrap_or_else(|p| p.into_inner());
        while *loading {
            loading = self.loaded.wait(loading).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Counts completed writes (for whoever needs to know the file is
    /// current, such as tests).
    pub fn writes(&self) -> watch::Receiver<u64> {
        self.writes.subscribe()
    }

    /// The snapshot path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the snapshot now (after the load under way, if any).
    /// Blocking: call from a blocking thread.
    pub fn write_now(&self) -> Result<usize, SnapshotError> {
        self.wait_for_load();
        let _serialized = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let started = crate::clock::Stopwatch::start();
        let written = write_atomic_with(&self.path, |writer| {
            // Read before the entries: a purge applied during the walk
            // is replayed at the next start (purges are idempotent).
            let position = self.store.log_position();
            encode_into(self.store.iter(), position.as_deref(), writer)
        });
        self.counters.writes.inc();
        self.counters
            .duration
            .observe(started.elapsed().as_secs_f64());
        let written = match written {
            Ok(written) => written,
            Err(source) => {
                self.counters.failures.inc();
                return Err(SnapshotError {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        self.writes
            .send_modify(|count| *count = count.wrapping_add(1));
        if let Ok(meta) = fs::metadata(&self.path) {
            self.counters
                .bytes
                .set(i64::try_from(meta.len()).unwrap_or(i64::MAX));
        }
        Ok(written)
    }

    /// Writes the snapshot on its own thread, at the lowest CPU priority,
    /// and logs the outcome; returns how long it took. On a busy core the
    /// requests run first and the write waits (the pacing in [`run`]
    /// stretches accordingly); on an idle one it runs at full speed.
    ///
    /// [`run`]: Snapshotter::run
    pub async fn write_in_background(self: &Arc<Self>) -> Duration {
        let this = self.clone();
        let started = crate::clock::Stopwatch::start();
        let (done, outcome) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("snapshot-writer".into())
            .spawn(move || {
                yield_cpu_to_requests();
                let _ = done.send(this.write_now());
            });
        let result = match spawned {
            Ok(_) => outcome
                .await
                .map_err(|_| "the writer thread ended early".to_owned()),
            Err(e) => Err(format!("cannot start the writer thread: {e}")),
        };
        let elapsed = started.elapsed();
        match result {
            Ok(Ok(entries)) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(entries, "cache snapshot written again");
                }
                tracing::debug!(
                    entries,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "cache snapshot written"
                );
            }
            // Said once, not at every change while the disk stays full or
            // the directory read-only; `snapshot_failures_total` counts.
            Ok(Err(e)) if self.failing.swap(true, Ordering::Relaxed) => {
                tracing::debug!(error = %crate::error::chain(&e), "cache snapshot not written");
            }
            Ok(Err(e)) => tracing::error!(
                error = %crate::error::chain(&e),
                "cache snapshot not written; the previous one is kept, and the cache serves on from memory"
            ),
            Err(e) => tracing::error!(error = %e, "cache snapshot task failed"),
        }
        elapsed
    }

    /// Writes the snapshot `delay` after changes, until `cancel` fires.
    /// A write costs time in proportion to the cache's size, so under
    /// constant change the next one waits at least ten times as long as the
    /// last took: snapshots never take more than about a tenth of a core.
    pub async fn run(self: Arc<Self>, delay: Duration, cancel: CancellationToken) {
        let mut changes = self.store.changes();
        let mut pause = delay;
        loop {
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { return },
                _ = cancel.cancelled() => return,
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = cancel.cancelled() => return,
            }
            let took = self.write_in_background().await;
            pause = delay.max(took.saturating_mul(WRITE_PACING));
        }
    }
}

/// Gives the calling thread the lowest scheduling priority (nice 19: it
/// runs when requests leave the core idle). Best effort: without
/// permission the thread keeps its priority.
fn yield_cpu_to_requests() {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let thread = rustix::thread::gettid();
        if let Err(err) = rustix::process::setpriority_process(Some(thread), 19) {
            tracing::debug!(error = %err, "cannot lower the snapshot writer's priority");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn the_snapshot_writer_runs_at_the_lowest_priority() {
        let nice = std::thread::spawn(|| {
            yield_cpu_to_requests();
            rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(nice, 19);
        let here = rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
        assert_ne!(here, 19, "only the writer's own thread is lowered");
    }

    #[test]
    fn writes_wait_for_the_load_under_way() {
        use crate::clock::SystemClock;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        let store = Store::new(
            1 << 20,
            Arc::new(SystemClock),
            crate::cache::expiry::Retention::default(),
            Counter::default(),
        );
        let writer = Arc::new(Snapshotter::new(
            store,
            path.clone(),
            SnapshotCounters::default(),
        ));
        writer.begin_load();
        assert!(writer.is_loading());
        let (done, written) = std::sync::mpsc::channel();
        let waiting = writer.clone();
        let thread = std::thread::spawn(move || done.send(waiting.write_now().is_ok()));
        assert!(
            written.recv_timeout(Duration::from_millis(200)).is_err(),
            "no write while the snapshot is read"
        );
        assert!(!path.exists());
        writer.end_load();
        assert_eq!(written.recv_timeout(Duration::from_secs(10)), Ok(true));
        assert!(path.exists());
        thread.join().unwrap().unwrap();
    }
}
