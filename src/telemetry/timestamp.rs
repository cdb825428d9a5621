//! RFC 3339 time stamps with microseconds (`2025-11-24T16:00:00.123456Z`),
//! as tracing writes them, for every access line. The date and time of
//! day change once a second, so each thread keeps the last second's text
//! and only the microseconds are written per line (nginx caches its time
//! strings the same way).

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

/// `YYYY-MM-DDTHH:MM:SS.uuuuuuZ`.
pub const LEN: usize = 27;

/// The length of `YYYY-MM-DDTHH:MM:SS`.
const SECONDS_LEN: usize = 19;

thread_local! {
    /// The last second formatted on this thread, and its text.
    static LAST_SECOND: RefCell<(u64, [u8; SECONDS_LEN])> = const { RefCell::new((u64::MAX, [0; SECONDS_LEN])) };
}

/// `now` in RFC 3339 with microseconds, UTC. Times before 1970 (a clock
/// gone wrong) are shown as 1970.
pub fn rfc3339_micros(now: SystemTime) -> [u8; LEN] {
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_secs();
    let mut text = [0u8; LEN];
    LAST_SECOND.with_borrow_mut(|(last, prefix)| {
        if *last != seconds {
            let whole = humantime::format_rfc3339_seconds(UNIX_EPOCH + since_epoch).to_string();
            if let Some(start) = whole.as_bytes().get(..SECONDS_LEN) {
                prefix.copy_from_slice(start);
                *last = seconds;
            }
        }
        text[..SECONDS_LEN].copy_from_slice(prefix);
    });
    text[SECONDS_LEN] = b'.';
    let mut micros = since_epoch.subsec_micros();
    for digit in text[SECONDS_LEN + 1..LEN - 1].iter_mut().rev() {
        *digit = b'0' + (micros % 10) as u8;
        micros /= 10;
    }
    text[LEN - 1] = b'Z';
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn matches_humantime_across_seconds() {
        let start = UNIX_EPOCH + Duration::from_secs(1_764_000_000);
        for offset_micros in [
            0,
            1,
            999_999,
            1_000_000,
            1_000_001,
            86_400_000_123,
            59_000_050,
        ] {
            let now = start + Duration::from_micros(offset_micros);
            let expected = humantime::format_rfc3339_micros(now).to_string();
            assert_eq!(std::str::from_utf8(&rfc3339_micros(now)).unwrap(), expected);
        }
    }

    #[test]
    fn a_clock_before_1970_shows_the_epoch() {
        let before = UNIX_EPOCH - Duration::from_secs(5);
        assert_eq!(&rfc3339_micros(before), b"1970-01-01T00:00:00.000000Z");
    }
}
