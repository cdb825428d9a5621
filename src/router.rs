//! Host and path routing: the most specific route wins. Exact hosts beat
//! wildcard hosts (longer suffix first), which beat routes without a host;
//! among those, the longer path prefix wins. Prefixes match as strings,
//! as nginx's prefix locations do (`/api` matches `/api/x` and `/apix`).

use std::fmt;

/// Which hosts a route serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    /// Every host.
    Any,
    /// One host, lower-case, without port.
    Exact(String),
    /// Every subdomain of a suffix: `*.example.com` is stored as
    /// `.example.com` and matches `a.example.com`, not `example.com`.
    Wildcard(String),
}

impl HostMatch {
    /// Parses `host` (already validated): `*.suffix` or an exact host.
    pub fn parse(host: Option<&str>) -> HostMatch {
        match host {
            None => HostMatch::Any,
            Some(host) => {
                let host = host.to_ascii_lowercase();
                match host.strip_prefix('*') {
                    Some(suffix) => HostMatch::Wildcard(suffix.to_owned()),
                    None => HostMatch::Exact(host),
                }
            }
        }
    }

    fn matches(&self, host: &str) -> bool {
        match self {
            HostMatch::Any => true,
            HostMatch::Exact(exact) => exact == host,
            HostMatch::Wildcard(suffix) => {
                host.len() > suffix.len() && host.ends_with(suffix.as_str())
            }
        }
    }

    /// Sort key: higher is more specific.
    fn rank(&self) -> (u8, usize) {
        match self {
            HostMatch::Exact(_) => (2, 0),
            HostMatch::Wildcard(suffix) => (1, suffix.len()),
            HostMatch::Any => (0, 0),
        }
    }
}

impl fmt::Display for HostMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostMatch::Any => f.write_str("*"),
            HostMatch::Exact(host) => f.write_str(host),
            HostMatch::Wildcard(suffix) => write!(f, "*{suffix}"),
        }
    }
}

/// Routes in matching order.
#[derive(Debug)]
pub struct Router<T> {
    routes: Vec<(HostMatch, String, T)>,
}

impl<T> Router<T> {
    /// Orders `routes` (host match, path prefix, value) most specific first;
    /// equally specific routes keep their order in the file.
    pub fn new(mut routes: Vec<(HostMatch, String, T)>) -> Self {
        routes.sort_by(|a, b| {
            let key = |r: &(HostMatch, String, T)| (r.0.rank(), r.1.len());
            key(b).cmp(&key(a))
        });
        Router { routes }
    }

    /// The route for `authority` (a normalized host, maybe with a port) and
    /// `path`.
    pub fn find(&self, authority: &str, path: &str) -> Option<&T> {
        let host = host_of(authority);
        self.routes
            .iter()
            .find(|(host_match, prefix, _)| {
                host_match.matches(host) && path.starts_with(prefix.as_str())
            })
            .map(|(_, _, value)| value)
    }

    /// Every route, in matching order.
    pub fn iter(&self) -> impl Iterator<Item = &(HostMatch, String, T)> {
        self.routes.iter()
    }
}

/// `host[:port]` without the port (IPv6 literals keep their brackets).
fn host_of(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority.split_inclusive(']').next().unwrap_or(authority);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router<&'static str> {
        let r = |host: Option<&str>, prefix: &str, name| {
            (HostMatch::parse(host), prefix.to_owned(), name)
        };
        Router::new(vec![
            r(None, "/", "default"),
            r(None, "/static/", "static"),
            r(Some("*.example.com"), "/", "wildcard"),
            r(Some("*.eu.example.com"), "/", "eu"),
            r(Some("api.example.com"), "/", "api"),
            r(Some("api.example.com"), "/v2/", "api-v2"),
        ])
    }

    #[test]
    fn most_specific_route_wins() {
        let router = router();
        let cases = [
            ("api.example.com", "/x", "api"),
            ("api.example.com:8080", "/v2/x", "api-v2"),
            ("www.example.com", "/static/a", "wildcard"),
            ("a.eu.example.com", "/", "eu"),
            ("example.com", "/", "default"),
            ("other.test", "/static/a.css", "static"),
            ("[::1]:3000", "/", "default"),
        ];
        for (host, path, expected) in cases {
            assert_eq!(router.find(host, path), Some(&expected), "{host}{path}");
        }
    }

    #[test]
    fn no_match_is_none() {
        let router = Router::new(vec![(HostMatch::parse(Some("a.test")), "/".to_owned(), 1)]);
        assert_eq!(router.find("b.test", "/"), None);
        assert_eq!(router.find("a.test:99", "/x"), Some(&1));
    }

    #[test]
    fn host_of_strips_ports_only() {
        assert_eq!(host_of("a.test:80"), "a.test");
        assert_eq!(host_of("a.test"), "a.test");
        assert_eq!(host_of("[::1]:80"), "[::1]");
    }
}
