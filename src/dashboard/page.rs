//! The dashboard page, one self-contained file embedded in the binary:
//! HTML, CSS and a little JavaScript, no framework and no external
//! resource (it works with no internet). It asks `dashboard.json`, next to
//! it on the admin listener, once a second.

/// The page (`GET /` on the admin listener).
pub const PAGE: &str = include_str!("page.html");
