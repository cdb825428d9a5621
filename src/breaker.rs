//! A circuit breaker, in front of the shared tier and of each server of an
//! origin (nginx's `max_fails`/`fail_timeout`): after `trip_after` failures
//! in a row what it guards is skipped, with no added latency, for
//! `cool_down`; then one probe tries it while requests keep skipping; a
//! success closes the breaker, a failure opens it again. Lock-free: it is
//! consulted on every request that could use what it guards.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// What a caller may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// Use the tier.
    Call,
    /// Skip the tier.
    Skip,
}

/// The breaker's state, for `/readyz`, `/stats` and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The tier is used.
    Closed,
    /// The tier is skipped until a probe succeeds.
    Open,
}

impl State {
    /// The label.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
        }
    }
}

/// A lock-free circuit breaker.
#[derive(Debug)]
pub struct Breaker {
    start: Instant,
    trip_after: u32,
    cool_down: Duration,
    failures: AtomicU32,
    /// Milliseconds after `start` until which the tier is skipped; 0 when
    /// closed.
    open_until: AtomicU64,
    /// A probe is under way.
    probing: AtomicBool,
}

impl Breaker {
    /// Opens after `trip_after` failures in a row (at least 1), for
    /// `cool_down` before each probe.
    pub fn new(trip_after: u32, cool_down: Duration) -> Self {
        Breaker {
            start: Instant::now(),
            trip_after: trip_after.max(1),
            cool_down,
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            probing: AtomicBool::new(false),
        }
    }

    /// Whether a request may use the tier now (never while it is open:
    /// the probe is not a request's to make).
    pub fn permit(&self) -> Permit {
        if self.open_until.load(Ordering::Acquire) == 0 {
            Permit::Call
        } else {
            Permit::Skip
        }
    }

    /// Whether the caller should probe the tier now: it is open, its
    /// cool-down is over, and no other probe is under way (the caller then
    /// reports the probe's outcome with `succeeded` or `failed`).
    pub fn begin_probe(&self) -> bool {
        let until = self.open_until.load(Ordering::Acquire);
        until != 0
            && self.now_ms() >= until
            && self
                .probing
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// The call worked: the tier is used again. Returns true when this
    /// closed an open breaker (to log once).
    pub fn succeeded(&self) -> bool {
        // The common case, on every call: nothing to reset. Reading leaves
        // the cache line shared between the threads that call it.
        if self.failures.load(Ordering::Acquire) == 0
            && self.open_until.load(Ordering::Acquire) == 0
            && !self.probing.load(Ordering::Acquire)
        {
            return false;
        }
        self.failures.store(0, Ordering::Release);
        let was_open = self.open_until.swap(0, Ordering::AcqRel) != 0;
        self.probing.store(false, Ordering::Release);
        was_open
    }

    /// The call failed (an error or its timeout). Returns true when this
    /// failure opened the breaker (to log once, not per request).
    pub fn failed(&self) -> bool {
        let failures = self
            .failures
            .fetch_add(1, Ordering::AcqRel)
            .saturating_add(1);
        let was_open = self.open_until.load(Ordering::Acquire) != 0;
        if failures < self.trip_after && !was_open {
            return false;
        }
        // At least 1, so that "open" never reads as closed.
        let until = (self.now_ms() + millis(self.cool_down)).max(1);
        self.open_until.store(until, Ordering::Release);
        self.probing.store(false, Ordering::Release);
        !was_open
    }

    /// Closed or open.
    pub fn state(&self) -> State {
        if self.open_until.load(Ordering::Acquire) == 0 {
            State::Closed
        } else {
            State::Open
        }
    }

    fn now_ms(&self) -> u64 {
        millis(self.start.elapsed())
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOL_DOWN: Duration = Duration::from_millis(500);

    #[tokio::test(start_paused = true)]
    async fn repeated_failures_open_it_and_one_probe_closes_it() {
        let breaker = Breaker::new(3, COOL_DOWN);
        assert_eq!(breaker.permit(), Permit::Call);
        assert!(!breaker.failed());
        assert!(!breaker.failed());
        assert_eq!(breaker.state(), State::Closed);
        assert!(
            breaker.failed(),
            "the third failure opens it, and says so once"
        );
        assert_eq!(breaker.state(), State::Open);
        assert_eq!(breaker.permit(), Permit::Skip);

        assert!(!breaker.begin_probe(), "not before the cool-down");
        tokio::time::advance(COOL_DOWN).await;
        assert_eq!(breaker.permit(), Permit::Skip, "requests never probe");
        assert!(breaker.begin_probe());
        assert!(!breaker.begin_probe(), "one probe at a time");
        assert!(breaker.succeeded(), "closing it says so once");
        assert_eq!(breaker.state(), State::Closed);
        assert_eq!(breaker.permit(), Permit::Call);
        assert!(!breaker.succeeded());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_opens_it_again_without_saying_so_twice() {
        let breaker = Breaker::new(1, COOL_DOWN);
        assert!(breaker.failed());
        tokio::time::advance(COOL_DOWN).await;
        assert!(breaker.begin_probe());
        assert!(!breaker.failed(), "already open: not logged again");
        assert!(!breaker.begin_probe());
        tokio::time::advance(COOL_DOWN / 2).await;
        assert!(!breaker.begin_probe());
        tokio::time::advance(COOL_DOWN / 2).await;
        assert!(breaker.begin_probe());
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_count_of_failures_in_a_row() {
        let breaker = Breaker::new(2, COOL_DOWN);
        assert!(!breaker.failed());
        assert!(!breaker.succeeded());
        assert!(!breaker.failed());
        assert_eq!(breaker.state(), State::Closed);
    }
}
