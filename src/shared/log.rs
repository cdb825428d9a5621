//! The fleet's purge log: a Redis Stream of purges and invalidations, so
//! that an instance that was cut off catches up from the last entry it
//! applied instead of missing what a bare pub/sub message would have said.
//!
//! - An instance that purges applies the purge to its own store, appends
//!   it to the log, and waits (briefly) for the other live instances to
//!   confirm it on the `acks` channel.
//! - Every instance follows the log on its own connection (`XREAD
//!   BLOCK`): each entry becomes a rule that values read from Redis are
//!   checked against ([`super::rules`]), and is applied to its store.
//! - On every (re)connection it checks the log: if Redis lost its data
//!   (the log's identity changed) or entries it had not read were
//!   trimmed, it empties its first tier, as it cannot know what it missed.
//! - Its position is kept with the store and written into `cache.json`,
//!   so that a restart replays what it missed before serving the snapshot.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use redis::Value;
use redis::streams::StreamReadReply;
use tokio_util::sync::CancellationToken;

use super::client::{BLOCK, COOL_DOWN, SharedClient, TierError, reader_timeout};
use super::keys::Keys;
use super::log_id::LogId;
use super::tier::{Position, SharedTier};
use crate::cache::purge::{LogPosition, PurgeRule};
use crate::clock::{unix_millis, wall_now};
use crate::config::SharedConfig;

/// Entries kept in the log (approximately: `MAXLEN ~`).
const LOG_LENGTH: u64 = 10_000;
/// Entries read at once.
const BATCH: usize = 512;

/// Makes the log's identity once; answers the identity in force.
const IDENTITY: &str =
    "redis.call('SET', KEYS[1], ARGV[1], 'NX') return redis.call('GET', KEYS[1])";

/// Who confirmed a purge.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Fanout {
    /// Its position in the log.
    pub id: String,
    /// Instances that applied it (this one first).
    pub confirmed: Vec<String>,
    /// Live instances that did not confirm it in time.
    pub missing: Vec<String>,
    /// Milliseconds from its append to the last confirmation (or to the
    /// end of the wait).
    pub took_ms: f64,
}

/// Appends a purge of everything to the fleet's log from outside any
/// instance (`--clear-cache` with no instance running here): every
/// instance applies it, now or when it next reads the log. Returns its id.
pub async fn clear_fleet(config: &SharedConfig) -> Result<String, TierError> {
    let client = SharedClient::connect(&config.redis, reader_timeout(config.timeout), COOL_DOWN)
        .map_err(TierError::Redis)?;
    let keys = Keys::new(&config.prefix);
    let mut xadd = redis::cmd("XADD");
    xadd.arg(keys.purges())
        .arg("MAXLEN")
        .arg("~")
        .arg(LOG_LENGTH)
        .arg("*")
        .arg("op")
        .arg(PurgeRule::All.op())
        .arg("arg")
        .arg("")
        .arg("node")
        .arg(format!("{}/clear-cache", config.node_id));
    client.call(xadd).await
}

impl SharedTier {
    /// Carries `rule` (already applied here) to the whole fleet and waits
    /// up to `wait` for the other live instances to confirm it.
    pub async fn publish_purge(
        &self,
        rule: &PurgeRule,
        wait: Duration,
    ) -> Result<Fanout, TierError> {
        let mut acks = self.acks.subscribe();
        let members = self.members().await.unwrap_or_default();
        let mut xadd = redis::cmd("XADD");
        xadd.arg(self.keys.purges())
            .arg("MAXLEN")
            .arg("~")
            .arg(LOG_LENGTH)
            .arg("*")
            .arg("op")
            .arg(rule.op())
            .arg("arg")
            .arg(rule.arg())
            .arg("node")
            .arg(self.node_id());
        let text: String = self.client.call(xadd).await?;
        let appended = crate::clock::Stopwatch::start();
        let id = LogId::parse(&text).unwrap_or_default();
        // Known before the reader reads it back: no value fetched before
        // it is promoted from Redis here in between.
        self.rules.add(id, rule);
        self.issued
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id);
        if let PurgeRule::Key(key) = rule {
            // Frees the URL's memory in Redis at once (the rule already
            // refuses its values); variants expire with their time.
            let keys = [self.keys.entry(key), self.keys.vary(key)];
            let _ = self
                .client
                .delete(&keys.iter().map(String::as_str).collect::<Vec<_>>())
                .await;
        }
        let mut missing: HashSet<String> = members
            .into_iter()
            .filter(|node| node != self.node_id())
            .collect();
        let mut confirmed = vec![self.node_id().to_owned()];
        let deadline = tokio::time::Instant::now() + wait;
        while !missing.is_empty() {
            match tokio::time::timeout_at(deadline, acks.recv()).await {
                Ok(Ok((node, applied))) if applied >= id => {
                    if missing.remove(&node) {
                        confirmed.push(node);
                    }
                }
                Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) | Err(_) => break,
            }
        }
        let mut missing: Vec<String> = missing.into_iter().collect();
        missing.sort();
        Ok(Fanout {
            id: text,
            confirmed,
            missing,
            took_ms: appended.elapsed().as_secs_f64() * 1000.0,
        })
    }

    /// Appends `rule` to the log without waiting for confirmations (an
    /// invalidation after an unsafe request), in the background.
    pub fn announce_purge(self: &Arc<Self>, rule: PurgeRule) {
        let tier = self.clone();
        tokio::spawn(async move {
            if let Err(err) = tier.publish_purge(&rule, Duration::ZERO).await {
                tracing::warn!(
                    error = %crate::error::chain(&err),
                    op = rule.op(),
                    "invalidation not carried to the fleet"
                );
            }
        });
    }

    /// Starts from the position a snapshot recorded (`None`: none).
    pub fn start_from(&self, snapshot: Option<&LogPosition>) {
        if let Some(position) = snapshot {
            self.position.store(Arc::new(Position {
                log: position.log.clone(),
                applied: LogId::parse(&position.applied).unwrap_or_default(),
            }));
        }
    }

    /// Reads the log up to date once (at start, before serving the
    /// snapshot), within `within`; false if Redis did not let it.
    pub async fn catch_up(&self, within: Duration) -> bool {
        match tokio::time::timeout(within, self.read_up_to_date()).await {
            Ok(Ok(cursor)) => {
                *self.cursor.lock().unwrap_or_else(|p| p.into_inner()) = Some(cursor);
                // Known to the fleet before it serves: purges wait for it.
                self.heartbeat().await;
                self.log_ready.send_replace(true);
                true
            }
            Ok(Err(_)) | Err(_) => false,
        }
    }

    /// Follows the log until `cancel`: applies each entry, confirms it,
    /// says this instance is alive; reconnects (and checks for gaps) after
    /// any failure.
    pub async fn follow_log(self: Arc<Self>, cancel: CancellationToken) {
        let mut cursor = self.cursor.lock().unwrap_or_else(|p| p.into_inner()).take();
        let mut last_seen = None;
        loop {
            let synced = match cursor {
                Some(at) => Ok(at),
                None => self.read_up_to_date().await,
            };
            let mut at: LogId = match synced {
                Ok(at) => at,
                Err(_) => {
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        () = tokio::time::sleep(COOL_DOWN) => {}
                    }
                    // The reader's own connection has its own breaker.
                    self.reader.probe().await;
                    continue;
                }
            };
            self.log_ready.send_replace(true);
            loop {
                if last_seen.is_none_or(|at: tokio::time::Instant| at.elapsed() >= BLOCK) {
                    self.heartbeat().await;
                    last_seen = Some(tokio::time::Instant::now());
                }
                let read = tokio::select! {
                    () = cancel.cancelled() => None,
                    read = self.read(&self.reader, at, Some(BLOCK)) => Some(read),
                };
                match read {
                    None => {
                        self.leave().await;
                        return;
                    }
                    Some(Ok(entries)) if entries.is_empty() => {}
                    Some(Ok(entries)) => at = self.apply(entries).await,
                    Some(Err(_)) => break,
                }
            }
            // Cut off: until the log is read again, say so; on return the
            // log is checked for what was lost.
            self.log_ready.send_replace(false);
            cursor = None;
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(COOL_DOWN / 5) => {}
            }
            self.reader.probe().await;
        }
        self.leave().await;
    }

    /// Checks the log, then reads it to its end; returns where it ended.
    async fn read_up_to_date(&self) -> Result<LogId, TierError> {
        let mut cursor = self.sync().await?;
        loop {
            let entries = self.read(&self.client, cursor, None).await?;
            if entries.is_empty() {
                return Ok(cursor);
            }
            cursor = self.apply(entries).await;
        }
    }

    /// Checks the log's identity and what was trimmed from it; empties the
    /// first tier if what this instance missed cannot be known. Returns
    /// where to read from.
    async fn sync(&self) -> Result<LogId, TierError> {
        let fresh = format!(
            "{:016x}",
            xxhash_rust::xxh3::xxh3_64(
                format!("{}{}", self.node_id(), unix_millis(wall_now())).as_bytes()
            )
        );
        let mut eval = redis::cmd("EVAL");
        eval.arg(IDENTITY)
            .arg(1)
            .arg(self.keys.log_identity())
            .arg(fresh);
        let identity: String = self.client.call(eval).await?;
        let trimmed = self.trimmed_up_to().await?;
        let known = self.position.load_full();
        let mut position = Position {
            log: identity.clone(),
            applied: known.applied,
        };
        if !known.log.is_empty() && known.log != identity {
            tracing::warn!(
                "the shared tier lost its data (Redis restarted empty?); emptying this instance's cache"
            );
            self.flush_first_tier().await;
            self.rules.reset(LogId::ZERO);
            position.applied = LogId::ZERO;
        } else if trimmed > known.applied && !known.log.is_empty() {
            tracing::warn!(
                applied = %known.applied,
                trimmed = %trimmed,
                "purges this instance did not apply were trimmed from the log; emptying its cache"
            );
            self.flush_first_tier().await;
            position.applied = trimmed;
        }
        self.rules.raise_floor(trimmed);
        self.position.store(Arc::new(position));
        self.record_position();
        // The whole log is read again on each (re)connection: the rules
        // must cover every entry a value in Redis may predate; entries
        // this store already applied are not applied twice.
        Ok(LogId::ZERO)
    }

    /// The last entry trimmed from the log (`0-0` if none, or no log).
    async fn trimmed_up_to(&self) -> Result<LogId, TierError> {
        let mut xinfo = redis::cmd("XINFO");
        xinfo.arg("STREAM").arg(self.keys.purges());
        match self.client.call::<HashMap<String, Value>>(xinfo).await {
            Ok(info) => Ok(info
                .get("max-deleted-entry-id")
                .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
                .and_then(|id| LogId::parse(&id))
                .unwrap_or_default()),
            // No log yet.
            Err(TierError::Redis(err)) if err.to_string().contains("no such key") => {
                Ok(LogId::ZERO)
            }
            Err(err) => Err(err),
        }
    }

    /// Entries after `after`, waiting up to `block` for one.
    async fn read(
        &self,
        client: &SharedClient,
        after: LogId,
        block: Option<Duration>,
    ) -> Result<Vec<(LogId, Option<PurgeRule>, String)>, TierError> {
        let mut xread = redis::cmd("XREAD");
        xread.arg("COUNT").arg(BATCH);
        if let Some(block) = block {
            xread
                .arg("BLOCK")
                .arg(u64::try_from(block.as_millis()).unwrap_or(1000));
        }
        xread
            .arg("STREAMS")
            .arg(self.keys.purges())
            .arg(after.to_string());
        let reply: Option<StreamReadReply> = client.call(xread).await?;
        let field = |map: &HashMap<String, Value>, name: &str| {
            map.get(name)
                .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
                .unwrap_or_default()
        };
        Ok(reply
            .into_iter()
            .flat_map(|reply| reply.keys)
            .flat_map(|key| key.ids)
            .filter_map(|entry| {
                let id = LogId::parse(&entry.id)?;
                let rule = PurgeRule::from_op(&field(&entry.map, "op"), &field(&entry.map, "arg"));
                Some((id, rule, field(&entry.map, "node")))
            })
            .collect())
    }

    /// Applies `entries` (in log order): rules for values in Redis, purges
    /// of this store for those it has not applied; confirms them. Returns
    /// the last entry's id.
    async fn apply(&self, entries: Vec<(LogId, Option<PurgeRule>, String)>) -> LogId {
        let applied = self.position.load().applied;
        let last = entries.last().map_or(applied, |(id, _, _)| *id);
        let mut purges = Vec::new();
        let mut newest_foreign = None;
        {
            let mut issued = self.issued.lock().unwrap_or_else(|p| p.into_inner());
            for (id, rule, node) in &entries {
                let Some(rule) = rule else {
                    tracing::warn!(%id, "purge log entry not understood; emptying this instance's cache to be safe");
                    purges.push(PurgeRule::All);
                    continue;
                };
                self.rules.add(*id, rule);
                let mine = issued.remove(id);
                if *id > applied && !mine {
                    purges.push(rule.clone());
                    if node != self.node_id() {
                        newest_foreign = Some(*id);
                    }
                }
            }
        }
        if !purges.is_empty() {
            let store = self.store.clone();
            let count = purges.len() as u64;
            let _ = tokio::task::spawn_blocking(move || store.purge_batch(&purges)).await;
            self.counters.purges_applied.inc_by(count);
        }
        if let Some(id) = newest_foreign {
            let lag = unix_millis(wall_now()).saturating_sub(id.ms);
            self.counters
                .purge_lag_ms
                .set(i64::try_from(lag).unwrap_or(i64::MAX));
        }
        if last > applied {
            let current = self.position.load_full();
            self.position.store(Arc::new(Position {
                log: current.log.clone(),
                applied: last,
            }));
            self.record_position();
            let mut publish = redis::cmd("PUBLISH");
            publish
                .arg(self.keys.acks_channel())
                .arg(format!("{} {last}", self.node_id()));
            let _ = self.client.call::<i64>(publish).await;
        }
        last
    }

    /// Hands the position to the store, for the snapshot.
    fn record_position(&self) {
        let position = self.position.load();
        self.store.set_log_position(Some(LogPosition {
            log: position.log.clone(),
            applied: position.applied.to_string(),
        }));
    }

    async fn flush_first_tier(&self) {
        let store = self.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.purge(&PurgeRule::All)).await;
    }
}
