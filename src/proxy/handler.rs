//! Sequences the phases of one request: check it, route it, decide whether
//! the cache may answer, and hand the rest to [`super::exchange`]; then
//! finish the response headers (`Via`, `X-Cache`, `Cache-Status`). The
//! handler asks the cache and the upstream; neither calls back into it.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::RANGE;
use http::{HeaderName, Method, Request, Response, Version};
use hyper::body::Incoming;

use super::access_log::{AccessRecord, LoggedBody};
use super::cache_status::{CacheStatus, Fwd};
use super::exchange::{Exchange, Served, upstream_body};
use super::headers;
use super::request;
use super::respond::error_response;
use super::{ClientConn, Proxy};
use crate::cache::CacheKey;
use crate::cache::control::CacheControl;
use crate::cache::reuse::{self, Verdict};
use crate::config::Policy;
use crate::error::RequestError;
use crate::metrics::{Metrics, method_label, status_label};
use crate::runtime::Runtime;
use crate::upstream::UpstreamBody;

/// `Cache-Status` (RFC 9211).
const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// Answers one request: at once when the cache can (nothing is awaited,
/// and the future hyper keeps is the finished response), else through a
/// boxed trip to the origin.
pub(super) fn handle(proxy: &Arc<Proxy>, request: Request<Incoming>, conn: ClientConn) -> Handling {
    let mut record = AccessRecord::start(
        conn.peer.clone(),
        request.method().clone(),
        request::path_and_query(&request),
    );
    let runtime = proxy.runtime();
    let method = request.method().clone();
    let step = serve(proxy, runtime, request, conn, &mut record);
    let finish = Finish { record, method };
    match step {
        Step::Done(result) => Handling(State::Ready(Some(finish.respond(proxy, result)))),
        Step::Origin(trip) => Handling(State::Origin {
            trip,
            proxy: proxy.clone(),
            finish: Some(finish),
        }),
    }
}

/// The response to one request, as hyper awaits it. Small: a hit's is the
/// response itself, a miss's the boxed origin trip and what the answer
/// still needs (hyper moves this future on every request).
pub struct Handling(State);

enum State {
    Ready(Option<Response<LoggedBody>>),
    Origin {
        trip: OriginTrip,
        proxy: Arc<Proxy>,
        finish: Option<Finish>,
    },
}

/// What a request that goes to the origin still has to do there.
type OriginTrip = Pin<Box<dyn Future<Output = Result<Served, RequestError>> + Send>>;

impl Future for Handling {
    type Output = Result<Response<LoggedBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let response = match &mut self.get_mut().0 {
            State::Ready(response) => response.take(),
            State::Origin {
                trip,
                proxy,
                finish,
            } => {
                let result = std::task::ready!(trip.as_mut().poll(cx));
                finish.take().map(|finish| finish.respond(proxy, result))
            }
        };
        match response {
            Some(response) => Poll::Ready(Ok(response)),
            // Polled again after it completed (hyper never does): the
            // `Future` contract lets it stay pending.
            None => Poll::Pending,
        }
    }
}

impl Drop for Handling {
    fn drop(&mut self) {
        // hyper drops the future when the client goes away first.
        if let State::Origin { proxy, finish, .. } = &mut self.0 {
            if let Some(finish) = finish.take() {
                finish.abandoned(proxy);
            }
        }
    }
}

/// What nginx logs for a request whose client closed the connection
/// before the answer.
const CLIENT_CLOSED: http::StatusCode = match http::StatusCode::from_u16(499) {
    Ok(status) => status,
    Err(_) => http::StatusCode::BAD_REQUEST,
};

/// Turns what `serve` produced into the client's response: errors become
/// responses, the proxy's headers are added, the request is counted, and
/// the access line is written when the body ends.
struct Finish {
    record: AccessRecord,
    method: Method,
}

impl Finish {
    fn respond(self, proxy: &Proxy, result: Result<Served, RequestError>) -> Response<LoggedBody> {
        let Finish { record, method } = self;
        let (response, cache) = match result {
            Ok(served) => served,
            Err(err) => {
                if err.is_refusal() {
                    tracing::debug!(client = record.client(), error = %err, "refused request");
                } else {
                    tracing::warn!(client = record.client(), error = %err.chain(), "request failed");
                }
                (error_response(&err), CacheStatus::Error)
            }
        };
        let (mut parts, body) = response.into_parts();
        headers::finish_response_headers(&mut parts.headers, parts.version, cache.is_hit());
        parts.headers.insert(CACHE_STATUS, cache.header_value());
        parts.version = Version::HTTP_11;
        let status = parts.status;
        count(proxy.metrics(), &record, &method, status, cache);
        Response::from_parts(parts, LoggedBody::new(body, record, status, cache))
    }
}

impl Finish {
    /// Logs and counts a request whose client went away during the origin
    /// trip (499, as nginx has it).
    fn abandoned(self, proxy: &Proxy) {
        let Finish { record, method } = self;
        tracing::debug!(
            client = record.client(),
            "client went away before the answer"
        );
        proxy
            .metrics()
            .client_closed(record.route.as_ref().map(|route| &route.counters));
        count(
            proxy.metrics(),
            &record,
            &method,
            CLIENT_CLOSED,
            CacheStatus::Error,
        );
        drop(LoggedBody::abandoned(
            record,
            CLIENT_CLOSED,
            CacheStatus::Error,
        ));
    }
}

fn count(
    metrics: &Metrics,
    record: &AccessRecord,
    method: &Method,
    status: http::StatusCode,
    cache: CacheStatus,
) {
    metrics.request(
        record.route.as_ref().map(|route| &route.counters),
        method_label(method),
        cache.as_str(),
        status_label(status),
    );
    let counters: &[&prometheus_client::metrics::counter::Counter] = match cache {
        CacheStatus::Hit { detail: None, .. } => &[&metrics.hits],
        CacheStatus::Hit {
            detail: Some(_), ..
        } => &[&metrics.hits, &metrics.stale_served],
        CacheStatus::Revalidated { .. } => &[&metrics.hits, &metrics.revalidations],
        CacheStatus::Miss {
            fwd: Fwd::UriMiss | Fwd::VaryMiss | Fwd::Stale | Fwd::Request,
            ..
        } => &[&metrics.misses],
        CacheStatus::Miss {
            fwd: Fwd::Method | Fwd::Bypass,
            ..
        }
        | CacheStatus::Error => &[],
    };
    for counter in counters {
        counter.inc();
    }
}

/// What [`serve`] found: the answer, or a trip to the origin for it.
enum Step {
    Done(Result<Served, RequestError>),
    Origin(OriginTrip),
}

impl From<RequestError> for Step {
    fn from(err: RequestError) -> Self {
        Step::Done(Err(err))
    }
}

/// Checks, routes and looks up a request without waiting for anything;
/// every call to the origin is a boxed future, so a hit never builds one.
fn serve(
    proxy: &Arc<Proxy>,
    runtime: Arc<Runtime>,
    request: Request<Incoming>,
    conn: ClientConn,
    record: &mut AccessRecord,
) -> Step {
    if request.method() == Method::CONNECT || request.method() == Method::TRACE {
        return RequestError::MethodNotAllowed.into();
    }
    if let Err(err) = request::within_limits(&request, &conn.limits) {
        return err.into();
    }
    let default_port = if conn.tls { 443 } else { 80 };
    let authority = match request::authority(&request, default_port) {
        Ok(authority) => authority,
        Err(err) => return err.into(),
    };
    record.host = Some(authority.clone());
    let Some(route) = runtime.route(&authority, request.uri().path()).cloned() else {
        return RequestError::NoRoute.into();
    };
    record.route = Some(route.clone());
    let primary = CacheKey::new(
        &route.origin_id,
        &authority,
        request::path_and_query(&request),
    );
    let policy = route.policy;
    let exchange = Exchange {
        proxy: proxy.clone(),
        runtime,
        route,
        conn,
        authority,
        origin_time: record.origin_time.clone(),
    };
    let method = request.method().clone();
    let rate = exchange.conn.limits.body_rate;
    let upstream_body = move |request| upstream_body(request, rate);
    if policy == Policy::Bypass {
        return pass(exchange, upstream_body(request), Fwd::Bypass, "bypass");
    }
    if method != Method::GET && method != Method::HEAD {
        return Step::Origin(Box::pin(async move {
            let response = exchange.pass(upstream_body(request)).await?;
            let status = response.status();
            if !method.is_safe() && (status.is_success() || status.is_redirection()) {
                exchange.invalidate_after(&primary, response.headers());
            }
            Ok((response, CacheStatus::pass(Fwd::Method, "method")))
        }));
    }
    if !hyper::body::Body::is_end_stream(request.body()) {
        // A body could change the response without changing the key.
        return pass(
            exchange,
            upstream_body(request),
            Fwd::Request,
            "request-body",
        );
    }

    let head = method == Method::HEAD;
    let directives = CacheControl::from_headers(request.headers());
    let mut stale = None;
    let mut fwd = Fwd::UriMiss;
    let found = proxy.store.lookup(&primary, request.headers());
    if found.is_none() && proxy.store.varies(&primary) {
        fwd = Fwd::VaryMiss;
    }
    if let Some((key, entry)) = found {
        match reuse::judge(&entry, &directives, exchange.now()) {
            Verdict::Serve { stale } => {
                let detail = stale.then_some("max-stale");
                return Step::Done(Ok(exchange.answer_from(
                    &entry,
                    request.headers(),
                    head,
                    detail,
                )));
            }
            Verdict::ServeWhileRevalidating => {
                let (parts, _) = request.into_parts();
                let served = exchange.answer_from(
                    &entry,
                    &parts.headers,
                    head,
                    Some("stale-while-revalidate"),
                );
                exchange.refresh_in_background(&parts, primary, (key, entry));
                return Step::Done(Ok(served));
            }
            Verdict::Revalidate | Verdict::Refetch => {
                let asked = directives.no_cache
                    || directives.max_age.is_some()
                    || directives.min_fresh.is_some();
                fwd = if asked { Fwd::Request } else { Fwd::Stale };
                stale = Some((key, entry));
            }
        }
    }
    if directives.only_if_cached {
        return RequestError::NotCached.into();
    }
    let request = upstream_body(request);
    if head {
        return Step::Origin(Box::pin(async move {
            exchange.head(request, primary, stale, fwd).await
        }));
    }
    if stale.is_none() && request.headers().contains_key(RANGE) {
        // A partial answer is never stored; the range goes to the origin.
        return pass(exchange, request, Fwd::Request, "range");
    }
    Step::Origin(Box::pin(async move {
        exchange
            .fetch(request, primary, stale, fwd, &directives)
            .await
    }))
}

/// Relays `request` without storing the answer.
fn pass(exchange: Exchange, request: Request<UpstreamBody>, fwd: Fwd, why: &'static str) -> Step {
    Step::Origin(Box::pin(async move {
        let response = exchange.pass(request).await?;
        Ok((response, CacheStatus::pass(fwd, why)))
    }))
}
