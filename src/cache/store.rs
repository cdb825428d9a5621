//! The in-memory store: moka, bounded in bytes by a weigher.
//!
//! Freshness is judged by the entry itself against our [`crate::clock::Clock`]; moka's own
//! per-entry expiry is only a ceiling that frees memory once an entry can
//! no longer be served. Every change wakes the snapshot writer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;
use tokio::sync::Notify;

use super::entry::CachedResponse;
use super::freshness::clamp;
use super::key::CacheKey;
use crate::clock::SharedClock;

/// The shared, bounded response cache. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    entries: Cache<CacheKey, Arc<CachedResponse>>,
    changed: Arc<Notify>,
    clock: SharedClock,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("entries", &self.entries.entry_count())
            .field("bytes", &self.entries.weighted_size())
            .finish()
    }
}

/// moka's expiry: the entry's remaining freshness when (re)inserted.
struct Ceiling {
    clock: SharedClock,
}

impl Ceiling {
    fn remaining(&self, value: &CachedResponse) -> Option<Duration> {
        value.remaining(self.clock.now()).map(clamp)
    }
}

impl Expiry<CacheKey, Arc<CachedResponse>> for Ceiling {
    fn expire_after_create(
        &self,
        _key: &CacheKey,
        value: &Arc<CachedResponse>,
        _created_at: Instant,
    ) -> Option<Duration> {
        self.remaining(value)
    }

    fn expire_after_update(
        &self,
        _key: &CacheKey,
        value: &Arc<CachedResponse>,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        // moka's default keeps the old entry's remaining time; a new
        // response brings its own.
        self.remaining(value)
    }
}

impl Store {
    /// An empty store holding at most `max_bytes`.
    pub fn new(max_bytes: u64, clock: SharedClock) -> Self {
        let entries = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &CacheKey, value: &Arc<CachedResponse>| value.weight(key.as_str().len()))
            .expire_after(Ceiling {
                clock: clock.clone(),
            })
            .build();
        Store {
            entries,
            changed: Arc::new(Notify::new()),
            clock,
        }
    }

    /// The stored entry for `key`, fresh or not.
    pub fn get(&self, key: &CacheKey) -> Option<Arc<CachedResponse>> {
        self.entries.get(key)
    }

    /// Stores (or replaces) the entry for `key`.
    pub fn insert(&self, key: CacheKey, entry: CachedResponse) {
        self.entries.insert(key, Arc::new(entry));
        self.changed.notify_one();
    }

    /// Puts back an entry from the snapshot (no snapshot write follows).
    pub fn restore(&self, key: CacheKey, entry: CachedResponse) {
        self.entries.insert(key, Arc::new(entry));
    }

    /// Removes the entry for `key`, if any.
    pub fn invalidate(&self, key: &CacheKey) {
        if self.entries.remove(key).is_some() {
            self.changed.notify_one();
        }
    }

    /// Removes everything; returns how many entries there were.
    pub fn clear(&self) -> u64 {
        self.entries.run_pending_tasks();
        let count = self.entries.entry_count();
        self.entries.invalidate_all();
        self.entries.run_pending_tasks();
        self.changed.notify_one();
        count
    }

    /// Every live entry, for the snapshot.
    pub fn entries(&self) -> Vec<(CacheKey, Arc<CachedResponse>)> {
        self.entries
            .iter()
            .map(|(key, value)| ((*key).clone(), value))
            .collect()
    }

    /// Entry count and weighted bytes (after pending maintenance).
    pub fn usage(&self) -> (u64, u64) {
        self.entries.run_pending_tasks();
        (self.entries.entry_count(), self.entries.weighted_size())
    }

    /// Signalled after every change, for the snapshot writer.
    pub fn changed(&self) -> Arc<Notify> {
        self.changed.clone()
    }

    /// The clock freshness is judged by.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::vary::VaryValues;
    use crate::clock::SystemClock;
    use bytes::Bytes;
    use http::{HeaderMap, StatusCode};
    use std::time::SystemTime;

    fn entry(body: usize) -> CachedResponse {
        CachedResponse::new(
            StatusCode::OK,
            HeaderMap::new(),
            Bytes::from(vec![b'x'; body]),
            SystemTime::now(),
            None,
            Duration::ZERO,
            VaryValues::default(),
        )
    }

    #[test]
    fn bounded_in_bytes() {
        let store = Store::new(100_000, Arc::new(SystemClock));
        for i in 0..100 {
            store.insert(CacheKey::from_text(&format!("k{i}")), entry(10_000));
        }
        let (count, bytes) = store.usage();
        assert!(bytes <= 100_000, "{bytes} bytes held");
        assert!(count < 100 && count > 0, "{count} entries kept");
    }

    #[test]
    fn get_insert_invalidate_clear() {
        let store = Store::new(1 << 20, Arc::new(SystemClock));
        let key = CacheKey::from_text("a");
        assert!(store.get(&key).is_none());
        store.insert(key.clone(), entry(3));
        assert_eq!(store.get(&key).map(|e| e.body.len()), Some(3));
        store.invalidate(&key);
        assert!(store.get(&key).is_none());
        store.insert(key.clone(), entry(3));
        assert_eq!(store.clear(), 1);
        assert!(store.get(&key).is_none());
    }
}
