//! Purges: one URL (every variant, every origin), a URL prefix, a tag, or
//! everything.

use http::Request;
use http::header::HOST;
use hyper::body::Incoming;
use serde::Deserialize;

use super::error::AdminError;
use crate::cache::key::KeyUrl;
use crate::cache::purge::PurgeRule;
use crate::error::BoxError;
use crate::proxy::Proxy;
use crate::proxy::request::normalize;
use crate::runtime::Runtime;

/// A purge request body: exactly one of the fields.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Purge {
    url: Option<String>,
    prefix: Option<String>,
    tag: Option<String>,
    all: Option<bool>,
}

impl Purge {
    /// A purge of one URL.
    pub fn url(url: String) -> Self {
        Purge {
            url: Some(url),
            ..Purge::default()
        }
    }
}

impl Purge {
    /// What it removes; a URL is keyed by the rule of the route it falls
    /// under (`/a?id=1&utm_source=x` purges the entry of `/a?id=1`).
    pub fn rule(&self, runtime: &Runtime) -> Result<PurgeRule, AdminError> {
        match (&self.url, &self.prefix, &self.tag, self.all) {
            (Some(url), None, None, None) => {
                Ok(PurgeRule::Url(keyed(runtime, host_and_path(url)?)))
            }
            (None, Some(prefix), None, None) => Ok(PurgeRule::Prefix(host_and_path(prefix)?)),
            (None, None, Some(tag), None) if !tag.is_empty() => {
                Ok(PurgeRule::Tag(tag.as_str().into()))
            }
            (None, None, None, Some(true)) => Ok(PurgeRule::All),
            (_, _, _, _) => Err(AdminError::PurgeAmbiguous),
        }
    }
}

/// Applies `rule` to this instance's store; returns how many entries it
/// removed. Walks the cache: call it off the runtime threads.
pub fn run(proxy: &Proxy, rule: &PurgeRule) -> usize {
    proxy.store().purge(rule)
}

/// `http://Host:80/path?q` as the cache keys spell it: `host/path?q`
/// (host lower-cased, the scheme's default port dropped).
pub fn host_and_path(url: &str) -> Result<KeyUrl, AdminError> {
    let bad = |why, source: Option<BoxError>| AdminError::BadUrl {
        url: url.to_owned(),
        why,
        source,
    };
    let uri: http::Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| bad("is not a URL", Some(e.into())))?;
    let default_port = match uri.scheme_str() {
        Some("http") => 80,
        Some("https") => 443,
        _ => return Err(bad("must start with http:// or https://", None)),
    };
    let authority = uri.authority().ok_or_else(|| bad("has no host", None))?;
    let authority = normalize(authority, default_port)
        .map_err(|e| bad("has an unusable host", Some(e.into())))?;
    let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
    Ok(KeyUrl::new(&authority, target))
}

/// `target` as the key rule of the route it falls under spells it.
pub fn keyed(runtime: &Runtime, target: KeyUrl) -> KeyUrl {
    match runtime.route(target.authority(), target.path()) {
        Some(route) if !route.key.is_identity() => KeyUrl::new(
            target.authority(),
            &route.key.path_and_query(target.path_and_query()),
        ),
        _ => target,
    }
}

/// The URL a `PURGE` request names: its absolute form, or its Host and path.
pub fn url_of_purge_request(request: &Request<Incoming>) -> Option<String> {
    if request.uri().authority().is_some() {
        return Some(request.uri().to_string());
    }
    let host = request.headers().get(HOST)?.to_str().ok()?;
    let path = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    Some(format!("http://{host}{path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_spelled_as_keys_spell_them() {
        let spelled = |url| host_and_path(url).unwrap().as_str().to_owned();
        assert_eq!(spelled("http://Example.com:80/a?b=1"), "example.com/a?b=1");
        assert_eq!(spelled("https://h:443"), "h/");
        assert_eq!(spelled("http://h:8080/x/"), "h:8080/x/");
        assert!(host_and_path("/relative").is_err());
        assert!(host_and_path("ftp://h/").is_err());
    }
}
