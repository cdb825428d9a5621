//! What a fill stores besides the body: the coding it is compressed in
//! (when its route compresses and the response may be; sent so as it
//! streams when the filling client takes it) and the request values it
//! varies on.

use http::HeaderMap;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, ETAG};

use super::super::body::TeeBody;
use super::super::exchange::Exchange;
use super::super::headers;
use super::super::stream_encoder::StreamEncoder;
use crate::cache::compression::{self, Candidate};
use crate::cache::negotiate::{Accepted, Coding};
use crate::cache::revalidation::declared_length;
use crate::cache::vary::{Vary, VaryValues};

/// The tee, compressing as it streams when a coding is planned and the
/// filling client takes it: the client gets the stored bytes (nginx sends
/// a miss compressed too), with `response` saying so (the coding, no
/// `Content-Length`, a weak `ETag`). Else as it was: the body is
/// compressed for storing once complete.
pub(super) fn encode_as_sent(
    tee: TeeBody,
    planned: Option<(Coding, usize)>,
    request: &HeaderMap,
    response: &mut HeaderMap,
) -> TeeBody {
    let Some((coding, _)) = planned else {
        return tee;
    };
    let Some(len) = declared_length(response).and_then(|len| usize::try_from(len).ok()) else {
        return tee;
    };
    if !Accepted::of(request).takes(coding) {
        return tee;
    }
    let Ok(Some(encoder)) = StreamEncoder::new(coding, len) else {
        return tee;
    };
    response.insert(
        CONTENT_ENCODING,
        http::HeaderValue::from_static(coding.as_str()),
    );
    response.remove(CONTENT_LENGTH);
    if let Some(weak) = response.get(ETAG).and_then(headers::weakened) {
        response.insert(ETAG, weak);
    }
    tee.encoding(coding, encoder)
}

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
