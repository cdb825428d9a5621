//! `Range: bytes=...` against a complete stored body (RFC 9110 section 14).
//! One range is answered with 206; several ranges are answered with the
//! whole body (allowed: a server may ignore Range).

use std::ops::Range;

/// How to answer a range request for a body of a known length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeAnswer {
    /// Send the whole body with 200 (no range, several ranges, or a header
    /// this cache does not interpret).
    Full,
    /// Send these bytes with 206.
    Partial(Range<usize>),
    /// 416 Range Not Satisfiable.
    Unsatisfiable,
}

/// Interprets a `Range` header value for a body of `len` bytes.
pub fn answer(header: &[u8], len: usize) -> RangeAnswer {
    let Ok(text) = std::str::from_utf8(header) else {
        return RangeAnswer::Full;
    };
    let Some(spec) = text.trim().strip_prefix("bytes=") else {
        return RangeAnswer::Full;
    };
    if spec.contains(',') {
        return RangeAnswer::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAnswer::Full;
    };
    let number = |s: &str| -> Option<usize> {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(
            s.parse::<u64>()
                .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX)),
        )
    };
    match (first.trim().is_empty(), number(first), number(last)) {
        // bytes=-N: the last N bytes.
        (true, _, Some(suffix)) => {
            if suffix == 0 || len == 0 {
                return RangeAnswer::Unsatisfiable;
            }
            RangeAnswer::Partial(len.saturating_sub(suffix)..len)
        }
        // bytes=A- or bytes=A-B
        (false, Some(start), end) if last.trim().is_empty() || end.is_some() => {
            if start >= len {
                return RangeAnswer::Unsatisfiable;
            }
            let end = end.map_or(len - 1, |e| e.min(len - 1));
            if end < start {
                return RangeAnswer::Full;
            }
            RangeAnswer::Partial(start..end + 1)
        }
        _ => RangeAnswer::Full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        use RangeAnswer::*;
        let cases: &[(&str, usize, RangeAnswer)] = &[
            ("bytes=0-4", 10, Partial(0..5)),
            ("bytes=5-", 10, Partial(5..10)),
            ("bytes=-3", 10, Partial(7..10)),
            ("bytes=-30", 10, Partial(0..10)),
            ("bytes=8-100", 10, Partial(8..10)),
            ("bytes=9-9", 10, Partial(9..10)),
            ("bytes=10-", 10, Unsatisfiable),
            ("bytes=-0", 10, Unsatisfiable),
            ("bytes=0-0", 0, Unsatisfiable),
            ("bytes=5-2", 10, Full),
            ("bytes=0-1,4-5", 10, Full),
            ("items=0-1", 10, Full),
            ("bytes=a-b", 10, Full),
            ("bytes=", 10, Full),
            ("bytes=99999999999999999999999-", 10, Unsatisfiable),
            (" bytes=1-2 ", 10, Partial(1..3)),
        ];
        for (header, len, expected) in cases {
            assert_eq!(
                &answer(header.as_bytes(), *len),
                expected,
                "{header} of {len}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn ranges_stay_in_bounds(header in "bytes=[0-9-]{0,12}", len in 0usize..1000) {
            if let RangeAnswer::Partial(r) = answer(header.as_bytes(), len) {
                proptest::prop_assert!(r.start < r.end && r.end <= len);
            }
        }
    }
}
