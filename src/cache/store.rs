//! The in-memory store: moka, bounded in bytes by a weigher that counts
//! what an entry really costs ([`super::weight`]) and evicting the least
//! recently used entries, with the variants of a URL (`Vary`) side by side.
//!
//! Freshness is judged by the entry itself against our
//! [`crate::clock::Clock`]; moka's own per-entry expiry is only a ceiling
//! (`cache::expiry`), and its pending work is run promptly by the
//! store's own thread (`cache::maintenance`). Every change wakes the
//! snapshot writer.
//!
//! A response that varies is stored under a variant key (primary key +
//! hash of the request values it was selected by); a small index maps the
//! primary key to the header names it varies on and the variant keys
//! stored, so that a lookup finds the right variant and an invalidation
//! removes them all. A variant that leaves moka for any reason (evicted,
//! expired, removed) leaves the index too. URLs that do not vary cost one
//! index miss.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use dashmap::DashMap;
use http::{HeaderMap, HeaderName, StatusCode};
use moka::notification::RemovalCause;
use moka::policy::EvictionPolicy;
use moka::sync::Cache;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::watch;

use super::entry::CachedResponse;
use super::expiry::Ceiling;
pub use super::expiry::{Retention, usable_for};
use super::key::CacheKey;
use super::maintenance::Maintenance;
use super::partial;
use super::policy::NotStored;
use super::purge::{LogPosition, PurgeRule, RecentPurges};
use super::vary::{VaryValues, variant_key};
use super::weight;
use crate::clock::SharedClock;

/// Why-not-stored notes kept, for `explain` and to skip coalescing for
/// URLs that were just uncacheable (Varnish's hit-for-miss).
const NOT_STORED_NOTES: u64 = 10_000;
/// How long such a note lasts.
const NOT_STORED_FOR: Duration = Duration::from_secs(120);
/// Variants kept per URL; the oldest goes first.
const MAX_VARIANTS: usize = 32;

#[derive(Debug, Default)]
struct VariantIndex {
    names: Vec<HeaderName>,
    keys: Vec<CacheKey>,
}

type Variants = DashMap<CacheKey, VariantIndex>;

/// How full the store is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Stored entries (variants count one each).
    pub entries: u64,
    /// Their weight in bytes, as counted against the bound.
    pub bytes: u64,
}

/// The shared, bounded response cache. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    entries: Cache<CacheKey, Arc<CachedResponse>>,
    not_stored: Cache<CacheKey, NotStored>,
    variants: Arc<Variants>,
    retention: Arc<ArcSwap<Retention>>,
    maintenance: Arc<Maintenance>,
    /// Counts changes; every subscriber (the snapshot writer, tests) sees
    /// the latest count.
    changes: Arc<watch::Sender<u64>>,
    clock: SharedClock,
    purges: Arc<RecentPurges>,
    /// Where in the fleet's purge log the entries are (with a shared tier).
    position: Arc<ArcSwapOption<LogPosition>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("entries", &self.entries.entry_count())
            .field("bytes", &self.entries.weighted_size())
            .finish()
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
        let variants: Arc<Variants> = Arc::default();
        let index = variants.clone();
        let retention = Arc::new(ArcSwap::from_pointee(retention));
        let entries = Cache::builder()
            .eviction_listener(move |key: Arc<CacheKey>, _value, cause| {
                if cause == RemovalCause::Size {
                    evictions.inc();
                }
                if cause != RemovalCause::Replaced {
                    forget_variant(&index, &key);
                }
            })
            .max_capacity(max_bytes)
            // LRU, as nginx and Varnish: moka's default TinyLFU admits a
            // newcomer only if it is read more often than all the entries it
            // would displace together, so a full cache of small entries
            // refuses a large response however hot it is.
            .eviction_policy(EvictionPolicy::lru())
            .weigher(|key: &CacheKey, value: &Arc<CachedResponse>| weight::of_entry(key, value))
            .expire_after(Ceiling {
                clock: clock.clone(),
                retention: retention.clone(),
            })
            .build();
        Store {
            maintenance: Arc::new(Maintenance::start(entries.clone(), max_bytes)),
            entries,
            not_stored: Cache::builder()
                .max_capacity(NOT_STORED_NOTES)
                .time_to_live(NOT_STORED_FOR)
                .build(),
            variants,
            retention,
            changes: Arc::new(watch::Sender::new(0)),
            clock,
            purges: Arc::default(),
            position: Arc::default(),
        }
    }

    /// Changes how long stale entries are kept (a reload): applies to
    /// entries stored from now on.
    pub fn set_retention(&self, retention: Retention) {
        self.retention.store(Arc::new(retention));
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
        let values = {
            let index = self.variants.get(primary)?;
            VaryValues::capture(&index.names, request)
        };
        let key = variant_key(primary, &values);
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
        self.put(key.clone(), entry);
        self.touch();
        key
    }

    /// Stores a fill whose fetch started when [`Store::purge_count`] was
    /// `since`, unless a purge since then removes it; returns the key it is
    /// stored under.
    pub fn insert_fill(
        &self,
        since: u64,
        primary: CacheKey,
        entry: CachedResponse,
        max_object_size: u64,
    ) -> Option<(CacheKey, Arc<CachedResponse>)> {
        if self.purges.purged_since(since, &primary, entry.tags()) {
            return None;
        }
        let key = self.place(primary, entry.vary());
        let entry = if entry.status == StatusCode::PARTIAL_CONTENT {
            let stored = self.entries.get(&key);
            partial::to_store(stored.as_deref(), entry, max_object_size)?
        } else {
            entry
        };
        let stored = self.put(key.clone(), entry);
        self.touch();
        Some((key, stored))
    }

    /// Purges applied so far (a fill notes it when its fetch starts).
    pub fn purge_count(&self) -> u64 {
        self.purges.count()
    }

    /// Applies `rule`; returns how many entries it removed. Walks the
    /// whole cache for a URL, prefix or tag: call it off the runtime
    /// threads.
    pub fn purge(&self, rule: &PurgeRule) -> usize {
        self.purges.record(rule.clone());
        match rule {
            PurgeRule::Key(primary) => self.invalidate(primary),
            PurgeRule::All => usize::try_from(self.clear()).unwrap_or(usize::MAX),
            PurgeRule::Url(_) | PurgeRule::Prefix(_) | PurgeRule::Tag(_) => {
                self.purge_where(|key, entry| rule.matches(key, entry.tags()))
            }
        }
    }

    /// Applies `rules` in order with at most one walk of the cache (the
    /// purge log's batches); returns how many entries they removed.
    pub fn purge_batch(&self, rules: &[PurgeRule]) -> usize {
        // After a purge of everything, only what follows it matters.
        let from = rules.iter().rposition(|r| *r == PurgeRule::All);
        let mut removed = 0;
        if let Some(all) = from {
            rules[..all]
                .iter()
                .for_each(|r| self.purges.record(r.clone()));
            removed += self.purge(&PurgeRule::All);
        }
        let rest = &rules[from.map_or(0, |i| i + 1)..];
        let mut walked = Vec::new();
        for rule in rest {
            match rule {
                PurgeRule::Key(_) => removed += self.purge(rule),
                _ => {
                    self.purges.record(rule.clone());
                    walked.push(rule);
                }
            }
        }
        if !walked.is_empty() {
            removed += self.purge_where(|key, entry| {
                walked.iter().any(|rule| rule.matches(key, entry.tags()))
            });
        }
        removed
    }

    /// Where in the fleet's purge log the entries are.
    pub fn log_position(&self) -> Option<Arc<LogPosition>> {
        self.position.load_full()
    }

    /// Notes that the purge log has been applied up to `position`.
    pub fn set_log_position(&self, position: Option<LogPosition>) {
        self.position.store(position.map(Arc::new));
    }

    /// Replaces the entry stored under `key` (a 304 refreshed it).
    pub fn replace(&self, key: CacheKey, entry: CachedResponse) {
        self.put(key, entry);
        self.touch();
    }

    /// Puts back an entry from the snapshot, read while requests are served
    /// since [`Store::purge_count`] was `since` (no snapshot write follows):
    /// refused when a purge since then removes it, or when the key holds an
    /// entry already (a fill since the start, newer). A variant's key is made
    /// anew from its values, so that a snapshot written with another hash
    /// still finds its variants. Returns whether it was stored.
    pub fn restore_loading(&self, since: u64, key: CacheKey, entry: CachedResponse) -> bool {
        let primary = key.primary();
        if self.purges.purged_since(since, &primary, entry.tags()) {
            return false;
        }
        let key = self.place(primary, entry.vary());
        if self.entries.contains_key(&key) {
            return false;
        }
        self.put(key, entry);
        true
    }

    fn put(&self, key: CacheKey, entry: CachedResponse) -> Arc<CachedResponse> {
        let bytes = weight::of_entry(&key, &entry);
        let entry = Arc::new(entry);
        self.entries.insert(key, entry.clone());
        self.maintenance.inserted(u64::from(bytes));
        entry
    }

    /// The key for a response that varies as `vary` says, updating the
    /// variant index. moka is called only after the index's lock is
    /// released: its removal listener takes that lock too.
    fn place(&self, primary: CacheKey, vary: &VaryValues) -> CacheKey {
        if vary.pairs().is_empty() {
            if let Some((_, old)) = self.variants.remove(&primary) {
                old.keys.iter().for_each(|k| self.entries.invalidate(k));
            }
            return primary;
        }
        let names: Vec<HeaderName> = vary.pairs().iter().map(|(n, _)| n.clone()).collect();
        let key = variant_key(&primary, vary);
        let (unreachable, was_plain) = {
            let mut index = self.variants.entry(primary.clone()).or_default();
            let mut unreachable = Vec::new();
            let was_plain = index.keys.is_empty();
            if index.names != names {
                // The origin changed what it varies on: old variants are
                // unreachable.
                unreachable.append(&mut index.keys);
                index.names = names;
            }
            if !index.keys.contains(&key) {
                if index.keys.len() >= MAX_VARIANTS {
                    unreachable.push(index.keys.remove(0));
                }
                index.keys.push(key.clone());
            }
            (unreachable, was_plain)
        };
        unreachable.iter().for_each(|k| self.entries.invalidate(k));
        if was_plain {
            // A response that did not vary may be stored under the primary key.
            self.entries.invalidate(&primary);
        }
        key
    }

    /// Notes why the last response for `primary` was not stored. Callers
    /// skip this when the note already says `why` (reading is cheaper
    /// than writing; uncacheable URLs repeat a lot).
    pub fn note_not_stored(&self, primary: CacheKey, why: NotStored) {
        self.not_stored.insert(primary, why);
    }

    /// Why the last response for `primary` was not stored, if it was not.
    pub fn not_stored_reason(&self, primary: &CacheKey) -> Option<NotStored> {
        self.not_stored.get(primary)
    }

    /// Removes every entry for which `matches(key, entry)` holds; returns
    /// how many. Walks the whole cache: call it off the runtime threads.
    fn purge_where(&self, matches: impl Fn(&CacheKey, &CachedResponse) -> bool) -> usize {
        let mut removed = 0;
        for (key, entry) in self.iter() {
            if matches(&key, &entry) && self.entries.remove(&key).is_some() {
                removed += 1;
            }
        }
        if removed > 0 {
            self.touch();
        }
        removed
    }

    /// Removes every stored variant of `primary`; returns how many.
    fn invalidate(&self, primary: &CacheKey) -> usize {
        let mut removed = usize::from(self.entries.remove(primary).is_some());
        if let Some((_, index)) = self.variants.remove(primary) {
            for key in index.keys {
                removed += usize::from(self.entries.remove(&key).is_some());
            }
        }
        if removed > 0 {
            self.touch();
        }
        removed
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

    /// Every live entry, one at a time (the snapshot writer and the admin
    /// API walk the cache without holding all of it at once).
    pub fn iter(&self) -> impl Iterator<Item = (CacheKey, Arc<CachedResponse>)> + '_ {
        self.entries
            .iter()
            .map(|(key, value)| ((*key).clone(), value))
    }

    /// Entry count and weighted bytes (after pending maintenance). Waits
    /// for moka's maintenance lock: call it off the runtime threads.
    pub fn usage(&self) -> Usage {
        self.entries.run_pending_tasks();
        Usage {
            entries: self.entries.entry_count(),
            bytes: self.entries.weighted_size(),
        }
    }

    /// URLs in the `Vary` index (for tests and inspection).
    pub fn varying_urls(&self) -> usize {
        self.variants.len()
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

/// Removes a variant that left moka from its URL's index line, and the
/// line once it lists none.
fn forget_variant(index: &Variants, key: &CacheKey) {
    if !key.is_variant() {
        return;
    }
    index.remove_if_mut(key.primary_text(), |_, line| {
        line.keys.retain(|k| k != key);
        line.keys.is_empty()
    });
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
    use std::sync::atomic::Ordering;
    use std::time::{Instant, SystemTime};

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
        let Usage {
            entries: count,
            bytes,
        } = store.usage();
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

    #[test]
    fn a_snapshot_read_while_serving_yields_to_fills_and_purges() {
        let store = store(1 << 20);
        let none = HeaderMap::new();
        let since = store.purge_count();
        let (filled, purged, kept) = (
            CacheKey::from_text("http://o h/filled"),
            CacheKey::from_text("http://o h/purged"),
            CacheKey::from_text("http://o h/kept"),
        );
        store.insert(filled.clone(), entry(7));
        store.purge(&PurgeRule::Key(purged.clone()));
        assert!(!store.restore_loading(since, filled.clone(), entry(1)));
        assert!(!store.restore_loading(since, purged.clone(), entry(1)));
        assert!(store.restore_loading(since, kept.clone(), entry(1)));
        let len = |key: &CacheKey| store.lookup(key, &none).map(|(_, e)| e.body.len());
        assert_eq!(len(&filled), Some(7), "the fill since the start stays");
        assert_eq!(len(&purged), None, "purged while loading: not restored");
        assert_eq!(len(&kept), Some(1));
        store.purge(&PurgeRule::All);
        assert!(!store.restore_loading(since, kept, entry(1)));
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

    /// A body whose release is counted, to see when the store lets go.
    struct Counted(Vec<u8>, Arc<std::sync::atomic::AtomicUsize>);

    impl AsRef<[u8]> for Counted {
        fn as_ref(&self) -> &[u8] {
            &self.0
        }
    }

    impl Drop for Counted {
        fn drop(&mut self) {
            self.1.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counted(bytes: usize, released: &Arc<std::sync::atomic::AtomicUsize>) -> CachedResponse {
        CachedResponse::new(
            StatusCode::OK,
            HeaderMap::new(),
            Bytes::from_owner(Counted(vec![b'x'; bytes], released.clone())),
            SystemTime::now(),
            None,
            Duration::ZERO,
            VaryValues::default(),
            ReuseRules::default(),
        )
    }

    #[test]
    fn evictions_keep_up_with_large_inserts() {
        let store = store(8 << 20);
        let released = Arc::default();
        for i in 0..100 {
            store.insert(
                CacheKey::from_text(&format!("big-{i}")),
                counted(1 << 20, &released),
            );
        }
        // Nothing reads or writes any more: moka alone would apply the
        // last inserts (and evict for them) only at the next operation.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let held = 100 - released.load(Ordering::SeqCst);
            if held <= 8 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{held} MiB still held by an 8 MiB store"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn evicted_variants_leave_the_vary_index() {
        let store = store(1 << 20);
        for i in 0..5_000 {
            let primary = CacheKey::from_text(&format!("http://o h/page-{i}"));
            store.insert(
                primary,
                variant(100, VaryValues::capture(&[ACCEPT_LANGUAGE], &lang("en"))),
            );
        }
        store.usage();
        let entries = store.usage().entries;
        assert!(entries < 5_000, "the bound evicted some: {entries}");
        assert_eq!(
            store.varying_urls() as u64,
            entries,
            "one index line per stored URL, none for evicted ones"
        );
        store.clear();
        assert_eq!(store.varying_urls(), 0);
    }

    #[test]
    fn a_new_retention_applies_to_entries_stored_after_it() {
        let store = store(1 << 20);
        let stale = || {
            CachedResponse::new(
                StatusCode::OK,
                HeaderMap::new(),
                Bytes::from_static(b"s"),
                SystemTime::now() - Duration::from_secs(10),
                Some(Duration::from_secs(1)),
                Duration::ZERO,
                VaryValues::default(),
                ReuseRules::default(),
            )
        };
        let key = CacheKey::from_text("stale");
        store.insert(key.clone(), stale());
        store.usage();
        assert!(
            store.lookup(&key, &HeaderMap::new()).is_none(),
            "no grace: gone"
        );
        store.set_retention(Retention {
            grace: Duration::from_secs(3600),
            keep: Duration::ZERO,
        });
        store.insert(key.clone(), stale());
        store.usage();
        assert!(
            store.lookup(&key, &HeaderMap::new()).is_some(),
            "kept for the grace"
        );
    }

    #[test]
    fn the_weight_of_an_entry_covers_its_allocations() {
        let key = CacheKey::from_text("http://o h/p");
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain"),
        );
        headers.insert("x-custom", HeaderValue::from_static("value"));
        let entry = CachedResponse::new(
            StatusCode::OK,
            headers,
            Bytes::from(vec![b'x'; 1000]),
            SystemTime::now(),
            None,
            Duration::ZERO,
            VaryValues::default(),
            ReuseRules::default(),
        );
        let weight = weight::of_entry(&key, &entry) as usize;
        let at_least = 1000
            + std::mem::size_of::<CachedResponse>()
            + key.as_str().len()
            + "text/plain".len()
            + "value".len()
            + weight::MOKA_PER_ENTRY;
        assert!(weight >= at_least, "{weight} < {at_least}");
        assert!(weight < at_least * 3 / 2, "not wildly more: {weight}");
        let large = CachedResponse::new(
            StatusCode::OK,
            HeaderMap::new(),
            Bytes::from(vec![b'x'; 1 << 20]),
            SystemTime::now(),
            None,
            Duration::ZERO,
            VaryValues::default(),
            ReuseRules::default(),
        );
        let large_weight = weight::of_entry(&key, &large) as usize;
        assert!(
            large_weight > 1 << 20 && large_weight < (1 << 20) + 2048,
            "a large body is counted as its own pages: {large_weight}"
        );
        let varied = CacheKey::variant(&key, 7);
        assert!(
            weight::of_entry(&varied, &entry) as usize > weight + key.as_str().len(),
            "a variant also pays for its index line and its primary key's text"
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
