//! What one exchange with an origin holds until its response body is
//! done with, so that the counts it is part of (in flight per server,
//! `max_connections`, streams per HTTP/2 connection) stay true while the
//! body streams.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::balance::Picked;
use super::limit::Place;

/// What one exchange holds until its response body is done with: the
/// server counted in flight (an origin with several), the place among the
/// server's bounded requests, the HTTP/2 stream's place.
#[derive(Debug, Default)]
pub struct Held {
    /// The server it went to (`None`: an origin with one server).
    pub server: Option<Picked>,
    /// Its place under `max_connections`.
    pub permit: Option<Place>,
    /// Its place on a shared HTTP/2 connection.
    pub stream: Option<StreamSlot>,
}

/// One request's place on an HTTP/2 connection, given back when dropped
/// (with the response body).
#[derive(Debug)]
pub struct StreamSlot(Arc<AtomicUsize>);

impl StreamSlot {
    /// Takes a place on the connection whose count is `streams`.
    pub fn take(streams: &Arc<AtomicUsize>) -> Self {
        streams.fetch_add(1, Ordering::AcqRel);
        StreamSlot(streams.clone())
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
