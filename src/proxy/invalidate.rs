//! Invalidation after unsafe methods (RFC 9111 section 4.4): the URL's
//! entries go, and those of its `Location` and `Content-Location` when
//! they are on the same host.

use http::HeaderMap;
use http::header::{CONTENT_LOCATION, LOCATION};

use super::exchange::Exchange;
use crate::cache::CacheKey;
use crate::cache::key::KeyUrl;
use crate::cache::purge::PurgeRule;

/// After a successful unsafe request: the URL's entries go, and those of
/// its `Location` and `Content-Location` when they are on this host (RFC
/// 9111 section 4.4).
/// The fleet's instances apply the same invalidations. On a route that
/// slices, the URL's slices go too: found by a walk of the cache, off the
/// runtime threads, before the response is sent.
pub(super) async fn after_unsafe(exchange: &Exchange, primary: &CacheKey, response: &HeaderMap) {
    let mut keys = vec![primary.clone()];
    for name in [LOCATION, CONTENT_LOCATION] {
        let target = response.get(&name).and_then(|v| v.to_str().ok());
        if let Some(path) = target.and_then(|t| same_origin_path(t, exchange.authority())) {
            keys.push(exchange.route().key_of(exchange.authority(), &path));
        }
    }
    for key in keys {
        let url = exchange.route().slice.and(KeyUrl::parse(key.url()));
        let rule = url.map_or(PurgeRule::Key(key), PurgeRule::Url);
        if let PurgeRule::Url(_) = rule {
            let (store, walked) = (exchange.store().clone(), rule.clone());
            if let Err(err) = tokio::task::spawn_blocking(move || store.purge(&walked)).await {
                tracing::warn!(error = %err, "invalidating a sliced URL failed");
            }
        } else {
            exchange.store().purge(&rule);
        }
        if let Some(tier) = exchange.shared() {
            tier.announce_purge(rule);
        }
    }
}

/// The path of `target` if it is a path on this host or an absolute URL
/// whose authority is `authority`.
fn same_origin_path(target: &str, authority: &str) -> Option<String> {
    if target.starts_with('/') && !target.starts_with("//") {
        return Some(target.to_owned());
    }
    let uri: http::Uri = target.parse().ok()?;
    let default_port = match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    };
    let normalized = super::request::normalize(uri.authority()?, default_port).ok()?;
    (normalized == authority).then(|| {
        uri.path_and_query()
            .map_or("/".to_owned(), |pq| pq.as_str().to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_origin_targets() {
        assert_eq!(
            same_origin_path("/items/1", "h").as_deref(),
            Some("/items/1")
        );
        assert_eq!(
            same_origin_path("http://H:80/a?b", "h").as_deref(),
            Some("/a?b")
        );
        assert_eq!(
            same_origin_path("https://h:8443/a", "h:8443").as_deref(),
            Some("/a")
        );
        assert_eq!(same_origin_path("http://other/a", "h"), None);
        assert_eq!(same_origin_path("//other/a", "h"), None);
        assert_eq!(same_origin_path("relative", "h"), None);
    }
}
