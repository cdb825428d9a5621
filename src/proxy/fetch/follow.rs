//! A follower of a coalesced fill: it waits for the leader (bounded by the
//! origin's timeout), then answers from what the leader stored, or goes to
//! the origin itself without storing (the leader's answer was not
//! storable, or did not come in time), falling back on a stale entry when
//! the origin fails.

use http::Request;

use super::super::cache_status::{CacheStatus, Detail, Fwd};
use super::super::exchange::{Asked, Exchange, Served, Stored};
use super::{Failure, stale_if_error};
use crate::cache::CacheKey;
use crate::cache::coalesce::{FillState, Follower};
use crate::cache::control::CacheControl;
use crate::cache::revalidation::stale_may_replace;
use crate::error::RequestError;
use crate::upstream::UpstreamBody;

/// What a follower brings to its wait.
pub(super) struct Waited {
    pub request: Request<UpstreamBody>,
    pub primary: CacheKey,
    pub stale: Option<Stored>,
    pub fwd: Fwd,
}

/// Waits for the leader's fill, then serves it or passes.
pub(super) async fn follow(
    exchange: &Exchange,
    follower: Follower,
    waited: Waited,
    directives: &CacheControl,
) -> Result<Served, RequestError> {
    let Waited {
        request,
        primary,
        stale,
        fwd,
    } = waited;
    exchange.metrics().coalesced_waits.inc();
    let state = follower
        .wait(exchange.route().upstream.origin().timeout)
        .await;
    if state == FillState::Stored {
        if let Some(hit) = exchange.usable_hit(&primary, request.headers(), directives) {
            return Ok(hit);
        }
    }
    let detail = match state {
        FillState::TimedOut => Detail::CoalesceTimeout,
        FillState::Pending | FillState::Stored | FillState::NotStored => Detail::CoalescedNotStored,
    };
    let asked = Asked {
        headers: request.headers().clone(),
        head: false,
    };
    // Boxed: a follower that passes is the rare case.
    let passed = Box::pin(exchange.pass(request)).await;
    let failure = match &passed {
        Ok(response) if stale_may_replace(response.status()) => {
            Some(Failure::Status(response.status()))
        }
        Ok(_) => None,
        Err(err) => Some(Failure::Error(err)),
    };
    if let Some(served) =
        failure.and_then(|failure| stale_if_error(exchange, stale.as_ref(), &asked, failure))
    {
        return Ok(served);
    }
    passed.map(|response| Served {
        response,
        cache: CacheStatus::pass(fwd, detail),
    })
}
