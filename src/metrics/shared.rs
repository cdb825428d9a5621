//! The shared tier's metrics (`caching_proxy_shared_*`), kept apart from
//! the rest: the tier's client and purge log reader hold them.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// What the shared tier (Redis) counts.
#[derive(Debug, Clone, Default)]
pub struct SharedCounters {
    /// First-tier misses answered by the shared tier.
    pub hits: Counter,
    /// First-tier misses the shared tier did not have.
    pub misses: Counter,
    /// Responses written to the shared tier.
    pub fills: Counter,
    /// Misses that waited for another instance's fetch (a fleet lease).
    pub fleet_waits: Counter,
    /// Leases taken over from a holder that did not finish in time.
    pub lease_takeovers: Counter,
    /// Calls that got no answer within the tier's timeout.
    pub timeouts: Counter,
    /// Calls that failed otherwise, or were skipped while it is failing.
    pub errors: Counter,
    /// Purges and invalidations of other instances applied here.
    pub purges_applied: Counter,
    /// Milliseconds between the last applied purge's issue and its
    /// application here.
    pub purge_lag_ms: Gauge,
    /// 1 while the breaker skips the tier.
    pub breaker_open: Gauge,
}

impl SharedCounters {
    /// Registers every one in `registry`.
    pub(super) fn register(&self, registry: &mut Registry) {
        let shared = self;
        for (name, help, counter) in [
            (
                "shared_hits",
                "First-tier misses answered by the shared tier",
                &shared.hits,
            ),
            (
                "shared_misses",
                "First-tier misses the shared tier did not have",
                &shared.misses,
            ),
            (
                "shared_fills",
                "Responses written to the shared tier",
                &shared.fills,
            ),
            (
                "shared_fleet_waits",
                "Misses that waited for another instance's fetch",
                &shared.fleet_waits,
            ),
            (
                "shared_lease_takeovers",
                "Fetch leases taken over from a holder that did not finish",
                &shared.lease_takeovers,
            ),
            (
                "shared_timeouts",
                "Shared-tier calls without an answer in time",
                &shared.timeouts,
            ),
            (
                "shared_errors",
                "Shared-tier calls that failed or were skipped",
                &shared.errors,
            ),
            (
                "shared_purges_applied",
                "Purges of other instances applied here",
                &shared.purges_applied,
            ),
        ] {
            registry.register(name, help, counter.clone());
        }
        registry.register(
            "shared_purge_lag_milliseconds",
            "Time from a purge's issue to its application here",
            shared.purge_lag_ms.clone(),
        );
        registry.register(
            "shared_breaker_open",
            "1 while the shared tier is skipped after failures",
            shared.breaker_open.clone(),
        );
    }
}
