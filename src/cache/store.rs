//! The in-memory store: moka, bounded in bytes by a weigher and evicting
//! the least recently used entries, with the variants of a URL (`Vary`)
//! side by side.
//!
//! Freshness is judged by the entry itself against our
//! [`crate::clock::Clock`]; moka's own per-entry expiry is only a ceiling
//! that frees memory once an entry can no longer be used: its freshness,
//! plus its stale windows, plus (if it can be revalidated) the `keep` time.
//! Every change wakes the snapshot writer.
//!
//! A response that varies is stored under `primary key + variant hash`; a
//! small index maps the primary key to the header names it varies on and
//! the variant keys stored, so that a lookup finds the right variant and an
//! invalidation removes them all. URLs that do not vary cost one index miss.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use http::{HeaderMap, HeaderName};
use moka::Expiry;
use moka::notification::RemovalCause;
use moka::policy::EvictionPolicy;
use moka::sync::Cache;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::watch;

use super::entry::CachedResponse;
use super::freshness::clamp;
use super::key::CacheKey;
use super::vary::VaryValues;
use crate::clock::SharedClock;

/// Separates a primary key from its variant hash.
const VARIANT_SEPARATOR: char = '\u{1f}';
/// Why-not-stored notes kept, for `explain` and to skip coalescing for
/// URLs that were just uncacheable (Varnish's hit-for-miss).
const NOT_STORED_NOTES: u64 = 10_000;
/// How long such a note lasts.
const NOT_STORED_FOR: Duration = Duration::from_secs(120);
/// Variants kept per URL; the oldest goes first.
const MAX_VARIANTS: usize = 32;

/// How long unusable-looking entries are kept for later use.
#[derive(Debug, Clone, Copy, Default)]
pub struct Retention {
    /// Stale entries may stand in for a failing origin this long.
    pub grace: Duration,
    /// Stale entries with validators are kept this long for revalidation.
    pub keep: Duration,
}

#[derive(Debug, Default)]
struct VariantIndex {
    names: Vec<HeaderName>,
    keys: Vec<CacheKey>,
}

/// The shared, bounded response cache. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    entries: Cache<CacheKey, Arc<CachedResponse>>,
    not_stored: Cache<CacheKey, &'static str>,
    variants: Arc<DashMap<CacheKey, VariantIndex>>,
    /// Counts changes; every subscriber (the snapshot writer, tests) sees
    /// the latest count.
    changes: Arc<watch::Sender<u64>>,
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

/// moka's expiry: how long an entry can still be of use when (re)inserted.
struct Ceiling {
    clock: SharedClock,
    retention: Retention,
}

impl Ceiling {
    fn usable_for(&self, value: &CachedResponse) -> Option<Duration> {
        let fresh = value.remaining(self.clock.now())?;
        let rules = value.rules();
        let stale_use = rules
            .stale_while_revalidate
            .max(rules.stale_if_error)
            .max(self.retention.grace);
        let keep = if value.has_validators() {
            self.retention.keep
        } else {
            Duration::ZERO
        };
        Some(clamp(fresh.saturating_add(stale_use).saturating_add(keep)))
    }
}

impl Expiry<CacheKey, Arc<CachedResponse>> for Ceiling {
    fn expire_after_create(
        &self,
        _key: &CacheKey,
        value: &Arc<CachedResponse>,
        _created_at: Instant,
    ) -> Option<Duration> {
        self.usable_for(value)
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
        self.usable_for(value)
    }
}

impl Store {
    /// An empty store holding at most `max_bytes`.
    pub fn new(
        max_bytes: u64,
        clock: SharedClock,
        retention: Retention,
        evictions: Counter,
    ) -> Self {
        let entries = Cache::builder()
            .eviction_listener(move |_key, _value, cause| {
                if cause == RemovalCause::Size {
                    evictions.inc();
                }
            })
            .max_capacity(max_bytes)
            // LRU, as nginx and Varnish: moka's default TinyLFU admits a
            // newcomer only if it is read more often than all the entries it
            // would displace together, so a full cache of small entries
            // refuses a large response however hot it is.
            .eviction_policy(EvictionPolicy::lru())
            .weigher(|key: &CacheKey, value: &Arc<CachedResponse>| value.weight(key.as_str().len()))
            .expire_after(Ceiling {
                clock: clock.clone(),
                retention,
            })
            .build();
        Store {
            entries,
            not_stored: Cache::builder()
                .max_capacity(NOT_STORED_NOTES)
                .time_to_live(NOT_STORED_FOR)
                .build(),
            variants: Arc::default(),
            changes: Arc::new(watch::Sender::new(0)),
            clock,
        }
    }

    /// The stored response for `primary` that a request with `request`
    /// headers selects, fresh or not, with the key it is stored under.
    pub fn lookup(
        &self,
        primary: &CacheKey,
        request: &HeaderMap,
    ) -> Option<(CacheKey, Arc<CachedResponse>)> {
        // A URL that varies has no entry under its primary key (placing its
        // first variant removes it), so most lookups end here without
        // touching the variant index.
        if let Some(entry) = self.entries.get(primary) {
            return entry
                .vary()
                .matches(request)
                .then(|| (primary.clone(), entry));
        }
        let index = self.variants.get(primary)?;
        let key = variant_key(primary, &VaryValues::capture(&index.names, request));
        drop(index);
        let entry = self.entries.get(&key)?;
        entry.vary().matches(request).then_some((key, entry))
    }

    /// Whether responses for `primary` vary (a lookup miss is a vary miss).
    pub fn varies(&self, primary: &CacheKey) -> bool {
        self.variants.contains_key(primary)
    }

    /// Forgets why `primary` was not stored (it just was).
    pub fn clear_not_stored(&self, primary: &CacheKey) {
        self.not_stored.invalidate(primary);
    }

    /// Stores a response for `primary` (under its variant key when it
    /// varies); returns the key it is stored under.
    pub fn insert(&self, primary: CacheKey, entry: CachedResponse) -> CacheKey {
        let key = self.place(primary, entry.vary());
        self.entries.insert(key.clone(), Arc::new(entry));
        self.touch();
        key
    }

    /// Replaces the entry stored under `key` (a 304 refreshed it).
    pub fn replace(&self, key: CacheKey, entry: CachedResponse) {
        self.entries.insert(key, Arc::new(entry));
        self.touch();
    }

    /// Puts back an entry from the snapshot under its stored key (no
    /// snapshot write follows).
    pub fn restore(&self, key: CacheKey, entry: CachedResponse) {
        if let Some((primary, _)) = key.as_str().split_once(VARIANT_SEPARATOR) {
            let mut index = self
                .variants
                .entry(CacheKey::from_text(primary))
                .or_default();
            index.names = entry
                .vary()
                .pairs()
                .iter()
                .map(|(n, _)| n.clone())
                .collect();
            index.keys.push(key.clone());
        }
        self.entries.insert(key, Arc::new(entry));
    }

    /// The key for a response that varies as `vary` says, updating the
    /// variant index.
    fn place(&self, primary: CacheKey, vary: &VaryValues) -> CacheKey {
        if vary.pairs().is_empty() {
            if let Some((_, old)) = self.variants.remove(&primary) {
                old.keys.iter().for_each(|k| self.entries.invalidate(k));
            }
            return primary;
        }
        let names: Vec<HeaderName> = vary.pairs().iter().map(|(n, _)| n.clone()).collect();
        let key = variant_key(&primary, vary);
        let mut index = self.variants.entry(primary.clone()).or_default();
        if index.names != names {
            // The origin changed what it varies on: old variants are unreachable.
            index
                .keys
                .drain(..)
                .for_each(|k| self.entries.invalidate(&k));
            index.names = names;
            self.entries.invalidate(&primary);
        }
        if !index.keys.contains(&key) {
            if index.keys.len() >= MAX_VARIANTS {
                let oldest = index.keys.remove(0);
                self.entries.invalidate(&oldest);
            }
            index.keys.push(key.clone());
        }
        key
    }

    /// Notes why the last response for `primary` was not stored. Callers
    /// skip this when the note already says `why` (reading is cheaper
    /// than writing; uncacheable URLs repeat a lot).
    pub fn note_not_stored(&self, primary: CacheKey, why: &'static str) {
        self.not_stored.insert(primary, why);
    }

    /// Why the last response for `primary` was not stored, if it was not.
    pub fn not_stored_reason(&self, primary: &CacheKey) -> Option<&'static str> {
        self.not_stored.get(primary)
    }

    /// Removes every entry for which `matches(url, entry)` holds (`url` is
    /// `authority/path?query`); returns how many.
    pub fn purge_where(&self, matches: impl Fn(&str, &CachedResponse) -> bool) -> usize {
        let mut removed = 0;
        for (key, entry) in self.entries() {
            if matches(key.url(), &entry) && self.entries.remove(&key).is_some() {
                removed += 1;
                if let Some((primary, _)) = key.as_str().split_once(VARIANT_SEPARATOR) {
                    if let Some(mut index) = self.variants.get_mut(&CacheKey::from_text(primary)) {
                        index.keys.retain(|k| *k != key);
                    }
                }
            }
        }
        if removed > 0 {
            self.touch();
        }
        removed
    }

    /// Removes every stored variant of `primary`.
    pub fn invalidate(&self, primary: &CacheKey) {
        let mut removed = self.entries.remove(primary).is_some();
        if let Some((_, index)) = self.variants.remove(primary) {
            for key in index.keys {
                removed |= self.entries.remove(&key).is_some();
            }
        }
        if removed {
            self.touch();
        }
    }

    /// Removes everything; returns how many entries there were.
    pub fn clear(&self) -> u64 {
        self.entries.run_pending_tasks();
        let count = self.entries.entry_count();
        self.entries.invalidate_all();
        self.variants.clear();
        self.entries.run_pending_tasks();
        self.touch();
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

    /// Marks the store changed.
    fn touch(&self) {
        self.changes
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    /// Wakes after every change (the snapshot writer waits on it).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The clock freshness is judged by.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }
}

/// `primary + separator + hash of the variant's request values`. A hash
/// collision cannot serve a wrong variant: lookups compare the stored
/// values too.
fn variant_key(primary: &CacheKey, values: &VaryValues) -> CacheKey {
    let mut hasher = DefaultHasher::new();
    for (name, value) in values.pairs() {
        name.as_str().hash(&mut hasher);
        value.as_ref().map(|v| v.as_bytes()).hash(&mut hasher);
    }
    CacheKey::from_text(&format!(
        "{primary}{VARIANT_SEPARATOR}{:016x}",
        hasher.finish()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::entry::ReuseRules;
    use crate::clock::SystemClock;
    use bytes::Bytes;
    use http::HeaderValue;
    use http::header::ACCEPT_LANGUAGE;
    use http::{HeaderMap, StatusCode};
    use std::time::SystemTime;

    fn entry(body: usize) -> CachedResponse {
        variant(body, VaryValues::default())
    }

    fn variant(body: usize, vary: VaryValues) -> CachedResponse {
        CachedResponse::new(
            StatusCode::OK,
            HeaderMap::new(),
            Bytes::from(vec![b'x'; body]),
            SystemTime::now(),
            None,
            Duration::ZERO,
            vary,
            ReuseRules::default(),
        )
    }

    fn store(bytes: u64) -> Store {
        Store::new(
            bytes,
            Arc::new(SystemClock),
            Retention::default(),
            Counter::default(),
        )
    }

    #[test]
    fn bounded_in_bytes() {
        let store = store(100_000);
        for i in 0..100 {
            store.insert(CacheKey::from_text(&format!("k{i}")), entry(10_000));
        }
        let (count, bytes) = store.usage();
        assert!(bytes <= 100_000, "{bytes} bytes held");
        assert!(count < 100 && count > 0, "{count} entries kept");
    }

    #[test]
    fn lookup_insert_invalidate_clear() {
        let store = store(1 << 20);
        let key = CacheKey::from_text("a");
        let none = HeaderMap::new();
        assert!(store.lookup(&key, &none).is_none());
        store.insert(key.clone(), entry(3));
        assert_eq!(
            store.lookup(&key, &none).map(|(_, e)| e.body.len()),
            Some(3)
        );
        store.invalidate(&key);
        assert!(store.lookup(&key, &none).is_none());
        store.insert(key.clone(), entry(3));
        assert_eq!(store.clear(), 1);
        assert!(store.lookup(&key, &none).is_none());
    }

    fn lang(value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT_LANGUAGE, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn variants_live_side_by_side_and_go_together() {
        let store = store(1 << 20);
        let primary = CacheKey::from_text("http://o h/page");
        let (en, de) = (lang("en"), lang("de"));
        store.insert(
            primary.clone(),
            variant(2, VaryValues::capture(&[ACCEPT_LANGUAGE], &en)),
        );
        store.insert(
            primary.clone(),
            variant(3, VaryValues::capture(&[ACCEPT_LANGUAGE], &de)),
        );
        assert_eq!(
            store.lookup(&primary, &en).map(|(_, e)| e.body.len()),
            Some(2)
        );
        assert_eq!(
            store.lookup(&primary, &de).map(|(_, e)| e.body.len()),
            Some(3)
        );
        assert!(store.lookup(&primary, &lang("fr")).is_none());
        assert!(store.lookup(&primary, &HeaderMap::new()).is_none());

        store.invalidate(&primary);
        assert!(store.lookup(&primary, &en).is_none());
        assert!(store.lookup(&primary, &de).is_none());
    }

    #[test]
    fn a_response_that_stops_varying_replaces_its_variants() {
        let store = store(1 << 20);
        let primary = CacheKey::from_text("p");
        store.insert(
            primary.clone(),
            variant(2, VaryValues::capture(&[ACCEPT_LANGUAGE], &lang("en"))),
        );
        store.insert(primary.clone(), entry(5));
        assert_eq!(
            store
                .lookup(&primary, &lang("en"))
                .map(|(_, e)| e.body.len()),
            Some(5)
        );
    }

    #[test]
    fn a_full_cache_of_small_entries_still_takes_a_large_one() {
        let store = store(1 << 20);
        for i in 0..2_000 {
            let key = CacheKey::from_text(&format!("small-{i}"));
            store.insert(key.clone(), entry(1_000));
            // Read once, as a hit would: a frequency-based admission filter
            // then holds every small entry above a newcomer.
            store.lookup(&key, &HeaderMap::new());
        }
        store.usage();
        let large = CacheKey::from_text("large");
        store.insert(large.clone(), entry(64 * 1024));
        store.usage();
        assert!(
            store.lookup(&large, &HeaderMap::new()).is_some(),
            "the newest response is kept; the least recently used ones make room"
        );
    }
}
