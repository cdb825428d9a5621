//! Writes that end a URL's fetch for the fleet: the response (with its
//! `Vary` names), or a note that it is not storable for the fleet; each
//! releases the writer's lease and announces the end on the `filled`
//! channel, in one script (the keys of a URL share a slot on a cluster).

use std::sync::Arc;
use std::time::Duration;

use super::client::px;
use super::log_id::LogId;
use super::tier::{LeaseHold, SharedTier};
use super::value;
use crate::cache::store::usable_for;
use crate::cache::{CacheKey, CachedResponse};

/// How long a "not storable" note keeps later misses from waiting for a
/// lease (as the first tier's own note).
const PASS_FOR: Duration = Duration::from_secs(120);
/// The longest a value lives in Redis (an entry fresh "until evicted").
const LONGEST: Duration = Duration::from_secs(30 * 86_400);
/// Writes a value, keeps the URL's `Vary` names, drops a stale pass note,
/// releases the writer's lease and announces the fill, in one step.
/// KEYS: value, vary names, primary value, lease, pass note.
/// ARGV: value, px, vary names ('' for none), lease owner ('' for none),
/// channel, message.
const FILL: &str = r"
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if ARGV[3] ~= '' then
  if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then
    redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2])
  else
    redis.call('SET', KEYS[2], ARGV[3], 'KEEPTTL')
  end
  redis.call('DEL', KEYS[3])
elseif KEYS[1] == KEYS[3] then
  redis.call('DEL', KEYS[2])
end
redis.call('DEL', KEYS[5])
if ARGV[4] ~= '' and redis.call('GET', KEYS[4]) == ARGV[4] then
  redis.call('DEL', KEYS[4])
end
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 1
";

/// Notes that the URL is not stored (or stored per instance only),
/// releases the lease and announces it. KEYS: pass note, lease.
/// ARGV: reason, px, lease owner, channel, message.
const PASS: &str = r"
if ARGV[1] ~= '' then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
if redis.call('GET', KEYS[2]) == ARGV[3] then
  redis.call('DEL', KEYS[2])
end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
";

impl SharedTier {
    /// Writes `entry`, stored here under `key` for `primary` by a fetch
    /// that started at `since`, releasing `lease`; in the background. A
    /// value over the tier's size limit is noted as kept per instance, so
    /// that other instances fetch it without waiting.
    pub fn fill(
        self: &Arc<Self>,
        primary: CacheKey,
        key: CacheKey,
        entry: Arc<CachedResponse>,
        since: LogId,
        lease: Option<LeaseHold>,
    ) {
        let tier = self.clone();
        let owner = lease.map(LeaseHold::consume).unwrap_or_default();
        tokio::spawn(async move {
            let now = tier.store.clock().now();
            let ttl = usable_for(&entry, now, **tier.retention.load())
                .map_or(LONGEST, |ttl| ttl.min(LONGEST));
            let encoded = value::encode(&entry, since)
                .filter(|v| v.len() as u64 <= tier.config.max_object_size);
            let Some(encoded) = encoded else {
                tier.end_lease(&primary, "local", &owner).await;
                return;
            };
            let names = entry
                .vary()
                .pairs()
                .iter()
                .map(|(name, _)| name.as_str())
                .collect::<Vec<_>>()
                .join(",");
            let mut eval = redis::cmd("EVAL");
            eval.arg(FILL)
                .arg(5)
                .arg(tier.keys.entry(&key))
                .arg(tier.keys.vary(&primary))
                .arg(tier.keys.entry(&primary))
                .arg(tier.keys.lease(&primary))
                .arg(tier.keys.not_stored(&primary))
                .arg(encoded)
                .arg(px(ttl))
                .arg(names)
                .arg(owner)
                .arg(tier.keys.filled_channel())
                .arg(primary.as_str());
            match tier.client.call::<i64>(eval).await {
                Ok(_) => {
                    tier.counters.fills.inc();
                }
                Err(err) => tracing::debug!(error = %err, "fill not written to the shared tier"),
            }
        });
    }

    /// Notes that `primary`'s response was not stored (`why`), releasing
    /// `lease`; in the background.
    pub fn not_stored(self: &Arc<Self>, primary: CacheKey, why: &'static str, lease: LeaseHold) {
        let tier = self.clone();
        let owner = lease.consume();
        tokio::spawn(async move { tier.end_lease(&primary, why, &owner).await });
    }

    /// Releases `owner`'s lease on `primary` and wakes the waiters,
    /// noting `why` it was not stored in the tier (if not empty).
    pub(super) async fn end_lease(&self, primary: &CacheKey, why: &str, owner: &str) {
        let mut eval = redis::cmd("EVAL");
        eval.arg(PASS)
            .arg(2)
            .arg(self.keys.not_stored(primary))
            .arg(self.keys.lease(primary))
            .arg(why)
            .arg(px(PASS_FOR))
            .arg(owner)
            .arg(self.keys.filled_channel())
            .arg(primary.as_str());
        if let Err(err) = self.client.call::<i64>(eval).await {
            tracing::debug!(error = %err, "lease not released; it expires");
        }
    }
}
