//! Prometheus metrics (prometheus-client) and the JSON stats built from the
//! same counters. One [`Metrics`] per process; handles are cheap to clone.
//! The request path increments counters it already holds ([`RouteCounters`]),
//! so it neither hashes label sets nor takes a family's lock per request.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde_json::json;

use crate::cache::persist::SnapshotCounters;
use crate::cache::store::Usage;
use crate::clock::{unix_millis, wall_now};
use crate::error::OriginFailure;

mod latency;
mod routes;
mod servers;
mod shared;
mod top;
pub use latency::{LatencyCounts, LatencyLog, quantile_ms};
pub use routes::{BodyBytesLabels, RouteCounters, RouteTotals};
use routes::{METHODS, STATUS_CLASSES};
pub use servers::{ServerGauges, ServerLabels, ServerMetrics};
pub use shared::SharedCounters;
pub use top::{Ranked, SAMPLE_EVERY, TopUrls};

/// A label value shared without copying (route and origin names).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Name(pub Arc<str>);

impl EncodeLabelValue for Name {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(&self.0)
    }
}

/// Labels of `caching_proxy_requests_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route's name (`-` when none matched).
    pub route: Name,
    /// GET, HEAD, POST, PUT, DELETE, PATCH or OTHER.
    pub method: &'static str,
    /// HIT, STALE, REVALIDATED, MISS, PASS or ERROR.
    pub cache: &'static str,
    /// 1xx .. 5xx.
    pub status: &'static str,
}

/// Labels of the per-origin metrics.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct OriginLabels {
    /// The origin's name.
    pub origin: Name,
}

/// Labels of `caching_proxy_origin_errors_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct OriginErrorLabels {
    /// The origin's name.
    pub origin: Name,
    /// [`OriginFailure::as_str`].
    pub kind: &'static str,
}

/// Labels of `caching_proxy_client_closed_requests_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route's name (`-` when none matched).
    pub route: Name,
}

/// Labels of `caching_proxy_config_reloads_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReloadLabels {
    /// ok or error.
    pub result: &'static str,
}

/// Every metric the proxy keeps.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    started: SystemTime,
    requests: Family<RequestLabels, Counter>,
    /// Requests no route matched.
    unrouted: Arc<RouteCounters>,
    all_requests: Counter,
    /// Response body bytes sent, by route and where they came from.
    body_bytes: Family<BodyBytesLabels, Counter>,
    /// Sampled URLs, for the dashboard's top lists.
    pub top_urls: Arc<TopUrls>,
    /// Origin response times in coarse buckets, for the dashboard.
    pub origin_times: Arc<LatencyLog>,
    /// Time to the origin's response headers.
    pub origin_latency: Family<OriginLabels, Histogram, fn() -> Histogram>,
    /// Origin failures by kind.
    pub origin_errors: Family<OriginErrorLabels, Counter>,
    /// Requests whose client went away before the answer (nginx's 499).
    client_closed: Family<RouteLabels, Counter>,
    /// Answers from the cache.
    pub hits: Counter,
    /// Cacheable requests that went to the origin.
    pub misses: Counter,
    /// Stale answers (stale-while-revalidate, stale-if-error, max-stale).
    pub stale_served: Counter,
    /// 304s that refreshed a stored response.
    pub revalidations: Counter,
    /// Entries evicted to stay within the memory bound.
    pub evictions: Counter,
    /// Requests that waited for another request's fill.
    pub coalesced_waits: Counter,
    /// What the snapshot writer counts.
    pub snapshot: SnapshotCounters,
    /// Snapshot entries dropped at start (failed a check, or unrouted).
    pub snapshot_dropped: Counter,
    /// Configuration reloads by result.
    pub reloads: Family<ReloadLabels, Counter>,
    /// Unix time of the last good configuration load.
    pub last_reload: Gauge,
    cache_entries: Gauge,
    cache_bytes: Gauge,
    /// The shared tier's counts (zero without one).
    pub shared: SharedCounters,
    /// The health of the servers of origins with several.
    pub servers: ServerMetrics,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_5, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("caching_proxy");
        let requests = Family::default();
        let body_bytes = Family::default();
        let top_urls = Arc::new(TopUrls::default());
        let metrics = Metrics {
            registry: Arc::new(Registry::default()),
            started: wall_now(),
            unrouted: Arc::new(RouteCounters::new(
                Arc::from("-"),
                &requests,
                &body_bytes,
                top_urls.clone(),
            )),
            requests,
            all_requests: Counter::default(),
            body_bytes,
            top_urls,
            origin_times: Arc::default(),
            origin_latency: Family::new_with_constructor(latency_histogram),
            origin_errors: Family::default(),
            client_closed: Family::default(),
            hits: Counter::default(),
            misses: Counter::default(),
            stale_served: Counter::default(),
            revalidations: Counter::default(),
            evictions: Counter::default(),
            coalesced_waits: Counter::default(),
            snapshot: SnapshotCounters::default(),
            snapshot_dropped: Counter::default(),
            reloads: Family::default(),
            last_reload: Gauge::default(),
            cache_entries: Gauge::default(),
            cache_bytes: Gauge::default(),
            shared: SharedCounters::default(),
            servers: ServerMetrics::default(),
        };
        metrics.shared.register(&mut registry);
        metrics.servers.register(&mut registry);
        registry.register("requests", "Client requests", metrics.requests.clone());
        registry.register(
            "response_body_bytes",
            "Response body bytes sent to clients, by route and source (cache or origin)",
            metrics.body_bytes.clone(),
        );
        registry.register(
            "origin_request_duration_seconds",
            "Time to the origin's response headers",
            metrics.origin_latency.clone(),
        );
        registry.register(
            "origin_errors",
            "Origin failures by kind",
            metrics.origin_errors.clone(),
        );
        registry.register(
            "client_closed_requests",
            "Requests whose client went away before the answer (logged as 499)",
            metrics.client_closed.clone(),
        );
        registry.register("cache_hits", "Answers from the cache", metrics.hits.clone());
        registry.register(
            "cache_misses",
            "Cacheable requests sent to the origin",
            metrics.misses.clone(),
        );
        registry.register(
            "cache_stale_served",
            "Stale answers",
            metrics.stale_served.clone(),
        );
        registry.register(
            "cache_revalidations",
            "Stored responses refreshed by a 304",
            metrics.revalidations.clone(),
        );
        registry.register(
            "cache_evictions",
            "Entries evicted by the memory bound",
            metrics.evictions.clone(),
        );
        registry.register(
            "cache_coalesced_waits",
            "Requests that waited for another's fill",
            metrics.coalesced_waits.clone(),
        );
        registry.register(
            "cache_entries",
            "Stored entries",
            metrics.cache_entries.clone(),
        );
        registry.register(
            "cache_bytes",
            "Bytes held by the cache",
            metrics.cache_bytes.clone(),
        );
        registry.register(
            "snapshot_writes",
            "Snapshot writes",
            metrics.snapshot.writes.clone(),
        );
        registry.register(
            "snapshot_failures",
            "Failed snapshot writes",
            metrics.snapshot.failures.clone(),
        );
        registry.register(
            "snapshot_duration_seconds",
            "Snapshot write time",
            metrics.snapshot.duration.clone(),
        );
        registry.register(
            "snapshot_bytes",
            "Size of the last snapshot",
            metrics.snapshot.bytes.clone(),
        );
        registry.register(
            "snapshot_dropped_entries",
            "Snapshot entries dropped at start: they failed a check or no route serves them",
            metrics.snapshot_dropped.clone(),
        );
        registry.register(
            "config_reloads",
            "Configuration reloads by result",
            metrics.reloads.clone(),
        );
        registry.register(
            "config_last_reload_timestamp_seconds",
            "Unix time of the last good configuration load",
            metrics.last_reload.clone(),
        );
        metrics.last_reload.set(unix_seconds(wall_now()));
        Metrics {
            registry: Arc::new(registry),
            ..metrics
        }
    }

    /// The counters of the route named `route` (one per route per
    /// configuration; the counts live on in the families across reloads).
    pub fn route_counters(&self, route: Arc<str>) -> RouteCounters {
        RouteCounters::new(
            route,
            &self.requests,
            &self.body_bytes,
            self.top_urls.clone(),
        )
    }

    /// Counts a request by route (`None`: none matched), method, cache
    /// status and status class.
    pub fn request(
        &self,
        route: Option<&RouteCounters>,
        method: &'static str,
        cache: &'static str,
        status: &'static str,
    ) {
        let counters = route.unwrap_or(&self.unrouted);
        let labels = || RequestLabels {
            route: counters.route.clone(),
            method,
            cache,
            status,
        };
        match counters.slot(method, cache, status) {
            Some(slot) => slot
                .get_or_init(|| self.requests.get_or_create(&labels()).clone())
                .inc(),
            None => self.requests.get_or_create(&labels()).inc(),
        };
        self.all_requests.inc();
    }

    /// Requests answered so far.
    pub fn requests_total(&self) -> u64 {
        self.all_requests.get()
    }

    /// Counts a request whose client went away before its answer.
    pub fn client_closed(&self, route: Option<&RouteCounters>) {
        let route = route.unwrap_or(&self.unrouted).route.clone();
        self.client_closed
            .get_or_create(&RouteLabels { route })
            .inc();
    }

    /// Records a configuration reload.
    pub fn reloaded(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.reloads.get_or_create(&ReloadLabels { result }).inc();
        if ok {
            self.last_reload.set(unix_seconds(wall_now()));
        }
    }

    /// Records an origin's response time.
    pub fn origin_answered(&self, origin: &Arc<str>, elapsed: Duration) {
        self.origin_times.record(elapsed);
        self.origin_latency
            .get_or_create(&OriginLabels {
                origin: Name(origin.clone()),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Records an origin failure.
    pub fn origin_failed(&self, origin: &Arc<str>, kind: OriginFailure) {
        self.origin_error_counter(origin, kind).inc();
    }

    /// The counter of one origin's failures of one kind, to hold.
    pub fn origin_error_counter(&self, origin: &Arc<str>, kind: OriginFailure) -> Counter {
        self.origin_errors
            .get_or_create(&OriginErrorLabels {
                origin: Name(origin.clone()),
                kind: kind.as_str(),
            })
            .clone()
    }

    /// The Prometheus text exposition, with the cache gauges read now.
    pub fn encode(&self, cache: Usage) -> String {
        let Usage { entries, bytes } = cache;
        self.cache_entries
            .set(i64::try_from(entries).unwrap_or(i64::MAX));
        self.cache_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            let _ = writeln!(text, "# encoding failed");
        }
        text
    }

    /// The essentials as JSON, for humans and scripts.
    pub fn stats(&self, cache: Usage) -> serde_json::Value {
        let Usage { entries, bytes } = cache;
        let reloads = |result| self.reloads.get_or_create(&ReloadLabels { result }).get();
        let requests = self.all_requests.get();
        json!({
            "uptime_seconds": wall_now().duration_since(self.started).map(|d| d.as_secs()).unwrap_or(0),
            "requests": requests,
            "cache": {
                "entries": entries,
                "bytes": bytes,
                "hits": self.hits.get(),
                "misses": self.misses.get(),
                "stale_served": self.stale_served.get(),
                "revalidations": self.revalidations.get(),
                "evictions": self.evictions.get(),
                "coalesced_waits": self.coalesced_waits.get(),
            },
            "snapshot": {
                "writes": self.snapshot.writes.get(),
                "failures": self.snapshot.failures.get(),
                "last_bytes": self.snapshot.bytes.get(),
                "dropped_on_load": self.snapshot_dropped.get(),
            },
            "config": {
                "reloads_ok": reloads("ok"),
                "reloads_failed": reloads("error"),
                "last_good_load_unix": self.last_reload.get(),
            },
        })
    }
}

fn unix_seconds(time: SystemTime) -> i64 {
    i64::try_from(unix_millis(time) / 1000).unwrap_or(i64::MAX)
}

/// The method label: common methods by name, the rest as OTHER.
pub fn method_label(method: &http::Method) -> &'static str {
    METHODS
        .iter()
        .find(|label| **label == method.as_str())
        .unwrap_or(&"OTHER")
}

/// The status class label.
pub fn status_label(status: http::StatusCode) -> &'static str {
    let class = usize::from(status.as_u16() / 100).clamp(1, STATUS_CLASSES.len());
    STATUS_CLASSES[class - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposition(metrics: &Metrics) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &metrics.registry).unwrap();
        text
    }

    #[test]
    fn held_counters_count_into_the_family() {
        let metrics = Metrics::new();
        let route = metrics.route_counters(Arc::from("api"));
        metrics.request(Some(&route), "GET", "HIT", "2xx");
        metrics.request(Some(&route), "GET", "HIT", "2xx");
        metrics.request(Some(&route), "HEAD", "MISS", "5xx");
        metrics.request(None, "OTHER", "ERROR", "4xx");
        let text = exposition(&metrics);
        for line in [
            r#"caching_proxy_requests_total{route="api",method="GET",cache="HIT",status="2xx"} 2"#,
            r#"caching_proxy_requests_total{route="api",method="HEAD",cache="MISS",status="5xx"} 1"#,
            r#"caching_proxy_requests_total{route="-",method="OTHER",cache="ERROR",status="4xx"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }

    #[test]
    fn a_routes_totals_and_bytes_survive_a_reload() {
        let metrics = Metrics::new();
        let before = metrics.route_counters(Arc::from("api"));
        metrics.request(Some(&before), "GET", "HIT", "2xx");
        metrics.request(Some(&before), "GET", "MISS", "2xx");
        metrics.request(Some(&before), "GET", "MISS", "5xx");
        before.sent(true, 100, || "h/a".to_owned());
        before.sent(false, 40, || "h/b".to_owned());
        let after = metrics.route_counters(Arc::from("api"));
        let totals = RouteTotals {
            requests: 3,
            hits: 1,
            errors: 1,
            bytes_from_cache: 100,
            bytes_from_origin: 40,
        };
        assert_eq!(after.totals(), totals);
        metrics.request(Some(&after), "HEAD", "STALE", "2xx");
        assert_eq!(after.totals().hits, 2);
        let text = exposition(&metrics);
        assert!(
            text.contains(
                r#"caching_proxy_response_body_bytes_total{route="api",source="cache"} 100"#
            ),
            "{text}"
        );
    }

    #[test]
    fn every_label_value_has_a_slot() {
        let route = Metrics::new().route_counters(Arc::from("r"));
        let mut seen = std::collections::HashSet::new();
        for method in METHODS {
            for cache in routes::CACHE_STATUSES {
                for status in STATUS_CLASSES {
                    let slot = route.slot(method, cache, status).unwrap();
                    assert!(
                        seen.insert(std::ptr::from_ref(slot)),
                        "{method} {cache} {status}"
                    );
                }
            }
        }
        assert!(route.slot("GET", "HIT", "6xx").is_none());
    }

    #[test]
    fn labels_come_from_the_slot_tables() {
        assert_eq!(method_label(&http::Method::GET), "GET");
        assert_eq!(method_label(&http::Method::PATCH), "PATCH");
        assert_eq!(method_label(&http::Method::OPTIONS), "OTHER");
        for (code, class) in [
            (100, "1xx"),
            (204, "2xx"),
            (304, "3xx"),
            (404, "4xx"),
            (599, "5xx"),
            (999, "5xx"),
        ] {
            assert_eq!(
                status_label(http::StatusCode::from_u16(code).unwrap()),
                class
            );
        }
    }
}
