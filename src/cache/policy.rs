//! Whether a response may be stored, and for how long (RFC 9111 section 3
//! for a shared cache, plus the rules of `design.md`). Pure: the caller
//! passes the request and response heads and the times.

use std::time::{Duration, SystemTime};

use http::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use http::{HeaderMap, StatusCode};

use super::control::CacheControl;
use super::freshness::{clamp, explicit_lifetime, initial_age};
use super::vary::Vary;

/// Status codes that take the default TTL without explicit freshness.
/// Everything else (errors included) is stored only with explicit freshness,
/// so that nobody can poison a URL with a cached error.
const DEFAULT_TTL_STATUSES: [u16; 6] = [200, 203, 204, 300, 301, 308];

/// The facts a storage decision needs.
#[derive(Debug)]
pub struct StoreInput<'a> {
    /// The client's request headers.
    pub request: &'a HeaderMap,
    /// The origin's status.
    pub status: StatusCode,
    /// The origin's response headers.
    pub response: &'a HeaderMap,
    /// When the request was sent upstream.
    pub request_time: SystemTime,
    /// When the response headers arrived.
    pub response_time: SystemTime,
    /// Default lifetime and cap (`--cache-ttl`).
    pub ttl: Option<Duration>,
}

/// How long a storable response stays fresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// Until evicted or cleared.
    Forever,
    /// For this long after it was stored.
    For(Duration),
}

/// The outcome of [`decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Store it.
    Store {
        /// Remaining freshness from the moment of storing.
        lifetime: Lifetime,
        /// The age the response already had when it arrived.
        initial_age: Duration,
        /// The request headers it varies on.
        vary: Vary,
    },
    /// Do not store it, for this reason.
    Skip(NotStored),
}

/// Why a response was not stored; shown in logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStored {
    /// The request said `Cache-Control: no-store`.
    RequestNoStore,
    /// 206, 304 or 1xx: not a complete response.
    Incomplete,
    /// A status that needs explicit freshness and had none.
    Status,
    /// `Cache-Control: no-store`.
    NoStore,
    /// `Cache-Control: private`.
    Private,
    /// `no-cache`: must be revalidated on every use.
    NoCache,
    /// `Vary: *` (or an unusable Vary).
    VaryStar,
    /// The request carried `Authorization` and the response is not public.
    Authorization,
    /// The request carried `Cookie` and the response is not public.
    Cookie,
    /// The response sets a cookie.
    SetCookie,
    /// Stale on arrival (`max-age=0`, past `Expires`, old `Age`).
    Stale,
}

impl NotStored {
    /// A short name for logs and headers.
    pub fn as_str(self) -> &'static str {
        match self {
            NotStored::RequestNoStore => "request-no-store",
            NotStored::Incomplete => "incomplete-status",
            NotStored::Status => "status-needs-explicit-freshness",
            NotStored::NoStore => "no-store",
            NotStored::Private => "private",
            NotStored::NoCache => "no-cache",
            NotStored::VaryStar => "vary-star",
            NotStored::Authorization => "authorization",
            NotStored::Cookie => "cookie",
            NotStored::SetCookie => "set-cookie",
            NotStored::Stale => "stale-on-arrival",
        }
    }
}

/// Decides whether a GET response may be stored and for how long.
pub fn decide(input: &StoreInput<'_>) -> Decision {
    use Decision::Skip;
    let status = input.status.as_u16();
    if status < 200 || status == 206 || status == 304 {
        return Skip(NotStored::Incomplete);
    }
    if CacheControl::from_headers(input.request).no_store {
        return Skip(NotStored::RequestNoStore);
    }
    let cc = CacheControl::from_headers(input.response);
    if cc.no_store {
        return Skip(NotStored::NoStore);
    }
    if cc.private {
        return Skip(NotStored::Private);
    }
    if cc.no_cache {
        return Skip(NotStored::NoCache);
    }
    let vary = Vary::from_response(input.response);
    if vary == Vary::Star {
        return Skip(NotStored::VaryStar);
    }
    let shared_ok = cc.public || cc.s_maxage.is_some();
    if input.request.contains_key(AUTHORIZATION) && !shared_ok {
        return Skip(NotStored::Authorization);
    }
    if input.request.contains_key(COOKIE) && !shared_ok {
        return Skip(NotStored::Cookie);
    }
    if input.response.contains_key(SET_COOKIE) {
        return Skip(NotStored::SetCookie);
    }

    let initial_age = initial_age(input.response, input.request_time, input.response_time);
    let lifetime = match explicit_lifetime(&cc, input.response, input.response_time) {
        Some(explicit) => {
            let remaining = clamp(explicit).saturating_sub(initial_age);
            Lifetime::For(cap(remaining, input.ttl))
        }
        None if DEFAULT_TTL_STATUSES.contains(&status) => match input.ttl {
            Some(ttl) => Lifetime::For(clamp(ttl)),
            None => Lifetime::Forever,
        },
        None => return Skip(NotStored::Status),
    };
    if lifetime == Lifetime::For(Duration::ZERO) {
        return Skip(NotStored::Stale);
    }
    Decision::Store {
        lifetime,
        initial_age,
        vary,
    }
}

/// The `force` policy: a 2xx GET response is stored for the route's TTL
/// whatever its own Cache-Control says. Still never stored: partial
/// content, `Vary: *`, responses that set cookies, and responses to
/// requests with credentials (a forced cache must not leak one user's
/// answer to another).
pub fn decide_forced(input: &StoreInput<'_>) -> Decision {
    use Decision::Skip;
    let status = input.status;
    if !status.is_success() || status == StatusCode::PARTIAL_CONTENT {
        return Skip(NotStored::Status);
    }
    let vary = Vary::from_response(input.response);
    if vary == Vary::Star {
        return Skip(NotStored::VaryStar);
    }
    if input.request.contains_key(AUTHORIZATION) {
        return Skip(NotStored::Authorization);
    }
    if input.request.contains_key(COOKIE) {
        return Skip(NotStored::Cookie);
    }
    if input.response.contains_key(SET_COOKIE) {
        return Skip(NotStored::SetCookie);
    }
    let lifetime = match input.ttl {
        Some(ttl) => Lifetime::For(clamp(ttl)),
        None => Lifetime::Forever,
    };
    Decision::Store {
        lifetime,
        initial_age: Duration::ZERO,
        vary,
    }
}

fn cap(remaining: Duration, ttl: Option<Duration>) -> Duration {
    match ttl {
        Some(ttl) => remaining.min(ttl),
        None => remaining,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use http::header::{CACHE_CONTROL, EXPIRES, VARY};

    fn headers(pairs: &[(http::HeaderName, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), HeaderValue::from_static(value));
        }
        map
    }

    fn decide_with(
        request: &HeaderMap,
        status: u16,
        response: &HeaderMap,
        ttl: Option<u64>,
    ) -> Decision {
        let now = SystemTime::now();
        decide(&StoreInput {
            request,
            status: StatusCode::from_u16(status).unwrap(),
            response,
            request_time: now,
            response_time: now,
            ttl: ttl.map(Duration::from_secs),
        })
    }

    fn lifetime(decision: Decision) -> Lifetime {
        match decision {
            Decision::Store { lifetime, .. } => lifetime,
            Decision::Skip(why) => panic!("not stored: {}", why.as_str()),
        }
    }

    fn skipped(decision: Decision) -> NotStored {
        match decision {
            Decision::Skip(why) => why,
            Decision::Store { .. } => panic!("stored"),
        }
    }

    const SECS: fn(u64) -> Lifetime = |s| Lifetime::For(Duration::from_secs(s));

    #[test]
    fn default_ttl_applies_only_to_listed_statuses() {
        let none = HeaderMap::new();
        for status in DEFAULT_TTL_STATUSES {
            assert_eq!(
                lifetime(decide_with(&none, status, &none, Some(60))),
                SECS(60)
            );
            assert_eq!(
                lifetime(decide_with(&none, status, &none, None)),
                Lifetime::Forever
            );
        }
        for status in [404, 500, 302, 410] {
            assert_eq!(
                skipped(decide_with(&none, status, &none, Some(60))),
                NotStored::Status
            );
        }
        let explicit = headers(&[(CACHE_CONTROL, "max-age=30")]);
        assert_eq!(
            lifetime(decide_with(&none, 404, &explicit, Some(60))),
            SECS(30)
        );
    }

    #[test]
    fn ttl_caps_explicit_freshness() {
        let none = HeaderMap::new();
        let long = headers(&[(CACHE_CONTROL, "max-age=3600")]);
        assert_eq!(lifetime(decide_with(&none, 200, &long, Some(60))), SECS(60));
        assert_eq!(lifetime(decide_with(&none, 200, &long, None)), SECS(3600));
        let aged = headers(&[(CACHE_CONTROL, "max-age=100"), (http::header::AGE, "40")]);
        assert_eq!(lifetime(decide_with(&none, 200, &aged, None)), SECS(60));
    }

    #[test]
    fn never_stored() {
        let none = HeaderMap::new();
        let cases: &[(&[(http::HeaderName, &'static str)], NotStored)] = &[
            (&[(CACHE_CONTROL, "no-store")], NotStored::NoStore),
            (
                &[(CACHE_CONTROL, "private, max-age=60")],
                NotStored::Private,
            ),
            (&[(CACHE_CONTROL, "no-cache")], NotStored::NoCache),
            (&[(VARY, "*")], NotStored::VaryStar),
            (&[(SET_COOKIE, "a=b")], NotStored::SetCookie),
            (&[(CACHE_CONTROL, "max-age=0")], NotStored::Stale),
            (&[(EXPIRES, "yesterday")], NotStored::Stale),
        ];
        for (response, why) in cases {
            assert_eq!(
                skipped(decide_with(&none, 200, &headers(response), None)),
                *why
            );
        }
        assert_eq!(
            skipped(decide_with(&none, 206, &none, None)),
            NotStored::Incomplete
        );
    }

    #[test]
    fn credentials_need_an_explicitly_shared_response() {
        let auth = headers(&[(AUTHORIZATION, "Bearer x")]);
        let cookie = headers(&[(COOKIE, "a=b")]);
        let plain = headers(&[(CACHE_CONTROL, "max-age=60")]);
        let public = headers(&[(CACHE_CONTROL, "public, max-age=60")]);
        let shared = headers(&[(CACHE_CONTROL, "s-maxage=60")]);
        assert_eq!(
            skipped(decide_with(&auth, 200, &plain, None)),
            NotStored::Authorization
        );
        assert_eq!(
            skipped(decide_with(&cookie, 200, &plain, None)),
            NotStored::Cookie
        );
        assert_eq!(lifetime(decide_with(&auth, 200, &public, None)), SECS(60));
        assert_eq!(lifetime(decide_with(&cookie, 200, &shared, None)), SECS(60));
    }

    #[test]
    fn force_ignores_origin_freshness_but_not_cookies() {
        let none = HeaderMap::new();
        let now = SystemTime::now();
        let forced = |request: &HeaderMap, status: u16, response: &HeaderMap| {
            decide_forced(&StoreInput {
                request,
                status: StatusCode::from_u16(status).unwrap(),
                response,
                request_time: now,
                response_time: now,
                ttl: Some(Duration::from_secs(30)),
            })
        };
        let no_store = headers(&[(CACHE_CONTROL, "no-store, private")]);
        assert_eq!(lifetime(forced(&none, 200, &no_store)), SECS(30));
        assert_eq!(skipped(forced(&none, 404, &none)), NotStored::Status);
        assert_eq!(
            skipped(forced(&none, 200, &headers(&[(SET_COOKIE, "a=b")]))),
            NotStored::SetCookie
        );
        let auth = headers(&[(AUTHORIZATION, "Basic x")]);
        assert_eq!(skipped(forced(&auth, 200, &none)), NotStored::Authorization);
    }

    #[test]
    fn request_no_store_is_honoured() {
        let request = headers(&[(CACHE_CONTROL, "no-store")]);
        let none = HeaderMap::new();
        assert_eq!(
            skipped(decide_with(&request, 200, &none, None)),
            NotStored::RequestNoStore
        );
    }
}
