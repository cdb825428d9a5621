//! The shared tier as the request path sees it: look a URL up (one round
//! trip for a URL that does not vary), write a fill, remember a URL that
//! is not storable (fleet-wide hit-for-pass), and take the fleet's fetch
//! lease for a URL, renewed while its fetch runs and released by the
//! owner only. Every write that ends a fetch announces it on the `filled`
//! channel, which wakes the instances waiting for that URL.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use bytes::Bytes;
use dashmap::DashMap;
use http::{HeaderMap, HeaderName};
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

use super::client::{COOL_DOWN, SharedClient, TierError, px};
use super::keys::Keys;
use super::lease;
use super::log_id::LogId;
use super::rules::Rules;
use super::value;
use crate::breaker::State;
use crate::cache::store::Retention;
use crate::cache::vary::VaryValues;
use crate::cache::{CacheKey, CachedResponse, Store};
use crate::config::SharedConfig;
use crate::metrics::SharedCounters;

/// Reads a URL's value, `Vary` names and pass note; with nothing there
/// (and ARGV[3] = '1'), takes the lease or answers its holder's time left,
/// as `lease::take_or_ttl` does. KEYS: value, vary names, pass note,
/// lease. ARGV: owner, px, whether to take the lease.
const LOOK_OR_LEASE: &str = r"
local value = redis.call('GET', KEYS[1])
local names = redis.call('GET', KEYS[2])
local pass = redis.call('GET', KEYS[3])
local lease = false
if not value and not names and not pass and ARGV[3] == '1' then
  if redis.call('SET', KEYS[4], ARGV[1], 'NX', 'PX', ARGV[2]) then
    lease = -3
  else
    lease = redis.call('PTTL', KEYS[4])
  end
end
return {value, names, pass, lease}
";

/// What the shared tier knows of a URL.
#[derive(Debug)]
pub enum Lookup {
    /// A stored response for this request, with the key it is stored
    /// under.
    Found(CacheKey, CachedResponse),
    /// Not storable for the fleet lately: fetch without a lease.
    Pass,
    /// Nothing; with the fleet lease's state if the look took it.
    Miss(Option<Taken>),
    /// The tier did not answer (or is skipped).
    Unavailable,
}

/// The fleet's fetch lease for a URL, as [`SharedTier::take_lease`] found it.
#[derive(Debug)]
pub enum Taken {
    /// This instance fetches.
    Mine(LeaseHold),
    /// Another instance fetches; its lease ends within this long.
    Held(Duration),
}

/// This instance's lease on a URL's fetch: renewed while held; released
/// (and the waiters woken) when dropped without a fill.
#[derive(Debug)]
pub struct LeaseHold {
    tier: Arc<SharedTier>,
    primary: CacheKey,
    owner: String,
    renewing: CancellationToken,
    released: bool,
}

impl LeaseHold {
    /// Ends the lease here: the caller's write releases it.
    pub(super) fn consume(mut self) -> String {
        self.released = true;
        self.renewing.cancel();
        std::mem::take(&mut self.owner)
    }
}

impl Drop for LeaseHold {
    fn drop(&mut self) {
        self.renewing.cancel();
        if self.released {
            return;
        }
        let tier = self.tier.clone();
        let primary = self.primary.clone();
        let owner = std::mem::take(&mut self.owner);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { tier.end_lease(&primary, "", &owner).await });
        }
    }
}

/// Where this instance is in the fleet's purge log.
#[derive(Debug, Clone, Default)]
pub(super) struct Position {
    /// The log's identity (empty: not read yet).
    pub log: String,
    /// The last entry applied to this instance's store.
    pub applied: LogId,
}

/// The shared tier of one instance.
pub struct SharedTier {
    pub(super) client: SharedClient,
    /// The purge log reader's own connection (it blocks).
    pub(super) reader: SharedClient,
    /// Purge log entries this instance added and applied already.
    pub(super) issued: std::sync::Mutex<std::collections::HashSet<LogId>>,
    /// Where the start's catch-up left the reader.
    pub(super) cursor: std::sync::Mutex<Option<LogId>>,
    pub(super) keys: Keys,
    pub(super) config: SharedConfig,
    pub(super) store: Store,
    pub(super) rules: Rules,
    pub(super) position: ArcSwap<Position>,
    /// Waiters for a URL's fill, by primary key text.
    waiters: DashMap<Box<str>, Arc<Notify>>,
    /// Purge confirmations as they arrive: (node, applied position).
    pub(super) acks: broadcast::Sender<(String, LogId)>,
    /// Whether the purge log reader is connected and caught up.
    pub(super) log_ready: tokio::sync::watch::Sender<bool>,
    pub(super) counters: SharedCounters,
    pub(super) retention: ArcSwap<Retention>,
    fetches: AtomicU64,
}

impl std::fmt::Debug for SharedTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedTier")
            .field("redis", &self.config.redis.describe())
            .field("node", &self.config.node_id)
            .field("state", &self.client.state())
            .finish_non_exhaustive()
    }
}

impl SharedTier {
    /// The tier `config` describes, for `store`. Does not connect: the
    /// first call does, so that a Redis that is down does not stop a start.
    pub fn new(
        config: SharedConfig,
        store: Store,
        retention: Retention,
        counters: SharedCounters,
    ) -> Result<Arc<Self>, redis::RedisError> {
        let client = SharedClient::connect(&config.redis, config.timeout, COOL_DOWN)?
            .counting(counters.clone());
        let reader = SharedClient::connect(
            &config.redis,
            super::client::reader_timeout(config.timeout),
            COOL_DOWN,
        )?;
        Ok(Arc::new(SharedTier {
            client,
            reader,
            issued: std::sync::Mutex::default(),
            cursor: std::sync::Mutex::default(),
            keys: Keys::new(&config.prefix),
            config,
            store,
            rules: Rules::default(),
            position: ArcSwap::default(),
            waiters: DashMap::new(),
            acks: broadcast::channel(256).0,
            log_ready: tokio::sync::watch::Sender::new(false),
            counters,
            retention: ArcSwap::from_pointee(retention),
            fetches: AtomicU64::new(0),
        }))
    }

    /// Follows a reload's retention (Redis expiries include its windows).
    pub fn set_retention(&self, retention: Retention) {
        self.retention.store(Arc::new(retention));
    }

    /// This instance's name in the fleet.
    pub fn node_id(&self) -> &str {
        &self.config.node_id
    }

    /// Whether the tier is used or skipped.
    pub fn state(&self) -> State {
        self.client.state()
    }

    /// Whether the purge log has been read up to date since the last
    /// connection to Redis.
    pub fn log_ready(&self) -> tokio::sync::watch::Receiver<bool> {
        self.log_ready.subscribe()
    }

    /// The purge log position a fetch starting now records in its value.
    pub fn watermark(&self) -> LogId {
        self.position.load().applied
    }

    /// The stored response for `primary` that a request with `request`
    /// headers selects, in one round trip for a URL that does not vary (a
    /// `GET` of the variant follows when it does). With `lease`, a URL with
    /// nothing stored also has its fleet lease taken in that round trip.
    pub async fn lookup(
        self: &Arc<Self>,
        primary: &CacheKey,
        request: &HeaderMap,
        now: SystemTime,
        lease: bool,
    ) -> Lookup {
        let owner = self.next_owner();
        let mut eval = redis::cmd("EVAL");
        eval.arg(LOOK_OR_LEASE)
            .arg(4)
            .arg(self.keys.entry(primary))
            .arg(self.keys.vary(primary))
            .arg(self.keys.not_stored(primary))
            .arg(self.keys.lease(primary))
            .arg(&owner)
            .arg(px(self.config.lease))
            .arg(if lease { "1" } else { "0" });
        type Found = (
            Option<Vec<u8>>,
            Option<Vec<u8>>,
            Option<Vec<u8>>,
            Option<i64>,
        );
        let (value, names, pass, leased): Found = match self.client.call(eval).await {
            Ok(found) => found,
            Err(_) => return Lookup::Unavailable,
        };
        if pass.is_some() {
            return Lookup::Pass;
        }
        if value.is_none() && names.is_none() {
            self.counters.misses.inc();
            return Lookup::Miss(leased.map(|answer| self.taken(primary, owner, answer)));
        }
        let (key, value) = match (value, names) {
            (Some(value), _) => (primary.clone(), value),
            (None, Some(names)) => {
                let Some(names) = vary_names(&names) else {
                    return self.missed();
                };
                let key =
                    crate::cache::vary::variant_key(primary, &VaryValues::capture(&names, request));
                match self.client.get(&self.keys.entry(&key)).await {
                    Ok(Some(value)) => (key, value.to_vec()),
                    Ok(None) => return self.missed(),
                    Err(_) => return Lookup::Unavailable,
                }
            }
            (None, None) => return self.missed(),
        };
        let max = self.config.max_object_size;
        let (entry, since) = match value::decode(Bytes::from(value), now, max) {
            Ok(decoded) => decoded,
            Err(err) => {
                tracing::debug!(error = %err, key = %key, "unreadable value in the shared tier");
                return self.missed();
            }
        };
        if !entry.vary().matches(request) || self.rules.purged_since(since, &key, entry.tags()) {
            return self.missed();
        }
        self.counters.hits.inc();
        Lookup::Found(key, entry)
    }

    fn missed(&self) -> Lookup {
        self.counters.misses.inc();
        Lookup::Miss(None)
    }

    fn next_owner(&self) -> String {
        let number = self.fetches.fetch_add(1, Ordering::Relaxed);
        format!("{}#{number}", self.config.node_id)
    }

    /// The lease as a take answered it (see [`lease::take_or_ttl`]).
    fn taken(self: &Arc<Self>, primary: &CacheKey, owner: String, answer: i64) -> Taken {
        match lease::answer(answer) {
            None => {
                let renewing = CancellationToken::new();
                let key = self.keys.lease(primary);
                tokio::spawn(renew(self.clone(), key, owner.clone(), renewing.clone()));
                Taken::Mine(LeaseHold {
                    tier: self.clone(),
                    primary: primary.clone(),
                    owner,
                    renewing,
                    released: false,
                })
            }
            Some(left) => Taken::Held(left),
        }
    }

    /// Takes the fleet's lease on `primary`'s fetch, or says how long the
    /// holder's lasts.
    pub async fn take_lease(self: &Arc<Self>, primary: &CacheKey) -> Result<Taken, TierError> {
        let owner = self.next_owner();
        let key = self.keys.lease(primary);
        let answer = lease::take_or_ttl(&self.client, &key, &owner, self.config.lease).await?;
        Ok(self.taken(primary, owner, answer))
    }

    /// A waiter for `primary`'s next fill announcement: call before
    /// looking, then await [`Notify::notified`] on it.
    pub fn waiter(&self, primary: &CacheKey) -> Arc<Notify> {
        self.waiters
            .entry(primary.as_str().into())
            .or_default()
            .clone()
    }

    /// Forgets `waiter` if nobody else waits on it.
    pub fn done_waiting(&self, primary: &CacheKey, waiter: &Arc<Notify>) {
        self.waiters.remove_if(primary.as_str(), |_, current| {
            Arc::ptr_eq(current, waiter) && Arc::strong_count(current) <= 2
        });
    }

    /// Wakes the waiters of the primary key `text` (a fill was announced).
    pub(super) fn filled(&self, text: &str) {
        if let Some((_, waiter)) = self.waiters.remove(text) {
            waiter.notify_waiters();
        }
    }

    /// Probes the tier while its breaker is open, off the request path,
    /// until `cancel` (requests skip it meanwhile; it is used again within
    /// one cool-down of Redis's return).
    pub async fn probe_while_open(self: Arc<Self>, cancel: CancellationToken) {
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(COOL_DOWN / 5) => {}
            }
            self.client.probe().await;
        }
    }

    /// Wakes every waiter (announcements may have been missed).
    pub(super) fn wake_all(&self) {
        self.waiters.iter().for_each(|w| w.value().notify_waiters());
    }

    /// The fleet's lease length.
    pub fn lease_length(&self) -> Duration {
        self.config.lease
    }

    /// The tier's state and counts, for `/stats`.
    pub fn stats(&self) -> serde_json::Value {
        let position = self.position.load();
        let c = &self.counters;
        serde_json::json!({
            "redis": self.config.redis.describe(),
            "node": self.config.node_id,
            "state": self.state().as_str(),
            "purge_log": {
                "applied": position.applied.to_string(),
                "caught_up": *self.log_ready.borrow(),
                "lag_ms": c.purge_lag_ms.get(),
                "applied_from_others": c.purges_applied.get(),
            },
            "hits": c.hits.get(),
            "misses": c.misses.get(),
            "fills": c.fills.get(),
            "fleet_waits": c.fleet_waits.get(),
            "lease_takeovers": c.lease_takeovers.get(),
            "timeouts": c.timeouts.get(),
            "errors": c.errors.get(),
        })
    }
}

/// Renews `owner`'s lease every third of its length until cancelled or lost.
async fn renew(tier: Arc<SharedTier>, key: String, owner: String, stop: CancellationToken) {
    let length = tier.config.lease;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(length / 3) => {}
        }
        match lease::renew(&tier.client, &key, &owner, length).await {
            Ok(true) => {}
            Ok(false) => return, // lost (expired, or purged): nothing to keep
            Err(_) => {}         // the next try may work; the lease lasts a while
        }
    }
}

/// `Vary` names as the tier keeps them (`a,b`); `None` if not names.
fn vary_names(text: &[u8]) -> Option<Vec<HeaderName>> {
    std::str::from_utf8(text)
        .ok()?
        .split(',')
        .map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
        .collect()
}
