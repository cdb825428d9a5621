//! The dashboard's JSON (`GET /dashboard.json` on the admin listener, read
//! by the page and by `caching-proxy top`): rates now (over the last five
//! seconds), the last 15 minutes (one point a second at first, then one
//! every five seconds), routes over the last
//! minute, the top URLs, events, the shared tier and origin servers, and
//! alerts that say in words what is wrong.

use std::collections::{HashMap, VecDeque};

use serde_json::{Value, json};

use super::{Dashboard, RouteSample, Sample, lock};
use crate::clock::{unix_millis, wall_now};
use crate::metrics::quantile_ms;

/// Samples a "now" figure spans.
const NOW_SPAN: usize = 5;
/// Chart points at most: one a second while the history is short, then
/// one every five seconds.
const POINTS: usize = 180;
/// Samples the route table spans.
const ROUTE_SPAN: usize = 60;
/// URLs in each top list.
const TOP: usize = 10;
/// A route whose answers are this share 5xx or more is failing.
const FAILING_SHARE: f64 = 0.05;

/// What happened between two samples, as rates.
struct Rates {
    requests: f64,
    hit_ratio: Option<f64>,
    byte_hit_ratio: Option<f64>,
    bytes_from_cache: f64,
    bytes_from_origin: f64,
    evictions: f64,
    p50: Option<f64>,
    p90: Option<f64>,
    p99: Option<f64>,
}

fn share(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// A counter's growth; a counter that restarted counts from zero.
fn grown(before: u64, after: u64) -> u64 {
    after.checked_sub(before).unwrap_or(after)
}

/// Bytes from the cache and from the origin, summed over routes, between
/// two samples (routes matched by name: one added since counts from zero).
fn bytes_between(a: &Sample, b: &Sample) -> (u64, u64) {
    let before: HashMap<&str, &RouteSample> = a.routes.iter().map(|r| (&*r.name, r)).collect();
    b.routes.iter().fold((0, 0), |(cache, origin), r| {
        let (c0, o0) = before.get(&*r.name).map_or((0, 0), |p| {
            (p.totals.bytes_from_cache, p.totals.bytes_from_origin)
        });
        (
            cache + grown(c0, r.totals.bytes_from_cache),
            origin + grown(o0, r.totals.bytes_from_origin),
        )
    })
}

fn rates(a: &Sample, b: &Sample) -> Rates {
    let seconds = (b.at.saturating_sub(a.at) as f64 / 1000.0).max(0.001);
    let hits = grown(a.hits, b.hits);
    let misses = grown(a.misses, b.misses);
    let (from_cache, from_origin) = bytes_between(a, b);
    let q = |q| quantile_ms(&a.latency, &b.latency, q);
    Rates {
        requests: grown(a.requests, b.requests) as f64 / seconds,
        hit_ratio: share(hits, hits + misses),
        byte_hit_ratio: share(from_cache, from_cache + from_origin),
        bytes_from_cache: from_cache as f64 / seconds,
        bytes_from_origin: from_origin as f64 / seconds,
        evictions: grown(a.evictions, b.evictions) as f64 / seconds,
        p50: q(0.5),
        p90: q(0.9),
        p99: q(0.99),
    }
}

/// The sample `span` seconds before the newest (or the oldest kept).
fn back(samples: &VecDeque<Sample>, span: usize) -> Option<(&Sample, &Sample)> {
    let last = samples.back()?;
    let first = samples.get(samples.len().saturating_sub(span + 1))?;
    Some((first, last))
}

fn round(value: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (value * scale).round() / scale
}

impl Dashboard {
    /// Everything the dashboard shows, as JSON.
    pub fn json(&self) -> Value {
        let samples = lock(&self.samples).clone();
        let events: Vec<Value> = lock(&self.events).iter().rev().map(|e| json!(e)).collect();
        let proxy = &self.proxy;
        let runtime = proxy.runtime();
        let servers: Vec<Value> = runtime
            .upstreams()
            .iter()
            .filter_map(|u| u.servers_stats())
            .collect();
        let shared = proxy.shared().map(|tier| tier.stats());
        let (hits, misses) = proxy.metrics().top_urls.top(TOP);
        let top = |list: Vec<(String, u64)>| -> Vec<Value> {
            list.into_iter()
                .map(|(url, count)| json!({ "url": url, "count": count }))
                .collect()
        };
        let routes = self.routes(&samples);
        let alerts = alerts(&routes, shared.as_ref(), &servers, &lock(&self.events));
        json!({
            "now": unix_millis(wall_now()),
            "version": env!("CARGO_PKG_VERSION"),
            "current": self.current(&samples),
            "series": series(&samples, self.capacity),
            "routes": routes,
            "top": { "hits": top(hits), "misses": top(misses) },
            "events": events,
            "shared": shared,
            "origin_servers": servers,
            "alerts": alerts,
        })
    }

    fn current(&self, samples: &VecDeque<Sample>) -> Value {
        let Some(last) = samples.back() else {
            return json!({ "cache_max_bytes": self.capacity });
        };
        let r = back(samples, NOW_SPAN).map(|(a, b)| rates(a, b));
        json!({
            "requests_per_s": r.as_ref().map(|r| round(r.requests, 1)),
            "hit_ratio": r.as_ref().and_then(|r| r.hit_ratio),
            "byte_hit_ratio": r.as_ref().and_then(|r| r.byte_hit_ratio),
            "bytes_from_cache_per_s": r.as_ref().map(|r| r.bytes_from_cache.round()),
            "bytes_from_origin_per_s": r.as_ref().map(|r| r.bytes_from_origin.round()),
            "origin_p50_ms": r.as_ref().and_then(|r| r.p50),
            "origin_p90_ms": r.as_ref().and_then(|r| r.p90),
            "origin_p99_ms": r.as_ref().and_then(|r| r.p99),
            "evictions_per_s": r.as_ref().map(|r| round(r.evictions, 1)),
            "requests_total": last.requests,
            "hits_total": last.hits,
            "misses_total": last.misses,
            "cache_bytes": last.cache_bytes,
            "cache_entries": last.cache_entries,
            "cache_max_bytes": self.capacity,
        })
    }

    /// Each route over the last minute.
    fn routes(&self, samples: &VecDeque<Sample>) -> Vec<Value> {
        let Some((first, last)) = back(samples, ROUTE_SPAN) else {
            return Vec::new();
        };
        let seconds = (last.at.saturating_sub(first.at) as f64 / 1000.0).max(1.0);
        let before: HashMap<&str, &RouteSample> =
            first.routes.iter().map(|r| (&*r.name, r)).collect();
        last.routes
            .iter()
            .map(|r| {
                let old = before.get(&*r.name).map(|p| p.totals).unwrap_or_default();
                let requests = grown(old.requests, r.totals.requests);
                let hits = grown(old.hits, r.totals.hits);
                let errors = grown(old.errors, r.totals.errors);
                json!({
                    "route": &*r.name,
                    "origin": &*r.origin,
                    "requests_per_s": round(requests as f64 / seconds, 2),
                    "hit_ratio": share(hits, requests),
                    "errors_per_s": round(errors as f64 / seconds, 2),
                    "error_share": share(errors, requests),
                    "requests_total": r.totals.requests,
                })
            })
            .collect()
    }
}

/// The history kept (15 minutes), at most [`POINTS`] points.
fn series(samples: &VecDeque<Sample>, capacity: u64) -> Value {
    let step = samples.len().div_ceil(POINTS).max(1);
    // Steps end at the newest sample and go back from there.
    let mut ends: Vec<usize> = (step..samples.len()).rev().step_by(step).collect();
    ends.reverse();
    let mut points = Vec::new();
    for end in ends {
        let (a, b) = (&samples[end - step], &samples[end]);
        let r = rates(a, b);
        points.push(json!([
            b.at / 1000,
            round(r.requests, 1),
            r.hit_ratio.map(|v| round(v, 4)),
            r.byte_hit_ratio.map(|v| round(v, 4)),
            r.bytes_from_cache.round(),
            r.bytes_from_origin.round(),
            r.p50,
            r.p99,
            round(b.cache_bytes as f64 / capacity.max(1) as f64, 4),
            round(r.evictions, 1),
        ]));
    }
    json!({
        "columns": ["t", "requests_per_s", "hit_ratio", "byte_hit_ratio", "bytes_from_cache_per_s",
                    "bytes_from_origin_per_s", "origin_p50_ms", "origin_p99_ms", "cache_fill",
                    "evictions_per_s"],
        "points": points,
    })
}

/// What is wrong, in words: a failing origin, the shared tier down, a
/// server out, the last reload refused.
fn alerts(
    routes: &[Value],
    shared: Option<&Value>,
    servers: &[Value],
    events: &VecDeque<super::Event>,
) -> Vec<Value> {
    let mut alerts = Vec::new();
    for route in routes {
        let failing = route["error_share"].as_f64().unwrap_or(0.0);
        if failing >= FAILING_SHARE {
            alerts.push(json!({ "level": "error", "text": format!(
                "origin '{}' failing: {:.0}% of route '{}' answers are 5xx ({} per second)",
                route["origin"].as_str().unwrap_or("?"), failing * 100.0,
                route["route"].as_str().unwrap_or("?"), route["errors_per_s"]) }));
        }
    }
    if let Some(tier) = shared {
        if tier["state"] == "open" {
            alerts.push(json!({ "level": "error", "text": format!(
                "shared tier down: Redis at {} is not answering; serving from memory and the origins",
                tier["redis"].as_str().unwrap_or("?")) }));
        }
    }
    for origin in servers {
        for server in origin["servers"].as_array().into_iter().flatten() {
            if server["up"] == false {
                alerts.push(json!({ "level": "warning", "text": format!(
                    "server {} of origin '{}' is out", server["server"].as_str().unwrap_or("?"),
                    origin["origin"].as_str().unwrap_or("?")) }));
            }
        }
    }
    if let Some(reload) = events.iter().rev().find(|e| e.kind == "reload") {
        if !reload.ok {
            alerts.push(json!({ "level": "error", "text": format!(
                "configuration reload refused; the previous configuration serves on: {}", reload.text) }));
        }
    }
    alerts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dashboard::Event;

    #[test]
    fn alerts_name_what_is_wrong_and_nothing_else() {
        let routes = vec![
            json!({ "route": "api", "origin": "backend", "error_share": 0.25, "errors_per_s": 2.5 }),
            json!({ "route": "www", "origin": "site", "error_share": 0.01, "errors_per_s": 0.1 }),
        ];
        let shared = json!({ "state": "open", "redis": "redis://10.0.0.5:6379" });
        let servers = vec![json!({ "origin": "backend", "servers": [
            { "server": "a:80", "up": true }, { "server": "b:80", "up": false } ] })];
        let event = |ok| Event {
            at: 0,
            kind: "reload",
            ok,
            text: "routes[0].origin: unknown origin 'x'".into(),
        };
        let events = VecDeque::from([event(true), event(false)]);
        let said = alerts(&routes, Some(&shared), &servers, &events);
        let texts: Vec<&str> = said.iter().map(|a| a["text"].as_str().unwrap()).collect();
        assert_eq!(
            texts,
            [
                "origin 'backend' failing: 25% of route 'api' answers are 5xx (2.5 per second)",
                "shared tier down: Redis at redis://10.0.0.5:6379 is not answering; serving from memory and the origins",
                "server b:80 of origin 'backend' is out",
                "configuration reload refused; the previous configuration serves on: routes[0].origin: unknown origin 'x'",
            ]
        );
        let calm = alerts(
            &routes[1..],
            Some(&json!({ "state": "closed" })),
            &[],
            &VecDeque::from([event(false), event(true)]),
        );
        assert!(calm.is_empty(), "a later good reload clears it: {calm:?}");
    }
}
