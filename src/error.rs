//! Errors of the request path, and what every one of them becomes.
//!
//! [`RequestError`] ends a request: [`RequestError::status`] is the status
//! the client sees (an exhaustive match, so a new variant must be
//! classified before it compiles) and [`RequestError::is_refusal`] says
//! whether it is the client's doing (logged at debug) or a failure (logged
//! as a warning). The client only ever sees a short canonical body; the
//! cause chain goes to the log ([`chain`]). [`OriginFailure`] is how an
//! origin failed, for metrics and logs.
//!
//! Errors that end the process are typed where they arise
//! (`config::ConfigError`, `server::BindError`, `app::StartupError`,
//! `admin::client::AdminClientError`) and mapped to an exit code by the
//! command that meets them.

use std::io;
use std::time::Duration;

use http::StatusCode;

/// A boxed error from a lower layer (hyper, the connector, ...).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a request could not be answered normally.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The origin could not be connected to (refused, unresolvable, TLS).
    #[error("cannot connect to origin")]
    OriginConnect(#[source] BoxError),
    /// The origin sent no response headers within the configured timeout.
    #[error("origin sent no response within {0:?}")]
    OriginTimeout(Duration),
    /// The origin closed or broke the exchange before sending headers.
    #[error("origin failed before sending a response")]
    OriginFailed(#[source] BoxError),
    /// Every server of the origin that could take the request had its
    /// `max_connections` in flight for this long.
    #[error("origin busy: no free connection within {0:?}")]
    OriginBusy(Duration),
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
}

impl RequestError {
    /// The status a client sees when this error ends a request.
    pub fn status(&self) -> StatusCode {
        match self {
            RequestError::OriginConnect(_)
            | RequestError::OriginFailed(_)
            | RequestError::OriginProtocol(_) => StatusCode::BAD_GATEWAY,
            RequestError::OriginBusy(_) => StatusCode::SERVICE_UNAVAILABLE,
            RequestError::ClientBodyTimeout => StatusCode::REQUEST_TIMEOUT,
            RequestError::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            RequestError::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            RequestError::OriginTimeout(_) | RequestError::NotCached => StatusCode::GATEWAY_TIMEOUT,
            RequestError::BadRequest(_) => StatusCode::BAD_REQUEST,
            RequestError::NoRoute => StatusCode::NOT_FOUND,
            RequestError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    /// Whether the request was refused for what the client sent or asked
    /// (logged at debug), rather than failed on our or the origin's side
    /// (a warning).
    pub fn is_refusal(&self) -> bool {
        // Exactly the errors that are not the origin's.
        OriginFailure::of(self).is_none()
    }

    /// The error and its whole cause chain on one line, for logs.
    pub fn chain(&self) -> String {
        chain(self)
    }
}

/// An error and its whole cause chain on one line: `error: cause: cause`.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(next) = cause {
        text.push_str(": ");
        text.push_str(&next.to_string());
        cause = next.source();
    }
    text
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
    /// No connection to the server was free within the timeout.
    Busy,
    /// The body paused longer than the read timeout.
    BodyTimeout,
    /// The body broke off after the headers.
    BodyBroken,
    /// Anything else.
    Other,
}

impl OriginFailure {
    /// Every kind, for metrics tables.
    pub const ALL: [OriginFailure; 10] = [
        OriginFailure::Connect,
        OriginFailure::Tls,
        OriginFailure::Timeout,
        OriginFailure::Closed,
        OriginFailure::Reset,
        OriginFailure::Protocol,
        OriginFailure::Busy,
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
            OriginFailure::Busy => "busy",
            OriginFailure::BodyTimeout => "body_timeout",
            OriginFailure::BodyBroken => "body_broken",
            OriginFailure::Other => "other",
        }
    }

    /// Classifies an error from sending a request to an origin, by the
    /// types in its cause chain (never by message text); `None` for an
    /// error that is not the origin's.
    pub fn of(err: &RequestError) -> Option<Self> {
        Some(match err {
            RequestError::OriginTimeout(_) => OriginFailure::Timeout,
            RequestError::OriginBusy(_) => OriginFailure::Busy,
            RequestError::OriginProtocol(_) => OriginFailure::Protocol,
            RequestError::OriginConnect(cause) if in_chain::<rustls::Error>(cause.as_ref()) => {
                OriginFailure::Tls
            }
            RequestError::OriginConnect(_) => OriginFailure::Connect,
            RequestError::OriginFailed(cause) => Self::of_exchange(cause.as_ref()),
            RequestError::ClientBodyTimeout
            | RequestError::UriTooLong(_)
            | RequestError::HeadersTooLarge(_)
            | RequestError::NotCached
            | RequestError::MethodNotAllowed
            | RequestError::NoRoute
            | RequestError::BadRequest(_) => return None,
        })
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
            // hyper's error kinds are opaque beyond these predicates.
            Some(_) | None => OriginFailure::Other,
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
        let refused = RequestError::OriginConnect("refused".into());
        assert_eq!(refused.status(), StatusCode::BAD_GATEWAY);
        assert!(!refused.is_refusal());
        let slow = RequestError::OriginTimeout(Duration::from_secs(1));
        assert_eq!(slow.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(
            RequestError::BadRequest("x").status(),
            StatusCode::BAD_REQUEST
        );
        assert!(RequestError::BadRequest("x").is_refusal());
    }

    #[test]
    fn origin_failures_are_classified_by_type() {
        let tls = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::Expired),
        );
        let of = |err: RequestError| OriginFailure::of(&err);
        assert_eq!(
            of(RequestError::OriginConnect(Box::new(tls))),
            Some(OriginFailure::Tls)
        );
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(
            of(RequestError::OriginConnect(Box::new(refused))),
            Some(OriginFailure::Connect)
        );
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert_eq!(
            of(RequestError::OriginFailed(Box::new(reset))),
            Some(OriginFailure::Reset)
        );
        assert_eq!(
            of(RequestError::OriginTimeout(Duration::from_secs(1))),
            Some(OriginFailure::Timeout)
        );
        assert_eq!(
            of(RequestError::OriginProtocol("x")),
            Some(OriginFailure::Protocol)
        );
        assert_eq!(of(RequestError::ClientBodyTimeout), None);
        let labels: std::collections::HashSet<_> =
            OriginFailure::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(labels.len(), OriginFailure::ALL.len());
    }

    #[test]
    fn chain_includes_causes() {
        let err = RequestError::OriginConnect("connection refused".into());
        assert_eq!(err.chain(), "cannot connect to origin: connection refused");
    }
}
