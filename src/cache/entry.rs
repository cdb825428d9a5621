//! A stored response: head, body, the times that decide its freshness, and
//! the response directives that govern its reuse once stale.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, ETAG, LAST_MODIFIED};
use http::{HeaderMap, HeaderValue, StatusCode};

use super::headers::StoredHeaders;
use super::vary::VaryValues;

/// Response directives that matter after storing (RFC 9111 section 4.2.4,
/// RFC 5861, RFC 8246), parsed once when the response is stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReuseRules {
    /// `must-revalidate`, `proxy-revalidate` or `s-maxage`: never served
    /// stale, not even on origin errors.
    pub forbids_stale: bool,
    /// `no-cache`: revalidated before every use.
    pub no_cache: bool,
    /// `immutable`: a client's reload does not force revalidation while fresh.
    pub immutable: bool,
    /// `stale-while-revalidate` window.
    pub stale_while_revalidate: Duration,
    /// `stale-if-error` window.
    pub stale_if_error: Duration,
}

/// One cached response. Shared as `Arc<CachedResponse>`; the body is
/// `Bytes`, so serving a hit never copies it.
#[derive(Debug, Clone)]
pub struct CachedResponse {
    /// The origin's status.
    pub status: StatusCode,
    /// The origin's end-to-end headers, with `Content-Length` set to the
    /// body's length.
    pub headers: StoredHeaders,
    /// The complete body.
    pub body: Bytes,
    /// When it was stored (our clock).
    pub stored_at: SystemTime,
    /// Until when it is fresh; `None`: until evicted or cleared.
    pub fresh_until: Option<SystemTime>,
    /// Its age when it arrived from the origin.
    pub initial_age: Duration,
    /// The request header values it was selected by.
    pub vary: VaryValues,
    /// How it may be reused once stale.
    pub rules: ReuseRules,
    /// Purge tags from the origin's `Surrogate-Key` / `Cache-Tag`.
    pub tags: Box<[Box<str>]>,
    /// Times it answered a request (for inspection).
    pub hits: HitCount,
}

/// Times an entry answered a request. Kept inline (an `Arc` would be one
/// more allocation per entry); a copy of the entry starts from the count.
#[derive(Debug, Default)]
pub struct HitCount(AtomicU64);

impl HitCount {
    /// The count so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Clone for HitCount {
    fn clone(&self) -> Self {
        HitCount(AtomicU64::new(self.get()))
    }
}

impl CachedResponse {
    /// Builds an entry, fixing `Content-Length` to the stored body.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        stored_at: SystemTime,
        fresh_for: Option<Duration>,
        initial_age: Duration,
        vary: VaryValues,
        rules: ReuseRules,
    ) -> Self {
        let mut headers = headers;
        // 204 and 304 never carry Content-Length (RFC 9110 section 8.6).
        if status != StatusCode::NO_CONTENT && status != StatusCode::NOT_MODIFIED {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        let headers = StoredHeaders::from_map(&headers);
        CachedResponse {
            status,
            headers,
            body,
            stored_at,
            fresh_until: fresh_for.map(|d| stored_at + d),
            initial_age,
            vary,
            rules,
            tags: Box::default(),
            hits: HitCount::default(),
        }
    }

    /// The same entry with purge tags.
    pub fn with_tags(mut self, tags: Vec<Box<str>>) -> Self {
        self.tags = tags.into_boxed_slice();
        self
    }

    /// Counts one more answer from this entry.
    pub fn count_hit(&self) {
        self.hits.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether its freshness lifetime has not run out at `now`.
    pub fn is_fresh(&self, now: SystemTime) -> bool {
        self.fresh_until.is_none_or(|until| now < until)
    }

    /// How long it has been stale at `now` (`None` while fresh).
    pub fn staleness(&self, now: SystemTime) -> Option<Duration> {
        let until = self.fresh_until?;
        if now < until {
            return None;
        }
        Some(now.duration_since(until).unwrap_or(Duration::ZERO))
    }

    /// Its current age (RFC 9111 section 4.2.3): the age it arrived with
    /// plus the time it has been stored.
    pub fn age(&self, now: SystemTime) -> Duration {
        let resident = now.duration_since(self.stored_at).unwrap_or(Duration::ZERO);
        self.initial_age.saturating_add(resident)
    }

    /// How long it is still fresh at `now` (`None`: forever).
    pub fn remaining(&self, now: SystemTime) -> Option<Duration> {
        self.fresh_until
            .map(|until| until.duration_since(now).unwrap_or(Duration::ZERO))
    }

    /// Its `ETag`, if any.
    pub fn etag(&self) -> Option<HeaderValue> {
        self.headers.get(ETAG)
    }

    /// Its `Last-Modified`, if any.
    pub fn last_modified(&self) -> Option<HeaderValue> {
        self.headers.get(LAST_MODIFIED)
    }

    /// Whether it can be revalidated with a conditional request.
    pub fn has_validators(&self) -> bool {
        self.headers.contains(&ETAG) || self.headers.contains(&LAST_MODIFIED)
    }

    /// Whether it may stand in for a failed origin at `now` (stale-if-error
    /// or the configured grace; never when stale responses are forbidden).
    pub fn usable_on_error(&self, now: SystemTime, grace: Duration) -> bool {
        if self.rules.forbids_stale {
            return self.is_fresh(now);
        }
        match self.staleness(now) {
            None => true,
            Some(stale) => stale <= self.rules.stale_if_error.max(grace),
        }
    }

    /// Approximate bytes it occupies, for the cache's byte bound.
    pub fn weight(&self, key_len: usize) -> u32 {
        let headers: usize = self
            .headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 32)
            .sum();
        let total = key_len + headers + self.body.len() + 160;
        u32::try_from(total).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(fresh_for: Option<u64>, rules: ReuseRules) -> CachedResponse {
        CachedResponse::new(
            StatusCode::OK,
            HeaderMap::new(),
            Bytes::from_static(b"hello"),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1000),
            fresh_for.map(Duration::from_secs),
            Duration::from_secs(5),
            VaryValues::default(),
            rules,
        )
    }

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn freshness_and_age() {
        let e = entry(Some(60), ReuseRules::default());
        assert!(e.is_fresh(at(1059)));
        assert!(!e.is_fresh(at(1060)));
        assert_eq!(e.staleness(at(1059)), None);
        assert_eq!(e.staleness(at(1070)), Some(Duration::from_secs(10)));
        assert_eq!(e.age(at(1010)), Duration::from_secs(15));
        assert_eq!(e.remaining(at(1050)), Some(Duration::from_secs(10)));
        assert!(entry(None, ReuseRules::default()).is_fresh(at(u32::MAX.into())));
    }

    #[test]
    fn stale_use_on_error_follows_the_windows() {
        let sie = ReuseRules {
            stale_if_error: Duration::from_secs(30),
            ..Default::default()
        };
        let e = entry(Some(60), sie);
        assert!(e.usable_on_error(at(1080), Duration::ZERO));
        assert!(!e.usable_on_error(at(1100), Duration::ZERO));
        assert!(
            e.usable_on_error(at(1100), Duration::from_secs(60)),
            "grace extends it"
        );
        let strict = entry(
            Some(60),
            ReuseRules {
                forbids_stale: true,
                ..sie
            },
        );
        assert!(!strict.usable_on_error(at(1061), Duration::from_secs(60)));
    }

    #[test]
    fn content_length_matches_the_body() {
        let e = entry(None, ReuseRules::default());
        assert_eq!(e.headers.get(CONTENT_LENGTH).unwrap(), "5");
        assert!(e.weight(10) > 5);
        assert!(!e.has_validators());
    }
}
