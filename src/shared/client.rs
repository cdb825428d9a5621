//! The shared tier's Redis client: a single server through one
//! multiplexed connection (redis-rs's `ConnectionManager`, connected
//! lazily and reconnected in the background), or a Redis Cluster through
//! redis-rs's cluster connection (connected at the first call, following
//! the cluster's redirections); our own timeout around every call, and
//! the [`Breaker`] in front, so that a Redis that is down or slow costs a
//! request nothing once the breaker has opened.

use std::time::Duration;

use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use tokio::sync::OnceCell;

use crate::breaker::{Breaker, Permit, State};
use crate::config::RedisTarget;
use crate::metrics::SharedCounters;

/// The breaker's cool-down: the tier is probed again this often.
pub(super) const COOL_DOWN: Duration = Duration::from_millis(500);

/// How long a blocking read of the purge log waits for new entries.
pub(super) const BLOCK: Duration = Duration::from_millis(1000);

/// The timeout of the purge log reader's own connection: a blocking read,
/// and the tier's timeout on top.
pub(super) fn reader_timeout(tier_timeout: Duration) -> Duration {
    BLOCK + tier_timeout + Duration::from_millis(250)
}

/// Failures in a row that open the breaker.
const TRIP_AFTER: u32 = 3;

/// `ttl` as the milliseconds of a `PX` argument (at least 1: 0 is an
/// error to Redis).
pub(super) fn px(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Why a call to the shared tier gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum TierError {
    /// The breaker is open: the tier was not asked.
    #[error("shared tier skipped while it is failing")]
    Skipped,
    /// No answer within the per-call timeout.
    #[error("shared tier did not answer within {0:?}")]
    Timeout(Duration),
    /// Redis answered with an error, or the connection failed.
    #[error("shared tier failed")]
    Redis(#[source] redis::RedisError),
}

/// The shared tier's client. Cheap to share; every call is independent.
pub struct SharedClient {
    connection: Connection,
    timeout: Duration,
    breaker: Breaker,
    counters: SharedCounters,
}

enum Connection {
    Single(ConnectionManager),
    // Boxed: the cluster client is large, and one is made per process.
    Cluster(Box<Cluster>),
}

struct Cluster {
    client: ClusterClient,
    connected: OnceCell<ClusterConnection>,
}

impl std::fmt::Debug for SharedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.connection {
            Connection::Single(_) => "single",
            Connection::Cluster(_) => "cluster",
        };
        f.debug_struct("SharedClient")
            .field("redis", &kind)
            .field("timeout", &self.timeout)
            .field("breaker", &self.breaker.state())
            .finish()
    }
}

impl SharedClient {
    /// A client of the Redis at `url` (`redis://` or `rediss://`, with
    /// `user:password@` and `/db`), each call bounded by `timeout`, the
    /// tier skipped for `cool_down` after repeated failures. Does not
    /// connect: the first call does, so a Redis that is down at start
    /// does not stop the proxy.
    pub fn new(
        url: &str,
        timeout: Duration,
        cool_down: Duration,
    ) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(cool_down);
        Ok(SharedClient {
            connection: Connection::Single(client.get_connection_manager_lazy(config)?),
            timeout,
            breaker: Breaker::new(TRIP_AFTER, cool_down),
            counters: SharedCounters::default(),
        })
    }

    /// A client of the Redis Cluster that `seeds` (`redis://` URLs of some
    /// of its nodes) belong to. Connects at the first call.
    pub fn cluster(
        seeds: &[&str],
        timeout: Duration,
        cool_down: Duration,
    ) -> Result<Self, redis::RedisError> {
        let client = ClusterClient::builder(seeds.iter().copied())
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .retries(1)
            .build()?;
        Ok(SharedClient {
            connection: Connection::Cluster(Box::new(Cluster {
                client,
                connected: OnceCell::new(),
            })),
            timeout,
            breaker: Breaker::new(TRIP_AFTER, cool_down),
            counters: SharedCounters::default(),
        })
    }

    /// A client of `target` (one server or a cluster's seeds).
    pub fn connect(
        target: &RedisTarget,
        timeout: Duration,
        cool_down: Duration,
    ) -> Result<Self, redis::RedisError> {
        match target {
            RedisTarget::Single(url) => SharedClient::new(url, timeout, cool_down),
            RedisTarget::Cluster(urls) => {
                let seeds: Vec<&str> = urls.iter().map(String::as_str).collect();
                SharedClient::cluster(&seeds, timeout, cool_down)
            }
        }
    }

    /// Counts timeouts, failures and the breaker's state in `counters`.
    pub fn counting(mut self, counters: SharedCounters) -> Self {
        self.counters = counters;
        self
    }

    /// The per-call timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The value at `key`, if there is one.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, TierError> {
        let mut get = redis::cmd("GET");
        get.arg(key);
        let value: Option<Vec<u8>> = self.call(get).await?;
        Ok(value.map(Bytes::from))
    }

    /// Stores `value` at `key` for `ttl` (at least a millisecond), in one
    /// command: a reader sees the old value or the new one, never part.
    pub async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), TierError> {
        let mut set = redis::cmd("SET");
        set.arg(key).arg(value).arg("PX").arg(px(ttl));
        self.call(set).await
    }

    /// Removes `keys`; returns how many existed. On a cluster the keys of
    /// one call must share a slot (the tier hash-tags the keys of a URL).
    pub async fn delete(&self, keys: &[&str]) -> Result<u64, TierError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let mut del = redis::cmd("DEL");
        del.arg(keys);
        self.call(del).await
    }

    /// While the tier is skipped, tries it once its cool-down is over
    /// (`PING`, bounded by the timeout), closing the breaker if it
    /// answers. Returns whether it answered. The tier's background task
    /// calls it: requests never wait for a probe.
    pub async fn probe(&self) -> bool {
        if !self.breaker.begin_probe() {
            return false;
        }
        let ping = redis::cmd("PING");
        match tokio::time::timeout(self.timeout, self.query::<String>(&ping)).await {
            Ok(Ok(_)) => {
                if self.breaker.succeeded() {
                    self.counters.breaker_open.set(0);
                    tracing::info!("shared tier answering again");
                }
                true
            }
            Ok(Err(_)) | Err(_) => {
                self.breaker.failed();
                false
            }
        }
    }

    /// Whether the tier is used or skipped.
    pub fn state(&self) -> State {
        self.breaker.state()
    }

    /// Sends `command` through the breaker, bounded by the timeout.
    pub(super) async fn call<T: redis::FromRedisValue>(
        &self,
        command: redis::Cmd,
    ) -> Result<T, TierError> {
        match self.breaker.permit() {
            Permit::Skip => {
                self.counters.errors.inc();
                return Err(TierError::Skipped);
            }
            Permit::Call => {}
        }
        let answer = tokio::time::timeout(self.timeout, self.query(&command)).await;
        let error = match answer {
            Ok(Ok(value)) => {
                if self.breaker.succeeded() {
                    self.counters.breaker_open.set(0);
                    tracing::info!("shared tier answering again");
                }
                return Ok(value);
            }
            // redis-rs's own response timeout is ours too.
            Ok(Err(err)) if err.is_timeout() => TierError::Timeout(self.timeout),
            Ok(Err(err)) => TierError::Redis(err),
            Err(_) => TierError::Timeout(self.timeout),
        };
        match error {
            TierError::Timeout(_) => self.counters.timeouts.inc(),
            TierError::Skipped | TierError::Redis(_) => self.counters.errors.inc(),
        };
        if self.breaker.failed() {
            self.counters.breaker_open.set(1);
            tracing::warn!(
                error = %crate::error::chain(&error),
                "shared tier failing; skipping it and probing until it answers"
            );
        }
        Err(error)
    }

    async fn query<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> redis::RedisResult<T> {
        match &self.connection {
            Connection::Single(connection) => command.query_async(&mut connection.clone()).await,
            Connection::Cluster(cluster) => {
                let connection = cluster
                    .connected
                    .get_or_try_init(|| cluster.client.get_async_connection())
                    .await?;
                command.query_async(&mut connection.clone()).await
            }
        }
    }
}
