//! Typed configuration: what the proxy serves, validated once at the edge.
//!
//! Everything here is already checked: addresses are `SocketAddr`s, times
//! are `Duration`s, sizes are bytes, every number is bounded. The CLI
//! ([`crate::cli`]) produces a [`Config`]; nothing later re-validates it.

mod origin;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use origin::{Origin, Scheme};

/// The longest lifetime anything is cached for: 2^31 seconds, the value
/// RFC 9111 section 1.2.2 gives overflowing delta-seconds (moka panics on
/// absurd durations, so every lifetime is clamped to this).
pub const MAX_TTL_SECS: u64 = 1 << 31;

/// A whole proxy deployment.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where clients connect.
    pub listener: ListenerConfig,
    /// Where requests go.
    pub origin: Origin,
    /// How responses are cached.
    pub cache: CacheConfig,
    /// Protective limits on the client side.
    pub limits: Limits,
}

/// One listening socket.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// The address to bind; `[::]` listens on IPv4 and IPv6.
    pub address: SocketAddr,
}

/// Cache storage and policy.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// The snapshot written so that the cache survives restarts.
    pub file: PathBuf,
    /// Default lifetime and cap for every entry; `None`: no cap, and an
    /// entry without explicit freshness lives until evicted or cleared.
    pub ttl: Option<Duration>,
    /// Total bytes the cache may hold (keys, headers and bodies).
    pub max_size: u64,
    /// Responses larger than this stream through uncached.
    pub max_object_size: u64,
    /// How long after the last change the snapshot is written.
    pub write_delay: Duration,
}

/// Limits that protect the proxy from clients and slow origins.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Open client connections at most; further clients wait in the backlog.
    pub max_connections: usize,
    /// A client must send its request headers within this time.
    pub header_read_timeout: Duration,
    /// In-flight requests get this long to finish at shutdown.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl CacheConfig {
    /// The default cache settings with the snapshot at `file`.
    pub fn with_file(file: PathBuf) -> Self {
        CacheConfig {
            file,
            ttl: None,
            max_size: 256 * 1024 * 1024,
            max_object_size: 8 * 1024 * 1024,
            write_delay: Duration::from_secs(1),
        }
    }
}
