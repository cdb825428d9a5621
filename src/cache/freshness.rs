//! Freshness arithmetic (RFC 9111 sections 4.2.1 and 4.2.3), pure: every
//! function takes the times it needs as arguments and uses saturating
//! arithmetic, so no header value can make it panic.

use std::time::{Duration, SystemTime};

use http::HeaderMap;
use http::header::{AGE, DATE, EXPIRES};

use super::control::{CacheControl, DELTA_SECONDS_MAX, delta_seconds};

/// The lifetime the origin gave this response, if it gave one: `s-maxage`,
/// then `max-age`, then `Expires - Date`. An `Expires` that cannot be parsed
/// means "already expired" (section 5.3).
pub fn explicit_lifetime(
    cc: &CacheControl,
    headers: &HeaderMap,
    response_time: SystemTime,
) -> Option<Duration> {
    if let Some(secs) = cc.s_maxage.or(cc.max_age) {
        return Some(Duration::from_secs(u64::from(secs)));
    }
    let expires = headers.get(EXPIRES)?;
    let Some(expires) = http_date(expires.as_bytes()) else {
        return Some(Duration::ZERO);
    };
    let date = headers
        .get(DATE)
        .and_then(|d| http_date(d.as_bytes()))
        .unwrap_or(response_time);
    Some(expires.duration_since(date).unwrap_or(Duration::ZERO))
}

/// The response's age when it reached us (`corrected_initial_age` of
/// section 4.2.3): the larger of the apparent age (`response_time - Date`)
/// and the origin's `Age` plus the round-trip time.
pub fn initial_age(
    headers: &HeaderMap,
    request_time: SystemTime,
    response_time: SystemTime,
) -> Duration {
    let apparent_age = headers
        .get(DATE)
        .and_then(|d| http_date(d.as_bytes()))
        .and_then(|date| response_time.duration_since(date).ok())
        .unwrap_or(Duration::ZERO);
    let age_value = age_header(headers);
    let response_delay = response_time
        .duration_since(request_time)
        .unwrap_or(Duration::ZERO);
    apparent_age.max(age_value.saturating_add(response_delay))
}

/// The `Age` header in seconds: the first member of the first line, digits
/// only (`Age: 7200, 0` is 7200); anything else is ignored (section 5.1
/// says a cache may ignore an invalid Age).
pub fn age_header(headers: &HeaderMap) -> Duration {
    let Some(value) = headers.get(AGE).and_then(|v| v.to_str().ok()) else {
        return Duration::ZERO;
    };
    let value = value.split(',').next().unwrap_or_default().trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Duration::ZERO;
    }
    Duration::from_secs(u64::from(delta_seconds(Some(value))))
}

/// Parses an HTTP date in any of the three formats of RFC 9110 section
/// 5.6.7, leniently as a recipient should ([`super::http_date`]).
pub fn http_date(bytes: &[u8]) -> Option<SystemTime> {
    super::http_date::parse(bytes)
}

/// Clamps a lifetime to what the cache can represent (2^31 seconds).
pub fn clamp(lifetime: Duration) -> Duration {
    lifetime.min(Duration::from_secs(u64::from(DELTA_SECONDS_MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(http::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn s_maxage_beats_max_age_beats_expires() {
        let h = headers(&[(EXPIRES, "Thu, 01 Jan 1970 00:16:40 GMT")]);
        let cc = CacheControl {
            max_age: Some(10),
            s_maxage: Some(20),
            ..Default::default()
        };
        assert_eq!(
            explicit_lifetime(&cc, &h, at(0)),
            Some(Duration::from_secs(20))
        );
        let cc = CacheControl {
            max_age: Some(10),
            ..Default::default()
        };
        assert_eq!(
            explicit_lifetime(&cc, &h, at(0)),
            Some(Duration::from_secs(10))
        );
        let cc = CacheControl::default();
        assert_eq!(
            explicit_lifetime(&cc, &h, at(0)),
            Some(Duration::from_secs(1000))
        );
    }

    #[test]
    fn expires_is_relative_to_date_in_every_format() {
        for date in [
            "Thu, 01 Jan 1970 00:01:40 GMT",
            "Thursday, 01-Jan-70 00:01:40 GMT",
            "Thu Jan  1 00:01:40 1970",
        ] {
            let h = headers(&[(DATE, date), (EXPIRES, "Thu, 01 Jan 1970 00:16:40 GMT")]);
            let lifetime = explicit_lifetime(&CacheControl::default(), &h, at(5000));
            assert_eq!(lifetime, Some(Duration::from_secs(900)), "Date: {date}");
        }
    }

    #[test]
    fn invalid_expires_means_stale() {
        let h = headers(&[(EXPIRES, "0")]);
        assert_eq!(
            explicit_lifetime(&CacheControl::default(), &h, at(0)),
            Some(Duration::ZERO)
        );
        assert_eq!(
            explicit_lifetime(&CacheControl::default(), &HeaderMap::new(), at(0)),
            None
        );
    }

    #[test]
    fn initial_age_takes_the_larger_estimate() {
        let h = headers(&[(AGE, "30"), (DATE, "Thu, 01 Jan 1970 00:01:40 GMT")]);
        // apparent age 110 - 100 = 10; corrected age 30 + (110 - 108) = 32
        assert_eq!(initial_age(&h, at(108), at(110)), Duration::from_secs(32));
        let h = headers(&[(DATE, "Thu, 01 Jan 1970 00:01:40 GMT")]);
        assert_eq!(initial_age(&h, at(150), at(150)), Duration::from_secs(50));
    }

    #[test]
    fn bad_age_values_are_ignored() {
        for bad in ["-5", "1.5", "abc", ""] {
            let h = headers(&[(AGE, bad)]);
            assert_eq!(age_header(&h), Duration::ZERO, "Age: {bad}");
        }
        let h = headers(&[(AGE, "99999999999999999999")]);
        assert_eq!(age_header(&h), Duration::from_secs(1 << 31));
    }

    #[test]
    fn a_list_in_age_counts_its_first_member() {
        let h = headers(&[(AGE, "7200, 0")]);
        assert_eq!(age_header(&h), Duration::from_secs(7200));
        let h = headers(&[(AGE, "0, 7200")]);
        assert_eq!(age_header(&h), Duration::ZERO);
        let h = headers(&[(AGE, "old, 0")]);
        assert_eq!(age_header(&h), Duration::ZERO);
    }

    proptest::proptest! {
        #[test]
        fn header_values_never_panic(date in ".*", expires in ".*", age in ".*") {
            let mut h = HeaderMap::new();
            for (name, value) in [(DATE, &date), (EXPIRES, &expires), (AGE, &age)] {
                if let Ok(v) = HeaderValue::from_str(value) {
                    h.insert(name, v);
                }
            }
            let cc = CacheControl::default();
            let _ = explicit_lifetime(&cc, &h, SystemTime::now());
            let _ = initial_age(&h, SystemTime::now(), SystemTime::now());
        }
    }
}
