//! The fleet's members: each instance says it is alive (a hash of node id
//! to the time it was last seen, written by its purge log reader about
//! once a second), so that a purge waits for the confirmations of the
//! instances that are there, not of those that left or died.

use std::collections::HashMap;
use std::time::Duration;

use super::client::TierError;
use super::tier::SharedTier;
use crate::clock::{unix_millis, wall_now};

/// An instance not seen for this long is not waited for.
const MEMBER_SILENCE: Duration = Duration::from_secs(3);

impl SharedTier {
    /// Instances seen lately.
    pub(super) async fn members(&self) -> Result<Vec<String>, TierError> {
        let mut hgetall = redis::cmd("HGETALL");
        hgetall.arg(self.keys.members());
        let seen: HashMap<String, u64> = self.client.call(hgetall).await?;
        let now = unix_millis(wall_now());
        let silence = u64::try_from(MEMBER_SILENCE.as_millis()).unwrap_or(u64::MAX);
        Ok(seen
            .into_iter()
            .filter(|(_, at)| now.saturating_sub(*at) < silence)
            .map(|(node, _)| node)
            .collect())
    }

    /// Says this instance is alive (purges wait for its confirmation).
    pub(super) async fn heartbeat(&self) {
        let mut hset = redis::cmd("HSET");
        hset.arg(self.keys.members())
            .arg(self.node_id())
            .arg(unix_millis(wall_now()));
        let _ = self.client.call::<i64>(hset).await;
    }

    /// Leaves the fleet's member list (a clean stop).
    pub(super) async fn leave(&self) {
        let mut hdel = redis::cmd("HDEL");
        hdel.arg(self.keys.members()).arg(self.node_id());
        let _ = self.client.call::<i64>(hdel).await;
    }
}
