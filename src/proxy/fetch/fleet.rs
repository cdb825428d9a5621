//! A first-tier miss asks the fleet before the origin: the shared tier may
//! have the response (promoted into this instance's memory with its
//! remaining lifetime: freshness counts from when the fetching instance
//! received it), or another instance may be fetching it (wait for its
//! fill, bounded by its lease; take the lease over if it lapses), or this
//! instance takes the fleet's lease and fetches.

use http::HeaderMap;

use super::super::cache_status::Detail;
use super::super::exchange::{Exchange, Served, Stored};
use crate::cache::CacheKey;
use crate::cache::control::CacheControl;
use crate::cache::partial;
use crate::cache::reuse::{self, Verdict};
use crate::shared::{LeaseHold, Lookup, SharedTier, Taken};
use std::sync::Arc;

/// What the fleet said.
pub(super) enum Consulted {
    /// Served from the shared tier.
    Hit(Served),
    /// Fetch from the origin: with the fleet's lease if this instance holds
    /// it, with a stored response that needs revalidation if the shared
    /// tier had one (and this instance none).
    Fetch {
        lease: Option<LeaseHold>,
        stale: Option<Stored>,
    },
}

/// Asks the fleet about `primary` before this instance fetches it.
pub(super) async fn consult(
    exchange: &Exchange,
    tier: &Arc<SharedTier>,
    primary: &CacheKey,
    request: &HeaderMap,
    directives: &CacheControl,
) -> Consulted {
    let deadline = tokio::time::Instant::now() + exchange.route().upstream.origin().timeout;
    let mut stale = None;
    let mut waited = false;
    loop {
        // Registered before looking, so that a fill announced after the
        // look is not missed.
        let waiter = tier.waiter(primary);
        let notified = waiter.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        // The look takes the lease too when the URL has nothing stored
        // (one round trip); otherwise it is taken after the look.
        let (taken, atomic) = match find(exchange, tier, primary, request, directives, true).await {
            Found::Hit(served) => {
                tier.done_waiting(primary, &waiter);
                return Consulted::Hit(served);
            }
            Found::Stale(stored) => {
                stale = Some(stored);
                (tier.take_lease(primary).await, true)
            }
            Found::Miss(Some(taken)) => (Ok(taken), true),
            Found::Miss(None) => (tier.take_lease(primary).await, false),
            Found::Pass => {
                tier.done_waiting(primary, &waiter);
                return Consulted::Fetch { lease: None, stale };
            }
        };
        let left = match taken {
            Ok(Taken::Mine(lease)) => {
                tier.done_waiting(primary, &waiter);
                if waited {
                    exchange.metrics().shared.lease_takeovers.inc();
                }
                if atomic {
                    return Consulted::Fetch {
                        lease: Some(lease),
                        stale,
                    };
                }
                // A variant filled between the look and the lease (its
                // holder has just released it)?
                return match find(exchange, tier, primary, request, directives, false).await {
                    Found::Hit(served) => Consulted::Hit(served),
                    Found::Stale(stored) => Consulted::Fetch {
                        lease: Some(lease),
                        stale: Some(stored),
                    },
                    Found::Miss(_) | Found::Pass => Consulted::Fetch {
                        lease: Some(lease),
                        stale,
                    },
                };
            }
            Ok(Taken::Held(left)) => left,
            Err(_) => {
                tier.done_waiting(primary, &waiter);
                return Consulted::Fetch { lease: None, stale };
            }
        };
        if !waited {
            exchange.metrics().shared.fleet_waits.inc();
            waited = true;
        }
        // Woken by the fill, or when the holder's lease ends (then one
        // waiter takes it over), or at the origin timeout (then fetch).
        let until = (tokio::time::Instant::now() + left).min(deadline);
        let woken = tokio::time::timeout_at(until, notified).await.is_ok();
        tier.done_waiting(primary, &waiter);
        if !woken && tokio::time::Instant::now() >= deadline {
            return Consulted::Fetch { lease: None, stale };
        }
    }
}

enum Found {
    Hit(Served),
    Stale(Stored),
    Miss(Option<Taken>),
    Pass,
}

/// One look in the shared tier (taking the lease if `lease` and nothing
/// is stored); a response found is promoted into this instance's store
/// either way.
async fn find(
    exchange: &Exchange,
    tier: &Arc<SharedTier>,
    primary: &CacheKey,
    request: &HeaderMap,
    directives: &CacheControl,
    lease: bool,
) -> Found {
    match tier.lookup(primary, request, exchange.now(), lease).await {
        Lookup::Found(_, entry) => {
            let Some(stored) = exchange.store().insert_fill(
                exchange.store().purge_count(),
                primary.clone(),
                entry,
                exchange.runtime().max_object_size,
            ) else {
                return Found::Miss(None);
            };
            if !partial::serves(&stored.1, request) {
                return Found::Miss(None); // a piece without the bytes asked for
            }
            match reuse::judge(&stored.1, directives, exchange.now()) {
                Verdict::Serve { .. } => {
                    let served =
                        exchange.answer_from(&stored.1, request, false, Some(Detail::Shared));
                    Found::Hit(served)
                }
                Verdict::ServeWhileRevalidating | Verdict::Revalidate | Verdict::Refetch => {
                    Found::Stale(stored)
                }
            }
        }
        Lookup::Miss(taken) => Found::Miss(taken),
        Lookup::Pass | Lookup::Unavailable => Found::Pass,
    }
}
