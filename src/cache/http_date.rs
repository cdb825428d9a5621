//! HTTP dates as a recipient reads them (RFC 9110 section 5.6.7): the
//! IMF-fixdate, the obsolete RFC 850 and ANSI C `asctime()` forms, with
//! day and month names and `GMT` in any case. The weekday must be a day's
//! name but is not checked against the date (senders get it wrong, and the
//! date is what matters). Anything else (another zone, a two-digit year in
//! the IMF form, extra spaces, a one-digit hour) is not a date.

use std::time::{Duration, SystemTime};

const MONTHS: [&[u8; 3]; 12] = [
    b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec",
];
const DAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// Parses an HTTP date in any of the three forms; surrounding whitespace
/// is ignored.
pub fn parse(bytes: &[u8]) -> Option<SystemTime> {
    let text = bytes.trim_ascii();
    let (date, time) = imf_fixdate(text)
        .or_else(|| rfc850(text))
        .or_else(|| asctime(text))?;
    to_system_time(date, time)
}

/// A calendar date: year, month (1-12), day of the month.
type Date = (u64, u64, u64);
/// A time of day: hours, minutes, seconds.
type Time = (u64, u64, u64);

/// `Sun, 06 Nov 1994 08:49:37 GMT`
fn imf_fixdate(text: &[u8]) -> Option<(Date, Time)> {
    let [d0, d1, d2, b',', b' ', rest @ ..] = text else {
        return None;
    };
    short_day(&[*d0, *d1, *d2])?;
    let [day @ .., b' '] = rest.get(..3)? else {
        return None;
    };
    let day = digits(day)?;
    let month = month(rest.get(3..6)?)?;
    let [b' ', year @ .., b' '] = rest.get(6..12)? else {
        return None;
    };
    let year = digits(year)?;
    let time = time_of_day(rest.get(12..20)?)?;
    gmt(rest.get(20..)?)?;
    Some(((year, month, day), time))
}

/// `Sunday, 06-Nov-94 08:49:37 GMT` (two-digit years 70 to 99 are 19xx,
/// the rest 20xx, as most recipients read them).
fn rfc850(text: &[u8]) -> Option<(Date, Time)> {
    let comma = text.iter().position(|b| *b == b',')?;
    let name = std::str::from_utf8(&text[..comma]).ok()?;
    DAYS.iter().find(|day| day.eq_ignore_ascii_case(name))?;
    let rest = text.get(comma + 1..)?;
    let [
        b' ',
        d0,
        d1,
        b'-',
        m0,
        m1,
        m2,
        b'-',
        y0,
        y1,
        b' ',
        rest @ ..,
    ] = rest
    else {
        return None;
    };
    let day = digits(&[*d0, *d1])?;
    let month = month(&[*m0, *m1, *m2])?;
    let year = digits(&[*y0, *y1])?;
    let year = if year >= 70 { 1900 + year } else { 2000 + year };
    let time = time_of_day(rest.get(..8)?)?;
    gmt(rest.get(8..)?)?;
    Some(((year, month, day), time))
}

/// `Sun Nov  6 08:49:37 1994`
fn asctime(text: &[u8]) -> Option<(Date, Time)> {
    let [
        d0,
        d1,
        d2,
        b' ',
        m0,
        m1,
        m2,
        b' ',
        day0,
        day1,
        b' ',
        rest @ ..,
    ] = text
    else {
        return None;
    };
    short_day(&[*d0, *d1, *d2])?;
    let month = month(&[*m0, *m1, *m2])?;
    let day = match (day0, day1) {
        (b' ', d) => digits(&[*d])?,
        (a, b) => digits(&[*a, *b])?,
    };
    let time = time_of_day(rest.get(..8)?)?;
    let [b' ', year @ ..] = rest.get(8..)? else {
        return None;
    };
    if year.len() != 4 {
        return None;
    }
    Some(((digits(year)?, month, day), time))
}

fn short_day(name: &[u8; 3]) -> Option<()> {
    DAYS.iter()
        .any(|day| day.as_bytes()[..3].eq_ignore_ascii_case(name))
        .then_some(())
}

fn month(name: &[u8]) -> Option<u64> {
    let index = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(name))?;
    Some(index as u64 + 1)
}

fn gmt(zone: &[u8]) -> Option<()> {
    zone.eq_ignore_ascii_case(b" gmt").then_some(())
}

/// `HH:MM:SS`, two digits each.
fn time_of_day(text: &[u8]) -> Option<Time> {
    let [h0, h1, b':', m0, m1, b':', s0, s1] = text else {
        return None;
    };
    let hour = digits(&[*h0, *h1])?;
    let minute = digits(&[*m0, *m1])?;
    let second = digits(&[*s0, *s1])?;
    // 60: a leap second.
    (hour < 24 && minute < 60 && second <= 60).then_some((hour, minute, second))
}

/// Digits only (at most four), as a number.
fn digits(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 4 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(text.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0')))
}

fn to_system_time((year, month, day): Date, (hour, minute, second): Time) -> Option<SystemTime> {
    if year < 1970 || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_since_epoch(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(seconds))
}

fn is_leap(year: u64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the date (Howard Hinnant's `days_from_civil`,
/// for years from 1970 on).
fn days_since_epoch(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12; // March is 0
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(text: &str) -> Option<u64> {
        parse(text.as_bytes()).map(|t| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs())
    }

    const NOV_6_1994: u64 = 784_111_777;

    #[test]
    fn the_three_forms() {
        assert_eq!(secs("Sun, 06 Nov 1994 08:49:37 GMT"), Some(NOV_6_1994));
        assert_eq!(secs("Sunday, 06-Nov-94 08:49:37 GMT"), Some(NOV_6_1994));
        assert_eq!(secs("Sun Nov  6 08:49:37 1994"), Some(NOV_6_1994));
        assert_eq!(secs("Sun Nov 16 08:49:37 1994"), Some(NOV_6_1994 + 864_000));
        assert_eq!(secs("  Sun, 06 Nov 1994 08:49:37 GMT "), Some(NOV_6_1994));
        assert_eq!(secs("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(secs("Tue, 19 Jan 2038 03:14:08 GMT"), Some(1 << 31));
        assert_eq!(
            secs("Thursday, 18-Aug-50 02:01:18 GMT"),
            secs("Thu, 18 Aug 2050 02:01:18 GMT")
        );
    }

    #[test]
    fn case_and_weekday_are_lenient() {
        for text in [
            "SUN, 06 Nov 1994 08:49:37 GMT",
            "Sun, 06 NOV 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 gMT",
            "Mon, 06 Nov 1994 08:49:37 GMT",
            "sunday, 06-nov-94 08:49:37 gmt",
            "Thu Nov  6 08:49:37 1994",
        ] {
            assert_eq!(secs(text), Some(NOV_6_1994), "{text}");
        }
    }

    #[test]
    fn not_dates() {
        for text in [
            "0",
            "",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Nov 1994 08:49:37 AEST",
            "Sun, 06 Nov 94 08:49:37 GMT",
            "Sun 06 Nov 1994 08:49:37 GMT",
            "Sun, 06  Nov  1994 08:49:37 GMT",
            "Sun, 06-Nov-1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08.49.37 GMT",
            "Sun, 06 Nov 1994 8:49:37 GMT",
            "Sun, 31 Nov 1994 08:49:37 GMT",
            "Sun, 29 Feb 1995 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Xyz, 06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1969 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMTX",
        ] {
            assert_eq!(secs(text), None, "{text}");
        }
        assert_eq!(secs("Thu, 29 Feb 1996 00:00:00 GMT"), Some(825_552_000));
    }

    #[test]
    fn agrees_with_httpdate_on_what_it_formats() {
        for t in [
            0u64,
            1,
            951_782_400,
            NOV_6_1994,
            1_700_000_000,
            4_102_444_800,
        ] {
            let time = SystemTime::UNIX_EPOCH + Duration::from_secs(t);
            let text = httpdate::fmt_http_date(time);
            assert_eq!(secs(&text), Some(t), "{text}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in ".{0,40}") {
            let _ = parse(text.as_bytes());
        }
    }
}
