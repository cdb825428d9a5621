//! The last phase of every request: an error becomes its response, the
//! proxy's headers are added (`Via`, `X-Cache`, `Cache-Status`), the
//! request is counted, and the access line is written when the body ends
//! (or a 499 when the client went away first). [`Handling`] is the future
//! hyper awaits for one request.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderName, Method, Response, StatusCode, Version};
use prometheus_client::metrics::counter::Counter;

use super::Proxy;
use super::access_log::{AccessRecord, LoggedBody};
use super::cache_status::{CacheStatus, Fwd};
use super::exchange::Served;
use super::headers;
use super::respond::error_response;
use crate::error::RequestError;
use crate::metrics::{Metrics, method_label, status_label};

/// `Cache-Status` (RFC 9211).
const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// What nginx logs for a request whose client closed the connection
/// before the answer.
const CLIENT_CLOSED: StatusCode = match StatusCode::from_u16(499) {
    Ok(status) => status,
    Err(_) => StatusCode::BAD_REQUEST,
};

/// What a request that goes to the origin still has to do there.
pub(super) type OriginTrip = Pin<Box<dyn Future<Output = Result<Served, RequestError>> + Send>>;

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

impl Handling {
    /// A request answered without waiting.
    pub(super) fn ready(
        proxy: &Proxy,
        finish: Finish,
        result: Result<Served, RequestError>,
    ) -> Self {
        Handling(State::Ready(Some(finish.respond(proxy, result))))
    }

    /// A request answered once `trip` is done.
    pub(super) fn after(proxy: &Arc<Proxy>, finish: Finish, trip: OriginTrip) -> Self {
        Handling(State::Origin {
            trip,
            proxy: proxy.clone(),
            finish: Some(finish),
        })
    }
}

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

/// What the answer still needs from the request once it is produced.
pub(super) struct Finish {
    pub record: AccessRecord,
    pub method: Method,
}

impl Finish {
    /// The client's response for `result`, counted, its access line
    /// written when its body ends.
    fn respond(self, proxy: &Proxy, result: Result<Served, RequestError>) -> Response<LoggedBody> {
        let Finish { record, method } = self;
        let Served { response, cache } = match result {
            Ok(served) => served,
            Err(err) => {
                if err.is_refusal() {
                    tracing::debug!(error = %err, "refused request");
                } else {
                    tracing::warn!(error = %err.chain(), "request failed");
                }
                Served {
                    response: error_response(&err),
                    cache: CacheStatus::Error,
                }
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

    /// Logs and counts a request whose client went away during the origin
    /// trip (499, as nginx has it).
    fn abandoned(self, proxy: &Proxy) {
        let Finish { record, method } = self;
        tracing::debug!("client went away before the answer");
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
    status: StatusCode,
    cache: CacheStatus,
) {
    metrics.request(
        record.route.as_ref().map(|route| &route.counters),
        method_label(method),
        cache.as_str(),
        status_label(status),
    );
    let counters: &[&Counter] = match cache {
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
