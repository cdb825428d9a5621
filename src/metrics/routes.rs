//! One route's counters, held by the route so that the request path
//! neither hashes label sets nor takes a family's lock: requests by
//! method, cache status and status class (each looked up in the family the
//! first time its label set occurs and held from then on; the family's
//! handle shares the count, so `/metrics` shows it), and the body bytes
//! sent from the cache and from the origin.

use std::sync::{Arc, OnceLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use super::{Name, RequestLabels, TopUrls};

/// The values of `RequestLabels::method`, `cache` and `status`.
pub(super) const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OTHER"];
pub(super) const CACHE_STATUSES: [&str; 6] =
    ["HIT", "STALE", "REVALIDATED", "MISS", "PASS", "ERROR"];
pub(super) const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Labels of `caching_proxy_response_body_bytes_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct BodyBytesLabels {
    /// The route's name.
    pub route: Name,
    /// `cache` or `origin`.
    pub source: &'static str,
}

/// One route's counters.
pub struct RouteCounters {
    pub(super) route: Name,
    slots: Box<[OnceLock<Counter>]>,
    from_cache: Counter,
    from_origin: Counter,
    top: Arc<TopUrls>,
}

/// What a route counted so far (since its counters were first made: the
/// counts outlive reloads).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouteTotals {
    /// Requests answered.
    pub requests: u64,
    /// Of which from the cache (HIT, STALE, REVALIDATED).
    pub hits: u64,
    /// Of which with a 5xx status (the origin failing, or the proxy's 502
    /// and 504).
    pub errors: u64,
    /// Body bytes sent from the cache.
    pub bytes_from_cache: u64,
    /// Body bytes sent from the origin.
    pub bytes_from_origin: u64,
}

impl RouteCounters {
    /// Counters for the route named `route`: requests in `requests` (the
    /// label sets it already counted under are held at once, so that its
    /// totals survive a reload), byte counts in `bytes`, sampled URLs
    /// offered to `top`.
    pub fn new(
        route: Arc<str>,
        requests: &Family<RequestLabels, Counter>,
        bytes: &Family<BodyBytesLabels, Counter>,
        top: Arc<TopUrls>,
    ) -> Self {
        let route = Name(route);
        let mut slots =
            Vec::with_capacity(METHODS.len() * CACHE_STATUSES.len() * STATUS_CLASSES.len());
        for method in METHODS {
            for cache in CACHE_STATUSES {
                for status in STATUS_CLASSES {
                    let labels = RequestLabels {
                        route: route.clone(),
                        method,
                        cache,
                        status,
                    };
                    let slot = OnceLock::new();
                    if let Some(counter) = requests.get(&labels) {
                        let _ = slot.set(counter.clone());
                    }
                    slots.push(slot);
                }
            }
        }
        let source = |source| {
            bytes
                .get_or_create(&BodyBytesLabels {
                    route: route.clone(),
                    source,
                })
                .clone()
        };
        RouteCounters {
            from_cache: source("cache"),
            from_origin: source("origin"),
            route,
            slots: slots.into_boxed_slice(),
            top,
        }
    }

    /// The route's name.
    pub fn name(&self) -> &Arc<str> {
        &self.route.0
    }

    /// The slot of a label set; `None` for a value outside the constants.
    pub(super) fn slot(
        &self,
        method: &str,
        cache: &str,
        status: &str,
    ) -> Option<&OnceLock<Counter>> {
        let method = METHODS.iter().position(|m| *m == method)?;
        let cache = CACHE_STATUSES.iter().position(|c| *c == cache)?;
        let status = STATUS_CLASSES.iter().position(|s| *s == status)?;
        self.slots
            .get((method * CACHE_STATUSES.len() + cache) * STATUS_CLASSES.len() + status)
    }

    /// Counts a response's body bytes, and offers its URL (built only if
    /// sampled) to the dashboard's top lists.
    pub fn sent(&self, from_cache: bool, bytes: u64, url: impl FnOnce() -> String) {
        let counter = if from_cache {
            &self.from_cache
        } else {
            &self.from_origin
        };
        counter.inc_by(bytes);
        self.top.offer(from_cache, url);
    }

    /// The route's totals: the slots used so far, summed (off the request
    /// path: the dashboard's sampler, once a second).
    pub fn totals(&self) -> RouteTotals {
        let mut totals = RouteTotals {
            bytes_from_cache: self.from_cache.get(),
            bytes_from_origin: self.from_origin.get(),
            ..RouteTotals::default()
        };
        for (index, slot) in self.slots.iter().enumerate() {
            let Some(counter) = slot.get() else { continue };
            let count = counter.get();
            let cache = index / STATUS_CLASSES.len() % CACHE_STATUSES.len();
            let status = index % STATUS_CLASSES.len();
            totals.requests += count;
            if matches!(CACHE_STATUSES[cache], "HIT" | "STALE" | "REVALIDATED") {
                totals.hits += count;
            }
            if STATUS_CLASSES[status] == "5xx" {
                totals.errors += count;
            }
        }
        totals
    }
}

impl std::fmt::Debug for RouteCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteCounters")
            .field("route", &self.route.0)
            .finish_non_exhaustive()
    }
}
