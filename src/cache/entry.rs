//! A stored response: head, body, the times that decide its freshness, and
//! the response directives that govern its reuse once stale.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, ETAG, LAST_MODIFIED};
use http::{HeaderMap, HeaderValue, StatusCode};

use super::footprint::{SHARED_COUNT, allocated};
use super::headers::StoredHeaders;
use super::negotiate::Coding;
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
///
/// Kept small because there is one per entry: times are whole microseconds
/// since the Unix epoch, and the rarely used `Vary` values, purge tags and
/// stale windows (whole seconds) sit behind one optional pointer. With its
/// `Arc` counts it fits the allocator's 128-byte size class (a test checks).
#[derive(Debug, Clone)]
pub struct CachedResponse {
    /// The origin's status.
    pub status: StatusCode,
    /// The origin's end-to-end headers, with `Content-Length` set to the
    /// body's length.
    pub headers: StoredHeaders,
    /// The complete body.
    pub body: Bytes,
    /// Times it answered a request (for inspection).
    pub hits: HitCount,
    /// When it was stored (our clock), in microseconds since the epoch.
    stored_at: u64,
    /// Until when it is fresh, likewise; [`FOREVER`]: until evicted.
    fresh_until: u64,
    /// Its age in whole seconds when it arrived from the origin (`Age`
    /// counts whole seconds).
    initial_age: u32,
    /// [`ReuseRules`]' flags (its windows are extras).
    rule_flags: u8,
    /// `Vary` values, purge tags and stale windows, when there are any.
    extras: Option<Box<Extras>>,
}

/// `fresh_until` of an entry without expiry.
const FOREVER: u64 = u64::MAX;

const FORBIDS_STALE: u8 = 1;
const NO_CACHE: u8 = 2;
const IMMUTABLE: u8 = 4;
/// The body's content coding, in bits 3 to 5 (see [`coding_flags`]).
const CODING_SHIFT: u8 = 3;
const CODING_MASK: u8 = 7 << CODING_SHIFT;
/// `Cache-Control: no-transform`.
const NO_TRANSFORM: u8 = 64;

/// The coding and `no-transform` bits of `headers`, so that a hit reads
/// them without looking through the header block.
fn coding_flags(headers: &HeaderMap) -> u8 {
    let coding = match Coding::of_content_encoding(headers) {
        Some(Coding::Identity) => 0,
        Some(Coding::Gzip) => 1,
        Some(Coding::Brotli) => 2,
        Some(Coding::Zstd) => 3,
        None => 4,
    };
    // A substring test, not a parse: this runs for every stored entry.
    let no_transform = headers
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .any(|value| {
            value
                .as_bytes()
                .windows(12)
                .any(|w| w.eq_ignore_ascii_case(b"no-transform"))
        });
    (coding << CODING_SHIFT) | if no_transform { NO_TRANSFORM } else { 0 }
}

/// What few entries have.
#[derive(Debug, Clone, Default)]
struct Extras {
    vary: VaryValues,
    tags: Box<[Box<str>]>,
    /// [`ReuseRules`]' windows, in whole seconds.
    stale_while_revalidate: u32,
    stale_if_error: u32,
}

/// No `Vary` values, for entries without extras.
static NO_VARY: VaryValues = VaryValues::none();

/// Seconds, saturating at `u32::MAX` (136 years).
fn whole_seconds(duration: Duration) -> u32 {
    u32::try_from(duration.as_secs()).unwrap_or(u32::MAX)
}

/// Microseconds since the epoch; times before it count as the epoch.
fn micros(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(FOREVER - 1))
}

fn from_micros(micros: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(micros)
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
        let flag = |on: bool, bit: u8| if on { bit } else { 0 };
        let stored_at = micros(stored_at);
        let fresh_until = fresh_for.map_or(FOREVER, |d| {
            let d = u64::try_from(d.as_micros()).unwrap_or(FOREVER);
            stored_at.saturating_add(d).min(FOREVER - 1)
        });
        let mut entry = CachedResponse {
            status,
            headers: StoredHeaders::from_map(&headers),
            body,
            hits: HitCount::default(),
            stored_at,
            fresh_until,
            initial_age: whole_seconds(initial_age),
            rule_flags: flag(rules.forbids_stale, FORBIDS_STALE)
                | flag(rules.no_cache, NO_CACHE)
                | flag(rules.immutable, IMMUTABLE)
                | coding_flags(&headers),
            extras: None,
        };
        if !vary.pairs().is_empty() {
            entry.extras_mut().vary = vary;
        }
        let windows = (
            whole_seconds(rules.stale_while_revalidate),
            whole_seconds(rules.stale_if_error),
        );
        if windows != (0, 0) {
            let extras = entry.extras_mut();
            (extras.stale_while_revalidate, extras.stale_if_error) = windows;
        }
        entry
    }

    /// The same entry with purge tags.
    pub fn with_tags(mut self, tags: Vec<Box<str>>) -> Self {
        if !tags.is_empty() || self.extras.is_some() {
            self.extras_mut().tags = tags.into_boxed_slice();
        }
        self
    }

    /// The same entry, fresh for at most `cap` after it was stored (a
    /// route's TTL).
    pub fn capped(mut self, cap: Option<Duration>) -> Self {
        if let Some(cap) = cap {
            let cap = u64::try_from(cap.as_micros()).unwrap_or(FOREVER);
            self.fresh_until = self
                .fresh_until
                .min(self.stored_at.saturating_add(cap).min(FOREVER - 1));
        }
        self
    }

    /// The same entry with other headers (a revalidation's merged ones).
    pub fn with_headers(mut self, headers: StoredHeaders) -> Self {
        let flags = coding_flags(&headers.to_map());
        self.rule_flags = (self.rule_flags & !(CODING_MASK | NO_TRANSFORM)) | flags;
        self.headers = headers;
        self
    }

    /// The coding its body is stored in, when this proxy can decode it
    /// for a client that does not take it: `None` for identity, for a
    /// coding it does not know, and for a `no-transform` response.
    pub fn decodable_coding(&self) -> Option<Coding> {
        if self.rule_flags & NO_TRANSFORM != 0 {
            return None;
        }
        match (self.rule_flags & CODING_MASK) >> CODING_SHIFT {
            1 => Some(Coding::Gzip),
            2 => Some(Coding::Brotli),
            3 => Some(Coding::Zstd),
            _ => None,
        }
    }

    fn extras_mut(&mut self) -> &mut Extras {
        self.extras.get_or_insert_with(Box::default)
    }

    /// When it was stored (our clock, to the microsecond).
    pub fn stored_at(&self) -> SystemTime {
        from_micros(self.stored_at)
    }

    /// Until when it is fresh; `None`: until evicted or cleared.
    pub fn fresh_until(&self) -> Option<SystemTime> {
        (self.fresh_until != FOREVER).then(|| from_micros(self.fresh_until))
    }

    /// Its age when it arrived from the origin, in whole seconds.
    pub fn initial_age(&self) -> Duration {
        Duration::from_secs(self.initial_age.into())
    }

    /// How it may be reused once stale.
    pub fn rules(&self) -> ReuseRules {
        let (while_revalidate, if_error) = self.extras.as_ref().map_or((0, 0), |extras| {
            (extras.stale_while_revalidate, extras.stale_if_error)
        });
        ReuseRules {
            forbids_stale: self.rule_flags & FORBIDS_STALE != 0,
            no_cache: self.rule_flags & NO_CACHE != 0,
            immutable: self.rule_flags & IMMUTABLE != 0,
            stale_while_revalidate: Duration::from_secs(while_revalidate.into()),
            stale_if_error: Duration::from_secs(if_error.into()),
        }
    }

    /// The request header values it was selected by.
    pub fn vary(&self) -> &VaryValues {
        self.extras.as_ref().map_or(&NO_VARY, |extras| &extras.vary)
    }

    /// Purge tags from the origin's `Surrogate-Key` / `Cache-Tag`.
    pub fn tags(&self) -> &[Box<str>] {
        self.extras.as_ref().map_or(&[], |extras| &extras.tags)
    }

    /// Counts one more answer from this entry.
    pub fn count_hit(&self) {
        self.hits.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether its freshness lifetime has not run out at `now`.
    pub fn is_fresh(&self, now: SystemTime) -> bool {
        self.fresh_until().is_none_or(|until| now < until)
    }

    /// How long it has been stale at `now` (`None` while fresh).
    pub fn staleness(&self, now: SystemTime) -> Option<Duration> {
        let until = self.fresh_until()?;
        if now < until {
            return None;
        }
        Some(now.duration_since(until).unwrap_or(Duration::ZERO))
    }

    /// Its current age (RFC 9111 section 4.2.3): the age it arrived with
    /// plus the time it has been stored.
    pub fn age(&self, now: SystemTime) -> Duration {
        let resident = now
            .duration_since(self.stored_at())
            .unwrap_or(Duration::ZERO);
        self.initial_age().saturating_add(resident)
    }

    /// How long it is still fresh at `now` (`None`: forever).
    pub fn remaining(&self, now: SystemTime) -> Option<Duration> {
        self.fresh_until()
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
        let rules = self.rules();
        if rules.forbids_stale {
            return self.is_fresh(now);
        }
        match self.staleness(now) {
            None => true,
            Some(stale) => stale <= rules.stale_if_error.max(grace),
        }
    }

    /// Bytes its own allocations take: itself with its `Arc` counts, its
    /// body (with the count sharing it adds), header block and extras.
    pub fn heap_bytes(&self) -> usize {
        let own = allocated(size_of::<Self>() + 16);
        let body = match self.body.len() {
            0 => 0,
            len => allocated(len) + SHARED_COUNT,
        };
        let extras = self.extras.as_deref().map_or(0, |extras| {
            allocated(size_of::<Extras>())
                + extras.vary.heap_bytes()
                + allocated(size_of_val::<[Box<str>]>(&extras.tags))
                + extras
                    .tags
                    .iter()
                    .map(|t| allocated(t.len()))
                    .sum::<usize>()
        });
        own + body + self.headers.heap_bytes() + extras
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
    fn an_entry_fits_a_128_byte_allocation_with_its_arc_counts() {
        // jemalloc's size classes around it are 112, 128 and 160 bytes.
        assert!(std::mem::size_of::<CachedResponse>() + 16 <= 128);
    }

    #[test]
    fn compact_fields_read_back_as_built() {
        let rules = ReuseRules {
            forbids_stale: true,
            no_cache: false,
            immutable: true,
            stale_while_revalidate: Duration::from_secs(30),
            stale_if_error: Duration::from_secs(u64::MAX),
        };
        let stored_at = SystemTime::UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        let mut request = HeaderMap::new();
        request.insert("accept-language", HeaderValue::from_static("de"));
        let vary = VaryValues::capture(&[http::header::ACCEPT_LANGUAGE], &request);
        let e = CachedResponse::new(
            StatusCode::OK,
            HeaderMap::new(),
            Bytes::new(),
            stored_at,
            Some(Duration::from_millis(1500)),
            Duration::from_millis(2900),
            vary.clone(),
            rules,
        );
        assert_eq!(e.stored_at(), stored_at);
        assert_eq!(
            e.fresh_until(),
            Some(stored_at + Duration::from_millis(1500))
        );
        assert_eq!(e.initial_age(), Duration::from_secs(2), "whole seconds");
        let read = e.rules();
        assert!(read.forbids_stale && !read.no_cache && read.immutable);
        assert_eq!(read.stale_while_revalidate, Duration::from_secs(30));
        assert_eq!(read.stale_if_error, Duration::from_secs(u32::MAX.into()));
        assert_eq!(e.vary(), &vary);
        assert!(e.tags().is_empty());
        let tagged = e.with_tags(vec!["a".into()]);
        assert_eq!(tagged.tags(), &[Box::<str>::from("a")]);
        assert_eq!(tagged.vary(), &vary, "tags keep the Vary values");
        let plain = entry(None, ReuseRules::default());
        assert!(plain.extras.is_none() && plain.vary().pairs().is_empty());
        assert_eq!(plain.fresh_until(), None);
        let huge = CachedResponse::new(
            StatusCode::OK,
            HeaderMap::new(),
            Bytes::new(),
            stored_at,
            Some(Duration::MAX),
            Duration::MAX,
            VaryValues::default(),
            ReuseRules::default(),
        );
        assert!(
            huge.fresh_until().is_some_and(|until| until > stored_at),
            "a lifetime past the representable saturates, it does not become 'forever'"
        );
        assert!(huge.is_fresh(stored_at + Duration::from_secs(100 * 365 * 86_400)));
        assert_eq!(huge.initial_age(), Duration::from_secs(u32::MAX.into()));
    }

    #[test]
    fn content_length_matches_the_body() {
        let e = entry(None, ReuseRules::default());
        assert_eq!(e.headers.get(CONTENT_LENGTH).unwrap(), "5");
        assert!(e.heap_bytes() > 5);
        assert!(!e.has_validators());
    }
}
