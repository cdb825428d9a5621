//! The configuration file as written: serde types with defaults that
//! refuse unknown keys. Nothing here is validated; [`super::validate`]
//! turns these into the typed [`super::Config`].

use std::path::PathBuf;

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `[cache]`
    #[serde(default)]
    pub cache: CacheSection,
    /// `[[listeners]]`
    #[serde(default)]
    pub listeners: Vec<ListenerSection>,
    /// `[[origins]]`
    #[serde(default)]
    pub origins: Vec<OriginSection>,
    /// `[[routes]]`
    #[serde(default)]
    pub routes: Vec<RouteSection>,
    /// `[admin]`
    pub admin: Option<AdminSection>,
    /// `[limits]`
    #[serde(default)]
    pub limits: LimitsSection,
}

/// `[cache]`
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSection {
    /// Snapshot path, relative to the config file's directory.
    pub file: Option<PathBuf>,
    /// Default lifetime and cap.
    pub ttl: Option<DurationValue>,
    /// Memory bound.
    pub max_size: Option<SizeValue>,
    /// Per-response bound.
    pub max_object_size: Option<SizeValue>,
    /// Smallest body compressed for storing.
    pub compress_min_size: Option<SizeValue>,
    /// Snapshot write-behind delay.
    pub write_delay: Option<DurationValue>,
    /// How long a start waits for the snapshot to load before serving.
    pub load_wait: Option<DurationValue>,
    /// How long stale entries may stand in for a failing origin.
    pub grace: Option<DurationValue>,
    /// How long stale entries with validators are kept for revalidation.
    pub keep: Option<DurationValue>,
    /// Targeted cache-control fields obeyed before Cache-Control (RFC 9213).
    pub targeted_cache_control: Option<Vec<String>>,
    /// Response fields that carry purge tags.
    pub tag_headers: Option<Vec<String>>,
    /// Pass the tag fields on to clients.
    pub expose_tag_headers: Option<bool>,
    /// `[cache.shared]`: the second tier a fleet shares.
    pub shared: Option<SharedSection>,
}

/// `[cache.shared]`
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedSection {
    /// `redis://` or `rediss://` URL of one Redis server.
    pub url: Option<String>,
    /// Seed node URLs of a Redis Cluster.
    pub urls: Option<Vec<String>>,
    /// Namespace of this fleet's keys.
    pub prefix: Option<String>,
    /// Per-operation timeout.
    pub timeout: Option<DurationValue>,
    /// Larger responses stay in each instance's own memory.
    pub max_object_size: Option<SizeValue>,
    /// This instance's name in the fleet.
    pub node_id: Option<String>,
    /// How long a fleet-wide fetch lease lasts without renewal.
    pub lease: Option<DurationValue>,
}

/// `[[listeners]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerSection {
    /// `ip:port`
    pub address: String,
    /// Serve HTTPS with this certificate.
    pub tls: Option<TlsSection>,
}

/// `tls = { cert = "...", key = "..." }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// `[[origins]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginSection {
    /// Referenced by routes.
    pub name: String,
    /// Absolute http(s) URL (or `servers`).
    pub url: Option<String>,
    /// Several servers, `"http://host:port"` or `{ url, weight, backup }`.
    pub servers: Option<Vec<ServerEntry>>,
    /// round_robin | least_connections | key_hash
    pub balance: Option<BalanceName>,
    /// Other servers tried after a connect failure or a reset.
    pub retries: Option<u32>,
    /// The `Host` sent to the servers (default: the first server's).
    pub host: Option<String>,
    /// Response-header timeout.
    pub timeout: Option<DurationValue>,
    /// Time between two reads of the response body.
    pub read_timeout: Option<DurationValue>,
    /// TCP + TLS connect timeout.
    pub connect_timeout: Option<DurationValue>,
    /// Extra PEM CA certificates to trust.
    pub ca_file: Option<PathBuf>,
    /// How long idle pooled connections are kept.
    pub pool_idle_timeout: Option<DurationValue>,
    /// Requests in flight per server.
    pub max_connections: Option<u32>,
    /// How often server host names are resolved again.
    pub resolve_every: Option<DurationValue>,
    /// `[origins.health]`
    pub health: Option<HealthSection>,
}

/// `[origins.health]`: passive settings, and an active check with `path`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSection {
    /// `/healthz`; absent: passive health only.
    pub path: Option<String>,
    /// Between two checks of one server.
    pub interval: Option<DurationValue>,
    /// For one check.
    pub timeout: Option<DurationValue>,
    /// Failures in a row that take a server out.
    pub fall: Option<u32>,
    /// Checks in a row that bring it back.
    pub rise: Option<u32>,
    /// How long failed requests keep a server out.
    pub back_off: Option<DurationValue>,
}

/// One entry of `servers`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ServerEntry {
    /// `"http://host:port"`, weight 1.
    Url(String),
    /// `{ url = "...", weight = 2, backup = true }`
    Full(ServerSection),
}

/// `{ url, weight, backup }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// `http://host:port`
    pub url: String,
    /// Share of traffic.
    pub weight: Option<u32>,
    /// Only when no primary can.
    pub backup: Option<bool>,
}

/// The balancing names.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BalanceName {
    /// In proportion to the weights.
    RoundRobin,
    /// Fewest in flight per weight.
    LeastConnections,
    /// By a consistent hash of the URL.
    KeyHash,
}

/// `[[routes]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    /// A name for metrics and logs.
    pub name: Option<String>,
    /// Exact host or `*.suffix`; absent matches any host.
    pub host: Option<String>,
    /// Path prefix; absent is `/`.
    pub path_prefix: Option<String>,
    /// An origin's name.
    pub origin: String,
    /// Overrides `[cache].ttl`.
    pub ttl: Option<DurationValue>,
    /// standard | force | bypass
    pub policy: Option<PolicyName>,
    /// `key.query`, `key.sort_query`, `key.headers`.
    pub key: Option<KeySection>,
    /// Compress compressible responses the origin sent uncompressed.
    pub compress: Option<bool>,
    /// Fetch and store GETs in aligned slices: `true` (1 MiB) or a size.
    pub slice: Option<SliceValue>,
}

/// `slice = true | false | "<size>"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SliceValue {
    /// On with the default size, or off.
    On(bool),
    /// On with this size.
    Size(SizeValue),
}

/// `[routes.key]`: how the route's requests are keyed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySection {
    /// `"all"`, `"none"`, `{ keep = [...] }` or `{ drop = [...] }`.
    pub query: Option<QuerySection>,
    /// Sort the parameters kept.
    pub sort_query: Option<bool>,
    /// Request headers added to the key.
    pub headers: Option<Vec<String>>,
}

/// `key.query` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum QuerySection {
    /// `"all"` or `"none"`.
    Word(String),
    /// `{ keep = [...] }` or `{ drop = [...] }`.
    Names(QueryNames),
}

/// `key.query = { keep = [...] }` / `{ drop = [...] }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryNames {
    /// Only these parameters count.
    pub keep: Option<Vec<String>>,
    /// These parameters do not count.
    pub drop: Option<Vec<String>>,
}

/// The cache policy names.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PolicyName {
    /// RFC 9111.
    Standard,
    /// Cache 2xx GETs for the TTL whatever the origin says.
    Force,
    /// Never cache.
    Bypass,
}

/// `[admin]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// `ip:port` of the admin API.
    pub address: Option<String>,
    /// Bearer token.
    pub token: Option<String>,
    /// File holding the bearer token.
    pub token_file: Option<PathBuf>,
}

/// `[limits]`
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Open client connections at most.
    pub max_connections: Option<u32>,
    /// Time for a client's request headers.
    pub header_read_timeout: Option<DurationValue>,
    /// Time for in-flight requests at shutdown.
    pub shutdown_grace: Option<DurationValue>,
    /// Bytes of a request head at most.
    pub max_header_bytes: Option<SizeValue>,
    /// Header fields of a request at most.
    pub max_headers: Option<u32>,
    /// Bytes of a request target at most.
    pub max_uri_bytes: Option<SizeValue>,
    /// Longest pause in a request body, and the grace before its rate counts.
    pub client_body_timeout: Option<DurationValue>,
    /// Bytes per second a request body must average.
    pub client_body_min_rate: Option<SizeValue>,
}

/// Seconds as a number, or a human duration (`"90s"`, `"5m"`, `"1h"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum DurationValue {
    /// Whole seconds.
    Seconds(i64),
    /// `humantime` text.
    Text(String),
}

/// Bytes as a number, or a human size (`"8MiB"`, `"1GB"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SizeValue {
    /// Bytes.
    Bytes(i64),
    /// `bytesize` text.
    Text(String),
}
