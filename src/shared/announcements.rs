//! The two channels every instance listens on: `filled` (a URL's fetch
//! ended: wake the instances waiting for it) and `acks` (an instance
//! applied the purge log up to an entry: the instance that issued a purge
//! is waiting for it). One subscription per instance, on its own
//! connection; on a Redis Cluster any node will do (a `PUBLISH` reaches
//! every node).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::client::COOL_DOWN;
use super::log_id::LogId;
use super::tier::SharedTier;
use crate::config::RedisTarget;

/// How long a connection attempt may take.
const CONNECT_WITHIN: Duration = Duration::from_secs(1);

impl SharedTier {
    /// Listens until `cancel`, reconnecting after failures.
    pub async fn follow_announcements(self: Arc<Self>, cancel: CancellationToken) {
        let filled = self.keys.filled_channel();
        let acks = self.keys.acks_channel();
        loop {
            if let Some(mut pubsub) = self.subscribe(&[&filled, &acks]).await {
                // Whatever was announced while this was not listening is
                // lost: every waiter looks again.
                self.wake_all();
                let mut messages = pubsub.on_message();
                loop {
                    let message = tokio::select! {
                        () = cancel.cancelled() => return,
                        message = messages.next() => message,
                    };
                    let Some(message) = message else { break };
                    let Ok(text) = std::str::from_utf8(message.get_payload_bytes()) else {
                        continue;
                    };
                    if message.get_channel_name() == filled {
                        self.filled(text);
                    } else if let Some((node, id)) = text.rsplit_once(' ') {
                        if let Some(id) = LogId::parse(id) {
                            let _ = self.acks.send((node.to_owned(), id));
                        }
                    }
                }
                tracing::debug!("shared tier announcements interrupted; listening again");
            }
            self.wake_all();
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(COOL_DOWN) => {}
            }
        }
    }

    async fn subscribe(&self, channels: &[&str]) -> Option<redis::aio::PubSub> {
        let urls = match &self.config.redis {
            RedisTarget::Single(url) => std::slice::from_ref(url),
            RedisTarget::Cluster(urls) => urls.as_slice(),
        };
        for url in urls {
            let connect = async {
                let mut pubsub = redis::Client::open(url.as_str())?
                    .get_async_pubsub()
                    .await?;
                for channel in channels {
                    pubsub.subscribe(*channel).await?;
                }
                Ok::<_, redis::RedisError>(pubsub)
            };
            if let Ok(Ok(pubsub)) = tokio::time::timeout(CONNECT_WITHIN, connect).await {
                return Some(pubsub);
            }
        }
        None
    }
}
