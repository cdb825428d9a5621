//! The dashboard on the admin listener: `GET /` (the page) and
//! `GET /dashboard.json` (what it shows). A browser cannot send the bearer
//! token with a page it navigates to, so these two also take it as
//! `?token=`; the page passes it on to its own requests.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;

use super::{Answer, json};
use crate::dashboard::Dashboard;
use crate::dashboard::page::PAGE;

/// Whether `path` is one of the dashboard's.
pub(super) fn is_dashboard(path: &str) -> bool {
    matches!(path, "/" | "/dashboard.json")
}

/// The token a dashboard request carries in its query, if any.
pub(super) fn query_token(query: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "token")
        .map(|(_, value)| value.into_owned())
}

/// The page.
pub(super) fn page() -> Answer {
    let mut response = Response::new(Full::new(Bytes::from_static(PAGE.as_bytes())));
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // Nothing but this listener: no script, style or image from elsewhere.
    headers.insert(
        http::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self'",
        ),
    );
    response
}

/// What the page shows now.
pub(super) fn data(dashboard: &Dashboard) -> Answer {
    let mut response = json(StatusCode::OK, &dashboard.json());
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
