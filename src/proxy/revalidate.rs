//! Stale responses: revalidation with a 304 refresh (RFC 9111 sections 3.2
//! and 4.3.4), serving stale when the origin fails (RFC 5861 section 4),
//! refreshing in the background (stale-while-revalidate), and the HEAD
//! update of a stored GET (section 4.3.5).

use std::time::SystemTime;

use http::header::CONTENT_LENGTH;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Either, Empty};

use super::cache_status::{CacheStatus, Fwd};
use super::exchange::{Asked, Exchange, Served, Stored, fresh_for};
use super::respond::declared_length;
use crate::cache::coalesce::Role;
use crate::cache::headers::StoredHeaders;
use crate::cache::policy::{Decision, StoreInput};
use crate::cache::{CacheKey, CachedResponse};
use crate::error::RequestError;
use crate::upstream::UpstreamBody;

impl Exchange {
    /// Applies a 304 (or a matching HEAD response) to a stored entry
    /// (RFC 9111 sections 3.2 and 4.3.4): its headers replace the stored
    /// ones except `Content-Length`, and freshness starts again. The entry
    /// keeps its purge tags unless the fresh response names its own.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn refresh(
        &self,
        primary: &CacheKey,
        key: CacheKey,
        entry: &CachedResponse,
        fresh_headers: &HeaderMap,
        fresh_tags: Vec<Box<str>>,
        request_headers: &HeaderMap,
        request_time: SystemTime,
        response_time: SystemTime,
    ) -> CachedResponse {
        let mut merged = entry.headers.to_map();
        for name in fresh_headers.keys().filter(|name| **name != CONTENT_LENGTH) {
            merged.remove(name);
            for value in fresh_headers.get_all(name) {
                merged.append(name.clone(), value.clone());
            }
        }
        let input = StoreInput {
            request: request_headers,
            status: entry.status,
            response: &merged,
            request_time,
            response_time,
            ttl: self.route.ttl,
            targets: &self.runtime.targeted,
        };
        match self.decide(&input) {
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
                let refreshed = CachedResponse::new(
                    entry.status,
                    merged,
                    entry.body.clone(),
                    response_time,
                    fresh_for(lifetime),
                    initial_age,
                    entry.vary().clone(),
                    rules,
                )
                .with_tags(if fresh_tags.is_empty() {
                    entry.tags().to_vec()
                } else {
                    fresh_tags
                });
                self.proxy.store.replace(key, refreshed.clone());
                refreshed
            }
            Decision::Skip(_) => {
                // Use the refreshed response this once, keep nothing.
                self.proxy.store.invalidate(primary);
                entry.clone().with_headers(StoredHeaders::from_map(&merged))
            }
        }
    }

    /// Serves `stale` in place of a failed origin when its windows allow,
    /// else returns the error.
    pub(super) fn stale_on_error(
        &self,
        stale: Option<&Stored>,
        asked: &Asked,
        err: RequestError,
    ) -> Result<Served, RequestError> {
        match stale {
            Some((_, entry)) if entry.usable_on_error(self.now(), self.runtime.grace) => {
                tracing::warn!(error = %err.chain(), "origin failed; serving a stale response");
                Ok(self.answer_from(entry, &asked.headers, asked.head, Some("stale-if-error")))
            }
            _ => Err(err),
        }
    }

    /// A HEAD the cache cannot answer goes to the origin; if its validators
    /// match the stored GET, its headers refresh that entry (RFC 9111
    /// section 4.3.5). The stored body is never replaced.
    pub(super) async fn head(
        &self,
        request: Request<UpstreamBody>,
        primary: CacheKey,
        stale: Option<Stored>,
        fwd: Fwd,
    ) -> Result<Served, RequestError> {
        let request_headers = request.headers().clone();
        let request_time = self.now();
        let response = self.pass(request).await?;
        if let Some((key, entry)) = &stale {
            if response.status() == StatusCode::OK && same_representation(entry, response.headers())
            {
                let response_time = self.now();
                self.refresh(
                    &primary,
                    key.clone(),
                    entry,
                    response.headers(),
                    Vec::new(),
                    &request_headers,
                    request_time,
                    response_time,
                );
            }
        }
        Ok((response, CacheStatus::pass(fwd, "head")))
    }

    /// Serves `stale` now and refreshes it with one background request.
    pub(super) fn refresh_in_background(
        &self,
        parts: &http::request::Parts,
        primary: CacheKey,
        stale: Stored,
    ) {
        let Role::Leader(guard) = self.proxy.coalescer.join(&primary) else {
            return; // a fetch for this URL is already under way
        };
        let mut request = Request::new(Either::Right(Empty::new()));
        *request.uri_mut() = parts.uri.clone();
        *request.version_mut() = parts.version;
        *request.headers_mut() = parts.headers.clone();
        let exchange = self.clone();
        tokio::spawn(async move {
            match exchange
                .lead(request, primary, Some(guard), Some(stale), Fwd::Stale, None)
                .await
            {
                // Reading the body to its end is what stores it.
                Ok((response, _)) => {
                    let _ = response.into_body().collect().await;
                }
                Err(err) => tracing::debug!(error = %err.chain(), "background revalidation failed"),
            }
        });
    }
}

/// Whether a HEAD response describes the stored representation: same
/// strong validator (or same `Last-Modified` without ETags) and length.
fn same_representation(entry: &CachedResponse, head: &HeaderMap) -> bool {
    let validators_match = match (entry.etag(), head.get(http::header::ETAG)) {
        (Some(stored), Some(fresh)) => stored == fresh,
        (None, None) => entry
            .last_modified()
            .is_some_and(|stored| head.get(http::header::LAST_MODIFIED) == Some(&stored)),
        _ => false,
    };
    let length_matches = declared_length(head).is_none_or(|len| len == entry.body.len() as u64);
    validators_match && length_matches
}
