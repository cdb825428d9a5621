//! moka's per-entry expiry, used as a memory ceiling only: an entry is
//! dropped once it can no longer be of use (its freshness, plus its stale
//! windows, plus the `keep` time if it can be revalidated). Freshness
//! itself is judged by the entry against our clock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use moka::Expiry;

use super::entry::CachedResponse;
use super::freshness::clamp;
use super::key::CacheKey;
use crate::clock::SharedClock;

/// How long unusable-looking entries are kept for later use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Stale entries may stand in for a failing origin this long.
    pub grace: Duration,
    /// Stale entries with validators are kept this long for revalidation.
    pub keep: Duration,
}

/// moka's expiry: how long an entry can still be of use when (re)inserted.
pub(super) struct Ceiling {
    pub(super) clock: SharedClock,
    pub(super) retention: Arc<ArcSwap<Retention>>,
}

impl Ceiling {
    fn usable_for(&self, value: &CachedResponse) -> Option<Duration> {
        usable_for(value, self.clock.now(), **self.retention.load())
    }
}

/// How long from `now` `value` can still be of use: its freshness, plus
/// its stale windows, plus `keep` if it can be revalidated; `None`: no
/// end (until evicted).
pub fn usable_for(
    value: &CachedResponse,
    now: std::time::SystemTime,
    retention: Retention,
) -> Option<Duration> {
    let fresh = value.remaining(now)?;
    let rules = value.rules();
    let stale_use = rules
        .stale_while_revalidate
        .max(rules.stale_if_error)
        .max(retention.grace);
    let keep = if value.has_validators() {
        retention.keep
    } else {
        Duration::ZERO
    };
    Some(clamp(fresh.saturating_add(stale_use).saturating_add(keep)))
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
