//! Inspection: list keys, show an entry's metadata and headers, and explain
//! what a request for a URL would get and why.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::error::AdminError;
use super::purge::{host_and_path, keyed};
use crate::cache::control::CacheControl;
use crate::cache::reuse::{self, Verdict};
use crate::cache::{CacheKey, CachedResponse};
use crate::clock::unix_millis;
use crate::config::Policy;
use crate::proxy::Proxy;

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 10_000;

fn params(query: &str) -> HashMap<String, String> {
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

fn summary(url: &str, key: &CacheKey, entry: &CachedResponse) -> Value {
    json!({
        "url": format!("http://{url}"),
        "key": key.as_str(),
        "status": entry.status.as_u16(),
        "size": entry.body.len(),
        "stored_at": unix_millis(entry.stored_at()),
        "expires_at": entry.fresh_until().map(unix_millis),
        "hits": entry.hits.get(),
        "tags": entry.tags().iter().map(|t| &**t).collect::<Vec<_>>(),
    })
}

/// `?filter=substring&limit=N`: entries whose URL contains the filter.
pub fn keys(proxy: &Proxy, query: &str) -> Value {
    let params = params(query);
    let filter = params.get("filter").cloned().unwrap_or_default();
    let limit = params
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(DEFAULT_LIMIT)
        .min(MAX_LIMIT);
    // The first `limit` URLs in order, kept in a bounded heap: a listing
    // of a large cache holds `limit` entries, not all of them.
    let mut first = std::collections::BinaryHeap::with_capacity(limit + 1);
    let mut total = 0;
    for (key, entry) in proxy.store().iter() {
        let url = key.url();
        if !url.contains(&filter) {
            continue;
        }
        total += 1;
        first.push(Listed {
            url: url.to_owned(),
            key,
            entry,
        });
        if first.len() > limit {
            first.pop();
        }
    }
    let entries: Vec<Value> = first
        .into_sorted_vec()
        .iter()
        .map(|listed| summary(&listed.url, &listed.key, &listed.entry))
        .collect();
    json!({ "total": total, "entries": entries })
}

/// An entry in a listing, ordered by URL.
struct Listed {
    url: String,
    key: CacheKey,
    entry: Arc<CachedResponse>,
}

impl PartialEq for Listed {
    fn eq(&self, other: &Self) -> bool {
        self.url == other.url
    }
}

impl Eq for Listed {}

impl PartialOrd for Listed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Listed {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.url.cmp(&other.url)
    }
}

/// `?url=...`: every stored variant of a URL, with headers.
pub fn entry(proxy: &Proxy, query: &str) -> Result<Value, AdminError> {
    let url = params(query).remove("url").ok_or(AdminError::MissingUrl)?;
    let target = keyed(&proxy.runtime(), host_and_path(&url)?);
    let now = proxy.store().clock().now();
    let variants: Vec<Value> = proxy
        .store()
        .iter()
        .filter(|(key, _)| target.is_url_of(key))
        .map(|(key, entry)| {
            let mut value = summary(target.as_str(), &key, &entry);
            let headers: Vec<(String, String)> = entry
                .headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let vary: Vec<(String, Option<String>)> = entry
                .vary()
                .pairs()
                .iter()
                .map(|(n, v)| {
                    (
                        n.to_string(),
                        v.as_ref()
                            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
                    )
                })
                .collect();
            value["headers"] = json!(headers);
            value["vary"] = json!(vary);
            value["age_seconds"] = json!(entry.age(now).as_secs());
            value["fresh"] = json!(entry.is_fresh(now));
            value
        })
        .collect();
    Ok(json!({ "url": url, "variants": variants }))
}

/// `?url=...`: what a plain GET for the URL would get now, and why.
pub fn explain(proxy: &Proxy, query: &str) -> Result<Value, AdminError> {
    let url = params(query).remove("url").ok_or(AdminError::MissingUrl)?;
    let target = host_and_path(&url)?;
    let runtime = proxy.runtime();
    let Some(route) = runtime.route(target.authority(), target.path()) else {
        return Ok(
            json!({ "url": url, "verdict": "NO ROUTE", "reason": "no route matches this host and path: 404" }),
        );
    };
    // The key as the route's key rule spells it: the URL the entry is
    // stored under, and the request headers that pick its variant.
    let primary = route.key_of(target.authority(), target.path_and_query());
    let key_headers: Vec<&str> = route.key.headers.iter().map(|h| h.as_str()).collect();
    let answer = |verdict: &str, reason: String| json!({ "url": url, "key": primary.url(), "key_headers": key_headers, "route": &*route.name, "origin": &*route.origin_name, "verdict": verdict, "reason": reason });
    if route.policy == Policy::Bypass {
        return Ok(answer(
            "PASS",
            "the route's policy is bypass: never cached".into(),
        ));
    }
    let store = proxy.store();
    let now = store.clock().now();
    let Some((_, entry)) = store.lookup(&primary, &http::HeaderMap::new()) else {
        if store.varies(&primary) {
            return Ok(answer(
                "MISS",
                "stored variants need request headers (Vary); a plain request matches none".into(),
            ));
        }
        return Ok(match store.not_stored_reason(&primary) {
            Some(why) => answer(
                "MISS",
                format!("the last response was not stored: {}", why.as_str()),
            ),
            None => answer("MISS", "not in the cache".into()),
        });
    };
    let left = entry.remaining(now).map_or("no expiry".to_owned(), |d| {
        format!("fresh for {}s", d.as_secs())
    });
    Ok(match reuse::judge(&entry, &CacheControl::default(), now) {
        Verdict::Serve { .. } => answer("HIT", left),
        Verdict::ServeWhileRevalidating => answer(
            "HIT",
            "stale, served while one request revalidates it".into(),
        ),
        Verdict::Revalidate => answer(
            "REVALIDATE",
            "stale or no-cache: a conditional request would ask the origin".into(),
        ),
        Verdict::Refetch => answer(
            "MISS",
            "stale and without validators: the origin would be asked again".into(),
        ),
    })
}
