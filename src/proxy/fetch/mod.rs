//! Fetching from the origin for the cache: the leader of a coalesced fill
//! and its followers, revalidation of a stale entry (a 304 or a matching
//! HEAD refreshes it: `revalidate`), the background refresh of
//! stale-while-revalidate, and the one stale-if-error fallback all of
//! them share.

use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Either, Empty};

use super::assembled::JoinedBody;
use super::body::{Fill, ProxyBody, SharedFill, TeeBody};
use super::cache_status::{CacheStatus, Detail, Fwd};
use super::exchange::{Asked, Exchange, Served, Stored, ttl_of};
use super::headers;
use super::respond::from_cache;
mod fill_plan;
mod fleet;
mod follow;
mod partial;
mod revalidate;

use crate::cache::CacheKey;
use crate::cache::coalesce::{FillGuard, Role};
use crate::cache::control::CacheControl;
use crate::cache::negotiate;
use crate::cache::policy::{Decision, NotStored, StoreInput};
use crate::cache::revalidation::{add_validators, declared_length, stale_may_replace};
use crate::error::RequestError;
use crate::shared::LeaseHold;
use crate::upstream::UpstreamBody;
use fill_plan::{capture, encode_as_sent, plan_compression};
pub(super) use partial::RangeAsk;
use partial::Rest;
use revalidate::Refresh;
pub(super) use revalidate::head;

/// The URL's hit-for-miss note, as far as the caller has read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Note {
    /// Not read yet.
    Unread,
    /// Read: none.
    Clear,
    /// Read: the last response was not stored, for this reason.
    NotStored(NotStored),
}

impl Note {
    fn read(exchange: &Exchange, primary: &CacheKey) -> Self {
        exchange
            .store()
            .not_stored_reason(primary)
            .map_or(Note::Clear, Note::NotStored)
    }
}

/// A leader's fetch: the request, the URL's key, the fill it leads (if
/// coalesced), the stale entry it may revalidate or fall back on, why it
/// went forward, and the URL's hit-for-miss note.
pub(super) struct Lead {
    pub request: Request<UpstreamBody>,
    pub primary: CacheKey,
    pub guard: Option<FillGuard>,
    pub stale: Option<Stored>,
    pub fwd: Fwd,
    pub note: Note,
    /// The fleet's lease on the fetch, if this instance took it.
    pub lease: Option<LeaseHold>,
    /// What to ask the origin for.
    pub range: RangeAsk,
}

/// Fetches a GET for the cache; concurrent misses for the URL wait for
/// one origin request (bounded by the origin timeout).
pub(super) async fn fetch(
    exchange: &Exchange,
    request: Request<UpstreamBody>,
    primary: CacheKey,
    mut stale: Option<Stored>,
    fwd: Fwd,
    directives: &CacheControl,
    range: RangeAsk,
) -> Result<Served, RequestError> {
    let note = Note::read(exchange, &primary);
    let mut guard = None;
    let mut lease = None;
    // Recently uncacheable ("hit-for-miss"): waiting for another request
    // would only delay this one, so it leads without joining.
    if note == Note::Clear {
        match exchange.coalescer().join(&primary) {
            Role::Leader(leader) => {
                if let Some(hit) = exchange.usable_hit(&primary, request.headers(), directives) {
                    leader.stored();
                    return Ok(hit);
                }
                if let Some(tier) = exchange.shared() {
                    // Boxed: only a fleet consults, and its future would
                    // make every miss's larger.
                    let consulted = Box::pin(fleet::consult(
                        exchange,
                        tier,
                        &primary,
                        request.headers(),
                        directives,
                    ))
                    .await;
                    match consulted {
                        fleet::Consulted::Hit(hit) => {
                            leader.stored();
                            return Ok(hit);
                        }
                        fleet::Consulted::Fetch {
                            lease: taken,
                            stale: found,
                        } => {
                            lease = taken;
                            if stale.is_none() {
                                stale = found;
                            }
                        }
                    }
                }
                guard = Some(leader);
            }
            Role::Follower(follower) => {
                let waited = follow::Waited {
                    request,
                    primary,
                    stale,
                    fwd,
                };
                return follow::follow(exchange, follower, waited, directives).await;
            }
        }
    }
    let lead = Lead {
        request,
        primary,
        guard,
        stale,
        fwd,
        note,
        lease,
        range,
    };
    self::lead(exchange, lead).await
}

/// The leader's fetch: conditional when a stale entry has validators; a
/// 304 refreshes it, a failure may be covered by it, anything else is
/// judged by the policy and stored while it streams.
pub(super) async fn lead(exchange: &Exchange, lead: Lead) -> Result<Served, RequestError> {
    let Lead {
        request,
        primary,
        guard,
        stale,
        fwd,
        note,
        lease,
        range,
    } = lead;
    // Purges from here on keep this fetch's response out of both tiers.
    let purges_since = exchange.store().purge_count();
    let shared_since = exchange.shared().map(|tier| tier.watermark());
    let asked = Asked {
        headers: request.headers().clone(),
        head: request.method() == Method::HEAD,
    };
    let mut upstream_request = exchange.upstream_request(request, true)?;
    // The origin is asked only for codings the proxy can decode for a
    // client keyed alike that does not take the one it chose.
    negotiate::forward_known_codings(upstream_request.headers_mut());
    if let Some((_, entry)) = &stale {
        add_validators(upstream_request.headers_mut(), entry);
    }
    let judged = partial::ask(&range, &asked.headers, upstream_request.headers_mut());
    let whole = partial::whole_request(&range, &upstream_request);
    let request_time = exchange.now();
    let mut sent = exchange.send(upstream_request).await;
    let mut rest = Rest::NotAsked;
    if let (Ok(response), Some(whole)) = (&sent, whole) {
        rest = partial::judge(&range, response.status(), response.headers());
        if let Rest::Unusable = rest {
            sent = exchange.send(whole).await;
            rest = Rest::NotAsked;
        }
    }
    let response = match sent {
        Ok(response) => response,
        Err(err) => {
            let failure = Failure::Error(&err);
            return stale_if_error(exchange, stale.as_ref(), &asked, failure).ok_or(err);
        }
    };
    let response_time = exchange.now();
    let (mut parts, body) = response.into_parts();
    headers::remove_hop_by_hop(&mut parts.headers);
    let tags = exchange.take_tags(&mut parts.headers);
    if let Some((key, entry)) = &stale {
        if parts.status == StatusCode::NOT_MODIFIED {
            let refreshed = revalidate::refresh(
                exchange,
                Refresh {
                    primary: &primary,
                    key: key.clone(),
                    entry,
                    fresh: &parts.headers,
                    fresh_tags: tags,
                    request: &asked.headers,
                    request_time,
                    response_time,
                    lease,
                },
            );
            if let Some(guard) = guard {
                guard.stored();
            }
            let now = exchange.now();
            return Ok(Served {
                response: from_cache(&refreshed, &asked.headers, asked.head, now),
                cache: CacheStatus::Revalidated {
                    ttl: ttl_of(&refreshed, now),
                },
            });
        }
        if stale_may_replace(parts.status) {
            let failure = Failure::Status(parts.status);
            if let Some(served) = stale_if_error(exchange, stale.as_ref(), &asked, failure) {
                return Ok(served);
            }
        }
    }
    let input = StoreInput {
        request: judged.as_ref().unwrap_or(&asked.headers),
        status: parts.status,
        response: &parts.headers,
        request_time,
        response_time,
        ttl: exchange.route().ttl,
        targets: &exchange.runtime().targeted,
    };
    let decision = exchange.decide(&input);
    let limit = exchange.runtime().max_object_size;
    let (body, cache) = match decision {
        Decision::Store { .. } if declared_length(&parts.headers) > Some(limit) => {
            if let (Some(tier), Some(lease)) = (exchange.shared(), lease) {
                tier.not_stored(primary, Detail::TooLarge.as_str(), lease);
            }
            (
                ProxyBody::Stream(Box::new(body)),
                CacheStatus::pass(fwd, Detail::TooLarge),
            )
        }
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
            if note != Note::Clear {
                exchange.store().clear_not_stored(&primary);
            }
            let compress = plan_compression(exchange, &asked.headers, &parts, &vary);
            if compress.is_some() {
                // The stored body will be compressed: which body a client
                // gets depends on its Accept-Encoding, this one's too.
                headers::add_vary_accept_encoding(&mut parts.headers);
            }
            let fill = Fill {
                store: exchange.store().clone(),
                // A slice's request answered with the whole object is
                // stored as the object.
                primary: match parts.status {
                    StatusCode::PARTIAL_CONTENT => primary,
                    _ => primary.whole(),
                },
                status: parts.status,
                headers: stored_headers,
                stored_at: response_time,
                fresh_for: lifetime.fresh_for(),
                initial_age,
                vary: capture(
                    &vary.with_fields(&exchange.route().key.headers),
                    &asked.headers,
                ),
                rules,
                tags,
                guard,
                since: purges_since,
                shared: exchange.shared().map(|tier| SharedFill {
                    tier: tier.clone(),
                    since: shared_since.unwrap_or_default(),
                    lease,
                }),
                compress,
                max_object_size: limit,
            };
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            let expected = declared_length(&parts.headers);
            let tee = TeeBody::new(body, limit, fill, expected);
            let tee = encode_as_sent(tee, compress, &asked.headers, &mut parts.headers);
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
            let noted = match note {
                Note::Unread => Note::read(exchange, &primary),
                Note::Clear | Note::NotStored(_) => note,
            };
            if let (Some(tier), Some(lease)) = (exchange.shared(), lease) {
                tier.not_stored(primary.clone(), why.as_str(), lease);
            }
            if noted != Note::NotStored(why) {
                exchange.store().note_not_stored(primary, why);
            }
            (
                ProxyBody::Stream(Box::new(body)),
                CacheStatus::pass(fwd, Detail::NotStored(why)),
            )
        }
    };
    if let Rest::Completes {
        before,
        after,
        complete,
    } = rest
    {
        // The stored piece and the origin's rest, as the whole response.
        parts.status = StatusCode::OK;
        partial::whole_headers(&mut parts.headers, complete);
        let joined = JoinedBody::new(before, body, after);
        return Ok(Served {
            response: Response::from_parts(parts, ProxyBody::Joined(Box::new(joined))),
            cache,
        });
    }
    Ok(Served {
        response: Response::from_parts(parts, body),
        cache,
    })
}

/// How the origin failed a request that has a stale entry to fall back on.
#[derive(Clone, Copy)]
enum Failure<'a> {
    /// No usable answer.
    Error(&'a RequestError),
    /// An answer RFC 5861 lets a stale response replace.
    Status(StatusCode),
}

/// The stale entry in place of a failed origin, when its windows allow.
fn stale_if_error(
    exchange: &Exchange,
    stale: Option<&Stored>,
    asked: &Asked,
    failure: Failure<'_>,
) -> Option<Served> {
    let (_, entry) = stale?;
    if !entry.usable_on_error(exchange.now(), exchange.runtime().retention.grace) {
        return None;
    }
    match failure {
        Failure::Error(err) => {
            tracing::warn!(error = %err.chain(), "origin failed; serving a stale response");
        }
        Failure::Status(status) => {
            tracing::warn!(%status, "origin failed; serving a stale response");
        }
    }
    Some(exchange.answer_from(
        entry,
        &asked.headers,
        asked.head,
        Some(Detail::StaleIfError),
    ))
}

/// Refreshes `stale` with one background request (the client was served
/// the stale response already).
pub(super) fn refresh_in_background(
    exchange: &Exchange,
    parts: &http::request::Parts,
    primary: CacheKey,
    stale: Stored,
) {
    let Role::Leader(guard) = exchange.coalescer().join(&primary) else {
        return; // a fetch for this URL is already under way
    };
    let mut request = Request::new(Either::Right(Empty::new()));
    *request.uri_mut() = parts.uri.clone();
    *request.version_mut() = parts.version;
    *request.headers_mut() = parts.headers.clone();
    let exchange = exchange.clone();
    tokio::spawn(async move {
        let background = Lead {
            request,
            primary,
            guard: Some(guard),
            stale: Some(stale),
            fwd: Fwd::Stale,
            note: Note::Unread,
            lease: None,
            range: RangeAsk::Whole,
        };
        match lead(&exchange, background).await {
            // Reading the body to its end is what stores it.
            Ok(served) => {
                let _ = served.response.into_body().collect().await;
            }
            Err(err) => tracing::debug!(error = %err.chain(), "background revalidation failed"),
        }
    });
}
