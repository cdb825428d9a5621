//! Applying what the origin says about a stored entry: a 304 (or a
//! matching HEAD response) refreshes its headers and freshness (RFC 9111
//! sections 3.2, 4.3.4 and 4.3.5). What is merged and compared is
//! computed in [`crate::cache::revalidation`]; this module stores it.

use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderMap, Request, StatusCode};

use super::super::cache_status::{CacheStatus, Detail, Fwd};
use super::super::exchange::{Exchange, Served, Stored};
use crate::cache::headers::StoredHeaders;
use crate::cache::policy::{Decision, StoreInput};
use crate::cache::purge::PurgeRule;
use crate::cache::revalidation::{merge_fresh_headers, same_representation};
use crate::cache::{CacheKey, CachedResponse};
use crate::error::RequestError;
use crate::shared::LeaseHold;
use crate::upstream::UpstreamBody;

/// A fresh response's headers to apply to a stored entry.
pub(super) struct Refresh<'a> {
    pub primary: &'a CacheKey,
    pub key: CacheKey,
    pub entry: &'a CachedResponse,
    pub fresh: &'a HeaderMap,
    pub fresh_tags: Vec<Box<str>>,
    pub request: &'a HeaderMap,
    pub request_time: SystemTime,
    pub response_time: SystemTime,
    /// The fleet's lease on the fetch: the refreshed entry's write
    /// releases it (waiters then find the fresh one).
    pub lease: Option<LeaseHold>,
}

/// Applies a 304 (or a matching HEAD response) to a stored entry: its
/// headers are merged in and freshness starts again, if the policy still
/// stores the result. The entry keeps its purge tags unless the fresh
/// response names its own.
pub(super) fn refresh(exchange: &Exchange, refresh: Refresh<'_>) -> CachedResponse {
    let Refresh {
        primary,
        key,
        entry,
        fresh,
        fresh_tags,
        request,
        request_time,
        response_time,
        lease,
    } = refresh;
    let mut merged = merge_fresh_headers(entry.headers.to_map(), fresh);
    let input = StoreInput {
        request,
        status: entry.status,
        response: &merged,
        request_time,
        response_time,
        ttl: exchange.route().ttl,
        targets: &exchange.runtime().targeted,
    };
    match exchange.decide(&input) {
        Decision::Store {
            lifetime,
            initial_age,
            rules,
            strip,
            ..
        } => {
            strip.iter().for_each(|name| {
                merged.remove(name.as_str());
            });
            let tags = if fresh_tags.is_empty() {
                entry.tags().to_vec()
            } else {
                fresh_tags
            };
            let refreshed = CachedResponse::new(
                entry.status,
                merged,
                entry.body.clone(),
                response_time,
                lifetime.fresh_for(),
                initial_age,
                entry.vary().clone(),
                rules,
            )
            .with_tags(tags);
            exchange.store().replace(key.clone(), refreshed.clone());
            if let Some(tier) = exchange.shared() {
                // Other instances find the refreshed response, not the stale one.
                let since = tier.watermark();
                tier.fill(
                    primary.clone(),
                    key,
                    Arc::new(refreshed.clone()),
                    since,
                    lease,
                );
            }
            refreshed
        }
        Decision::Skip(_) => {
            // Use the refreshed response this once, keep nothing.
            exchange.store().purge(&PurgeRule::Key(primary.clone()));
            entry.clone().with_headers(StoredHeaders::from_map(&merged))
        }
    }
}

/// A HEAD the cache cannot answer goes to the origin; if its validators
/// match the stored GET, its headers refresh that entry (RFC 9111 section
/// 4.3.5). The stored body is never replaced.
pub(in crate::proxy) async fn head(
    exchange: &Exchange,
    request: Request<UpstreamBody>,
    primary: CacheKey,
    stale: Option<Stored>,
    fwd: Fwd,
) -> Result<Served, RequestError> {
    let request_headers = request.headers().clone();
    let request_time = exchange.now();
    let response = exchange.pass(request).await?;
    if let Some((key, entry)) = &stale {
        if response.status() == StatusCode::OK && same_representation(entry, response.headers()) {
            let response_time = exchange.now();
            refresh(
                exchange,
                Refresh {
                    primary: &primary,
                    key: key.clone(),
                    entry,
                    fresh: response.headers(),
                    fresh_tags: Vec::new(),
                    request: &request_headers,
                    request_time,
                    response_time,
                    lease: None,
                },
            );
        }
    }
    Ok(Served {
        response,
        cache: CacheStatus::pass(fwd, Detail::Head),
    })
}
