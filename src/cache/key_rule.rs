//! A route's cache key rule (`key.query`, `key.sort_query`, `key.headers`):
//! which query parameters are part of the key and in what order, and which
//! request headers select a variant on top of the response's `Vary`. Pure;
//! the origin still receives the client's URL as sent.

use std::borrow::Cow;

use http::HeaderName;

/// Which query parameters are part of the key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum QueryRule {
    /// All of them, as sent (the default).
    #[default]
    All,
    /// None: `/a?x=1` and `/a` share an entry.
    None,
    /// Only the parameters whose names match.
    Keep(Vec<NamePattern>),
    /// All but the parameters whose names match (`utm_*`, `fbclid`).
    Drop(Vec<NamePattern>),
}

/// A parameter name, or a pattern with `*` standing for any run of
/// characters (`utm_*`). Compared with the name as sent (not decoded),
/// case-sensitively, as origins read them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamePattern(String);

impl NamePattern {
    /// The pattern as written; `None` if it is empty or holds characters a
    /// parameter name cannot (`&`, `=`, `#`, whitespace).
    pub fn new(pattern: &str) -> Option<Self> {
        let valid = !pattern.is_empty()
            && !pattern
                .bytes()
                .any(|b| matches!(b, b'&' | b'=' | b'#') || b.is_ascii_whitespace() || b < 0x20);
        valid.then(|| NamePattern(pattern.to_owned()))
    }

    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        glob(self.0.as_bytes(), name.as_bytes())
    }
}

/// `*` matches any run of bytes; everything else itself. Backtracks only
/// to the last `*`, so a request's name costs at most its length times the
/// pattern's.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(c) if *c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == b'*')
}

/// How a route's requests are keyed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyRule {
    /// Which query parameters count.
    pub query: QueryRule,
    /// Sort the parameters kept (by name, then value), so their order does
    /// not matter.
    pub sort_query: bool,
    /// Request headers that select a variant as if the origin had named
    /// them in `Vary`.
    pub headers: Vec<HeaderName>,
}

impl KeyRule {
    /// Whether it changes nothing (the default): the key is the URL as sent.
    pub fn is_identity(&self) -> bool {
        self.query == QueryRule::All && !self.sort_query && self.headers.is_empty()
    }

    /// The path and query as the key holds them; borrowed when unchanged.
    pub fn path_and_query<'a>(&self, path_and_query: &'a str) -> Cow<'a, str> {
        if self.query == QueryRule::All && !self.sort_query {
            return Cow::Borrowed(path_and_query);
        }
        let Some((path, query)) = path_and_query.split_once('?') else {
            return Cow::Borrowed(path_and_query);
        };
        let mut kept: Vec<&str> = query
            .split('&')
            .filter(|parameter| !parameter.is_empty())
            .filter(|parameter| {
                let name = parameter.split('=').next().unwrap_or(parameter);
                match &self.query {
                    QueryRule::All => true,
                    QueryRule::None => false,
                    QueryRule::Keep(patterns) => patterns.iter().any(|p| p.matches(name)),
                    QueryRule::Drop(patterns) => !patterns.iter().any(|p| p.matches(name)),
                }
            })
            .collect();
        if self.sort_query {
            // Sorting the whole parameter sorts by name, then by value.
            kept.sort_unstable();
        }
        if kept.is_empty() {
            return Cow::Borrowed(path);
        }
        let mut key = String::with_capacity(path_and_query.len());
        key.push_str(path);
        for (index, parameter) in kept.iter().enumerate() {
            key.push(if index == 0 { '?' } else { '&' });
            key.push_str(parameter);
        }
        if key == path_and_query {
            Cow::Borrowed(path_and_query)
        } else {
            Cow::Owned(key)
        }
    }
}

impl std::fmt::Display for KeyRule {
    /// `query=all`, `query=drop[utm_*, fbclid] sorted headers=[x-device]`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |patterns: &[NamePattern]| {
            let names: Vec<&str> = patterns.iter().map(|p| p.0.as_str()).collect();
            names.join(", ")
        };
        match &self.query {
            QueryRule::All => f.write_str("query=all")?,
            QueryRule::None => f.write_str("query=none")?,
            QueryRule::Keep(patterns) => write!(f, "query=keep[{}]", list(patterns))?,
            QueryRule::Drop(patterns) => write!(f, "query=drop[{}]", list(patterns))?,
        }
        if self.sort_query {
            f.write_str(" sorted")?;
        }
        if !self.headers.is_empty() {
            let names: Vec<&str> = self.headers.iter().map(HeaderName::as_str).collect();
            write!(f, " headers=[{}]", names.join(", "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns(names: &[&str]) -> Vec<NamePattern> {
        names.iter().map(|n| NamePattern::new(n).unwrap()).collect()
    }

    fn rule(query: QueryRule, sort_query: bool) -> KeyRule {
        KeyRule {
            query,
            sort_query,
            headers: Vec::new(),
        }
    }

    #[test]
    fn the_default_keeps_the_url_as_sent() {
        let rule = KeyRule::default();
        assert!(rule.is_identity());
        assert!(matches!(
            rule.path_and_query("/a?b=2&a=1"),
            Cow::Borrowed("/a?b=2&a=1")
        ));
    }

    #[test]
    fn tracking_parameters_are_dropped() {
        let rule = rule(
            QueryRule::Drop(patterns(&["utm_*", "fbclid", "gclid"])),
            false,
        );
        assert_eq!(
            rule.path_and_query("/p?id=7&utm_source=x&utm_medium=y"),
            "/p?id=7"
        );
        assert_eq!(rule.path_and_query("/p?fbclid=abc"), "/p");
        assert_eq!(rule.path_and_query("/p?gclid=1&id=7&&"), "/p?id=7");
        assert_eq!(rule.path_and_query("/p?id=7"), "/p?id=7");
        assert_eq!(
            rule.path_and_query("/p?utm=1"),
            "/p?utm=1",
            "utm_* needs the underscore"
        );
        assert_eq!(rule.path_and_query("/p"), "/p");
    }

    #[test]
    fn keep_none_and_sort() {
        let keep = rule(QueryRule::Keep(patterns(&["id", "page"])), false);
        assert_eq!(keep.path_and_query("/p?page=2&x=1&id=7"), "/p?page=2&id=7");
        let sorted = rule(QueryRule::Keep(patterns(&["id", "page"])), true);
        assert_eq!(
            sorted.path_and_query("/p?page=2&x=1&id=7"),
            "/p?id=7&page=2"
        );
        assert_eq!(sorted.to_string(), "query=keep[id, page] sorted");
        let none = rule(QueryRule::None, false);
        assert_eq!(none.path_and_query("/p?page=2"), "/p");
        let all_sorted = rule(QueryRule::All, true);
        assert_eq!(
            all_sorted.path_and_query("/p?b=2&a=1&a=0"),
            "/p?a=0&a=1&b=2"
        );
        assert!(matches!(
            all_sorted.path_and_query("/p?a=1&b=2"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn name_patterns() {
        let p = NamePattern::new("utm_*").unwrap();
        assert!(p.matches("utm_source") && p.matches("utm_") && !p.matches("xutm_a"));
        let p = NamePattern::new("*id").unwrap();
        assert!(p.matches("fbclid") && p.matches("id") && !p.matches("idx"));
        assert!(NamePattern::new("a*b*c").unwrap().matches("aXbYc"));
        for bad in ["", "a=b", "a&b", "a b", "#"] {
            assert_eq!(NamePattern::new(bad), None, "{bad}");
        }
    }
}
