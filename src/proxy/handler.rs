//! Sequences the phases of one request: check the request, look it up,
//! coalesce a miss, fetch from the origin, decide whether to store, and
//! finish the response headers. The handler asks the cache and the
//! upstream; neither calls back into it.

use http::header::{
    IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, RANGE,
};
use http::{Method, Request, Response, Version};
use hyper::body::Incoming;

use super::access_log::{AccessRecord, CacheStatus, LoggedBody};
use super::body::{Fill, ProxyBody, TeeBody};
use super::headers::{self, Forwarded};
use super::request;
use super::respond::{declared_length, error_response, hit_response};
use super::{ClientConn, Proxy};
use crate::cache::CacheKey;
use crate::cache::coalesce::{FillGuard, FillState, Role};
use crate::cache::policy::{self, Decision, Lifetime, StoreInput};
use crate::cache::vary::{Vary, VaryValues};
use crate::config::Policy;
use crate::error::Error;
use crate::runtime::{Route, Runtime};

/// Conditional headers removed from a fetch meant for the cache: the cache
/// needs the full response, not the client's 304 or 412.
const CONDITIONALS: [http::HeaderName; 5] = [
    IF_NONE_MATCH,
    IF_MODIFIED_SINCE,
    IF_MATCH,
    IF_UNMODIFIED_SINCE,
    IF_RANGE,
];

type Served = (Response<ProxyBody>, CacheStatus);

pub(super) async fn handle(
    proxy: &Proxy,
    request: Request<Incoming>,
    conn: ClientConn,
) -> Response<LoggedBody> {
    let client = conn.peer;
    let record = AccessRecord::start(
        client,
        request.method().clone(),
        request::path_and_query(&request),
    );
    let runtime = proxy.runtime.load_full();
    let (response, cache) = match serve(proxy, &runtime, request, conn).await {
        Ok(served) => served,
        Err(err) => {
            match &err {
                Error::BadRequest(_) | Error::NoRoute => {
                    tracing::debug!(%client, error = %err, "refused request");
                }
                _ => tracing::warn!(%client, error = %err.chain(), "request failed"),
            }
            (error_response(&err), CacheStatus::Error)
        }
    };
    let (mut parts, body) = response.into_parts();
    headers::finish_response_headers(&mut parts.headers, parts.version, cache.is_hit());
    parts.version = Version::HTTP_11;
    let status = parts.status;
    Response::from_parts(parts, LoggedBody::new(body, record, status, cache))
}

/// One request's view of the proxy.
struct Exchange<'a> {
    proxy: &'a Proxy,
    runtime: &'a Runtime,
    route: &'a Route,
    conn: ClientConn,
    authority: String,
}

async fn serve(
    proxy: &Proxy,
    runtime: &Runtime,
    request: Request<Incoming>,
    conn: ClientConn,
) -> Result<Served, Error> {
    let default_port = if conn.tls { 443 } else { 80 };
    let authority = request::authority(&request, default_port)?;
    let route = runtime
        .route(&authority, request.uri().path())
        .ok_or(Error::NoRoute)?;
    let key = CacheKey::new(
        &route.origin_id,
        &authority,
        request::path_and_query(&request),
    );
    let exchange = Exchange {
        proxy,
        runtime,
        route,
        conn,
        authority,
    };
    if route.policy == Policy::Bypass {
        let response = exchange.pass(request).await?;
        return Ok((response, CacheStatus::Pass { reason: "bypass" }));
    }
    let method = request.method().clone();
    if method != Method::GET && method != Method::HEAD {
        let response = exchange.pass(request).await?;
        let status = response.status();
        if !method.is_safe() && (status.is_success() || status.is_redirection()) {
            proxy.store.invalidate(&key);
        }
        return Ok((response, CacheStatus::Pass { reason: "method" }));
    }
    if !hyper::body::Body::is_end_stream(request.body()) {
        // A body could change the response without changing the key.
        let response = exchange.pass(request).await?;
        return Ok((
            response,
            CacheStatus::Pass {
                reason: "request-body",
            },
        ));
    }
    if let Some(hit) = exchange.lookup(&key, &request) {
        return Ok(hit);
    }
    if method == Method::HEAD {
        // Never store a HEAD answer where a GET would find an empty body.
        let response = exchange.pass(request).await?;
        return Ok((
            response,
            CacheStatus::Pass {
                reason: "head-miss",
            },
        ));
    }
    if request.headers().contains_key(RANGE) {
        let response = exchange.pass(request).await?;
        return Ok((response, CacheStatus::Pass { reason: "range" }));
    }
    match proxy.coalescer.join(&key) {
        Role::Leader(guard) => {
            if let Some(hit) = exchange.lookup(&key, &request) {
                guard.stored();
                return Ok(hit);
            }
            exchange.fetch_and_store(request, key, guard).await
        }
        Role::Follower(follower) => {
            let state = follower.wait(route.upstream.origin().timeout).await;
            if state == FillState::Stored {
                if let Some(hit) = exchange.lookup(&key, &request) {
                    return Ok(hit);
                }
            }
            let reason = match state {
                FillState::TimedOut => "coalesce-timeout",
                FillState::Pending | FillState::Stored | FillState::NotStored => {
                    "coalesced-not-stored"
                }
            };
            let response = exchange.pass(request).await?;
            Ok((
                response,
                CacheStatus::Miss {
                    not_stored: Some(reason),
                },
            ))
        }
    }
}

impl Exchange<'_> {
    /// A fresh stored response of the variant `request` asks for.
    fn lookup(&self, key: &CacheKey, request: &Request<Incoming>) -> Option<Served> {
        let entry = self.proxy.store.get(key)?;
        let now = self.proxy.clock.now();
        if !entry.is_fresh(now) || !entry.matches(request) {
            return None;
        }
        let head = request.method() == Method::HEAD;
        Some((hit_response(&entry, head, now), CacheStatus::Hit))
    }

    /// Forwards `request` and relays the answer without storing it.
    async fn pass(&self, request: Request<Incoming>) -> Result<Response<ProxyBody>, Error> {
        let upstream_request = self.upstream_request(request, false)?;
        let response = self.route.upstream.send(upstream_request).await?;
        let (mut parts, body) = response.into_parts();
        headers::remove_hop_by_hop(&mut parts.headers);
        Ok(Response::from_parts(parts, ProxyBody::Stream(body)))
    }

    /// Fetches a GET for the cache, and stores it while it streams to the
    /// client if the policy allows.
    async fn fetch_and_store(
        &self,
        request: Request<Incoming>,
        key: CacheKey,
        guard: FillGuard,
    ) -> Result<Served, Error> {
        let request_headers = request.headers().clone();
        let clock = &self.proxy.clock;
        let request_time = clock.now();
        let upstream_request = self.upstream_request(request, true)?;
        let response = self.route.upstream.send(upstream_request).await?;
        let response_time = clock.now();
        let (mut parts, body) = response.into_parts();
        headers::remove_hop_by_hop(&mut parts.headers);
        let input = StoreInput {
            request: &request_headers,
            status: parts.status,
            response: &parts.headers,
            request_time,
            response_time,
            ttl: self.route.ttl,
        };
        let decision = match self.route.policy {
            Policy::Force => policy::decide_forced(&input),
            Policy::Standard | Policy::Bypass => policy::decide(&input),
        };
        let limit = self.runtime.max_object_size;
        let (body, cache) = match decision {
            Decision::Store { .. } if declared_length(&parts.headers) > Some(limit) => (
                ProxyBody::Stream(body),
                CacheStatus::Miss {
                    not_stored: Some("too-large"),
                },
            ),
            Decision::Store {
                lifetime,
                initial_age,
                vary,
            } => {
                let fill = Fill {
                    store: self.proxy.store.clone(),
                    key,
                    status: parts.status,
                    headers: parts.headers.clone(),
                    stored_at: response_time,
                    fresh_for: match lifetime {
                        Lifetime::Forever => None,
                        Lifetime::For(duration) => Some(duration),
                    },
                    initial_age,
                    vary: match &vary {
                        Vary::Fields(names) => VaryValues::capture(names, &request_headers),
                        Vary::None | Vary::Star => VaryValues::default(),
                    },
                    guard,
                };
                let limit = usize::try_from(limit).unwrap_or(usize::MAX);
                let tee = TeeBody::new(body, limit, fill);
                (
                    ProxyBody::Tee(Box::new(tee)),
                    CacheStatus::Miss { not_stored: None },
                )
            }
            Decision::Skip(why) => (
                ProxyBody::Stream(body),
                CacheStatus::Miss {
                    not_stored: Some(why.as_str()),
                },
            ),
        };
        Ok((Response::from_parts(parts, body), cache))
    }

    /// The client's request rewritten for the origin.
    fn upstream_request(
        &self,
        request: Request<Incoming>,
        for_cache: bool,
    ) -> Result<Request<Incoming>, Error> {
        let (mut parts, body) = request.into_parts();
        let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        parts.uri = self.route.upstream.origin().uri_for(target)?;
        let forwarded = Forwarded {
            client_ip: self.conn.peer.ip(),
            proto: if self.conn.tls { "https" } else { "http" },
            host: &self.authority,
            version: parts.version,
        };
        headers::forward_request_headers(&mut parts.headers, &forwarded);
        if for_cache {
            for name in CONDITIONALS {
                parts.headers.remove(name);
            }
        }
        Ok(Request::from_parts(parts, body))
    }
}
