//! Configuration: the file as written ([`mod@file`]), its validation into the
//! typed [`Config`] ([`validate`]), and where it comes from ([`source`]:
//! a TOML file, CLI flags, or both).
//!
//! Everything in [`Config`] is already checked: addresses are
//! `SocketAddr`s, times are `Duration`s, sizes are bytes, every number is
//! bounded, TLS material is loaded. Nothing later re-validates it.

mod error;
pub mod file;
mod health;
mod limits;
mod locate;
mod origin;
mod route_key;
mod servers;
mod shared;
pub mod source;
mod validate;
mod values;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::cache::key_rule::KeyRule;

pub use error::{Cause, ConfigError, InvalidOrigin, Place, Problem, SizeError};
pub use origin::{ActiveCheck, Balance, Health, InvalidTarget, Origin, Scheme, Server};
pub use shared::{RedisTarget, SharedConfig, shared_from_url};
pub use source::{ConfigSource, Overrides};
pub use validate::validate;
pub use values::parse_size;

pub use crate::router::HostMatch;

/// The longest lifetime anything is cached for: 2^31 seconds, the value
/// RFC 9111 section 1.2.2 gives overflowing delta-seconds (moka panics on
/// absurd durations, so every lifetime is clamped to this).
pub const MAX_TTL_SECS: u64 = 1 << 31;

/// A whole proxy deployment.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where clients connect.
    pub listeners: Vec<ListenerConfig>,
    /// Where requests go.
    pub origins: Vec<Origin>,
    /// Which requests go where, and how they are cached.
    pub routes: Vec<RouteConfig>,
    /// How responses are stored.
    pub cache: CacheConfig,
    /// Protective limits on the client side.
    pub limits: Limits,
    /// The admin API.
    pub admin: AdminConfig,
}

/// The admin API's listener and credentials.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminConfig {
    /// Its address (`None`: an ephemeral port on 127.0.0.1).
    pub address: Option<SocketAddr>,
    /// The bearer token it requires (required off loopback).
    pub token: Option<String>,
}

/// One listening socket.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// The address to bind; `[::]` listens on IPv4 and IPv6.
    pub address: SocketAddr,
    /// HTTPS on this listener.
    pub tls: Option<ListenerTls>,
}

/// A listener's certificate, loaded.
#[derive(Clone)]
pub struct ListenerTls {
    /// The PEM certificate chain file.
    pub cert: PathBuf,
    /// The PEM key file.
    pub key: PathBuf,
    /// rustls settings built from them (ALPN h2 and http/1.1).
    pub server: Arc<rustls::ServerConfig>,
}

impl fmt::Debug for ListenerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenerTls")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish()
    }
}

/// How a route caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// RFC 9111 for a shared cache.
    Standard,
    /// Cache 2xx GET responses for the TTL whatever the origin says (never
    /// a response that sets a cookie or answers a request with credentials).
    Force,
    /// Never look up or store.
    Bypass,
}

impl Policy {
    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Standard => "standard",
            Policy::Force => "force",
            Policy::Bypass => "bypass",
        }
    }
}

/// One route.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// Its name in metrics and logs (given, or `host/prefix`).
    pub name: String,
    /// Which hosts.
    pub host: HostMatch,
    /// Which paths (string prefix).
    pub path_prefix: String,
    /// The origin's name.
    pub origin: String,
    /// Default lifetime and cap for this route (the route's own or
    /// `[cache].ttl`).
    pub ttl: Option<Duration>,
    /// Whether `ttl` is the route's own or `[cache].ttl`.
    pub ttl_from: TtlFrom,
    /// How it caches.
    pub policy: Policy,
    /// How its requests are keyed.
    pub key: KeyRule,
    /// Whether compressible responses the origin sent uncompressed are
    /// stored compressed.
    pub compress: bool,
    /// The slice size, when its GETs are fetched and stored in aligned
    /// slices (nginx's `slice`).
    pub slice: Option<u64>,
}

impl RouteConfig {
    /// The one route of a config without `[[routes]]`: every request to
    /// `origin`, with the defaults.
    pub fn catch_all(origin: String, ttl: Option<Duration>) -> Self {
        RouteConfig {
            name: "default".into(),
            host: HostMatch::Any,
            path_prefix: "/".into(),
            origin,
            ttl,
            ttl_from: TtlFrom::Cache,
            policy: Policy::Standard,
            key: KeyRule::default(),
            compress: true,
            slice: None,
        }
    }
}

/// Where a route's ttl comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlFrom {
    /// The route sets its own.
    Route,
    /// It inherits `[cache].ttl`.
    Cache,
}

/// Cache storage.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// The snapshot written so that the cache survives restarts.
    pub file: PathBuf,
    /// Default lifetime and cap (routes may override).
    pub ttl: Option<Duration>,
    /// Total bytes the cache may hold (keys, headers and bodies).
    pub max_size: u64,
    /// Responses larger than this stream through uncached.
    pub max_object_size: u64,
    /// Bodies at least this long are compressed for storing (routes with
    /// `compress`); smaller ones are stored as they came.
    pub compress_min_size: u64,
    /// How long after the last change the snapshot is written.
    pub write_delay: Duration,
    /// How long a start waits for the snapshot to load before it serves;
    /// what is left loads while it serves.
    pub load_wait: Duration,
    /// Stale entries may stand in for a failing origin this long (on top
    /// of any `stale-if-error`), unless the response forbids stale use.
    pub grace: Duration,
    /// Stale entries that can be revalidated are kept this long.
    pub keep: Duration,
    /// Targeted cache-control fields (RFC 9213), first match wins.
    pub targeted: Vec<http::HeaderName>,
    /// Response fields that carry purge tags.
    pub tag_headers: Vec<http::HeaderName>,
    /// Pass the tag fields on to clients (default: strip them).
    pub expose_tags: bool,
    /// The second tier a fleet of instances shares (`None`: this instance
    /// caches alone).
    pub shared: Option<SharedConfig>,
}

/// Limits that protect the proxy from clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Open client connections at most, per listener; further clients wait
    /// in the backlog.
    pub max_connections: usize,
    /// A client must send its request headers (and finish a TLS
    /// handshake) within this time.
    pub header_read_timeout: Duration,
    /// In-flight requests get this long to finish at shutdown.
    pub shutdown_grace: Duration,
    /// A request head (request line and fields) larger than this is
    /// answered 431 before more of it is read.
    pub max_header_bytes: usize,
    /// A request with more header fields is answered 431.
    pub max_headers: usize,
    /// A request target longer than this is answered 414.
    pub max_uri_bytes: usize,
    /// A client's request body may pause this long, and must keep up
    /// `client_body_min_rate` after it (else 408).
    pub client_body_timeout: Duration,
    /// Bytes per second a request body must average after the timeout
    /// (0: only pauses are limited).
    pub client_body_min_rate: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            max_header_bytes: 32 * 1024,
            max_headers: 100,
            max_uri_bytes: 8 * 1024,
            client_body_timeout: Duration::from_secs(20),
            client_body_min_rate: 500,
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
            compress_min_size: 1024,
            write_delay: Duration::from_secs(1),
            load_wait: Duration::from_secs(1),
            grace: Duration::ZERO,
            keep: Duration::from_secs(3600),
            targeted: vec![http::HeaderName::from_static("cdn-cache-control")],
            tag_headers: vec![
                http::HeaderName::from_static("surrogate-key"),
                http::HeaderName::from_static("cache-tag"),
            ],
            expose_tags: false,
            shared: None,
        }
    }
}

impl Config {
    /// A one-listener, one-origin config (what `--port` and `--origin`
    /// describe), with defaults for everything else.
    pub fn single(address: SocketAddr, origin: Origin, cache_file: PathBuf) -> Self {
        let name = origin.name.clone();
        Config {
            listeners: vec![ListenerConfig { address, tls: None }],
            origins: vec![origin],
            routes: vec![RouteConfig::catch_all(name, None)],
            cache: CacheConfig::with_file(cache_file),
            limits: Limits::default(),
            admin: AdminConfig::default(),
        }
    }

    /// What this config serves, for `--check-config` and reload logs.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let secs =
            |d: Option<Duration>| d.map_or("none".to_owned(), |d| format!("{}s", d.as_secs()));
        out.push_str("listeners:\n");
        for l in &self.listeners {
            let scheme = if l.tls.is_some() { "https" } else { "http" };
            out.push_str(&format!("  {} ({scheme})\n", l.address));
        }
        out.push_str("origins:\n");
        for o in &self.origins {
            out.push_str(&format!(
                "  {} -> {} (timeout {}s)\n",
                o.name,
                o.id(),
                o.timeout.as_secs()
            ));
        }
        out.push_str("routes:\n");
        for r in &self.routes {
            out.push_str(&format!(
                "  host {} path {} -> {} (ttl {}, policy {})\n",
                r.host,
                r.path_prefix,
                r.origin,
                secs(r.ttl),
                r.policy.as_str()
            ));
        }
        out.push_str(&format!(
            "cache: file {}, ttl {}, max size {} bytes, max object {} bytes, grace {}s, keep {}s\n",
            self.cache.file.display(),
            secs(self.cache.ttl),
            self.cache.max_size,
            self.cache.max_object_size,
            self.cache.grace.as_secs(),
            self.cache.keep.as_secs()
        ));
        if let Some(shared) = &self.cache.shared {
            out.push_str(&format!(
                "shared tier: {}, prefix {}, node {}, timeout {}ms, max object {} bytes, lease {}ms\n",
                shared.redis.describe(),
                shared.prefix,
                shared.node_id,
                shared.timeout.as_millis(),
                shared.max_object_size,
                shared.lease.as_millis()
            ));
        }
        if let Some(admin) = self.admin.address {
            let auth = if self.admin.token.is_some() {
                "token required"
            } else {
                "no token"
            };
            out.push_str(&format!("admin: {admin} ({auth})\n"));
        }
        out
    }
}
