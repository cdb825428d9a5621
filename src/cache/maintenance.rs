//! The store's maintenance thread: moka applies inserts and evicts in
//! batches (every 64 writes, or 300 ms later at the next operation), which
//! let large responses run tens of megabytes past the bound. This thread
//! runs moka's pending work as soon as the bytes inserted since its last
//! run pass a sixty-fourth of the bound, and every second, off the request
//! threads: they never wait for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::time::Duration;

use moka::sync::Cache;

use super::entry::CachedResponse;
use super::key::CacheKey;

/// The maintenance thread runs at least this often (expired entries go).
const MAINTENANCE_EVERY: Duration = Duration::from_secs(1);
/// Inserted bytes that wake the maintenance thread: this part of the bound.
const FLUSH_FRACTION: u64 = 64;
/// ... but not less than this, so that small caches do not flush per insert.
const MIN_FLUSH_BYTES: u64 = 256 * 1024;

/// Wakes the store's maintenance thread when enough has been inserted.
pub(super) struct Maintenance {
    inserted: AtomicU64,
    flush_at: u64,
    wake: SyncSender<()>,
}

impl Maintenance {
    /// Starts the thread that applies `entries`' pending inserts and
    /// evictions; it ends when the last handle to the store is dropped.
    pub(super) fn start(entries: Cache<CacheKey, Arc<CachedResponse>>, max_bytes: u64) -> Self {
        let (wake, woken) = mpsc::sync_channel::<()>(1);
        let spawned = std::thread::Builder::new()
            .name("cache-maintenance".into())
            .spawn(move || {
                loop {
                    match woken.recv_timeout(MAINTENANCE_EVERY) {
                        Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                    // One run applies a bounded batch; a burst of large
                    // inserts may need a few.
                    for _ in 0..8 {
                        entries.run_pending_tasks();
                        if entries.weighted_size() <= max_bytes {
                            break;
                        }
                    }
                }
            });
        if let Err(err) = spawned {
            tracing::warn!(error = %err, "no cache maintenance thread; evictions may lag inserts");
        }
        Maintenance {
            inserted: AtomicU64::new(0),
            flush_at: (max_bytes / FLUSH_FRACTION).max(MIN_FLUSH_BYTES),
            wake,
        }
    }

    /// Counts `bytes` inserted; past the threshold, wakes the thread.
    pub(super) fn inserted(&self, bytes: u64) {
        let before = self.inserted.fetch_add(bytes, Ordering::Relaxed);
        if before.saturating_add(bytes) >= self.flush_at {
            self.inserted.store(0, Ordering::Relaxed);
            // A full channel already holds a wake-up.
            let _ = self.wake.try_send(());
        }
    }
}
