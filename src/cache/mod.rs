//! The HTTP cache: keys, Cache-Control parsing, storage policy, freshness,
//! the moka store, request coalescing and the `cache.json` snapshot.
//!
//! The parsing and policy modules are pure functions of headers and times;
//! only [`store`] and [`persist`] hold state.

pub mod admit;
pub mod coalesce;
pub mod compression;
pub mod conditional;
pub mod control;
pub mod entry;
mod expiry;
pub mod footprint;
pub mod freshness;
pub mod headers;
pub mod http_date;
pub mod key;
pub mod key_rule;
mod maintenance;
pub mod negotiate;
pub mod partial;
pub mod persist;
pub mod policy;
pub mod purge;
pub mod range;
pub mod reuse;
pub mod revalidation;
pub mod store;
pub mod structured;
pub mod tags;
pub mod vary;
pub mod weight;
pub mod wire;

pub use entry::{CachedResponse, ReuseRules};
pub use key::CacheKey;
pub use store::Store;
