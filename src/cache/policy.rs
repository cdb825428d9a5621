//! Whether a response may be stored, and for how long (RFC 9111 section 3
//! for a shared cache, plus the rules of `design.md`). Pure: the caller
//! passes the request and response heads and the times.

use std::time::{Duration, SystemTime};

use http::header::{AUTHORIZATION, COOKIE, DATE, LAST_MODIFIED, RANGE, SET_COOKIE};
use http::{HeaderMap, HeaderName, StatusCode};

use super::control::CacheControl;
use super::entry::ReuseRules;
use super::freshness::{clamp, explicit_lifetime, http_date, initial_age};
use super::partial::Piece;
use super::vary::Vary;

/// Status codes that take the default TTL (or heuristic freshness) without
/// explicit freshness. Everything else (errors included) is stored only
/// with explicit freshness, so that nobody can poison a URL with a cached
/// error.
const DEFAULT_TTL_STATUSES: [u16; 7] = [200, 203, 204, 206, 300, 301, 308];

/// The other statuses RFC 9110 section 15.1 calls heuristically cacheable:
/// with a `Last-Modified` they get heuristic freshness (capped by the TTL,
/// which alone does not make them storable), as does any status marked
/// `public` (RFC 9111 section 4.2.2).
const HEURISTIC_STATUSES: [u16; 5] = [404, 405, 410, 414, 501];

/// Heuristic freshness is this fraction of the time since `Last-Modified`
/// (RFC 9111 section 4.2.2 suggests 10%)...
const HEURISTIC_FRACTION: u32 = 10;
/// ...and at most this long.
const HEURISTIC_MAX: Duration = Duration::from_secs(86_400);

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
    /// Default lifetime and cap (`--cache-ttl`, route `ttl`).
    pub ttl: Option<Duration>,
    /// Targeted cache-control fields this cache obeys (RFC 9213).
    pub targets: &'a [HeaderName],
}

/// How long a storable response stays fresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// Until evicted or cleared.
    Forever,
    /// For this long after it was stored (zero: stale at once, stored only
    /// to be revalidated).
    For(Duration),
}

impl Lifetime {
    /// How long it is fresh for; `None` for ever.
    pub fn fresh_for(self) -> Option<Duration> {
        match self {
            Lifetime::Forever => None,
            Lifetime::For(duration) => Some(duration),
        }
    }
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
        /// How it may be reused once stale.
        rules: ReuseRules,
        /// Header fields that must not be stored (`private="..."`,
        /// `no-cache="..."`), lower-case.
        strip: Vec<String>,
    },
    /// Do not store it, for this reason.
    Skip(NotStored),
}

/// Why a response was not stored; shown in logs and `Cache-Status`.
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
    /// `no-cache` without a validator to revalidate with.
    NoCache,
    /// `Vary: *` (or an unusable Vary).
    VaryStar,
    /// `Vary` names more fields, or the request's values of them are
    /// longer, than a variant may be keyed by.
    VaryTooWide,
    /// The request carried `Authorization` and the response does not allow
    /// a shared cache to store it.
    Authorization,
    /// The request carried `Cookie` and the response is not public.
    Cookie,
    /// The response sets a cookie.
    SetCookie,
    /// Stale on arrival and without a validator.
    Stale,
}

impl NotStored {
    /// A short name for logs and headers (an RFC 8941 token).
    pub fn as_str(self) -> &'static str {
        match self {
            NotStored::RequestNoStore => "request-no-store",
            NotStored::Incomplete => "incomplete-status",
            NotStored::Status => "status-needs-explicit-freshness",
            NotStored::NoStore => "no-store",
            NotStored::Private => "private",
            NotStored::NoCache => "no-cache-without-validator",
            NotStored::VaryStar => "vary-star",
            NotStored::VaryTooWide => "vary-too-wide",
            NotStored::Authorization => "authorization",
            NotStored::Cookie => "cookie",
            NotStored::SetCookie => "set-cookie",
            NotStored::Stale => "stale-on-arrival",
        }
    }
}

/// Request fields a response may vary on and still be stored.
pub const MAX_VARY_FIELDS: usize = 8;
/// Bytes of request values a stored variant may be selected by.
pub const MAX_VARY_BYTES: usize = 4096;

/// Decides whether a GET response may be stored and for how long.
pub fn decide(input: &StoreInput<'_>) -> Decision {
    use Decision::Skip;
    let status = input.status.as_u16();
    if status < 200 || status == 304 || (status == 206 && !a_piece(input)) {
        return Skip(NotStored::Incomplete);
    }
    if CacheControl::from_headers(input.request).no_store {
        return Skip(NotStored::RequestNoStore);
    }
    let cc = CacheControl::for_response(input.response, input.targets);
    // `must-understand` (RFC 9111 section 5.2.2.3): a status this cache
    // knows the caching rules of overrides `no-store`.
    if cc.no_store && !(cc.must_understand && understood(input.status)) {
        return Skip(NotStored::NoStore);
    }
    if cc.private {
        return Skip(NotStored::Private);
    }
    let vary = Vary::from_response(input.response);
    if let Some(why) = unusable_vary(&vary, input.request) {
        return Skip(why);
    }
    // RFC 9111 section 3.5; Cookie follows Varnish's default.
    if input.request.contains_key(AUTHORIZATION)
        && !(cc.public || cc.s_maxage.is_some() || cc.must_revalidate)
    {
        return Skip(NotStored::Authorization);
    }
    if input.request.contains_key(COOKIE) && !(cc.public || cc.s_maxage.is_some()) {
        return Skip(NotStored::Cookie);
    }
    let strip: Vec<String> = cc
        .private_fields
        .iter()
        .chain(&cc.no_cache_fields)
        .cloned()
        .collect();
    if input.response.contains_key(SET_COOKIE) && !strip.iter().any(|f| f == "set-cookie") {
        return Skip(NotStored::SetCookie);
    }
    let has_validators = input.response.contains_key(http::header::ETAG)
        || input.response.contains_key(LAST_MODIFIED);
    if cc.no_cache && !has_validators {
        return Skip(NotStored::NoCache);
    }

    let initial_age = initial_age(input.response, input.request_time, input.response_time);
    let default_status = DEFAULT_TTL_STATUSES.contains(&status);
    let lifetime = match explicit_lifetime(&cc, input.response, input.response_time) {
        Some(explicit) => {
            Lifetime::For(cap(clamp(explicit).saturating_sub(initial_age), input.ttl))
        }
        None if default_status => match (input.ttl, heuristic(input.response, input.response_time))
        {
            (Some(ttl), _) => Lifetime::For(clamp(ttl)),
            (None, Some(heuristic)) => Lifetime::For(heuristic.saturating_sub(initial_age)),
            (None, None) => Lifetime::Forever,
        },
        None if cc.public || HEURISTIC_STATUSES.contains(&status) => {
            match heuristic(input.response, input.response_time) {
                Some(heuristic) => {
                    Lifetime::For(cap(heuristic.saturating_sub(initial_age), input.ttl))
                }
                None => return Skip(NotStored::Status),
            }
        }
        None => return Skip(NotStored::Status),
    };
    if lifetime == Lifetime::For(Duration::ZERO) && !has_validators {
        return Skip(NotStored::Stale);
    }
    let seconds = |d: Option<u32>| Duration::from_secs(u64::from(d.unwrap_or(0)));
    Decision::Store {
        lifetime,
        initial_age,
        vary,
        rules: ReuseRules {
            forbids_stale: cc.forbids_stale(),
            no_cache: cc.no_cache,
            immutable: cc.immutable,
            stale_while_revalidate: seconds(cc.stale_while_revalidate),
            stale_if_error: seconds(cc.stale_if_error),
        },
        strip,
    }
}

/// Whether this cache knows what a status means for caching: a final
/// status RFC 9110 defines (the ones `http` has a reason phrase for).
/// Whether a 206 is a piece this cache can store (RFC 9111 section 3.3):
/// the answer to a `Range` request, one range of a known complete length
/// (a multipart answer has no `Content-Range` of its own).
fn a_piece(input: &StoreInput<'_>) -> bool {
    input.request.contains_key(RANGE) && Piece::of_headers(input.response).is_some()
}

fn understood(status: StatusCode) -> bool {
    !status.is_informational() && status.canonical_reason().is_some()
}

/// Heuristic freshness (RFC 9111 section 4.2.2): a tenth of the time since
/// `Last-Modified`, at most a day.
fn heuristic(response: &HeaderMap, response_time: SystemTime) -> Option<Duration> {
    let modified = http_date(response.get(LAST_MODIFIED)?.as_bytes())?;
    let date = response
        .get(DATE)
        .and_then(|d| http_date(d.as_bytes()))
        .unwrap_or(response_time);
    let age = date.duration_since(modified).ok()?;
    Some((age / HEURISTIC_FRACTION).min(HEURISTIC_MAX))
}

/// The `force` policy: a 2xx GET response is stored for the route's TTL
/// whatever its own Cache-Control says. Still never stored: partial
/// content, `Vary: *`, responses that set cookies, and responses to
/// requests with credentials (a forced cache must not leak one user's
/// answer to another).
pub fn decide_forced(input: &StoreInput<'_>) -> Decision {
    use Decision::Skip;
    let status = input.status;
    if !status.is_success() || (status == StatusCode::PARTIAL_CONTENT && !a_piece(input)) {
        return Skip(NotStored::Status);
    }
    let vary = Vary::from_response(input.response);
    if let Some(why) = unusable_vary(&vary, input.request) {
        return Skip(why);
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
        rules: ReuseRules::default(),
        strip: Vec::new(),
    }
}

/// Why a response's `Vary` keeps it out of the cache, if it does: `*`,
/// more than [`MAX_VARY_FIELDS`] fields, or request values longer than
/// [`MAX_VARY_BYTES`] (each variant keeps them; a client must not make
/// one URL hold arbitrary amounts).
fn unusable_vary(vary: &Vary, request: &HeaderMap) -> Option<NotStored> {
    match vary {
        Vary::None => None,
        Vary::Star => Some(NotStored::VaryStar),
        Vary::Fields(names) if names.len() > MAX_VARY_FIELDS => Some(NotStored::VaryTooWide),
        Vary::Fields(names) => {
            let bytes: usize = names
                .iter()
                .flat_map(|name| request.get_all(name))
                .map(|value| value.len())
                .sum();
            (bytes > MAX_VARY_BYTES).then_some(NotStored::VaryTooWide)
        }
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
    use http::header::{CACHE_CONTROL, CONTENT_RANGE, DATE, EXPIRES, VARY};

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
            targets: &[],
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
        // A 206 is stored only as a piece (its own test).
        for status in DEFAULT_TTL_STATUSES.into_iter().filter(|s| *s != 206) {
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
    fn a_206_is_stored_as_a_piece_of_a_known_length() {
        let ranged = headers(&[(RANGE, "bytes=0-4")]);
        let piece = headers(&[(CONTENT_RANGE, "bytes 0-4/10")]);
        assert_eq!(
            lifetime(decide_with(&ranged, 206, &piece, Some(60))),
            SECS(60)
        );
        let unknown = headers(&[(CONTENT_RANGE, "bytes 0-4/*")]);
        assert_eq!(
            skipped(decide_with(&ranged, 206, &unknown, Some(60))),
            NotStored::Incomplete
        );
        let none = HeaderMap::new();
        assert_eq!(
            skipped(decide_with(&none, 206, &piece, Some(60))),
            NotStored::Incomplete,
            "a 206 nobody asked for"
        );
    }

    #[test]
    fn pathological_vary_is_not_stored() {
        let none = HeaderMap::new();
        let wide = headers(&[(VARY, "a, b, c, d, e, f, g, h, i")]);
        assert_eq!(
            skipped(decide_with(&none, 200, &wide, Some(60))),
            NotStored::VaryTooWide
        );
        let eight = headers(&[(VARY, "a, b, c, d, e, f, g, h")]);
        assert_eq!(
            lifetime(decide_with(&none, 200, &eight, Some(60))),
            SECS(60)
        );
        let by_agent = headers(&[(VARY, "user-agent")]);
        let mut long = HeaderMap::new();
        long.insert(
            http::header::USER_AGENT,
            HeaderValue::from_str(&"x".repeat(MAX_VARY_BYTES + 1)).unwrap(),
        );
        assert_eq!(
            skipped(decide_with(&long, 200, &by_agent, Some(60))),
            NotStored::VaryTooWide,
            "a client cannot make one variant hold kilobytes of its headers"
        );
        assert_eq!(
            lifetime(decide_with(&none, 200, &by_agent, Some(60))),
            SECS(60)
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
                targets: &[],
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
    fn validators_make_stale_and_no_cache_responses_worth_storing() {
        let none = HeaderMap::new();
        for cc in ["no-cache", "max-age=0", "no-cache, max-age=600"] {
            let response = headers(&[(CACHE_CONTROL, cc), (http::header::ETAG, "\"v1\"")]);
            let decision = decide_with(&none, 200, &response, None);
            let Decision::Store {
                rules, lifetime, ..
            } = decision
            else {
                panic!("{cc} not stored")
            };
            assert_eq!(rules.no_cache, cc.contains("no-cache"), "{cc}");
            if cc == "max-age=0" {
                assert_eq!(lifetime, SECS(0));
            }
        }
    }

    #[test]
    fn heuristic_freshness_from_last_modified() {
        let none = HeaderMap::new();
        let response = headers(&[
            (http::header::DATE, "Thu, 01 Jan 1970 00:16:40 GMT"),
            (LAST_MODIFIED, "Thu, 01 Jan 1970 00:00:00 GMT"),
        ]);
        // 1000 s since modification: a tenth is 100 s; the Date is far in
        // the past, so the apparent age eats all of it. Last-Modified is a
        // validator: stored stale, to be revalidated.
        assert_eq!(lifetime(decide_with(&none, 200, &response, None)), SECS(0));
        let now = SystemTime::now();
        let fresh = {
            let mut h = HeaderMap::new();
            h.insert(
                http::header::DATE,
                httpdate::fmt_http_date(now).parse().unwrap(),
            );
            h.insert(
                LAST_MODIFIED,
                httpdate::fmt_http_date(now - Duration::from_secs(1000))
                    .parse()
                    .unwrap(),
            );
            h
        };
        let lifetime = lifetime(decide(&StoreInput {
            request: &none,
            status: StatusCode::OK,
            response: &fresh,
            request_time: now,
            response_time: now,
            ttl: None,
            targets: &[],
        }));
        assert!(
            matches!(lifetime, Lifetime::For(d) if d >= Duration::from_secs(99) && d <= Duration::from_secs(100)),
            "{lifetime:?}"
        );
        assert_eq!(heuristic(&fresh, now).unwrap().as_secs(), 100);
        assert_eq!(
            lifetime_with_ttl(&fresh),
            SECS(60),
            "a TTL is the default lifetime before any heuristic"
        );
    }

    fn lifetime_with_ttl(response: &HeaderMap) -> Lifetime {
        lifetime(decide_with(&HeaderMap::new(), 200, response, Some(60)))
    }

    #[test]
    fn authorization_is_allowed_by_must_revalidate_and_qualified_private_strips() {
        let auth = headers(&[(AUTHORIZATION, "Bearer t")]);
        let must = headers(&[(CACHE_CONTROL, "must-revalidate, max-age=60")]);
        assert_eq!(lifetime(decide_with(&auth, 200, &must, None)), SECS(60));
        let qualified = headers(&[
            (CACHE_CONTROL, "private=\"set-cookie\", max-age=60"),
            (SET_COOKIE, "a=b"),
        ]);
        let Decision::Store { strip, .. } = decide_with(&HeaderMap::new(), 200, &qualified, None)
        else {
            panic!("not stored");
        };
        assert_eq!(strip, vec!["set-cookie".to_owned()]);
    }

    #[test]
    fn reuse_rules_come_from_the_response() {
        let response = headers(&[(
            CACHE_CONTROL,
            "max-age=60, stale-while-revalidate=30, stale-if-error=300, immutable",
        )]);
        let Decision::Store { rules, .. } = decide_with(&HeaderMap::new(), 200, &response, None)
        else {
            panic!("not stored");
        };
        assert_eq!(rules.stale_while_revalidate, Duration::from_secs(30));
        assert_eq!(rules.stale_if_error, Duration::from_secs(300));
        assert!(rules.immutable && !rules.forbids_stale);
        let strict = headers(&[(CACHE_CONTROL, "s-maxage=60")]);
        let Decision::Store { rules, .. } = decide_with(&HeaderMap::new(), 200, &strict, None)
        else {
            panic!("not stored");
        };
        assert!(rules.forbids_stale);
    }

    fn modified_a_day_ago() -> HeaderMap {
        let now = SystemTime::now();
        let mut h = HeaderMap::new();
        h.insert(DATE, httpdate::fmt_http_date(now).parse().unwrap());
        let modified = now - Duration::from_secs(86_400);
        h.insert(
            LAST_MODIFIED,
            httpdate::fmt_http_date(modified).parse().unwrap(),
        );
        h
    }

    #[test]
    fn heuristically_cacheable_errors_take_heuristic_freshness_only() {
        let none = HeaderMap::new();
        let lm = modified_a_day_ago();
        for status in [404, 405, 410, 414, 501] {
            let Lifetime::For(fresh) = lifetime(decide_with(&none, status, &lm, None)) else {
                panic!("{status}: stored for ever");
            };
            assert!(
                fresh.as_secs() > 8_000 && fresh.as_secs() <= 8_640,
                "{status}: {fresh:?}"
            );
            assert_eq!(
                lifetime(decide_with(&none, status, &lm, Some(60))),
                SECS(60),
                "{status}: the TTL caps it"
            );
            assert_eq!(
                skipped(decide_with(&none, status, &none, Some(60))),
                NotStored::Status,
                "{status}: a TTL alone does not make an error storable"
            );
        }
        for status in [403, 500, 502, 599] {
            assert_eq!(
                skipped(decide_with(&none, status, &lm, None)),
                NotStored::Status
            );
        }
        let mut public = lm.clone();
        public.insert(CACHE_CONTROL, HeaderValue::from_static("public"));
        assert!(matches!(
            lifetime(decide_with(&none, 599, &public, None)),
            Lifetime::For(d) if d.as_secs() > 8_000
        ));
    }

    #[test]
    fn must_understand_overrides_no_store_for_known_statuses() {
        let none = HeaderMap::new();
        let response = headers(&[(CACHE_CONTROL, "no-store, must-understand, max-age=60")]);
        assert_eq!(lifetime(decide_with(&none, 200, &response, None)), SECS(60));
        assert_eq!(
            skipped(decide_with(&none, 599, &response, None)),
            NotStored::NoStore
        );
        let plain = headers(&[(CACHE_CONTROL, "no-store, max-age=60")]);
        assert_eq!(
            skipped(decide_with(&none, 200, &plain, None)),
            NotStored::NoStore
        );
        let request = headers(&[(CACHE_CONTROL, "no-store")]);
        assert_eq!(
            skipped(decide_with(&request, 200, &response, None)),
            NotStored::RequestNoStore
        );
    }

    #[test]
    fn status_code_table() {
        let none = HeaderMap::new();
        let explicit = headers(&[(CACHE_CONTROL, "max-age=60")]);
        let by_default = [200, 203, 204, 300, 301, 308];
        let explicit_only = [
            201, 202, 205, 302, 303, 307, 400, 401, 403, 404, 405, 406, 409, 410, 414, 418, 429,
            451, 500, 501, 502, 503, 504, 599,
        ];
        let never = [100, 101, 103, 206, 304];
        for status in by_default {
            assert_eq!(
                lifetime(decide_with(&none, status, &none, Some(30))),
                SECS(30),
                "{status}"
            );
            assert_eq!(
                lifetime(decide_with(&none, status, &explicit, None)),
                SECS(60),
                "{status}"
            );
        }
        for status in explicit_only {
            assert_eq!(
                skipped(decide_with(&none, status, &none, Some(30))),
                NotStored::Status,
                "{status}"
            );
            assert_eq!(
                lifetime(decide_with(&none, status, &explicit, Some(300))),
                SECS(60),
                "{status}"
            );
        }
        for status in never {
            assert_eq!(
                skipped(decide_with(&none, status, &explicit, None)),
                NotStored::Incomplete,
                "{status}"
            );
        }
    }

    #[test]
    fn expires_date_and_age_table() {
        let none = HeaderMap::new();
        let now = SystemTime::now();
        let date = |offset: i64| {
            let t = if offset >= 0 {
                now + Duration::from_secs(offset as u64)
            } else {
                now - Duration::from_secs((-offset) as u64)
            };
            httpdate::fmt_http_date(t)
        };
        // (Date offset, Expires offset, Age, expected lifetime in seconds or None for skip)
        type Case = (Option<i64>, Option<i64>, Option<&'static str>, Option<u64>);
        let cases: &[Case] = &[
            (Some(0), Some(100), None, Some(100)),
            (Some(-50), Some(50), None, Some(50)), // 100 s lifetime, 50 s old on arrival
            (None, Some(100), None, Some(100)),    // no Date: the response time
            (Some(0), Some(-10), None, None),      // expired on arrival
            (Some(0), Some(100), Some("30"), Some(70)),
            (Some(0), Some(100), Some("-30"), Some(100)), // a negative Age is ignored
            (Some(0), Some(100), Some("2.5"), Some(100)), // so is a fractional one
            (Some(0), Some(100), Some("1000"), None),
        ];
        for (date_offset, expires_offset, age, expected) in cases {
            let mut response = HeaderMap::new();
            if let Some(offset) = date_offset {
                response.insert(http::header::DATE, date(*offset).parse().unwrap());
            }
            if let Some(offset) = expires_offset {
                response.insert(EXPIRES, date(*offset).parse().unwrap());
            }
            if let Some(age) = age {
                response.insert(http::header::AGE, age.parse().unwrap());
            }
            let decision = decide(&StoreInput {
                request: &none,
                status: StatusCode::OK,
                response: &response,
                request_time: now,
                response_time: now,
                ttl: None,
                targets: &[],
            });
            match (expected, decision) {
                (
                    Some(secs),
                    Decision::Store {
                        lifetime: Lifetime::For(d),
                        ..
                    },
                ) => {
                    assert!(
                        d.as_secs() + 1 >= *secs && d.as_secs() <= *secs,
                        "{date_offset:?} {expires_offset:?} {age:?}: {d:?}"
                    );
                }
                (None, Decision::Skip(NotStored::Stale)) => {}
                (expected, decision) => panic!(
                    "{date_offset:?} {expires_offset:?} {age:?}: expected {expected:?}, got {decision:?}"
                ),
            }
        }
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
