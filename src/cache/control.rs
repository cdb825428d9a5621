//! `Cache-Control` parsing (RFC 9111 section 5.2), apart from any decision.
//!
//! Directive names are case-insensitive; arguments may be tokens or quoted
//! strings; several header lines and comma lists are merged; the first
//! occurrence of a duplicated directive wins; unknown directives are
//! ignored. Delta-seconds that overflow become 2^31 (section 1.2.2); an
//! invalid one counts as 0, so the response is treated as stale.

use http::HeaderMap;
use http::header::{CACHE_CONTROL, PRAGMA};

/// The largest delta-seconds value (RFC 9111 section 1.2.2).
pub const DELTA_SECONDS_MAX: u32 = 1 << 31;

/// The directives this cache acts on.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CacheControl {
    /// `no-store`
    pub no_store: bool,
    /// `no-cache` (with or without field names)
    pub no_cache: bool,
    /// `private` (with or without field names)
    pub private: bool,
    /// `public`
    pub public: bool,
    /// `must-revalidate`
    pub must_revalidate: bool,
    /// `proxy-revalidate`
    pub proxy_revalidate: bool,
    /// `max-age=N`
    pub max_age: Option<u32>,
    /// `s-maxage=N`
    pub s_maxage: Option<u32>,
}

impl CacheControl {
    /// Parses every `Cache-Control` line of `headers`; a request without
    /// `Cache-Control` but with `Pragma: no-cache` counts as `no-cache`.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut cc = CacheControl::default();
        let mut seen_any = false;
        for value in headers.get_all(CACHE_CONTROL) {
            seen_any = true;
            for (name, arg) in directives(value.as_bytes()) {
                cc.apply(&name, arg.as_deref());
            }
        }
        if !seen_any {
            let pragma_no_cache = headers.get_all(PRAGMA).iter().any(|v| {
                v.as_bytes()
                    .split(|b| *b == b',')
                    .any(|d| d.trim_ascii().eq_ignore_ascii_case(b"no-cache"))
            });
            cc.no_cache = pragma_no_cache;
        }
        cc
    }

    fn apply(&mut self, name: &str, arg: Option<&str>) {
        match name {
            "no-store" => self.no_store = true,
            "no-cache" => self.no_cache = true,
            "private" => self.private = true,
            "public" => self.public = true,
            "must-revalidate" => self.must_revalidate = true,
            "proxy-revalidate" => self.proxy_revalidate = true,
            "max-age" if self.max_age.is_none() => self.max_age = Some(delta_seconds(arg)),
            "s-maxage" if self.s_maxage.is_none() => self.s_maxage = Some(delta_seconds(arg)),
            _ => {}
        }
    }
}

/// Parses delta-seconds: digits only; overflow saturates at 2^31; anything
/// else (missing, negative, fractional) is 0.
pub fn delta_seconds(arg: Option<&str>) -> u32 {
    let Some(text) = arg else { return 0 };
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return 0;
    }
    match text.parse::<u64>() {
        Ok(n) => u32::try_from(n.min(u64::from(DELTA_SECONDS_MAX))).unwrap_or(DELTA_SECONDS_MAX),
        Err(_) => DELTA_SECONDS_MAX,
    }
}

/// Splits one header line into lower-cased directive names and their
/// unquoted arguments. Commas inside quoted strings do not split.
fn directives(line: &[u8]) -> Vec<(String, Option<String>)> {
    let text = String::from_utf8_lossy(line);
    let mut out = Vec::new();
    let mut rest = text.as_ref();
    while !rest.is_empty() {
        let (item, next) = split_item(rest);
        rest = next;
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let (name, arg) = match item.split_once('=') {
            Some((n, a)) => (n.trim(), Some(unquote(a.trim()))),
            None => (item, None),
        };
        out.push((name.to_ascii_lowercase(), arg));
    }
    out
}

/// Returns the text up to the first comma outside quotes, and the rest.
fn split_item(text: &str) -> (&str, &str) {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => return (&text[..i], &text[i + 1..]),
            _ => {}
        }
    }
    (text, "")
}

fn unquote(arg: &str) -> String {
    match arg.strip_prefix('"').and_then(|a| a.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    if let Some(next) = chars.next() {
                        out.push(next);
                    }
                } else {
                    out.push(c);
                }
            }
            out
        }
        None => arg.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn cc(lines: &[&str]) -> CacheControl {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(CACHE_CONTROL, HeaderValue::from_str(line).unwrap());
        }
        CacheControl::from_headers(&headers)
    }

    #[test]
    fn table() {
        let cases: &[(&[&str], CacheControl)] = &[
            (
                &["max-age=60"],
                CacheControl {
                    max_age: Some(60),
                    ..Default::default()
                },
            ),
            (
                &["MAX-AGE=60, Public"],
                CacheControl {
                    max_age: Some(60),
                    public: true,
                    ..Default::default()
                },
            ),
            (
                &["no-store"],
                CacheControl {
                    no_store: true,
                    ..Default::default()
                },
            ),
            (
                &["private=\"set-cookie, x\", s-maxage=5"],
                CacheControl {
                    private: true,
                    s_maxage: Some(5),
                    ..Default::default()
                },
            ),
            (
                &["max-age=\"30\""],
                CacheControl {
                    max_age: Some(30),
                    ..Default::default()
                },
            ),
            (
                &["max-age=10", "max-age=20"],
                CacheControl {
                    max_age: Some(10),
                    ..Default::default()
                },
            ),
            (
                &["max-age=99999999999999999999"],
                CacheControl {
                    max_age: Some(DELTA_SECONDS_MAX),
                    ..Default::default()
                },
            ),
            (
                &["max-age=-1"],
                CacheControl {
                    max_age: Some(0),
                    ..Default::default()
                },
            ),
            (
                &["max-age=1.5"],
                CacheControl {
                    max_age: Some(0),
                    ..Default::default()
                },
            ),
            (
                &["max-age"],
                CacheControl {
                    max_age: Some(0),
                    ..Default::default()
                },
            ),
            (
                &[" ,, no-cache ,"],
                CacheControl {
                    no_cache: true,
                    ..Default::default()
                },
            ),
            (
                &["community=\"UCI\", must-revalidate"],
                CacheControl {
                    must_revalidate: true,
                    ..Default::default()
                },
            ),
            (
                &["no-cache=\"a,b\", proxy-revalidate"],
                CacheControl {
                    no_cache: true,
                    proxy_revalidate: true,
                    ..Default::default()
                },
            ),
        ];
        for (lines, expected) in cases {
            assert_eq!(&cc(lines), expected, "for {lines:?}");
        }
    }

    #[test]
    fn pragma_counts_only_without_cache_control() {
        let mut headers = HeaderMap::new();
        headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
        assert!(CacheControl::from_headers(&headers).no_cache);
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=5"));
        assert!(!CacheControl::from_headers(&headers).no_cache);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(line in ".*") {
            if let Ok(value) = HeaderValue::from_str(&line) {
                let mut headers = HeaderMap::new();
                headers.insert(CACHE_CONTROL, value);
                let _ = CacheControl::from_headers(&headers);
            }
        }
    }
}
