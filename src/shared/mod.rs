//! The shared second tier that the instances of a fleet use through Redis
//! (a single server or a Redis Cluster).
//!
//! - [`tier`]: what the request path asks of it: look up, and the
//!   fleet's fetch lease per URL; [`fill`]: the writes that end a fetch
//!   (a response, or a note that the URL is not storable);
//! - [`log`]: the purge log (a Redis Stream) that carries purges and
//!   invalidations to every instance, and the rules values read from
//!   Redis are checked against ([`rules`]);
//! - [`announcements`]: the `filled` and `acks` channels; [`members`]:
//!   the instances that are alive (purges wait for them);
//! - [`client`]: the Redis client, every call bounded by its own timeout
//!   and guarded by a [`crate::breaker`];
//! - [`lease`]: the lease commands (taken, renewed and released by its
//!   owner only);
//! - [`keys`]: the names in Redis, hash-tagged per URL for a cluster;
//! - [`value`] and [`log_id`]: a stored value and a log position.
//!
//! The stored form of an entry is [`crate::cache::wire`].

pub mod announcements;
pub mod client;
pub mod fill;
pub mod keys;
pub mod lease;
pub mod log;
pub mod log_id;
pub mod members;
pub mod rules;
pub mod tier;
pub mod value;

pub use tier::{LeaseHold, Lookup, SharedTier, Taken};
