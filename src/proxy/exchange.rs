//! One request's view of the proxy and the operations every phase uses:
//! answer from a stored entry, rewrite the request for the origin, send
//! it, relay the answer unstored, read purge tags, ask the policy. It
//! calls only downwards (the cache, the origin client); the phases call
//! it.

use std::sync::Arc;
use std::time::SystemTime;

use http::header::{
    IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, RANGE,
};
use http::{HeaderMap, Request, Response};
use http_body_util::Either;
use hyper::body::Incoming;

use super::access_log::OriginTime;
use super::body::ProxyBody;
use super::cache_status::{CacheStatus, Detail};
use super::headers::{self, Forwarded};
use super::respond::from_cache;
use super::{ClientConn, Proxy};
use crate::cache::coalesce::Coalescer;
use crate::cache::control::CacheControl;
use crate::cache::partial;
use crate::cache::policy::{self, Decision, StoreInput};
use crate::cache::reuse::{self, Verdict};
use crate::cache::{CacheKey, CachedResponse, Store, tags};
use crate::clock::Stopwatch;
use crate::config::{InvalidTarget, Policy};
use crate::error::RequestError;
use crate::metrics::Metrics;
use crate::runtime::{Route, Runtime};
use crate::shared::SharedTier;
use crate::upstream::UpstreamBody;
use crate::upstream::body::{ClientBody, MinRate, OriginBody};

/// A response and the cache's part in it.
pub(super) struct Served {
    /// What the client gets (its headers not yet finished).
    pub response: Response<ProxyBody>,
    /// How the cache took part.
    pub cache: CacheStatus,
}

/// A stored response found for the request, with the key it is stored under.
pub(super) type Stored = (CacheKey, Arc<CachedResponse>);

/// What a cached answer needs from a request that has been sent on.
pub(super) struct Asked {
    /// The client's request headers.
    pub headers: HeaderMap,
    /// Whether it was a HEAD.
    pub head: bool,
}

/// Request headers removed from a fetch meant for the cache: the cache
/// needs the full response, not the client's 304, 412 or 206.
const CLIENT_CONDITIONS: [http::HeaderName; 6] = [
    IF_NONE_MATCH,
    IF_MODIFIED_SINCE,
    IF_MATCH,
    IF_UNMODIFIED_SINCE,
    IF_RANGE,
    RANGE,
];

/// One request's view of the proxy. Cheap to clone (for background work).
#[derive(Clone)]
pub(super) struct Exchange {
    proxy: Arc<Proxy>,
    runtime: Arc<Runtime>,
    route: Arc<Route>,
    conn: ClientConn,
    authority: String,
    origin_time: Arc<OriginTime>,
}

impl Exchange {
    /// A request on `conn` for `authority`, routed to `route`.
    pub(super) fn new(
        proxy: Arc<Proxy>,
        runtime: Arc<Runtime>,
        route: Arc<Route>,
        conn: ClientConn,
        authority: String,
        origin_time: Arc<OriginTime>,
    ) -> Self {
        Exchange {
            proxy,
            runtime,
            route,
            conn,
            authority,
            origin_time,
        }
    }

    pub(super) fn now(&self) -> SystemTime {
        self.proxy.clock().now()
    }

    pub(super) fn store(&self) -> &Store {
        self.proxy.store()
    }

    pub(super) fn coalescer(&self) -> &Arc<Coalescer> {
        self.proxy.coalescer()
    }

    /// The fleet's shared tier, if any.
    pub(super) fn shared(&self) -> Option<&Arc<SharedTier>> {
        self.proxy.shared()
    }

    pub(super) fn metrics(&self) -> &Metrics {
        self.proxy.metrics()
    }

    pub(super) fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    pub(super) fn route(&self) -> &Route {
        &self.route
    }

    /// The request's normalized authority.
    pub(super) fn authority(&self) -> &str {
        &self.authority
    }

    /// How fast the client must send a request body.
    pub(super) fn body_rate(&self) -> MinRate {
        self.conn.limits.body_rate
    }

    /// Answers from `entry` (304, 206 or full), with its `Cache-Status`.
    pub(super) fn answer_from(
        &self,
        entry: &CachedResponse,
        request: &HeaderMap,
        head: bool,
        detail: Option<Detail>,
    ) -> Served {
        let now = self.now();
        entry.count_hit();
        Served {
            response: from_cache(entry, request, head, now),
            cache: CacheStatus::Hit {
                ttl: ttl_of(entry, now),
                detail,
            },
        }
    }

    /// A stored response this GET may use right now without the origin.
    pub(super) fn usable_hit(
        &self,
        primary: &CacheKey,
        request: &HeaderMap,
        directives: &CacheControl,
    ) -> Option<Served> {
        let (_, entry) = self.store().lookup(primary, request)?;
        if !partial::serves(&entry, request) {
            return None;
        }
        match reuse::judge(&entry, directives, self.now()) {
            Verdict::Serve { .. } => Some(self.answer_from(&entry, request, false, None)),
            Verdict::ServeWhileRevalidating | Verdict::Revalidate | Verdict::Refetch => None,
        }
    }

    /// Sends to the route's origin, noting how long the headers took.
    pub(super) async fn send(
        &self,
        request: Request<UpstreamBody>,
    ) -> Result<Response<OriginBody>, RequestError> {
        let started = Stopwatch::start();
        let result = self.route.upstream.send(request).await;
        self.origin_time.set(started.elapsed());
        result
    }

    /// Forwards `request` and relays the answer without storing it.
    pub(super) async fn pass(
        &self,
        request: Request<UpstreamBody>,
    ) -> Result<Response<ProxyBody>, RequestError> {
        let upstream_request = self.upstream_request(request, false)?;
        let response = self.send(upstream_request).await?;
        let (mut parts, body) = response.into_parts();
        headers::remove_hop_by_hop(&mut parts.headers);
        self.take_tags(&mut parts.headers);
        Ok(Response::from_parts(
            parts,
            ProxyBody::Stream(Box::new(body)),
        ))
    }

    /// Reads the purge tags of a response and, unless configured to expose
    /// them, removes their fields.
    pub(super) fn take_tags(&self, headers: &mut HeaderMap) -> Vec<Box<str>> {
        let names = &self.runtime.tag_headers;
        if !headers::has_any(headers, names) {
            return Vec::new();
        }
        let tags = tags::extract(headers, names);
        if !self.runtime.expose_tags {
            headers::remove_all(headers, names);
        }
        tags
    }

    /// The route's policy on a response.
    pub(super) fn decide(&self, input: &StoreInput<'_>) -> Decision {
        match self.route.policy {
            Policy::Force => policy::decide_forced(input),
            Policy::Standard | Policy::Bypass => policy::decide(input),
        }
    }

    /// The client's request rewritten for the origin; `for_cache` drops the
    /// client's conditions and range.
    pub(super) fn upstream_request(
        &self,
        request: Request<UpstreamBody>,
        for_cache: bool,
    ) -> Result<Request<UpstreamBody>, RequestError> {
        let (mut parts, body) = request.into_parts();
        let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        parts.uri = self
            .route
            .upstream
            .origin()
            .uri_for(target)
            .map_err(|_: InvalidTarget| RequestError::BadRequest("invalid request target"))?;
        let forwarded = Forwarded {
            client_ip: self.conn.peer.ip_header(),
            proto: if self.conn.tls { "https" } else { "http" },
            host: &self.authority,
            version: parts.version,
        };
        headers::forward_request_headers(&mut parts.headers, &forwarded);
        if for_cache {
            headers::remove_all(&mut parts.headers, &CLIENT_CONDITIONS);
        }
        Ok(Request::from_parts(parts, body))
    }
}

/// The client's body-carrying request as an upstream request, its body
/// held to the listener's minimum rate.
pub(super) fn upstream_body(request: Request<Incoming>, rate: MinRate) -> Request<UpstreamBody> {
    request.map(|body| Either::Left(ClientBody::new(body, rate)))
}

/// Seconds of freshness left; negative when stale; `None` for no expiry.
pub(super) fn ttl_of(entry: &CachedResponse, now: SystemTime) -> Option<i64> {
    let until = entry.fresh_until()?;
    let signed = match until.duration_since(now) {
        Ok(left) => i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
        Err(past) => -i64::try_from(past.duration().as_secs()).unwrap_or(i64::MAX),
    };
    Some(signed)
}
