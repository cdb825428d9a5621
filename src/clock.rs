//! The only reader of the system's clocks (`clippy.toml` refuses
//! `SystemTime::now` and `Instant::now` anywhere else).
//!
//! HTTP freshness is judged against [`Clock::now`], so that tests can move
//! time forward ([`ManualClock`]) instead of sleeping through a TTL.
//! Timestamps that only report (log lines, metrics) read [`wall_now`];
//! durations are measured with a [`Stopwatch`]. Timers and deadlines use
//! tokio's clock.

#![allow(clippy::disallowed_methods)] // this module is where they are read

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time.
pub trait Clock: Send + Sync + Debug {
    /// The current wall-clock time.
    fn now(&self) -> SystemTime;
}

/// The clock every request shares.
pub type SharedClock = Arc<dyn Clock>;

/// The real wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// Real time plus an offset that tests advance by hand.
#[derive(Debug, Default)]
pub struct ManualClock {
    offset_ms: AtomicU64,
}

impl ManualClock {
    /// Moves this clock forward by `by` (at millisecond resolution).
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        SystemTime::now() + Duration::from_millis(self.offset_ms.load(Ordering::SeqCst))
    }
}

/// The wall-clock time, for timestamps that report rather than decide
/// (log lines, metrics).
pub fn wall_now() -> SystemTime {
    SystemTime::now()
}

/// Measures how long something took, on the monotonic clock.
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch(Instant);

impl Stopwatch {
    /// Starts measuring now.
    pub fn start() -> Self {
        Stopwatch(Instant::now())
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}

/// Milliseconds since the Unix epoch (0 for times before it).
pub fn unix_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The time `ms` milliseconds after the Unix epoch.
pub fn from_unix_millis(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_advances() {
        let clock = ManualClock::default();
        let before = clock.now();
        clock.advance(Duration::from_secs(3600));
        let moved = clock.now().duration_since(before).unwrap_or_default();
        assert!(moved >= Duration::from_secs(3600));
    }

    #[test]
    fn unix_millis_round_trips() {
        let t = from_unix_millis(1_700_000_000_123);
        assert_eq!(unix_millis(t), 1_700_000_000_123);
    }
}
