//! Sequences the phases of one request, in one direction: check it, route
//! it and build its key, look it up and judge what is stored, then answer
//! from the cache or go to the origin ([`super::fetch`], or a plain pass),
//! and finish the response ([`super::finish`]). Nothing it calls calls
//! back into it.

use std::sync::Arc;

use http::{Method, Request};
use hyper::body::Incoming;

use super::access_log::AccessRecord;
use super::cache_status::{CacheStatus, Detail, Fwd};
use super::exchange::{Exchange, Served, Stored, upstream_body};
use super::fetch::{self, RangeAsk};
use super::finish::{Finish, Handling, OriginTrip};
use super::invalidate;
use super::request;
use super::slice;
use super::{ClientConn, Proxy};
use crate::cache::CacheKey;
use crate::cache::control::CacheControl;
use crate::cache::partial;
use crate::cache::reuse::{self, Verdict};
use crate::config::Policy;
use crate::error::RequestError;
use crate::runtime::Runtime;
use crate::upstream::UpstreamBody;

/// Answers one request: at once when the cache can (nothing is awaited,
/// and the future hyper keeps is the finished response), else through a
/// boxed trip to the origin.
pub(super) fn handle(proxy: &Arc<Proxy>, request: Request<Incoming>, conn: ClientConn) -> Handling {
    let record = AccessRecord::start(
        conn.peer.clone(),
        request.method().clone(),
        request::path_and_query(&request),
    );
    let mut finish = Finish {
        record,
        method: request.method().clone(),
    };
    match serve(proxy, proxy.runtime(), request, conn, &mut finish.record) {
        Step::Done(result) => Handling::ready(proxy, finish, result),
        Step::Origin(trip) => Handling::after(proxy, finish, trip),
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

/// How a routed request is served.
enum Kind {
    /// The route never caches.
    Bypass,
    /// Not GET or HEAD: forwarded, and invalidates on success.
    OtherMethod,
    /// A GET or HEAD with a body: a body could change the response
    /// without changing the key.
    WithBody,
    /// A GET or HEAD the cache may answer.
    Cacheable,
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
    if let Err(err) = check(&request, &conn) {
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
    let primary = route.key_of(&authority, request::path_and_query(&request));
    let kind = kind_of(route.policy, &request);
    let exchange = Exchange::new(
        proxy.clone(),
        runtime,
        route,
        conn,
        authority,
        record.origin_time.clone(),
    );
    match kind {
        Kind::Bypass => {
            let request = upstream_body(request, exchange.body_rate());
            pass(exchange, request, Fwd::Bypass, Detail::Bypass)
        }
        Kind::OtherMethod => other_method(exchange, primary, request),
        Kind::WithBody => {
            let request = upstream_body(request, exchange.body_rate());
            pass(exchange, request, Fwd::Request, Detail::RequestBody)
        }
        Kind::Cacheable => look_up(exchange, primary, request),
    }
}

/// Refuses what is never forwarded: CONNECT and TRACE, and requests over
/// the listener's limits.
fn check(request: &Request<Incoming>, conn: &ClientConn) -> Result<(), RequestError> {
    if request.method() == Method::CONNECT || request.method() == Method::TRACE {
        return Err(RequestError::MethodNotAllowed);
    }
    request::within_limits(request, &conn.limits)
}

fn kind_of(policy: Policy, request: &Request<Incoming>) -> Kind {
    let method = request.method();
    if policy == Policy::Bypass {
        Kind::Bypass
    } else if method != Method::GET && method != Method::HEAD {
        Kind::OtherMethod
    } else if !hyper::body::Body::is_end_stream(request.body()) {
        Kind::WithBody
    } else {
        Kind::Cacheable
    }
}

/// Forwards a request of another method; a successful unsafe one
/// invalidates what is stored for its URL.
fn other_method(exchange: Exchange, primary: CacheKey, request: Request<Incoming>) -> Step {
    let method = request.method().clone();
    let request = upstream_body(request, exchange.body_rate());
    Step::Origin(Box::pin(async move {
        let response = exchange.pass(request).await?;
        let status = response.status();
        if !method.is_safe() && (status.is_success() || status.is_redirection()) {
            invalidate::after_unsafe(&exchange, &primary, response.headers()).await;
        }
        Ok(Served {
            response,
            cache: CacheStatus::pass(Fwd::Method, Detail::Method),
        })
    }))
}

/// Looks a GET or HEAD up and judges what is stored: served at once,
/// served stale while it refreshes, or fetched (conditionally when a stale
/// entry has validators).
fn look_up(exchange: Exchange, primary: CacheKey, request: Request<Incoming>) -> Step {
    let head = request.method() == Method::HEAD;
    let directives = CacheControl::from_headers(request.headers());
    let mut stale: Option<Stored> = None;
    let mut fwd = Fwd::UriMiss;
    let mut found = exchange.store().lookup(&primary, request.headers());
    if found.is_none() && exchange.store().varies(&primary) {
        fwd = Fwd::VaryMiss;
    }
    // A stored piece that does not hold what is asked is no answer, but
    // the fetch may complete it.
    let piece = found.take_if(|(_, entry)| !partial::serves(entry, request.headers()));
    if let Some((key, entry)) = found {
        match reuse::judge(&entry, &directives, exchange.now()) {
            Verdict::Serve { stale } => {
                let detail = stale.then_some(Detail::MaxStale);
                let served = exchange.answer_from(&entry, request.headers(), head, detail);
                return Step::Done(Ok(served));
            }
            Verdict::ServeWhileRevalidating => {
                let (parts, _) = request.into_parts();
                let detail = Some(Detail::StaleWhileRevalidate);
                let served = exchange.answer_from(&entry, &parts.headers, head, detail);
                fetch::refresh_in_background(&exchange, &parts, primary, (key, entry));
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
    let request = upstream_body(request, exchange.body_rate());
    if head {
        return Step::Origin(Box::pin(async move {
            fetch::head(&exchange, request, primary, stale, fwd).await
        }));
    }
    // With a stale complete entry the whole is fetched (and revalidated);
    // else the client's range, stored as a piece, or the rest of a piece.
    if let (Some(size), None) = (exchange.route().slice, &stale) {
        return Step::Origin(Box::pin(slice::serve(
            exchange, request, primary, directives, size,
        )));
    }
    let range = match stale {
        Some(_) => RangeAsk::Whole,
        None => RangeAsk::for_request(request.headers(), piece),
    };
    Step::Origin(Box::pin(async move {
        fetch::fetch(&exchange, request, primary, stale, fwd, &directives, range).await
    }))
}

/// Relays `request` without storing the answer.
fn pass(exchange: Exchange, request: Request<UpstreamBody>, fwd: Fwd, detail: Detail) -> Step {
    Step::Origin(Box::pin(async move {
        let response = exchange.pass(request).await?;
        Ok(Served {
            response,
            cache: CacheStatus::pass(fwd, detail),
        })
    }))
}
