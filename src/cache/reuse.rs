//! May a stored response answer this request now? (RFC 9111 section 4,
//! RFC 5861, RFC 8246.) Pure: the request's directives, the entry and the
//! time go in, a verdict comes out.

use std::time::{Duration, SystemTime};

use super::control::CacheControl;
use super::entry::CachedResponse;

/// What to do with a stored response for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Serve it (fresh, or stale within the client's `max-stale`).
    Serve {
        /// It is stale (served under `max-stale`).
        stale: bool,
    },
    /// Serve it stale and refresh it in the background
    /// (`stale-while-revalidate`).
    ServeWhileRevalidating,
    /// Ask the origin whether it is still good (conditional request).
    Revalidate,
    /// It cannot be used; fetch a full response (it may still stand in if
    /// the origin fails: see [`CachedResponse::usable_on_error`]).
    Refetch,
}

/// Judges `entry` for a request with directives `request` at `now`.
pub fn judge(entry: &CachedResponse, request: &CacheControl, now: SystemTime) -> Verdict {
    let needs_validation = || {
        if entry.has_validators() {
            Verdict::Revalidate
        } else {
            Verdict::Refetch
        }
    };
    let fresh = entry.is_fresh(now);
    let rules = entry.rules();
    // RFC 8246: a fresh immutable response needs no revalidation on reload.
    let reload = request.no_cache && !(rules.immutable && fresh);
    if reload || rules.no_cache {
        return needs_validation();
    }
    let age = entry.age(now);
    let too_old = request
        .max_age
        .is_some_and(|max| age > Duration::from_secs(u64::from(max)));
    let too_close_to_expiry = request.min_fresh.is_some_and(|min| {
        entry
            .remaining(now)
            .is_some_and(|left| left < Duration::from_secs(u64::from(min)))
    });
    if fresh && !too_old && !too_close_to_expiry {
        return Verdict::Serve { stale: false };
    }
    if rules.forbids_stale || too_old || too_close_to_expiry {
        return needs_validation();
    }
    let staleness = entry.staleness(now).unwrap_or(Duration::ZERO);
    if let Some(max_stale) = request.max_stale {
        if staleness <= Duration::from_secs(u64::from(max_stale)) {
            return Verdict::Serve { stale: true };
        }
    }
    let swr = rules.stale_while_revalidate;
    if !swr.is_zero() && staleness <= swr {
        return Verdict::ServeWhileRevalidating;
    }
    needs_validation()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::entry::ReuseRules;
    use crate::cache::vary::VaryValues;
    use bytes::Bytes;
    use http::header::ETAG;
    use http::{HeaderMap, HeaderValue, StatusCode};

    const STORED: u64 = 1_000;

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(s)
    }

    fn entry(fresh_for: u64, validators: bool, rules: ReuseRules) -> CachedResponse {
        let mut headers = HeaderMap::new();
        if validators {
            headers.insert(ETAG, HeaderValue::from_static("\"v\""));
        }
        CachedResponse::new(
            StatusCode::OK,
            headers,
            Bytes::new(),
            at(STORED),
            Some(Duration::from_secs(fresh_for)),
            Duration::ZERO,
            VaryValues::default(),
            rules,
        )
    }

    fn request(directives: &str) -> CacheControl {
        let mut headers = HeaderMap::new();
        if !directives.is_empty() {
            headers.insert(
                http::header::CACHE_CONTROL,
                HeaderValue::from_str(directives).unwrap(),
            );
        }
        CacheControl::from_headers(&headers)
    }

    #[test]
    fn table() {
        use Verdict::*;
        let plain = ReuseRules::default();
        let swr = ReuseRules {
            stale_while_revalidate: Duration::from_secs(30),
            ..plain
        };
        let strict = ReuseRules {
            forbids_stale: true,
            ..swr
        };
        let no_cache = ReuseRules {
            no_cache: true,
            ..plain
        };
        let immutable = ReuseRules {
            immutable: true,
            ..plain
        };
        // (fresh_for, validators, rules, request directives, seconds after storing, verdict)
        let cases = [
            (60, false, plain, "", 10, Serve { stale: false }),
            (60, false, plain, "", 60, Refetch),
            (60, true, plain, "", 60, Revalidate),
            (60, true, swr, "", 70, ServeWhileRevalidating),
            (60, true, swr, "", 90, ServeWhileRevalidating),
            (60, true, swr, "", 91, Revalidate),
            (60, true, strict, "", 70, Revalidate),
            (60, true, no_cache, "", 1, Revalidate),
            (60, false, no_cache, "", 1, Refetch),
            (60, true, plain, "no-cache", 1, Revalidate),
            (60, true, immutable, "no-cache", 1, Serve { stale: false }),
            (60, true, immutable, "no-cache", 61, Revalidate),
            (60, true, plain, "max-age=5", 10, Revalidate),
            (60, true, plain, "max-age=20", 10, Serve { stale: false }),
            (60, true, plain, "min-fresh=55", 10, Revalidate),
            (60, true, plain, "min-fresh=10", 10, Serve { stale: false }),
            (60, true, plain, "max-stale=30", 80, Serve { stale: true }),
            (60, true, plain, "max-stale=10", 80, Revalidate),
            (60, true, plain, "max-stale", 100_000, Serve { stale: true }),
            (60, true, strict, "max-stale", 61, Revalidate),
            (0, true, plain, "", 0, Revalidate),
        ];
        for (fresh_for, validators, rules, directives, after, expected) in cases {
            let e = entry(fresh_for, validators, rules);
            let verdict = judge(&e, &request(directives), at(STORED + after));
            assert_eq!(
                verdict, expected,
                "fresh_for {fresh_for}, {rules:?}, request {directives:?}, +{after}s"
            );
        }
    }
}
