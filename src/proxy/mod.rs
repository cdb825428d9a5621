//! The request path: one [`Proxy`] per process, shared by every connection.
//!
//! `handler` sequences the phases (check, route, look up, judge);
//! `exchange` deals with the origin (fetch, coalesce, revalidate, store,
//! stale fallback); [`headers`], [`body`], `respond` and [`access_log`]
//! each do one job; the origin client is [`crate::upstream`].

pub mod access_log;
pub mod body;
pub mod cache_status;
mod exchange;
mod handler;
pub mod headers;
mod invalidate;
mod peer;
pub mod request;
mod respond;
mod revalidate;

use std::sync::Arc;

use arc_swap::ArcSwap;
use http::Request;
use hyper::body::Incoming;

use crate::cache::Store;
use crate::cache::coalesce::Coalescer;
use crate::clock::SharedClock;
use crate::metrics::Metrics;
use crate::runtime::Runtime;
pub use handler::Handling;
pub use peer::Peer;

/// The connection a request arrived on.
#[derive(Debug, Clone)]
pub struct ClientConn {
    /// The client's address.
    pub peer: Peer,
    /// Whether it came over TLS.
    pub tls: bool,
    /// Its listener's limits on requests.
    pub limits: RequestLimits,
}

/// What a listener allows a request (the head's byte size is bounded where
/// hyper reads it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// How fast request bodies must come.
    pub body_rate: crate::upstream::body::MinRate,
    /// Longest request target (414 beyond).
    pub max_uri_bytes: usize,
    /// Most header fields (431 beyond).
    pub max_headers: usize,
}

/// The shared state of the request path.
#[derive(Debug)]
pub struct Proxy {
    runtime: ArcSwap<Runtime>,
    store: Store,
    coalescer: Arc<Coalescer>,
    clock: SharedClock,
    metrics: Metrics,
}

impl Proxy {
    /// A proxy serving `runtime` from `store`.
    pub fn new(runtime: Runtime, store: Store, clock: SharedClock, metrics: Metrics) -> Self {
        Proxy {
            runtime: ArcSwap::from_pointee(runtime),
            store,
            coalescer: Arc::new(Coalescer::default()),
            clock,
            metrics,
        }
    }

    /// The process's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The response cache.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Replaces the configuration snapshot in one store.
    pub fn swap_runtime(&self, runtime: Arc<Runtime>) {
        self.runtime.store(runtime);
    }

    /// The configuration snapshot in force.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    /// Answers one client request. Never fails: errors become responses.
    pub fn handle(self: &Arc<Self>, request: Request<Incoming>, conn: ClientConn) -> Handling {
        handler::handle(self, request, conn)
    }
}
