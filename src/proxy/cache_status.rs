//! How the cache took part in a response: the `X-Cache` value, the
//! `Cache-Status` field (RFC 9211) and the access log's cache columns.

use bytes::BytesMut;
use http::HeaderValue;

use crate::cache::policy::NotStored;

/// Why a response was served stale, or not stored (RFC 9211 `detail`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// The client accepted a stale response (`max-stale`).
    MaxStale,
    /// Served stale while one background request refreshes it.
    StaleWhileRevalidate,
    /// Served stale because the origin failed.
    StaleIfError,
    /// Answered by the fleet's shared tier (this instance's own memory
    /// did not have it).
    Shared,
    /// Waited for another request's fill longer than the origin timeout.
    CoalesceTimeout,
    /// Waited for another request's fill, which was not stored.
    CoalescedNotStored,
    /// Larger than the cache's `max_object_size`.
    TooLarge,
    /// A HEAD the cache could not answer.
    Head,
    /// A request with a body.
    RequestBody,
    /// A method that is not cached.
    Method,
    /// The route never caches.
    Bypass,
    /// The policy refused to store the response.
    NotStored(NotStored),
}

impl Detail {
    /// The token in `Cache-Status` and in the access log.
    pub fn as_str(self) -> &'static str {
        match self {
            Detail::MaxStale => "max-stale",
            Detail::StaleWhileRevalidate => "stale-while-revalidate",
            Detail::StaleIfError => "stale-if-error",
            Detail::Shared => "shared",
            Detail::CoalesceTimeout => "coalesce-timeout",
            Detail::CoalescedNotStored => "coalesced-not-stored",
            Detail::TooLarge => "too-large",
            Detail::Head => "head",
            Detail::RequestBody => "request-body",
            Detail::Method => "method",
            Detail::Bypass => "bypass",
            Detail::NotStored(why) => why.as_str(),
        }
    }
}

/// Why a request went forward to the origin (RFC 9211 `fwd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fwd {
    /// Nothing stored for the URL.
    UriMiss,
    /// The URL is stored, but not the variant this request selects.
    VaryMiss,
    /// The stored response was stale.
    Stale,
    /// The method is not cacheable.
    Method,
    /// The request asked for it (no-cache, max-age, a body, a range).
    Request,
    /// The route never caches.
    Bypass,
}

impl Fwd {
    fn as_str(self) -> &'static str {
        match self {
            Fwd::UriMiss => "uri-miss",
            Fwd::VaryMiss => "vary-miss",
            Fwd::Stale => "stale",
            Fwd::Method => "method",
            Fwd::Request => "request",
            Fwd::Bypass => "bypass",
        }
    }
}

/// The cache's part in one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// The body came from the cache without asking the origin.
    Hit {
        /// Seconds of freshness left (negative when served stale).
        ttl: Option<i64>,
        /// Why a stale response was served (`stale-while-revalidate`, ...).
        detail: Option<Detail>,
    },
    /// The origin confirmed the stored response (304); its body came from
    /// the cache.
    Revalidated {
        /// Seconds of freshness the refreshed entry has.
        ttl: Option<i64>,
    },
    /// The body came from the origin.
    Miss {
        /// Why it went forward.
        fwd: Fwd,
        /// Whether the response is being stored.
        stored: bool,
        /// Why it is not stored (or why it was not looked up).
        detail: Option<Detail>,
    },
    /// The proxy answered with an error of its own.
    Error,
}

impl CacheStatus {
    /// A miss for `fwd` that is not stored, for `detail`.
    pub fn pass(fwd: Fwd, detail: Detail) -> Self {
        CacheStatus::Miss {
            fwd,
            stored: false,
            detail: Some(detail),
        }
    }

    /// `X-Cache: HIT` when the body came from the cache.
    pub fn is_hit(self) -> bool {
        matches!(
            self,
            CacheStatus::Hit { .. } | CacheStatus::Revalidated { .. }
        )
    }

    /// The short name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit { detail: None, .. } => "HIT",
            CacheStatus::Hit {
                detail: Some(_), ..
            } => "STALE",
            CacheStatus::Revalidated { .. } => "REVALIDATED",
            CacheStatus::Miss {
                fwd: Fwd::Method | Fwd::Request | Fwd::Bypass,
                ..
            } => "PASS",
            CacheStatus::Miss { .. } => "MISS",
            CacheStatus::Error => "ERROR",
        }
    }

    /// Why it was not served or stored from the cache ("-" if it was).
    pub fn reason(self) -> &'static str {
        match self {
            CacheStatus::Hit { detail, .. } => detail.map_or("-", Detail::as_str),
            CacheStatus::Revalidated { .. } => "not-modified",
            CacheStatus::Miss { stored: true, .. } => "stored",
            CacheStatus::Miss { detail, fwd, .. } => detail.map_or(fwd.as_str(), Detail::as_str),
            CacheStatus::Error => "-",
        }
    }

    /// The `Cache-Status` field value (RFC 9211).
    pub fn header_value(self) -> HeaderValue {
        // One exact-enough buffer, no formatting machinery: this runs for
        // every response.
        let mut value = BytesMut::with_capacity(64);
        value.extend_from_slice(b"caching-proxy");
        match self {
            CacheStatus::Hit { ttl, detail } => {
                value.extend_from_slice(b"; hit");
                ttl_field(&mut value, ttl);
                detail_field(&mut value, detail);
            }
            CacheStatus::Revalidated { ttl } => {
                value.extend_from_slice(b"; fwd=stale; fwd-status=304");
                ttl_field(&mut value, ttl);
            }
            CacheStatus::Miss {
                fwd,
                stored,
                detail,
            } => {
                value.extend_from_slice(b"; fwd=");
                value.extend_from_slice(fwd.as_str().as_bytes());
                if stored {
                    value.extend_from_slice(b"; stored");
                }
                detail_field(&mut value, detail);
            }
            CacheStatus::Error => value.extend_from_slice(b"; fwd=uri-miss; detail=proxy-error"),
        }
        HeaderValue::from_maybe_shared(value.freeze())
            .unwrap_or(HeaderValue::from_static("caching-proxy"))
    }
}

fn ttl_field(value: &mut BytesMut, ttl: Option<i64>) {
    if let Some(ttl) = ttl {
        value.extend_from_slice(b"; ttl=");
        value.extend_from_slice(itoa::Buffer::new().format(ttl).as_bytes());
    }
}

fn detail_field(value: &mut BytesMut, detail: Option<Detail>) {
    if let Some(detail) = detail {
        value.extend_from_slice(b"; detail=");
        value.extend_from_slice(detail.as_str().as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_status_values() {
        let cases = [
            (
                CacheStatus::Hit {
                    ttl: Some(30),
                    detail: None,
                },
                "caching-proxy; hit; ttl=30",
                true,
            ),
            (
                CacheStatus::Hit {
                    ttl: Some(-5),
                    detail: Some(Detail::StaleWhileRevalidate),
                },
                "caching-proxy; hit; ttl=-5; detail=stale-while-revalidate",
                true,
            ),
            (
                CacheStatus::Revalidated { ttl: Some(60) },
                "caching-proxy; fwd=stale; fwd-status=304; ttl=60",
                true,
            ),
            (
                CacheStatus::Miss {
                    fwd: Fwd::UriMiss,
                    stored: true,
                    detail: None,
                },
                "caching-proxy; fwd=uri-miss; stored",
                false,
            ),
            (
                CacheStatus::pass(Fwd::Method, Detail::Method),
                "caching-proxy; fwd=method; detail=method",
                false,
            ),
            (
                CacheStatus::Miss {
                    fwd: Fwd::VaryMiss,
                    stored: false,
                    detail: Some(Detail::NotStored(NotStored::NoStore)),
                },
                "caching-proxy; fwd=vary-miss; detail=no-store",
                false,
            ),
        ];
        for (status, header, hit) in cases {
            assert_eq!(status.header_value(), header);
            assert_eq!(status.is_hit(), hit, "{header}");
        }
    }
}
