//! The origin URL: parsed and checked once, then used to build every
//! upstream request URI.

use http::uri::{Authority, PathAndQuery, Uri};
use rustls_pki_types::CertificateDer;
use std::time::Duration;

use super::error::InvalidOrigin;

/// Requests in flight to one server unless `max_connections` says.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 1024;

/// The scheme an origin speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

impl Scheme {
    /// `"http"` or `"https"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    /// The port used when a URL names none.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// How requests are spread over an origin's servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// In proportion to the weights, interleaved.
    RoundRobin,
    /// To the server with the fewest requests in flight per weight.
    LeastConnections,
    /// Each URL to one server, by a consistent hash.
    KeyHash,
}

/// One server of an origin with several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// `host[:port]` it is dialed at.
    pub authority: Authority,
    /// Its share of traffic (1 to 100).
    pub weight: u32,
    /// Takes traffic only when no primary server can.
    pub backup: bool,
}

/// How an origin's servers are watched: passive counts of failed
/// requests, and optionally an active check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The active check (`None`: passive health only).
    pub check: Option<ActiveCheck>,
    /// Failures in a row that take a server out.
    pub fall: u32,
    /// Checks in a row that bring a server taken out by checks back.
    pub rise: u32,
    /// How long a server that failed requests is left out before one
    /// request (or a check) tries it again.
    pub back_off: Duration,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            check: None,
            fall: 3,
            rise: 2,
            back_off: Duration::from_secs(10),
        }
    }
}

/// `GET path` to each server every `interval`, off the request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveCheck {
    /// The path asked for (starts with `/`).
    pub path: PathAndQuery,
    /// Time between two checks of one server.
    pub interval: Duration,
    /// Time a check may take (connect and response head).
    pub timeout: Duration,
}

/// An upstream server the proxy forwards to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The name routes refer to it by.
    pub name: String,
    /// http or https.
    pub scheme: Scheme,
    /// `host[:port]` as given, sent as the upstream `Host`.
    pub authority: Authority,
    /// Path prefix without a trailing slash (`""` for none).
    pub base_path: String,
    /// Time allowed for the origin's response headers.
    pub timeout: Duration,
    /// Time allowed between two reads of the response body; then the
    /// client's response is cut and nothing is stored.
    pub read_timeout: Duration,
    /// Time allowed for the TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Certificate authorities trusted for this origin besides the public
    /// webpki roots (a private CA).
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Duration,
    /// The servers, when there are several (empty: `authority` is the one
    /// server); `authority` is then the `Host` they are sent.
    pub servers: Vec<Server>,
    /// How requests are spread over `servers`.
    pub balance: Balance,
    /// Other servers tried after a connect failure or a reset before any
    /// response, for requests without a body.
    pub retries: u32,
    /// Requests in flight to one server at most; more wait up to
    /// `timeout`, then get a 503.
    pub max_connections: u32,
    /// How often a server named by a host name is resolved again (each of
    /// its addresses is a server).
    pub resolve_every: Duration,
    /// Passive and active health of the servers.
    pub health: Health,
}

impl Origin {
    /// Parses an absolute `http://` or `https://` URL, optionally with a
    /// path prefix. Query strings, fragments and credentials are refused.
    pub fn parse(value: &str, timeout: Duration) -> Result<Origin, InvalidOrigin> {
        let invalid = |why: &str| InvalidOrigin {
            value: value.to_owned(),
            why: why.to_owned(),
            source: None,
        };
        if value.contains('#') {
            return Err(invalid("a fragment (#...) is not allowed"));
        }
        let uri: Uri = value
            .parse()
            .map_err(|e: http::uri::InvalidUri| InvalidOrigin {
                value: value.to_owned(),
                why: "not a URL".to_owned(),
                source: Some(e),
            })?;
        let scheme = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("http") => Scheme::Http,
            Some(s) if s.eq_ignore_ascii_case("https") => Scheme::Https,
            Some(other) => {
                return Err(invalid(&format!(
                    "unsupported scheme '{other}' (use http:// or https://)"
                )));
            }
            None => return Err(invalid("it must start with http:// or https://")),
        };
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| invalid("it has no host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid("credentials in the URL are not supported"));
        }
        if authority.host().is_empty() {
            return Err(invalid("it has no host"));
        }
        if authority.port_u16() == Some(0) {
            return Err(invalid("port 0 is not a valid origin port"));
        }
        if uri.query().is_some() {
            return Err(invalid("a query string is not allowed"));
        }
        let base_path = uri.path().trim_end_matches('/').to_owned();
        Ok(Origin {
            name: "default".to_owned(),
            scheme,
            authority,
            base_path,
            timeout,
            read_timeout: timeout,
            connect_timeout: timeout.min(Duration::from_secs(10)),
            extra_roots: Vec::new(),
            pool_idle_timeout: Duration::from_secs(90),
            servers: Vec::new(),
            balance: Balance::RoundRobin,
            retries: 1,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            resolve_every: Duration::from_secs(30),
            health: Health::default(),
        })
    }

    /// `scheme://authority/base`, which identifies this origin in cache keys.
    pub fn id(&self) -> String {
        format!(
            "{}://{}{}",
            self.scheme.as_str(),
            self.authority,
            self.base_path
        )
    }

    /// The upstream URI for a client's path and query.
    pub fn uri_for(&self, path_and_query: &str) -> Result<Uri, InvalidTarget> {
        let path = if self.base_path.is_empty() {
            PathAndQuery::try_from(path_and_query)
        } else if path_and_query.starts_with('/') {
            PathAndQuery::try_from(format!("{}{}", self.base_path, path_and_query))
        } else {
            return Err(InvalidTarget);
        }
        .map_err(|_| InvalidTarget)?;
        Uri::builder()
            .scheme(self.scheme.as_str())
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()
            .map_err(|_| InvalidTarget)
    }
}

/// A request target that cannot be joined to the origin's URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid request target")]
pub struct InvalidTarget;

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(30);

    fn why(value: &str) -> String {
        match Origin::parse(value, T) {
            Err(InvalidOrigin { why, .. }) => why,
            other => panic!("expected an invalid origin for {value}, got {other:?}"),
        }
    }

    #[test]
    fn accepts_http_and_https() {
        let o = Origin::parse("http://example.com", T).unwrap();
        assert_eq!(o.scheme, Scheme::Http);
        assert_eq!(o.authority.as_str(), "example.com");
        assert_eq!(o.base_path, "");
        let o = Origin::parse("https://example.com:8443/", T).unwrap();
        assert_eq!(o.scheme, Scheme::Https);
        assert_eq!(o.authority.port_u16(), Some(8443));
    }

    #[test]
    fn refuses_what_is_not_an_absolute_http_url() {
        assert!(why("example.com").contains("http://"));
        assert!(why("ftp://example.com").contains("unsupported scheme 'ftp'"));
        assert!(why("http://user:pw@example.com").contains("credentials"));
        assert!(why("http://example.com/?a=1").contains("query"));
        assert!(why("http://exa mple.com").len() > 3);
        assert!(why("").len() > 3);
    }

    #[test]
    fn path_prefix_is_honoured() {
        let o = Origin::parse("http://h/api/", T).unwrap();
        assert_eq!(
            o.uri_for("/x?y=1").unwrap().to_string(),
            "http://h/api/x?y=1"
        );
        assert_eq!(o.id(), "http://h/api");
        let plain = Origin::parse("http://h:8080", T).unwrap();
        assert_eq!(plain.uri_for("/").unwrap().to_string(), "http://h:8080/");
        assert!(o.uri_for("*").is_err());
    }
}
