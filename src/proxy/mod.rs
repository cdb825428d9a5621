//! The request path: one [`Proxy`] per process, shared by every connection.
//!
//! A request goes one way through these modules:
//!
//! - `handler` sequences the phases: check ([`request`]), route and key,
//!   look up and judge ([`crate::cache::reuse`]), then answer from the
//!   cache or go to the origin;
//! - `fetch` goes to the origin for the cache: the coalesced leader and
//!   its followers, revalidation and the HEAD update (`fetch/revalidate`),
//!   the background refresh and the stale-if-error fallback; `invalidate`
//!   follows unsafe methods;
//! - `exchange` is one request's view of the proxy and the operations the
//!   phases share (answer from an entry, rewrite and send a request, relay
//!   an answer); `respond` builds the proxy's own responses;
//! - `finish` ends every request: error responses, the proxy's headers
//!   ([`cache_status`]), counting, and the access line ([`access_log`]);
//! - [`headers`] and [`body`] are the header rules and the body types;
//!   [`Peer`] is the client address, formatted once per connection.
//!
//! The origin client is [`crate::upstream`].

pub mod access_log;
pub mod assembled;
pub mod body;
pub mod cache_status;
mod codec;
mod exchange;
mod fetch;
mod finish;
mod handler;
pub mod headers;
mod invalidate;
mod peer;
pub mod request;
mod respond;
mod slice;
pub mod stream_encoder;

use std::sync::Arc;

use arc_swap::ArcSwap;
use http::Request;
use hyper::body::Incoming;

use crate::cache::Store;
use crate::cache::coalesce::Coalescer;
use crate::clock::SharedClock;
use crate::metrics::Metrics;
use crate::runtime::Runtime;
use crate::shared::SharedTier;
pub use finish::Handling;
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
    shared: Option<Arc<SharedTier>>,
}

impl Proxy {
    /// A proxy serving `runtime` from `store`, with the fleet's `shared`
    /// tier behind it if there is one.
    pub fn new(
        runtime: Runtime,
        store: Store,
        clock: SharedClock,
        metrics: Metrics,
        shared: Option<Arc<SharedTier>>,
    ) -> Self {
        store.set_retention(runtime.retention);
        Proxy {
            runtime: ArcSwap::from_pointee(runtime),
            store,
            coalescer: Arc::new(Coalescer::default()),
            clock,
            metrics,
            shared,
        }
    }

    /// The fleet's shared tier, if this instance is part of one.
    pub fn shared(&self) -> Option<&Arc<SharedTier>> {
        self.shared.as_ref()
    }

    /// The process's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The response cache.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Concurrent misses of one URL, joined.
    fn coalescer(&self) -> &Arc<Coalescer> {
        &self.coalescer
    }

    /// The clock freshness is judged by.
    fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Replaces the configuration snapshot in one store; the store's
    /// memory ceiling follows its retention.
    pub fn swap_runtime(&self, runtime: Arc<Runtime>) {
        self.store.set_retention(runtime.retention);
        if let Some(tier) = &self.shared {
            tier.set_retention(runtime.retention);
        }
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
