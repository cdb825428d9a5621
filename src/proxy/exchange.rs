//! One request's dealings with the cache and the origin: answer from the
//! cache, forward, fetch for the cache (leading a coalesced fill),
//! revalidate, fall back to a stale response when the origin fails, and
//! refresh in the background.

use std::sync::Arc;
use std::time::SystemTime;

use http::header::{
    IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, RANGE,
};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::Either;
use hyper::body::Incoming;

use super::access_log::OriginTime;
use super::body::{Fill, ProxyBody, TeeBody};
use super::cache_status::{CacheStatus, Fwd};
use super::headers::{self, Forwarded};
use super::respond::{declared_length, from_cache};
use super::{ClientConn, Proxy};
use crate::cache::coalesce::{FillGuard, FillState, Role};
use crate::cache::control::CacheControl;
use crate::cache::policy::{self, Decision, Lifetime, StoreInput};
use crate::cache::reuse::{self, Verdict};
use crate::cache::tags;
use crate::cache::vary::{Vary, VaryValues};
use crate::cache::{CacheKey, CachedResponse};
use crate::config::{InvalidTarget, Policy};
use crate::error::RequestError;
use crate::runtime::{Route, Runtime};
use crate::upstream::UpstreamBody;
use crate::upstream::body::{ClientBody, MinRate, OriginBody};

/// A response and the cache's part in it.
pub(super) type Served = (Response<ProxyBody>, CacheStatus);

/// A stored response found for the request, with the key it is stored under.
pub(super) type Stored = (CacheKey, Arc<CachedResponse>);

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

/// What a cached answer needs from a request that has been sent on.
pub(super) struct Asked {
    pub(super) headers: HeaderMap,
    pub(super) head: bool,
}

/// One request's view of the proxy. Cheap to clone (for background work).
#[derive(Clone)]
pub(super) struct Exchange {
    pub(super) proxy: Arc<Proxy>,
    pub(super) runtime: Arc<Runtime>,
    pub(super) route: Arc<Route>,
    pub(super) conn: ClientConn,
    pub(super) authority: String,
    pub(super) origin_time: Arc<OriginTime>,
}

impl Exchange {
    pub(super) fn now(&self) -> SystemTime {
        self.proxy.clock.now()
    }

    /// Answers from `entry` (304, 206 or full), with its `Cache-Status`.
    pub(super) fn answer_from(
        &self,
        entry: &CachedResponse,
        request: &HeaderMap,
        head: bool,
        detail: Option<&'static str>,
    ) -> Served {
        let now = self.now();
        let status = CacheStatus::Hit {
            ttl: ttl_of(entry, now),
            detail,
        };
        entry.count_hit();
        (from_cache(entry, request, head, now), status)
    }

    /// A stored response this request may use right now without the origin.
    /// (A GET: `fetch` is never called for HEAD.)
    fn usable_hit(
        &self,
        primary: &CacheKey,
        request: &HeaderMap,
        directives: &CacheControl,
    ) -> Option<Served> {
        let (_, entry) = self.proxy.store.lookup(primary, request)?;
        match reuse::judge(&entry, directives, self.now()) {
            Verdict::Serve { .. } => Some(self.answer_from(&entry, request, false, None)),
            Verdict::ServeWhileRevalidating | Verdict::Revalidate | Verdict::Refetch => None,
        }
    }

    /// Sends to the route's origin, noting how long the headers took.
    async fn send(
        &self,
        request: Request<UpstreamBody>,
    ) -> Result<Response<OriginBody>, RequestError> {
        let started = std::time::Instant::now();
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

    /// Fetches a GET for the cache; concurrent misses for the URL wait for
    /// one origin request (bounded by the origin timeout).
    pub(super) async fn fetch(
        &self,
        request: Request<UpstreamBody>,
        primary: CacheKey,
        stale: Option<Stored>,
        fwd: Fwd,
        directives: &CacheControl,
    ) -> Result<Served, RequestError> {
        let noted = self.proxy.store.not_stored_reason(&primary);
        if noted.is_some() {
            // Recently uncacheable ("hit-for-miss"): waiting for another
            // request would only delay this one.
            return self
                .lead(request, primary, None, stale, fwd, Some(noted))
                .await;
        }
        match self.proxy.coalescer.join(&primary) {
            Role::Leader(guard) => {
                if let Some(hit) = self.usable_hit(&primary, request.headers(), directives) {
                    guard.stored();
                    return Ok(hit);
                }
                self.lead(request, primary, Some(guard), stale, fwd, Some(noted))
                    .await
            }
            Role::Follower(follower) => {
                self.proxy.metrics.coalesced_waits.inc();
                let state = follower.wait(self.route.upstream.origin().timeout).await;
                if state == FillState::Stored {
                    if let Some(hit) = self.usable_hit(&primary, request.headers(), directives) {
                        return Ok(hit);
                    }
                }
                let detail = match state {
                    FillState::TimedOut => "coalesce-timeout",
                    FillState::Pending | FillState::Stored | FillState::NotStored => {
                        "coalesced-not-stored"
                    }
                };
                let asked = Asked {
                    headers: request.headers().clone(),
                    head: false,
                };
                match self.pass(request).await {
                    Ok(response) if is_gateway_failure(response.status()) => {
                        match stale
                            .as_ref()
                            .filter(|(_, e)| e.usable_on_error(self.now(), self.runtime.grace))
                        {
                            Some((_, entry)) => Ok(self.answer_from(
                                entry,
                                &asked.headers,
                                false,
                                Some("stale-if-error"),
                            )),
                            None => Ok((response, CacheStatus::pass(fwd, detail))),
                        }
                    }
                    Ok(response) => Ok((response, CacheStatus::pass(fwd, detail))),
                    Err(err) => self.stale_on_error(stale.as_ref(), &asked, err),
                }
            }
        }
    }

    /// The leader's fetch: conditional when a stale entry has validators;
    /// a 304 refreshes it, an error may be covered by it, anything else is
    /// judged by the policy and stored while it streams. `noted` is the
    /// URL's hit-for-miss note when the caller has read it (`None`: not
    /// read), so that it is not read again.
    pub(super) async fn lead(
        &self,
        request: Request<UpstreamBody>,
        primary: CacheKey,
        guard: Option<FillGuard>,
        stale: Option<Stored>,
        fwd: Fwd,
        noted: Option<Option<&'static str>>,
    ) -> Result<Served, RequestError> {
        let asked = Asked {
            headers: request.headers().clone(),
            head: request.method() == Method::HEAD,
        };
        let mut upstream_request = self.upstream_request(request, true)?;
        if let Some((_, entry)) = &stale {
            add_validators(upstream_request.headers_mut(), entry);
        }
        let request_time = self.now();
        let response = match self.send(upstream_request).await {
            Ok(response) => response,
            Err(err) => return self.stale_on_error(stale.as_ref(), &asked, err),
        };
        let response_time = self.now();
        let (mut parts, body) = response.into_parts();
        headers::remove_hop_by_hop(&mut parts.headers);
        let tags = self.take_tags(&mut parts.headers);
        if let Some((key, entry)) = &stale {
            if parts.status == StatusCode::NOT_MODIFIED {
                let refreshed = self.refresh(
                    &primary,
                    key.clone(),
                    entry,
                    &parts.headers,
                    tags,
                    &asked.headers,
                    request_time,
                    response_time,
                );
                if let Some(guard) = guard {
                    guard.stored();
                }
                let now = self.now();
                let status = CacheStatus::Revalidated {
                    ttl: ttl_of(&refreshed, now),
                };
                return Ok((
                    from_cache(&refreshed, &asked.headers, asked.head, now),
                    status,
                ));
            }
            if is_gateway_failure(parts.status)
                && entry.usable_on_error(self.now(), self.runtime.grace)
            {
                return Ok(self.answer_from(
                    entry,
                    &asked.headers,
                    asked.head,
                    Some("stale-if-error"),
                ));
            }
        }
        let input = StoreInput {
            request: &asked.headers,
            status: parts.status,
            response: &parts.headers,
            request_time,
            response_time,
            ttl: self.route.ttl,
            targets: &self.runtime.targeted,
        };
        let decision = self.decide(&input);
        let limit = self.runtime.max_object_size;
        let (body, status) = match decision {
            Decision::Store { .. } if declared_length(&parts.headers) > Some(limit) => (
                ProxyBody::Stream(Box::new(body)),
                CacheStatus::pass(fwd, "too-large"),
            ),
            Decision::Store {
                lifetime,
                initial_age,
                vary,
                rules,
                strip,
            } => {
                let mut stored_headers = parts.headers.clone();
                strip.iter().for_each(|name| {
                    stored_headers.remove(name.as_str());
                });
                if noted != Some(None) {
                    self.proxy.store.clear_not_stored(&primary);
                }
                let fill = Fill {
                    store: self.proxy.store.clone(),
                    primary,
                    status: parts.status,
                    headers: stored_headers,
                    stored_at: response_time,
                    fresh_for: fresh_for(lifetime),
                    initial_age,
                    vary: capture(&vary, &asked.headers),
                    rules,
                    tags,
                    guard,
                };
                let limit = usize::try_from(limit).unwrap_or(usize::MAX);
                let expected = declared_length(&parts.headers);
                let tee = TeeBody::new(body, limit, fill, expected);
                (
                    ProxyBody::Tee(Box::new(tee)),
                    CacheStatus::Miss {
                        fwd,
                        stored: true,
                        detail: None,
                    },
                )
            }
            Decision::Skip(why) => {
                let noted = noted.unwrap_or_else(|| self.proxy.store.not_stored_reason(&primary));
                if noted != Some(why.as_str()) {
                    self.proxy.store.note_not_stored(primary, why.as_str());
                }
                (
                    ProxyBody::Stream(Box::new(body)),
                    CacheStatus::pass(fwd, why.as_str()),
                )
            }
        };
        Ok((Response::from_parts(parts, body), status))
    }

    /// Reads the purge tags of a response and, unless configured to expose
    /// them, removes their fields.
    fn take_tags(&self, headers: &mut HeaderMap) -> Vec<Box<str>> {
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

    pub(super) fn decide(&self, input: &StoreInput<'_>) -> Decision {
        match self.route.policy {
            Policy::Force => policy::decide_forced(input),
            Policy::Standard | Policy::Bypass => policy::decide(input),
        }
    }

    /// The client's request rewritten for the origin.
    fn upstream_request(
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

/// The answers RFC 5861 lets a stale response stand in for.
fn is_gateway_failure(status: StatusCode) -> bool {
    matches!(status.as_u16(), 500 | 502 | 503 | 504)
}

fn add_validators(headers: &mut HeaderMap, entry: &CachedResponse) {
    if let Some(etag) = entry.etag() {
        headers.insert(IF_NONE_MATCH, etag);
    }
    if let Some(modified) = entry.last_modified() {
        headers.insert(IF_MODIFIED_SINCE, modified);
    }
}

fn capture(vary: &Vary, request: &HeaderMap) -> VaryValues {
    match vary {
        Vary::Fields(names) => VaryValues::capture(names, request),
        Vary::None | Vary::Star => VaryValues::default(),
    }
}

pub(super) fn fresh_for(lifetime: Lifetime) -> Option<std::time::Duration> {
    match lifetime {
        Lifetime::Forever => None,
        Lifetime::For(duration) => Some(duration),
    }
}

/// Seconds of freshness left; negative when stale; `None` for no expiry.
fn ttl_of(entry: &CachedResponse, now: SystemTime) -> Option<i64> {
    let until = entry.fresh_until()?;
    let signed = match until.duration_since(now) {
        Ok(left) => i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
        Err(past) => -i64::try_from(past.duration().as_secs()).unwrap_or(i64::MAX),
    };
    Some(signed)
}
