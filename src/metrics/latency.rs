//! Origin response times in power-of-two buckets of microseconds, kept so
//! that the dashboard can tell percentiles over the last seconds
//! (prometheus-client's histogram does not hand out its buckets). One
//! relaxed atomic add per origin response.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bucket `i` holds times below 2^(i+1) microseconds; the last, the rest.
const BUCKETS: usize = 32;

/// The counts of each bucket so far.
#[derive(Debug)]
pub struct LatencyLog {
    buckets: [AtomicU64; BUCKETS],
}

impl Default for LatencyLog {
    fn default() -> Self {
        LatencyLog {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// The counts at one moment, to subtract from a later one.
pub type LatencyCounts = [u64; BUCKETS];

impl LatencyLog {
    /// Records one response time.
    pub fn record(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let bucket = (63 - micros.leading_zeros() as usize).min(BUCKETS - 1);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
    }

    /// The counts now.
    pub fn counts(&self) -> LatencyCounts {
        std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed))
    }
}

/// The `q` quantile (0 to 1) of the times recorded between `before` and
/// `after`, in milliseconds: the upper bound of the bucket it falls in
/// (within a factor of two); `None` when nothing was recorded.
pub fn quantile_ms(before: &LatencyCounts, after: &LatencyCounts, q: f64) -> Option<f64> {
    let counts: Vec<u64> = after
        .iter()
        .zip(before)
        .map(|(a, b)| a.saturating_sub(*b))
        .collect();
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (i, count) in counts.iter().enumerate() {
        seen += count;
        if seen >= rank {
            return Some((1u64 << (i + 1)) as f64 / 1000.0);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_an_interval_within_a_factor_of_two() {
        let log = LatencyLog::default();
        for _ in 0..100 {
            log.record(Duration::from_millis(50));
        }
        let before = log.counts();
        for _ in 0..90 {
            log.record(Duration::from_micros(900));
        }
        for _ in 0..10 {
            log.record(Duration::from_millis(40));
        }
        let after = log.counts();
        let p50 = quantile_ms(&before, &after, 0.5).unwrap();
        let p99 = quantile_ms(&before, &after, 0.99).unwrap();
        assert!((0.9..=1.8).contains(&p50), "{p50}");
        assert!((40.0..=80.0).contains(&p99), "{p99}");
        assert_eq!(quantile_ms(&after, &after, 0.5), None);
    }
}
