//! The bound on requests in flight to one server (`max_connections`):
//! lock-free while below it (one compare-and-swap to take a place, one
//! decrement to give it back); only requests that find it full wait, on a
//! `Notify`. tokio's `Semaphore` takes a mutex on every release.

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Requests in flight to one server, at most `max`.
#[derive(Debug)]
pub struct Limit {
    in_flight: AtomicUsize,
    max: usize,
    /// Requests waiting for a place (a release wakes one only then).
    waiting: AtomicUsize,
    freed: Notify,
}

/// One place, given back when dropped.
#[derive(Debug)]
pub struct Place(Arc<Limit>);

impl Limit {
    /// At most `max` (at least 1) at once.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Limit {
            in_flight: AtomicUsize::new(0),
            max: max.max(1),
            waiting: AtomicUsize::new(0),
            freed: Notify::new(),
        })
    }

    /// Whether a place is free now.
    pub fn has_room(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) < self.max
    }

    /// A place if one is free now.
    pub fn try_take(self: &Arc<Self>) -> Option<Place> {
        let mut current = self.in_flight.load(Ordering::SeqCst);
        loop {
            if current >= self.max {
                return None;
            }
            match self.in_flight.compare_exchange_weak(
                current,
                current + 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return Some(Place(self.clone())),
                Err(actual) => current = actual,
            }
        }
    }

    /// A place, waiting for one to be given back (cancel by dropping).
    pub async fn take(self: &Arc<Self>) -> Place {
        loop {
            let mut freed = pin!(self.freed.notified());
            // Registered before looking, so a release in between wakes it.
            freed.as_mut().enable();
            let _counted = Waiting::count(self);
            if let Some(place) = self.try_take() {
                return place;
            }
            freed.await;
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        if self.0.waiting.load(Ordering::SeqCst) > 0 {
            self.0.freed.notify_one();
        }
    }
}

/// Counts a waiter while it waits (also when its wait is cancelled).
struct Waiting<'a>(&'a Limit);

impl<'a> Waiting<'a> {
    fn count(limit: &'a Limit) -> Self {
        limit.waiting.fetch_add(1, Ordering::SeqCst);
        Waiting(limit)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn places_are_bounded_and_a_release_wakes_a_waiter() {
        let limit = Limit::new(2);
        let first = limit.try_take().unwrap();
        let _second = limit.try_take().unwrap();
        assert!(limit.try_take().is_none());
        assert!(!limit.has_room());
        let waiter = tokio::spawn({
            let limit = limit.clone();
            async move { limit.take().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(first);
        let third = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .unwrap();
        assert!(limit.try_take().is_none(), "the waiter took the place");
        drop(third);
        assert!(limit.has_room());
    }

    #[tokio::test]
    async fn a_cancelled_wait_leaves_nothing_behind() {
        let limit = Limit::new(1);
        let held = limit.try_take().unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(10), limit.take())
                .await
                .is_err()
        );
        assert_eq!(limit.waiting.load(Ordering::SeqCst), 0);
        drop(held);
        assert!(limit.try_take().is_some());
    }
}
