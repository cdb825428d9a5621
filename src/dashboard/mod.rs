//! What the dashboard (the admin listener's `GET /`) and `caching-proxy
//! top` show: a sampler task reads the counters the request path already
//! keeps, once a second, off the request path, and keeps the last 15
//! minutes of them; reloads and purges are kept as events. [`Dashboard::json`] turns
//! that into the JSON both read.

pub mod page;
mod view;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::clock::{unix_millis, wall_now};
use crate::metrics::{LatencyCounts, RouteTotals};
use crate::proxy::Proxy;
use crate::reload::ReloadEvent;

/// How much history is kept: 15 minutes of one-second samples.
const KEPT: usize = 900;
/// Events kept (reloads, purges).
const EVENTS: usize = 20;
/// The top-URL counts halve this often.
const DECAY_EVERY: u64 = 60;

/// One second's reading of the counters (cumulative values; rates are
/// differences between two samples).
#[derive(Debug, Clone)]
struct Sample {
    /// Unix milliseconds.
    at: u64,
    requests: u64,
    hits: u64,
    misses: u64,
    evictions: u64,
    latency: LatencyCounts,
    cache_bytes: u64,
    cache_entries: u64,
    routes: Vec<RouteSample>,
}

#[derive(Debug, Clone)]
struct RouteSample {
    name: Arc<str>,
    origin: Arc<str>,
    totals: RouteTotals,
}

/// Something that happened: a reload or a purge, and how it went.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Event {
    /// Unix milliseconds.
    pub at: u64,
    /// `reload` or `purge`.
    pub kind: &'static str,
    /// Whether it worked.
    pub ok: bool,
    /// What changed, what was purged, or why it was refused.
    pub text: String,
}

/// The dashboard's state: shared by the sampler and the admin listener.
#[derive(Debug)]
pub struct Dashboard {
    proxy: Arc<Proxy>,
    /// The cache's bound in bytes.
    capacity: u64,
    samples: Mutex<VecDeque<Sample>>,
    events: Mutex<VecDeque<Event>>,
    /// Counts the events recorded (for whoever awaits one).
    recorded: watch::Sender<u64>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Dashboard {
    /// An empty dashboard of `proxy`, whose cache holds `capacity` bytes.
    pub fn new(proxy: Arc<Proxy>, capacity: u64) -> Arc<Self> {
        Arc::new(Dashboard {
            proxy,
            capacity,
            samples: Mutex::new(VecDeque::with_capacity(KEPT + 1)),
            events: Mutex::new(VecDeque::with_capacity(EVENTS + 1)),
            recorded: watch::Sender::new(0),
        })
    }

    /// Records a reload or a purge.
    pub fn event(&self, kind: &'static str, ok: bool, text: String) {
        let mut events = lock(&self.events);
        events.push_back(Event {
            at: unix_millis(wall_now()),
            kind,
            ok,
            text,
        });
        if events.len() > EVENTS {
            events.pop_front();
        }
        drop(events);
        self.recorded.send_modify(|n| *n += 1);
    }

    /// Counts the events recorded so far, as they are.
    pub fn recorded(&self) -> watch::Receiver<u64> {
        self.recorded.subscribe()
    }

    /// Samples every second until `cancel` fires, and records the reloads
    /// `reloads` reports.
    pub async fn run(
        self: Arc<Self>,
        mut reloads: watch::Receiver<ReloadEvent>,
        cancel: CancellationToken,
    ) {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks: u64 = 0;
        loop {
            tokio::select! {
                _ = every.tick() => {}
                changed = reloads.changed() => {
                    if changed.is_ok() {
                        let event = reloads.borrow_and_update().clone();
                        self.reloaded(&event);
                    }
                    continue;
                }
                () = cancel.cancelled() => return,
            }
            ticks += 1;
            // The store's usage waits for moka's maintenance: a blocking
            // thread, not a runtime one.
            let this = self.clone();
            let decay = ticks % DECAY_EVERY == 0;
            let _ = tokio::task::spawn_blocking(move || this.sample(decay)).await;
        }
    }

    fn reloaded(&self, event: &ReloadEvent) {
        match &event.result {
            Ok(summary) => self.event("reload", true, summary.clone()),
            Err(err) => self.event("reload", false, crate::error::chain(err.as_ref())),
        }
    }

    /// Reads the counters now.
    fn sample(&self, decay: bool) {
        let metrics = self.proxy.metrics();
        metrics.top_urls.drain();
        if decay {
            metrics.top_urls.decay();
        }
        let usage = self.proxy.store().usage();
        let runtime = self.proxy.runtime();
        let routes = runtime
            .routes()
            .map(|route| RouteSample {
                name: route.name.clone(),
                origin: route.origin_name.clone(),
                totals: route.counters.totals(),
            })
            .collect();
        let sample = Sample {
            at: unix_millis(wall_now()),
            requests: metrics.requests_total(),
            hits: metrics.hits.get(),
            misses: metrics.misses.get(),
            evictions: metrics.evictions.get(),
            latency: metrics.origin_times.counts(),
            cache_bytes: usage.bytes,
            cache_entries: usage.entries,
            routes,
        };
        let mut samples = lock(&self.samples);
        samples.push_back(sample);
        if samples.len() > KEPT {
            samples.pop_front();
        }
    }

    /// Samples now (for tests, which cannot wait a second per reading).
    pub fn sample_now(&self) {
        self.sample(false);
    }
}
