//! What a fill stores besides the body: the coding it is compressed in
//! (when its route compresses and the response may be) and the request
//! values it varies on.

use http::HeaderMap;

use super::super::exchange::Exchange;
use crate::cache::compression::{self, Candidate};
use crate::cache::negotiate::Coding;
use crate::cache::vary::{Vary, VaryValues};

/// The coding to store this response in and the smallest body worth
/// compressing, when its route compresses and the response may be.
pub(super) fn plan_compression(
    exchange: &Exchange,
    request: &HeaderMap,
    response: &http::response::Parts,
    vary: &Vary,
) -> Option<(Coding, usize)> {
    if !exchange.route().compress {
        return None;
    }
    let min_size = exchange.runtime().compress_min_size;
    let coding = compression::plan(&Candidate {
        request,
        status: response.status,
        response: &response.headers,
        vary,
        min_size,
    })?;
    Some((coding, usize::try_from(min_size).unwrap_or(usize::MAX)))
}

pub(super) fn capture(vary: &Vary, request: &HeaderMap) -> VaryValues {
    match vary {
        Vary::Fields(names) => VaryValues::capture(names, request),
        Vary::None | Vary::Star => VaryValues::default(),
    }
}
