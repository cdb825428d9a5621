//! `key` of a route (`key.query`, `key.sort_query`, `key.headers`),
//! checked once here into the cache's [`KeyRule`].

use http::HeaderName;

use super::error::ConfigError;
use super::file::{KeySection, QueryNames, QuerySection};
use super::values::invalid;
use crate::cache::key_rule::{KeyRule, NamePattern, QueryRule};

/// Most request headers a route's key may add.
const MAX_KEY_HEADERS: usize = 8;

/// The route's key rule; `key` is the route's key path (`routes[0]`).
pub(super) fn key_rule(section: Option<&KeySection>, key: &str) -> Result<KeyRule, ConfigError> {
    let Some(section) = section else {
        return Ok(KeyRule::default());
    };
    let query = match &section.query {
        None => QueryRule::All,
        Some(QuerySection::Word(word)) => match word.as_str() {
            "all" => QueryRule::All,
            "none" => QueryRule::None,
            other => {
                return Err(invalid(
                    &format!("{key}.key.query"),
                    format!(
                        "'{other}' is not \"all\", \"none\", {{ keep = [...] }} or {{ drop = [...] }}"
                    ),
                ));
            }
        },
        Some(QuerySection::Names(names)) => names_rule(names, &format!("{key}.key.query"))?,
    };
    let mut headers = Vec::new();
    for (index, name) in section.headers.iter().flatten().enumerate() {
        let at = format!("{key}.key.headers[{index}]");
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid(&at, format!("'{name}' is not a header name")))?;
        if headers.contains(&header) {
            return Err(invalid(&at, format!("'{name}' is listed twice")));
        }
        headers.push(header);
    }
    if headers.len() > MAX_KEY_HEADERS {
        return Err(invalid(
            &format!("{key}.key.headers"),
            format!("at most {MAX_KEY_HEADERS} headers"),
        ));
    }
    headers.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    Ok(KeyRule {
        query,
        sort_query: section.sort_query.unwrap_or(false),
        headers,
    })
}

fn names_rule(names: &QueryNames, key: &str) -> Result<QueryRule, ConfigError> {
    let (list, keep, which) = match (&names.keep, &names.drop) {
        (Some(list), None) => (list, true, "keep"),
        (None, Some(list)) => (list, false, "drop"),
        _ => {
            return Err(invalid(
                key,
                "give either keep = [...] or drop = [...], not both",
            ));
        }
    };
    let mut patterns = Vec::with_capacity(list.len());
    for (index, name) in list.iter().enumerate() {
        let pattern = NamePattern::new(name).ok_or_else(|| {
            invalid(
                &format!("{key}.{which}[{index}]"),
                format!(
                    "'{name}' is not a parameter name (a '*' may stand for any run of characters)"
                ),
            )
        })?;
        patterns.push(pattern);
    }
    Ok(if keep {
        QueryRule::Keep(patterns)
    } else {
        QueryRule::Drop(patterns)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::file::FileConfig;

    fn rule(toml_route: &str) -> Result<KeyRule, String> {
        let file: FileConfig =
            toml::from_str(&format!("[[routes]]\norigin = \"o\"\n{toml_route}\n"))
                .map_err(|e| e.to_string())?;
        key_rule(file.routes[0].key.as_ref(), "routes[0]").map_err(|e| e.to_string())
    }

    #[test]
    fn query_rules() {
        assert_eq!(rule("").unwrap(), KeyRule::default());
        assert_eq!(rule("key.query = \"none\"").unwrap().query, QueryRule::None);
        let dropped =
            rule("key.query = { drop = [\"utm_*\", \"fbclid\"] }\nkey.sort_query = true").unwrap();
        assert!(dropped.sort_query);
        assert_eq!(
            dropped.path_and_query("/a?utm_source=x&b=2&fbclid=1&a=1"),
            "/a?a=1&b=2"
        );
        let kept = rule("key.query = { keep = [\"id\"] }").unwrap();
        assert_eq!(kept.path_and_query("/a?x=1&id=2"), "/a?id=2");
    }

    #[test]
    fn headers_are_names_sorted_once_each() {
        let with = rule("key.headers = [\"X-Device\", \"accept-language\"]").unwrap();
        assert_eq!(
            with.headers,
            vec![
                HeaderName::from_static("accept-language"),
                HeaderName::from_static("x-device"),
            ]
        );
    }

    #[test]
    fn mistakes_name_their_key() {
        for (toml_route, expected) in [
            ("key.query = \"some\"", "routes[0].key.query"),
            (
                "key.query = { keep = [\"a\"], drop = [\"b\"] }",
                "routes[0].key.query",
            ),
            (
                "key.query = { drop = [\"a=b\"] }",
                "routes[0].key.query.drop[0]",
            ),
            ("key.headers = [\"bad header\"]", "routes[0].key.headers[0]"),
            ("key.headers = [\"a\", \"A\"]", "routes[0].key.headers[1]"),
        ] {
            let error = rule(toml_route).unwrap_err();
            assert!(error.contains(expected), "{toml_route}: {error}");
        }
        assert!(rule("key.query = { other = [] }").is_err());
        assert!(rule("key.unknown = 1").is_err());
    }
}
