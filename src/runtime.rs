//! The immutable snapshot a request reads: routes with their origin clients
//! and cache policy, and the TLS settings of each listener. Held behind
//! `ArcSwap` in [`crate::proxy::Proxy`], loaded once per request, and
//! replaced whole on reload, so a request never sees half a change.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_rustls::TlsAcceptor;

use crate::cache::CacheKey;
use crate::cache::key_rule::KeyRule;
use crate::cache::persist::Placement;
use crate::cache::store::Retention;
use crate::config::{Config, HostMatch, Policy};
use crate::metrics::{Metrics, RouteCounters};
use crate::router::Router;
use crate::upstream::{SetupError, Upstream};

/// A configuration the request path cannot be built from.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// An origin's client cannot be set up.
    #[error(transparent)]
    Origin(#[from] SetupError),
    /// A route names an origin that does not exist (validation prevents
    /// it; a `Config` built by hand may not).
    #[error("route '{route}' leads to unknown origin '{origin}'")]
    UnknownOrigin {
        /// The route's name.
        route: String,
        /// The origin it names.
        origin: String,
    },
}

/// What a request routed here needs.
#[derive(Debug)]
pub struct Route {
    /// The route's name (metrics and logs).
    pub name: Arc<str>,
    /// The pooled client to the route's origin.
    pub upstream: Arc<Upstream>,
    /// The origin's name (for logs).
    pub origin_name: Arc<str>,
    /// Identifies the origin in cache keys.
    pub origin_id: Arc<str>,
    /// Default lifetime and cap of cached entries.
    pub ttl: Option<Duration>,
    /// How it caches.
    pub policy: Policy,
    /// How its requests are keyed.
    pub key: KeyRule,
    /// Whether compressible responses are stored compressed.
    pub compress: bool,
    /// The slice size, when GETs are fetched and stored in slices.
    pub slice: Option<u64>,
    /// Its request counters.
    pub counters: RouteCounters,
}

impl Route {
    /// The primary key of `path_and_query` on `authority` (normalized) by
    /// this route's key rule.
    pub fn key_of(&self, authority: &str, path_and_query: &str) -> CacheKey {
        CacheKey::new(
            &self.origin_id,
            authority,
            &self.key.path_and_query(path_and_query),
        )
    }
}

/// Everything a request needs from configuration.
pub struct Runtime {
    router: Router<Arc<Route>>,
    upstreams: Vec<Arc<Upstream>>,
    tls: HashMap<SocketAddr, TlsAcceptor>,
    /// Larger responses are not stored.
    pub max_object_size: u64,
    /// Smaller bodies are not compressed for storing.
    pub compress_min_size: u64,
    /// How long stale entries may stand in for a failing origin (`grace`)
    /// and are kept for revalidation (`keep`); the store's memory ceiling
    /// follows it when the snapshot is swapped in.
    pub retention: Retention,
    /// Targeted cache-control fields this cache obeys (RFC 9213).
    pub targeted: Vec<http::HeaderName>,
    /// Response fields that carry purge tags.
    pub tag_headers: Vec<http::HeaderName>,
    /// Pass the tag fields on to clients.
    pub expose_tags: bool,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("routes", &self.router)
            .field("tls_listeners", &self.tls.keys().collect::<Vec<_>>())
            .field("max_object_size", &self.max_object_size)
            .finish()
    }
}

impl Runtime {
    /// The origins' clients.
    pub fn upstreams(&self) -> &[Arc<Upstream>] {
        &self.upstreams
    }

    /// Builds the snapshot for `config`, reusing the connection pools of
    /// `previous` for origins whose settings did not change.
    pub fn build(
        config: &Config,
        previous: Option<&Runtime>,
        metrics: &Metrics,
    ) -> Result<Self, BuildError> {
        let mut upstreams: HashMap<&str, Arc<Upstream>> = HashMap::new();
        for origin in &config.origins {
            let same_name =
                previous.and_then(|p| p.upstreams.iter().find(|u| u.origin().name == origin.name));
            let upstream = match same_name {
                Some(upstream) if upstream.origin() == origin => upstream.clone(),
                earlier => Arc::new(Upstream::new(
                    origin.clone(),
                    metrics.clone(),
                    earlier.map(|u| u.as_ref()),
                )?),
            };
            upstreams.insert(origin.name.as_str(), upstream);
        }
        let mut routes = Vec::with_capacity(config.routes.len());
        for route in &config.routes {
            let upstream = upstreams
                .get(route.origin.as_str())
                .cloned()
                .ok_or_else(|| BuildError::UnknownOrigin {
                    route: route.name.clone(),
                    origin: route.origin.clone(),
                })?;
            let origin = upstream.origin();
            let name: Arc<str> = route.name.as_str().into();
            routes.push((
                route.host.clone(),
                route.path_prefix.clone(),
                Arc::new(Route {
                    counters: metrics.route_counters(name.clone()),
                    name,
                    origin_name: origin.name.as_str().into(),
                    origin_id: origin.id().into(),
                    upstream,
                    ttl: route.ttl,
                    policy: route.policy,
                    key: route.key.clone(),
                    compress: route.compress,
                    slice: route.slice,
                }),
            ));
        }
        let tls = config
            .listeners
            .iter()
            .filter_map(|l| Some((l.address, TlsAcceptor::from(l.tls.as_ref()?.server.clone()))))
            .collect();
        Ok(Runtime {
            router: Router::new(routes),
            upstreams: upstreams.into_values().collect(),
            tls,
            max_object_size: config.cache.max_object_size,
            compress_min_size: config.cache.compress_min_size,
            retention: Retention {
                grace: config.cache.grace,
                keep: config.cache.keep,
            },
            targeted: config.cache.targeted.clone(),
            tag_headers: config.cache.tag_headers.clone(),
            expose_tags: config.cache.expose_tags,
        })
    }

    /// The route for a normalized authority and a path.
    pub fn route(&self, authority: &str, path: &str) -> Option<&Arc<Route>> {
        self.router.find(authority, path)
    }

    /// Whether a restored entry's key is still served, and with which TTL
    /// cap: its route must lead to the same origin and cache.
    pub fn placement_of(&self, key: &CacheKey) -> Placement {
        let Some(parts) = key.parts() else {
            return Placement::Unrouted;
        };
        match self.route(parts.authority, parts.path) {
            Some(route) if &*route.origin_id == parts.origin && route.policy != Policy::Bypass => {
                Placement::Ttl(route.ttl)
            }
            _ => Placement::Unrouted,
        }
    }

    /// The TLS acceptor of the listener configured at `address`, if it
    /// serves HTTPS.
    pub fn tls_acceptor(&self, address: &SocketAddr) -> Option<TlsAcceptor> {
        self.tls.get(address).cloned()
    }

    /// Every route, in matching order.
    pub fn routes(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.router.iter().map(|(_, _, route)| route)
    }

    /// Hosts and prefixes served, in matching order (for reload logs).
    pub fn route_names(&self) -> Vec<String> {
        self.router
            .iter()
            .map(|(host, prefix, route)| match host {
                HostMatch::Any => format!("{prefix} -> {}", route.origin_name),
                _ => format!("{host}{prefix} -> {}", route.origin_name),
            })
            .collect()
    }
}
