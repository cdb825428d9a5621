//! One error type for the whole proxy, classified by fault.
//!
//! Request-path errors map to an HTTP status in [`Error::status`]; startup
//! errors map to a process exit code in [`Error::exit_code`]. Both matches are
//! exhaustive, so a new variant must be classified before it compiles. The
//! client only ever sees a short canonical body; the cause chain goes to the
//! log.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::StatusCode;

/// A boxed error from a lower layer (hyper, the connector, ...).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Everything that can go wrong, on the request path or at startup.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The origin could not be connected to (refused, unresolvable, TLS).
    #[error("cannot connect to origin")]
    OriginConnect(#[source] BoxError),
    /// The origin sent no response headers within the configured timeout.
    #[error("origin sent no response within {0:?}")]
    OriginTimeout(Duration),
    /// The origin closed or broke the exchange before sending headers.
    #[error("origin failed before sending a response")]
    OriginFailed(#[source] BoxError),
    /// The origin's response framing is ambiguous (never relayed).
    #[error("origin sent an ambiguous response: {0}")]
    OriginProtocol(&'static str),
    /// The client sent its request body too slowly.
    #[error("client sent its request body too slowly")]
    ClientBodyTimeout,
    /// The request target is longer than the limit.
    #[error("request target longer than {0} bytes")]
    UriTooLong(usize),
    /// The request head has more fields or bytes than the limits.
    #[error("request header fields too large: {0}")]
    HeadersTooLarge(&'static str),
    /// The client asked for `only-if-cached` and nothing usable is stored.
    #[error("only-if-cached and nothing usable is stored")]
    NotCached,
    /// CONNECT (no tunnels through a reverse proxy) or TRACE (it would
    /// echo credentials back).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// No route matches the request's host and path.
    #[error("no route for this host and path")]
    NoRoute,
    /// The client sent a request we refuse to forward.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// A bug or an impossible state on our side.
    #[error("internal error: {0}")]
    Internal(String),
    /// The listening port is taken by another process.
    #[error("port {port} is already in use")]
    PortInUse {
        /// The port that was asked for.
        port: u16,
    },
    /// Binding a privileged port without the right to do so.
    #[error(
        "permission denied to listen on port {port}: ports below 1024 need root or CAP_NET_BIND_SERVICE; use a port >= 1024"
    )]
    PortPermission {
        /// The port that was asked for.
        port: u16,
    },
    /// Any other failure to listen.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address that was asked for.
        addr: SocketAddr,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// `--origin` is not an absolute http(s) URL.
    #[error("invalid origin URL '{value}': {why}")]
    InvalidOrigin {
        /// What the user gave.
        value: String,
        /// Why it was refused.
        why: String,
    },
    /// A configuration value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Reading or writing the cache snapshot failed.
    #[error("cache file {path}: {source}")]
    CacheFile {
        /// The snapshot path.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// A running instance refused or failed an admin request.
    #[error("admin API at {addr} answered {status}: {body}")]
    AdminRefused {
        /// The admin address of the instance.
        addr: SocketAddr,
        /// Its answer.
        status: StatusCode,
        /// Its explanation.
        body: String,
    },
    /// Nothing answered at the admin address.
    #[error("no admin API answers at {addr}: {why}")]
    AdminUnreachable {
        /// The address tried.
        addr: SocketAddr,
        /// What went wrong.
        why: String,
    },
}

impl Error {
    /// The status a client sees when this error ends a request.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::OriginConnect(_) | Error::OriginFailed(_) | Error::OriginProtocol(_) => {
                StatusCode::BAD_GATEWAY
            }
            Error::ClientBodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Error::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            Error::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Error::OriginTimeout(_) | Error::NotCached => StatusCode::GATEWAY_TIMEOUT,
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::NoRoute => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::Internal(_)
            | Error::PortInUse { .. }
            | Error::PortPermission { .. }
            | Error::Bind { .. }
            | Error::InvalidOrigin { .. }
            | Error::Config(_)
            | Error::CacheFile { .. }
            | Error::AdminRefused { .. }
            | Error::AdminUnreachable { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The process exit code when this error ends the program: 2 for bad
    /// configuration (as for a usage error), 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::InvalidOrigin { .. } | Error::Config(_) => 2,
            Error::OriginConnect(_)
            | Error::OriginTimeout(_)
            | Error::OriginFailed(_)
            | Error::OriginProtocol(_)
            | Error::ClientBodyTimeout
            | Error::UriTooLong(_)
            | Error::HeadersTooLarge(_)
            | Error::BadRequest(_)
            | Error::NoRoute
            | Error::MethodNotAllowed
            | Error::NotCached
            | Error::Internal(_)
            | Error::PortInUse { .. }
            | Error::PortPermission { .. }
            | Error::Bind { .. }
            | Error::CacheFile { .. }
            | Error::AdminRefused { .. }
            | Error::AdminUnreachable { .. } => 1,
        }
    }

    /// Classifies a bind failure into the message a user can act on.
    pub fn from_bind(addr: SocketAddr, source: io::Error) -> Self {
        match source.kind() {
            io::ErrorKind::AddrInUse => Error::PortInUse { port: addr.port() },
            io::ErrorKind::PermissionDenied => Error::PortPermission { port: addr.port() },
            _ => Error::Bind { addr, source },
        }
    }

    /// The error and its whole cause chain on one line, for logs.
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(err) = cause {
            text.push_str(": ");
            text.push_str(&err.to_string());
            cause = err.source();
        }
        text
    }
}

/// How an origin failed: the `kind` label of
/// `caching_proxy_origin_errors_total` and of the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginFailure {
    /// TCP connect refused, host unreachable or not resolved.
    Connect,
    /// The TLS handshake failed (certificate, protocol).
    Tls,
    /// No connection or no response headers within the timeout.
    Timeout,
    /// The connection closed before a response (or a whole one) came.
    Closed,
    /// The connection was reset.
    Reset,
    /// The response could not be parsed, or its framing is ambiguous.
    Protocol,
    /// The body paused longer than the read timeout.
    BodyTimeout,
    /// The body broke off after the headers.
    BodyBroken,
    /// Anything else.
    Other,
}

impl OriginFailure {
    /// Every kind, for metrics tables.
    pub const ALL: [OriginFailure; 9] = [
        OriginFailure::Connect,
        OriginFailure::Tls,
        OriginFailure::Timeout,
        OriginFailure::Closed,
        OriginFailure::Reset,
        OriginFailure::Protocol,
        OriginFailure::BodyTimeout,
        OriginFailure::BodyBroken,
        OriginFailure::Other,
    ];

    /// The label.
    pub fn as_str(self) -> &'static str {
        match self {
            OriginFailure::Connect => "connect",
            OriginFailure::Tls => "tls",
            OriginFailure::Timeout => "timeout",
            OriginFailure::Closed => "closed",
            OriginFailure::Reset => "reset",
            OriginFailure::Protocol => "protocol",
            OriginFailure::BodyTimeout => "body_timeout",
            OriginFailure::BodyBroken => "body_broken",
            OriginFailure::Other => "other",
        }
    }

    /// Classifies an error from sending a request to an origin, by the
    /// types in its cause chain (never by message text).
    pub fn of(err: &Error) -> Self {
        match err {
            Error::OriginTimeout(_) => OriginFailure::Timeout,
            Error::OriginProtocol(_) => OriginFailure::Protocol,
            Error::OriginConnect(cause) if in_chain::<rustls::Error>(cause.as_ref()) => {
                OriginFailure::Tls
            }
            Error::OriginConnect(_) => OriginFailure::Connect,
            Error::OriginFailed(cause) => Self::of_exchange(cause.as_ref()),
            _ => OriginFailure::Other,
        }
    }

    /// A failure after the connection was made.
    fn of_exchange(cause: &(dyn std::error::Error + 'static)) -> Self {
        let reset = |e: &io::Error| {
            matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
            )
        };
        if find_in_chain::<io::Error>(cause).is_some_and(reset) {
            return OriginFailure::Reset;
        }
        match find_in_chain::<hyper::Error>(cause) {
            Some(e) if e.is_parse() || e.is_parse_status() => OriginFailure::Protocol,
            Some(e) if e.is_incomplete_message() || e.is_closed() || e.is_canceled() => {
                OriginFailure::Closed
            }
            Some(e) if e.is_timeout() => OriginFailure::Timeout,
            _ => OriginFailure::Other,
        }
    }
}

/// The first `T` in `err`'s cause chain, looking inside `io::Error`s too
/// (their `source` skips the error they wrap).
pub fn find_in_chain<'a, T: std::error::Error + 'static>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        if let Some(inner) = e.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
            if let Some(found) = find_in_chain::<T>(inner) {
                return Some(found);
            }
        }
        cause = e.source();
    }
    None
}

fn in_chain<T: std::error::Error + 'static>(err: &(dyn std::error::Error + 'static)) -> bool {
    find_in_chain::<T>(err).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_faults_are_gateway_errors() {
        let refused = Error::OriginConnect("refused".into());
        assert_eq!(refused.status(), StatusCode::BAD_GATEWAY);
        let slow = Error::OriginTimeout(Duration::from_secs(1));
        assert_eq!(slow.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(Error::BadRequest("x").status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn bind_errors_name_the_port() {
        let addr: SocketAddr = "0.0.0.0:3000".parse().unwrap();
        let in_use = Error::from_bind(addr, io::Error::from(io::ErrorKind::AddrInUse));
        assert_eq!(in_use.to_string(), "port 3000 is already in use");
        let denied = Error::from_bind(addr, io::Error::from(io::ErrorKind::PermissionDenied));
        assert!(denied.to_string().contains("port >= 1024"));
        assert_eq!(in_use.exit_code(), 1);
    }

    #[test]
    fn origin_failures_are_classified_by_type() {
        let tls = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::Expired),
        );
        assert_eq!(
            OriginFailure::of(&Error::OriginConnect(Box::new(tls))),
            OriginFailure::Tls
        );
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(
            OriginFailure::of(&Error::OriginConnect(Box::new(refused))),
            OriginFailure::Connect
        );
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert_eq!(
            OriginFailure::of(&Error::OriginFailed(Box::new(reset))),
            OriginFailure::Reset
        );
        assert_eq!(
            OriginFailure::of(&Error::OriginTimeout(Duration::from_secs(1))),
            OriginFailure::Timeout
        );
        assert_eq!(
            OriginFailure::of(&Error::OriginProtocol("x")),
            OriginFailure::Protocol
        );
        let labels: std::collections::HashSet<_> =
            OriginFailure::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(labels.len(), OriginFailure::ALL.len());
    }

    #[test]
    fn chain_includes_causes() {
        let err = Error::OriginConnect("connection refused".into());
        assert_eq!(err.chain(), "cannot connect to origin: connection refused");
    }
}
