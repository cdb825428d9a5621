//! The shared second tier that instances of a fleet use through Redis.
//!
//! Built in steps (issue 15); what exists so far is used by nothing on
//! the request path yet:
//!
//! - [`breaker`]: when the tier is failing, skip it without waiting, and
//!   let one probe find out when it is back;
//! - [`client`]: the Redis client, every call bounded by its own timeout
//!   and guarded by the breaker;
//! - [`lease`]: the right to fetch one URL for the whole fleet, taken,
//!   renewed and released by its owner only;
//! - [`keys`]: the names in Redis, hash-tagged per URL for a cluster.
//!
//! The stored form of an entry is [`crate::cache::wire`].

pub mod breaker;
pub mod client;
pub mod keys;
pub mod lease;
