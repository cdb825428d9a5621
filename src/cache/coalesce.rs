//! Request coalescing: concurrent misses for one key make one origin
//! request.
//!
//! The first miss becomes the leader and holds a [`FillGuard`]; later ones
//! become followers and wait on a `watch` channel, bounded by a timeout, so
//! that a stuck origin cannot hold them forever. When the guard is dropped
//! (entry stored, response not storable, client gone) followers wake: after
//! `Stored` they are served from the cache, otherwise they go to the origin
//! themselves. The map is a sharded `DashMap`, locked only for the insert
//! or remove of one key.

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use tokio::sync::watch;

use super::key::CacheKey;

/// How a fill ended, as followers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FillState {
    /// The leader is still fetching.
    Pending,
    /// The response is in the cache.
    Stored,
    /// The response was not stored (not storable, too large, failed).
    NotStored,
    /// The follower stopped waiting.
    TimedOut,
}

/// The fills in progress, by key.
#[derive(Debug, Default)]
pub struct Coalescer {
    inflight: DashMap<CacheKey, watch::Receiver<FillState>>,
}

/// The role a miss gets.
#[derive(Debug)]
pub enum Role {
    /// Fetch from the origin and report through the guard.
    Leader(FillGuard),
    /// Wait for the leader with [`Follower::wait`].
    Follower(Follower),
}

/// Held by the leader of a fill; dropping it wakes every follower.
#[derive(Debug)]
pub struct FillGuard {
    coalescer: Arc<Coalescer>,
    key: CacheKey,
    sender: watch::Sender<FillState>,
    outcome: FillState,
}

/// A miss waiting for another request's fill.
#[derive(Debug)]
pub struct Follower {
    receiver: watch::Receiver<FillState>,
}

impl Coalescer {
    /// Joins the fill for `key`, leading it if none is in progress.
    pub fn join(self: &Arc<Self>, key: &CacheKey) -> Role {
        match self.inflight.entry(key.clone()) {
            Entry::Occupied(existing) => Role::Follower(Follower {
                receiver: existing.get().clone(),
            }),
            Entry::Vacant(slot) => {
                let (sender, receiver) = watch::channel(FillState::Pending);
                slot.insert(receiver);
                Role::Leader(FillGuard {
                    coalescer: self.clone(),
                    key: key.clone(),
                    sender,
                    outcome: FillState::NotStored,
                })
            }
        }
    }

    /// Fills in progress (for tests and metrics).
    pub fn in_progress(&self) -> usize {
        self.inflight.len()
    }
}

impl FillGuard {
    /// Marks the fill as stored and releases the followers.
    pub fn stored(mut self) {
        self.outcome = FillState::Stored;
    }
}

impl Drop for FillGuard {
    fn drop(&mut self) {
        self.coalescer.inflight.remove(&self.key);
        // Followers may all be gone; nobody to tell is fine.
        let _ = self.sender.send(self.outcome);
    }
}

impl Follower {
    /// Waits for the leader's outcome, at most `bound`.
    pub async fn wait(mut self, bound: Duration) -> FillState {
        let finished = self.receiver.wait_for(|state| *state != FillState::Pending);
        match tokio::time::timeout(bound, finished).await {
            Ok(Ok(state)) => *state,
            // The sender always sends before it is dropped; treat a closed
            // channel like a fill that did not store.
            Ok(Err(_)) => FillState::NotStored,
            Err(_) => FillState::TimedOut,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_leader_many_followers() {
        let coalescer = Arc::new(Coalescer::default());
        let key = CacheKey::from_text("k");
        let Role::Leader(guard) = coalescer.join(&key) else {
            panic!("first miss must lead");
        };
        let followers: Vec<_> = (0..3)
            .map(|_| match coalescer.join(&key) {
                Role::Follower(f) => tokio::spawn(f.wait(Duration::from_secs(5))),
                Role::Leader(_) => panic!("second miss must follow"),
            })
            .collect();
        guard.stored();
        for follower in followers {
            assert_eq!(follower.await.unwrap(), FillState::Stored);
        }
        assert_eq!(coalescer.in_progress(), 0);
        assert!(matches!(coalescer.join(&key), Role::Leader(_)));
    }

    #[tokio::test]
    async fn dropped_leader_releases_followers_as_not_stored() {
        let coalescer = Arc::new(Coalescer::default());
        let key = CacheKey::from_text("k");
        let leader = coalescer.join(&key);
        let Role::Follower(follower) = coalescer.join(&key) else {
            panic!("must follow");
        };
        drop(leader);
        assert_eq!(
            follower.wait(Duration::from_secs(5)).await,
            FillState::NotStored
        );
    }

    #[tokio::test]
    async fn followers_stop_waiting_at_the_bound() {
        let coalescer = Arc::new(Coalescer::default());
        let key = CacheKey::from_text("k");
        let _leader = coalescer.join(&key);
        let Role::Follower(follower) = coalescer.join(&key) else {
            panic!("must follow");
        };
        assert_eq!(
            follower.wait(Duration::from_millis(10)).await,
            FillState::TimedOut
        );
    }
}
