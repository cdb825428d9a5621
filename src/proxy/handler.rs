//! Sequences the phases of one request: check it, route it, decide whether
//! the cache may answer, and hand the rest to [`super::exchange`]; then
//! finish the response headers (`Via`, `X-Cache`, `Cache-Status`). The
//! handler asks the cache and the upstream; neither calls back into it.

use std::sync::Arc;

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
use crate::error::Error;
use crate::metrics::{Metrics, method_label, status_label};
use crate::runtime::Runtime;

/// `Cache-Status` (RFC 9211).
const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

pub(super) async fn handle(
    proxy: &Arc<Proxy>,
    request: Request<Incoming>,
    conn: ClientConn,
) -> Response<LoggedBody> {
    let record = AccessRecord::start(
        conn.peer.clone(),
        request.method().clone(),
        request::path_and_query(&request),
    );
    let mut record = record;
    let runtime = proxy.runtime();
    let method = request.method().clone();
    let (response, cache) = match serve(proxy, runtime, request, conn, &mut record).await {
        Ok(served) => served,
        Err(err) => {
            match &err {
                Error::BadRequest(_)
                | Error::NoRoute
                | Error::NotCached
                | Error::MethodNotAllowed => {
                    tracing::debug!(client = record.client(), error = %err, "refused request");
                }
                _ => {
                    tracing::warn!(client = record.client(), error = %err.chain(), "request failed")
                }
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

/// Every call to the origin is boxed: the future hyper keeps per request
/// (and moves on every request) stays small for hits, which never await
/// one.
async fn serve(
    proxy: &Arc<Proxy>,
    runtime: Arc<Runtime>,
    request: Request<Incoming>,
    conn: ClientConn,
    record: &mut AccessRecord,
) -> Result<Served, Error> {
    if request.method() == Method::CONNECT || request.method() == Method::TRACE {
        return Err(Error::MethodNotAllowed);
    }
    let default_port = if conn.tls { 443 } else { 80 };
    let authority = request::authority(&request, default_port)?;
    record.host = Some(authority.clone());
    let route = runtime
        .route(&authority, request.uri().path())
        .cloned()
        .ok_or(Error::NoRoute)?;
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
    if policy == Policy::Bypass {
        let response = Box::pin(exchange.pass(upstream_body(request))).await?;
        return Ok((response, CacheStatus::pass(Fwd::Bypass, "bypass")));
    }
    if method != Method::GET && method != Method::HEAD {
        let response = Box::pin(exchange.pass(upstream_body(request))).await?;
        let status = response.status();
        if !method.is_safe() && (status.is_success() || status.is_redirection()) {
            exchange.invalidate_after(&primary, response.headers());
        }
        return Ok((response, CacheStatus::pass(Fwd::Method, "method")));
    }
    if !hyper::body::Body::is_end_stream(request.body()) {
        // A body could change the response without changing the key.
        let response = Box::pin(exchange.pass(upstream_body(request))).await?;
        return Ok((response, CacheStatus::pass(Fwd::Request, "request-body")));
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
                return Ok(exchange.answer_from(&entry, request.headers(), head, detail));
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
                return Ok(served);
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
        return Err(Error::NotCached);
    }
    let request = upstream_body(request);
    if head {
        return Box::pin(exchange.head(request, primary, stale, fwd)).await;
    }
    if stale.is_none() && request.headers().contains_key(RANGE) {
        // A partial answer is never stored; the range goes to the origin.
        let response = Box::pin(exchange.pass(request)).await?;
        return Ok((response, CacheStatus::pass(Fwd::Request, "range")));
    }
    Box::pin(exchange.fetch(request, primary, stale, fwd, &directives)).await
}
