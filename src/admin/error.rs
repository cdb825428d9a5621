//! Why an admin request was not done, and the one place that turns that
//! into a status and a body.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;

use crate::error::{BoxError, chain};

/// An admin request that could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A wrong or missing bearer token.
    #[error("unauthorized")]
    Unauthorized,
    /// No such endpoint.
    #[error("not found")]
    NotFound,
    /// The request body could not be read (or was too large).
    #[error("unreadable body")]
    UnreadableBody(#[source] BoxError),
    /// The purge body is not one of the accepted shapes.
    #[error("expected {{\"url\"|\"prefix\"|\"tag\"|\"all\"}}")]
    PurgeBody(#[source] serde_json::Error),
    /// A purge body with none or several of its fields.
    #[error("give exactly one of {{\"url\"}}, {{\"prefix\"}}, {{\"tag\"}} or {{\"all\": true}}")]
    PurgeAmbiguous,
    /// A `PURGE` request without a URL to purge.
    #[error("PURGE needs a Host or an absolute URL")]
    PurgeWithoutUrl,
    /// An inspection without `?url=`.
    #[error("missing ?url=")]
    MissingUrl,
    /// A URL the cache could not hold.
    #[error("'{url}' {why}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        why: &'static str,
        /// The parser's error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// The work on a blocking thread did not finish (a bug).
    #[error("internal error")]
    WorkFailed(#[source] tokio::task::JoinError),
}

impl AdminError {
    /// The status the admin client sees.
    pub fn status(&self) -> StatusCode {
        match self {
            AdminError::Unauthorized => StatusCode::UNAUTHORIZED,
            AdminError::NotFound => StatusCode::NOT_FOUND,
            AdminError::UnreadableBody(_)
            | AdminError::PurgeBody(_)
            | AdminError::PurgeAmbiguous
            | AdminError::PurgeWithoutUrl
            | AdminError::MissingUrl
            | AdminError::BadUrl { .. } => StatusCode::BAD_REQUEST,
            AdminError::WorkFailed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The answer: the status and the error's chain as a line of text (a
    /// failure on our side says only "internal error"; the log has more).
    pub fn response(&self) -> Response<Full<Bytes>> {
        let body = match self {
            AdminError::WorkFailed(_) => {
                tracing::error!(error = %chain(self), "an admin request's work failed");
                "internal error\n".to_owned()
            }
            AdminError::Unauthorized
            | AdminError::NotFound
            | AdminError::UnreadableBody(_)
            | AdminError::PurgeBody(_)
            | AdminError::PurgeAmbiguous
            | AdminError::PurgeWithoutUrl
            | AdminError::MissingUrl
            | AdminError::BadUrl { .. } => format!("{}\n", chain(self)),
        };
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = self.status();
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_mistakes_are_400_and_say_why() {
        let err = AdminError::BadUrl {
            url: "ftp://h/".into(),
            why: "must start with http:// or https://",
            source: None,
        };
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            err.to_string(),
            "'ftp://h/' must start with http:// or https://"
        );
        assert_eq!(AdminError::Unauthorized.status(), StatusCode::UNAUTHORIZED);
    }
}
