//! The health of each server of an origin with several
//! (`caching_proxy_origin_server_up`, `..._server_downs_total`), held by
//! the server's state so that a transition sets it without a lookup.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::Name;

/// Labels of the per-server metrics.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ServerLabels {
    /// The origin's name.
    pub origin: Name,
    /// The server, `host:port` (`host:port@address` for one address of a
    /// name).
    pub server: String,
}

/// One server's handles.
#[derive(Debug, Clone, Default)]
pub struct ServerGauges {
    /// 1 while requests may go to it.
    pub up: Gauge,
    /// Times it was taken out (by failed requests or by checks).
    pub downs: Counter,
}

/// Every server's metrics.
#[derive(Debug, Clone, Default)]
pub struct ServerMetrics {
    up: Family<ServerLabels, Gauge>,
    downs: Family<ServerLabels, Counter>,
}

impl ServerMetrics {
    /// Registers them in `registry`.
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "origin_server_up",
            "1 while a server of an origin takes requests, 0 while it is out",
            self.up.clone(),
        );
        registry.register(
            "origin_server_downs",
            "Times a server of an origin was taken out",
            self.downs.clone(),
        );
    }

    /// The handles of `server` of `origin`.
    pub fn gauges(&self, origin: &Name, server: &str) -> ServerGauges {
        let labels = ServerLabels {
            origin: origin.clone(),
            server: server.to_owned(),
        };
        ServerGauges {
            up: self.up.get_or_create(&labels).clone(),
            downs: self.downs.get_or_create(&labels).clone(),
        }
    }

    /// Forgets a server that is no longer configured.
    pub fn forget(&self, origin: &Name, server: &str) {
        let labels = ServerLabels {
            origin: origin.clone(),
            server: server.to_owned(),
        };
        self.up.remove(&labels);
        self.downs.remove(&labels);
    }
}
