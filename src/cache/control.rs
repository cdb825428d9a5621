//! `Cache-Control` parsing (RFC 9111 section 5.2), apart from any decision.
//!
//! Directive names are case-insensitive; arguments may be tokens or quoted
//! strings; several header lines and comma lists are merged; the first
//! occurrence of a duplicated directive wins; unknown directives are
//! ignored. Delta-seconds that overflow become 2^31 (section 1.2.2); an
//! invalid one counts as 0, so the response is treated as stale.

use std::borrow::Cow;

use http::header::{CACHE_CONTROL, PRAGMA};
use http::{HeaderMap, HeaderName};

use super::structured::{self, Item};

/// The largest delta-seconds value (RFC 9111 section 1.2.2).
pub const DELTA_SECONDS_MAX: u32 = 1 << 31;

/// The directives this cache acts on, from requests and responses.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CacheControl {
    /// `no-store`
    pub no_store: bool,
    /// Unqualified `no-cache` (or `Pragma: no-cache` in a request).
    pub no_cache: bool,
    /// `no-cache="field, ..."`: these fields need revalidation.
    pub no_cache_fields: Vec<String>,
    /// Unqualified `private`.
    pub private: bool,
    /// `private="field, ..."`: a shared cache must not store these fields.
    pub private_fields: Vec<String>,
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
    /// `immutable` (RFC 8246)
    pub immutable: bool,
    /// `no-transform`: the body is passed as it came (never compressed).
    pub no_transform: bool,
    /// `must-understand`: `no-store` applies only where the status is not
    /// understood.
    pub must_understand: bool,
    /// `stale-while-revalidate=N` (RFC 5861)
    pub stale_while_revalidate: Option<u32>,
    /// `stale-if-error=N` (RFC 5861)
    pub stale_if_error: Option<u32>,
    /// Request `max-stale[=N]`; without a value any staleness is accepted
    /// (`u32::MAX`).
    pub max_stale: Option<u32>,
    /// Request `min-fresh=N`
    pub min_fresh: Option<u32>,
    /// Request `only-if-cached`
    pub only_if_cached: bool,
}

impl CacheControl {
    /// Parses every `Cache-Control` line of `headers`; a request without
    /// `Cache-Control` but with `Pragma: no-cache` counts as `no-cache`.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        match Self::from_field(headers, &CACHE_CONTROL) {
            Some(cc) => cc,
            None => CacheControl {
                no_cache: pragma_no_cache(headers),
                ..CacheControl::default()
            },
        }
    }

    /// The directives of a response for this cache (RFC 9213): the first
    /// targeted field of `targets` that is present and holds a directive
    /// this cache knows replaces `Cache-Control` entirely; else
    /// `Cache-Control`.
    pub fn for_response(headers: &HeaderMap, targets: &[HeaderName]) -> Self {
        // Usually no targeted field is there: one pass over the present
        // names costs less than hashing each target to probe for it.
        if !headers.keys().any(|name| targets.contains(name)) {
            return Self::from_headers(headers);
        }
        targets
            .iter()
            .filter_map(|target| Self::from_targeted_field(headers, target))
            .find(|cc| *cc != CacheControl::default())
            .unwrap_or_else(|| Self::from_headers(headers))
    }

    /// Parses a targeted field (RFC 9213 section 2.1): a Structured Field
    /// dictionary, ignored whole (`None`) when any line is not one; a
    /// directive whose value has the wrong type is ignored.
    pub fn from_targeted_field(headers: &HeaderMap, name: &HeaderName) -> Option<Self> {
        let mut values = headers.get_all(name).iter().peekable();
        values.peek()?;
        let mut cc = CacheControl::default();
        for value in values {
            let line = value.to_str().ok()?;
            for (name, item) in structured::dictionary(line)? {
                match (name.as_str(), item) {
                    (_, Item::Boolean(false) | Item::Other) => {}
                    (
                        "max-age" | "s-maxage" | "stale-while-revalidate" | "stale-if-error",
                        Item::Integer(seconds),
                    ) => {
                        let seconds = u64::try_from(seconds).unwrap_or(0).to_string();
                        cc.apply(&name, Some(&seconds));
                    }
                    ("no-cache" | "private", Item::String(fields)) => {
                        cc.apply(&name, Some(&fields));
                    }
                    (_, Item::Boolean(true)) => cc.apply(&name, None),
                    (_, Item::Integer(_) | Item::String(_)) => {}
                }
            }
        }
        Some(cc)
    }

    /// Parses every line of the field `name`; `None` if it is absent.
    pub fn from_field(headers: &HeaderMap, name: &HeaderName) -> Option<Self> {
        let mut values = headers.get_all(name).iter().peekable();
        values.peek()?;
        let mut cc = CacheControl::default();
        for value in values {
            let line = String::from_utf8_lossy(value.as_bytes());
            for (name, arg) in directives(&line) {
                cc.apply(&name, arg.as_deref());
            }
        }
        Some(cc)
    }

    fn apply(&mut self, name: &str, arg: Option<&str>) {
        let first = |slot: &mut Option<u32>| {
            if slot.is_none() {
                *slot = Some(delta_seconds(arg));
            }
        };
        match name {
            "no-store" => self.no_store = true,
            "no-cache" => match field_names(arg) {
                Some(fields) => self.no_cache_fields.extend(fields),
                None => self.no_cache = true,
            },
            "private" => match field_names(arg) {
                Some(fields) => self.private_fields.extend(fields),
                None => self.private = true,
            },
            "public" => self.public = true,
            "must-revalidate" => self.must_revalidate = true,
            "proxy-revalidate" => self.proxy_revalidate = true,
            "immutable" => self.immutable = true,
            "no-transform" => self.no_transform = true,
            "must-understand" => self.must_understand = true,
            "only-if-cached" => self.only_if_cached = true,
            "max-age" => first(&mut self.max_age),
            "s-maxage" => first(&mut self.s_maxage),
            "stale-while-revalidate" => first(&mut self.stale_while_revalidate),
            "stale-if-error" => first(&mut self.stale_if_error),
            "min-fresh" => first(&mut self.min_fresh),
            "max-stale" if self.max_stale.is_none() => {
                self.max_stale = Some(match arg {
                    None => u32::MAX,
                    Some(_) => delta_seconds(arg),
                });
            }
            _ => {}
        }
    }

    /// Stale responses may not be served without revalidation
    /// (`must-revalidate`, `proxy-revalidate`, or `s-maxage`, which implies
    /// `proxy-revalidate` for a shared cache: RFC 9111 section 5.2.2.10).
    pub fn forbids_stale(&self) -> bool {
        self.must_revalidate || self.proxy_revalidate || self.s_maxage.is_some()
    }
}

fn pragma_no_cache(headers: &HeaderMap) -> bool {
    headers.get_all(PRAGMA).iter().any(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .any(|d| d.trim_ascii().eq_ignore_ascii_case(b"no-cache"))
    })
}

/// The field names of a qualified `no-cache` / `private`; `None` when the
/// directive has no argument.
fn field_names(arg: Option<&str>) -> Option<Vec<String>> {
    let arg = arg?;
    let names: Vec<String> = arg
        .split(',')
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() { None } else { Some(names) }
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

/// The directives of one field line, in order: names lower-cased and
/// arguments unquoted, borrowed from the line unless that changes them
/// (nothing is allocated for the usual `public, max-age=3600`). Commas
/// inside quoted strings do not split.
fn directives(line: &str) -> impl Iterator<Item = (Cow<'_, str>, Option<Cow<'_, str>>)> {
    let mut rest = line;
    std::iter::from_fn(move || {
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
            let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
                Cow::Owned(name.to_ascii_lowercase())
            } else {
                Cow::Borrowed(name)
            };
            return Some((name, arg));
        }
        None
    })
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

fn unquote(arg: &str) -> Cow<'_, str> {
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
            Cow::Owned(out)
        }
        None => Cow::Borrowed(arg),
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

    fn cc_of<'a>(pairs: &[(&'a str, CacheControl)]) -> Vec<(Vec<&'a str>, CacheControl)> {
        pairs.iter().map(|(l, c)| (vec![*l], c.clone())).collect()
    }

    #[test]
    fn table() {
        let d = CacheControl::default;
        let mut cases: Vec<(Vec<&str>, CacheControl)> = cc_of(&[
            (
                "max-age=60",
                CacheControl {
                    max_age: Some(60),
                    ..d()
                },
            ),
            (
                "MAX-AGE=60, Public",
                CacheControl {
                    max_age: Some(60),
                    public: true,
                    ..d()
                },
            ),
            (
                "no-store",
                CacheControl {
                    no_store: true,
                    ..d()
                },
            ),
            (
                "NO-STORE",
                CacheControl {
                    no_store: true,
                    ..d()
                },
            ),
            (
                "private=\"set-cookie, X-Id\", s-maxage=5",
                CacheControl {
                    private_fields: vec!["set-cookie".into(), "x-id".into()],
                    s_maxage: Some(5),
                    ..d()
                },
            ),
            (
                "private",
                CacheControl {
                    private: true,
                    ..d()
                },
            ),
            (
                "no-cache",
                CacheControl {
                    no_cache: true,
                    ..d()
                },
            ),
            (
                "no-cache=\"Set-Cookie\"",
                CacheControl {
                    no_cache_fields: vec!["set-cookie".into()],
                    ..d()
                },
            ),
            (
                "no-cache=set-cookie",
                CacheControl {
                    no_cache_fields: vec!["set-cookie".into()],
                    ..d()
                },
            ),
            (
                "max-age=\"30\"",
                CacheControl {
                    max_age: Some(30),
                    ..d()
                },
            ),
            (
                "max-age=99999999999999999999",
                CacheControl {
                    max_age: Some(DELTA_SECONDS_MAX),
                    ..d()
                },
            ),
            (
                "max-age=2147483648",
                CacheControl {
                    max_age: Some(DELTA_SECONDS_MAX),
                    ..d()
                },
            ),
            (
                "max-age=2147483647",
                CacheControl {
                    max_age: Some(2147483647),
                    ..d()
                },
            ),
            (
                "max-age=-1",
                CacheControl {
                    max_age: Some(0),
                    ..d()
                },
            ),
            (
                "max-age=1.5",
                CacheControl {
                    max_age: Some(0),
                    ..d()
                },
            ),
            (
                "max-age=",
                CacheControl {
                    max_age: Some(0),
                    ..d()
                },
            ),
            (
                "max-age",
                CacheControl {
                    max_age: Some(0),
                    ..d()
                },
            ),
            (
                "max-age = 60",
                CacheControl {
                    max_age: Some(60),
                    ..d()
                },
            ),
            (
                " ,, no-cache ,",
                CacheControl {
                    no_cache: true,
                    ..d()
                },
            ),
            (
                "community=\"UCI\", must-revalidate",
                CacheControl {
                    must_revalidate: true,
                    ..d()
                },
            ),
            (
                "x=\"a,max-age=5\", max-age=9",
                CacheControl {
                    max_age: Some(9),
                    ..d()
                },
            ),
            (
                "proxy-revalidate, immutable, no-transform",
                CacheControl {
                    proxy_revalidate: true,
                    immutable: true,
                    no_transform: true,
                    ..d()
                },
            ),
            (
                "stale-while-revalidate=30, stale-if-error=600",
                CacheControl {
                    stale_while_revalidate: Some(30),
                    stale_if_error: Some(600),
                    ..d()
                },
            ),
            (
                "max-stale",
                CacheControl {
                    max_stale: Some(u32::MAX),
                    ..d()
                },
            ),
            (
                "max-stale=10, min-fresh=5, only-if-cached",
                CacheControl {
                    max_stale: Some(10),
                    min_fresh: Some(5),
                    only_if_cached: true,
                    ..d()
                },
            ),
            ("unknown, other=1", d()),
            ("", d()),
        ]);
        cases.push((
            vec!["max-age=10", "max-age=20"],
            CacheControl {
                max_age: Some(10),
                ..d()
            },
        ));
        cases.push((
            vec!["public", "max-age=5"],
            CacheControl {
                public: true,
                max_age: Some(5),
                ..d()
            },
        ));
        cases.push((
            vec!["s-maxage=1, s-maxage=2"],
            CacheControl {
                s_maxage: Some(1),
                ..d()
            },
        ));
        for (lines, expected) in &cases {
            assert_eq!(&cc(lines), expected, "for {lines:?}");
        }
    }

    #[test]
    fn targeted_fields_replace_cache_control() {
        let cdn = HeaderName::from_static("cdn-cache-control");
        let own = HeaderName::from_static("caching-proxy-cache-control");
        let mut h = HeaderMap::new();
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        assert!(CacheControl::for_response(&h, std::slice::from_ref(&cdn)).no_store);
        h.insert(cdn.clone(), HeaderValue::from_static("max-age=60"));
        let chosen = CacheControl::for_response(&h, &[own.clone(), cdn.clone()]);
        assert_eq!(
            chosen,
            CacheControl {
                max_age: Some(60),
                ..Default::default()
            }
        );
        h.insert(own.clone(), HeaderValue::from_static("max-age=5"));
        assert_eq!(
            CacheControl::for_response(&h, &[own.clone(), cdn.clone()]).max_age,
            Some(5)
        );
        h.insert(own.clone(), HeaderValue::from_static("garbage"));
        assert_eq!(
            CacheControl::for_response(&h, &[own, cdn]).max_age,
            Some(60),
            "an unusable field is skipped"
        );
    }

    #[test]
    fn a_targeted_field_that_is_not_a_dictionary_is_ignored() {
        let cdn = HeaderName::from_static("cdn-cache-control");
        let targets = std::slice::from_ref(&cdn);
        for field in [
            "max-age=10000, &&&&&",
            "max-age=\"10000\"",
            "MAX-AGE=10",
            "max-age = 10",
        ] {
            let mut h = HeaderMap::new();
            h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(cdn.clone(), HeaderValue::from_str(field).unwrap());
            assert!(CacheControl::for_response(&h, targets).no_store, "{field}");
        }
        let mut h = HeaderMap::new();
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(
            cdn.clone(),
            HeaderValue::from_static("max-age=30, private=\"x-a\", no-store=?0"),
        );
        let chosen = CacheControl::for_response(&h, targets);
        assert_eq!(chosen.max_age, Some(30));
        assert_eq!(chosen.private_fields, vec!["x-a".to_owned()]);
        assert!(!chosen.no_store);
    }

    #[test]
    fn shared_caches_may_not_serve_stale_after_s_maxage() {
        assert!(
            CacheControl {
                s_maxage: Some(1),
                ..Default::default()
            }
            .forbids_stale()
        );
        assert!(
            CacheControl {
                proxy_revalidate: true,
                ..Default::default()
            }
            .forbids_stale()
        );
        assert!(
            !CacheControl {
                max_age: Some(1),
                ..Default::default()
            }
            .forbids_stale()
        );
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
