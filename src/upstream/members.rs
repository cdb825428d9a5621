//! The servers of one origin as they are now: a connection pool and a
//! balancer state per server. Rebuilt when a reload or a re-resolution
//! changes the list; a server that stays keeps its pool (when the
//! connection settings are the same) and its health.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use http::uri::Authority;

use super::SetupError;
use super::balance::{Balancer, Server, ServerSpec};
use super::dial::{Target, connector};
use super::pool::Pool;
use crate::config::{self, Origin};
use crate::metrics::{Metrics, Name};

/// The addresses names resolved to, by configured server.
pub type Resolved = HashMap<Authority, Vec<IpAddr>>;

/// An origin's servers now.
#[derive(Debug)]
pub struct Members {
    /// The settings they were built with.
    pub origin: Arc<Origin>,
    /// One per server, in the balancer's order.
    pub pools: Vec<Arc<Pool>>,
    /// Chooses among them (`None`: an origin with one URL).
    pub balancer: Option<Balancer>,
}

impl Members {
    /// The servers of `origin`, with names dialed at the addresses in
    /// `resolved` (by name when absent), taking over what `previous` has
    /// of each.
    pub fn build(
        origin: &Arc<Origin>,
        resolved: &Resolved,
        previous: Option<&Members>,
        metrics: &Metrics,
        tls: &rustls::ClientConfig,
    ) -> Result<Self, SetupError> {
        let reusable = previous.filter(|p| same_connections(&p.origin, origin));
        let pool_for = |target: Target| -> Result<Arc<Pool>, SetupError> {
            let kept = reusable.and_then(|p| p.pools.iter().find(|pool| *pool.server() == target));
            match kept {
                Some(pool) => Ok(pool.clone()),
                None => {
                    let connector = connector(origin, &target, tls);
                    Ok(Arc::new(Pool::new(origin, target, connector)?))
                }
            }
        };
        if origin.servers.is_empty() {
            let pool = pool_for(Target::named(&origin.authority))?;
            return Ok(Members {
                origin: origin.clone(),
                pools: vec![pool],
                balancer: None,
            });
        }
        let origin_label = Name(origin.name.as_str().into());
        let mut pools = Vec::new();
        let mut servers = Vec::new();
        for (configured, target) in configured_targets(origin, resolved) {
            {
                let spec = ServerSpec {
                    name: target.name.clone(),
                    weight: configured.weight,
                    backup: configured.backup,
                };
                servers.push(server_for(spec, origin, previous, metrics, &origin_label));
                pools.push(pool_for(target)?);
            }
        }
        if let Some(previous) = previous {
            for gone in previous.servers() {
                if !servers.iter().any(|s| s.spec.name == gone.spec.name) {
                    metrics.servers.forget(&origin_label, &gone.spec.name);
                }
            }
        }
        Ok(Members {
            origin: origin.clone(),
            pools,
            balancer: Some(Balancer::new(servers, origin.balance)),
        })
    }

    /// The servers' states (none for an origin with one URL).
    pub fn servers(&self) -> &[Arc<Server>] {
        self.balancer.as_ref().map_or(&[], |b| b.servers())
    }

    /// The servers dialed now.
    pub fn targets(&self) -> impl Iterator<Item = &Target> {
        self.pools.iter().map(|p| p.server())
    }
}

/// What `origin`'s servers are dialed as, in order.
pub fn targets_of(origin: &Origin, resolved: &Resolved) -> Vec<Target> {
    configured_targets(origin, resolved)
        .into_iter()
        .map(|(_, target)| target)
        .collect()
}

/// Each configured server with what it is dialed as: each address its
/// name resolved to, or itself (an address, or a name not resolved yet).
fn configured_targets<'a>(
    origin: &'a Origin,
    resolved: &Resolved,
) -> Vec<(&'a config::Server, Target)> {
    let mut all = Vec::new();
    for configured in &origin.servers {
        match resolved.get(&configured.authority) {
            Some(addresses) if !addresses.is_empty() => all.extend(
                addresses
                    .iter()
                    .map(|a| (configured, Target::resolved(&configured.authority, *a))),
            ),
            _ => all.push((configured, Target::named(&configured.authority))),
        }
    }
    all
}

/// The state of the server `spec`: the previous one when nothing about it
/// changed, else a new one that keeps what the checks said.
fn server_for(
    spec: ServerSpec,
    origin: &Origin,
    previous: Option<&Members>,
    metrics: &Metrics,
    origin_label: &Name,
) -> Arc<Server> {
    let earlier = previous.and_then(|p| p.servers().iter().find(|s| s.spec.name == spec.name));
    let same_passive = previous.is_some_and(|p| {
        p.origin.health.fall == origin.health.fall
            && p.origin.health.back_off == origin.health.back_off
    });
    match earlier {
        Some(earlier) if earlier.spec == spec && same_passive => earlier.clone(),
        _ => {
            let gauges = metrics.servers.gauges(origin_label, &spec.name);
            let fresh = Server::new(spec, origin.health.fall, origin.health.back_off, gauges);
            Arc::new(match earlier {
                Some(earlier) => fresh.carrying(earlier),
                None => fresh,
            })
        }
    }
}

/// Whether pools built for `old` can serve `new` (everything a
/// connection depends on is the same).
fn same_connections(old: &Origin, new: &Origin) -> bool {
    old.scheme == new.scheme
        && old.authority == new.authority
        && old.connect_timeout == new.connect_timeout
        && old.pool_idle_timeout == new.pool_idle_timeout
        && old.extra_roots == new.extra_roots
        && old.max_connections == new.max_connections
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn origin(servers: &[(&str, u32)]) -> Arc<Origin> {
        let mut origin = Origin::parse("http://127.0.0.1:1", Duration::from_secs(1)).unwrap();
        origin.servers = servers
            .iter()
            .map(|(a, w)| config::Server {
                authority: a.parse().unwrap(),
                weight: *w,
                backup: false,
            })
            .collect();
        Arc::new(origin)
    }

    fn build(origin: &Arc<Origin>, resolved: &Resolved, previous: Option<&Members>) -> Members {
        let tls = super::super::dial::tls_config(origin).unwrap();
        Members::build(origin, resolved, previous, &Metrics::new(), &tls).unwrap()
    }

    #[tokio::test]
    async fn servers_that_stay_keep_their_pool_and_health() {
        let first = origin(&[("127.0.0.1:1", 1), ("127.0.0.1:2", 1)]);
        let before = build(&first, &Resolved::new(), None);
        before.servers()[0].set_checked_up(false);
        let second = origin(&[("127.0.0.1:1", 1), ("127.0.0.1:2", 3), ("127.0.0.1:3", 1)]);
        let after = build(&second, &Resolved::new(), Some(&before));
        assert!(Arc::ptr_eq(&before.pools[0], &after.pools[0]));
        assert!(Arc::ptr_eq(&before.pools[1], &after.pools[1]));
        assert!(Arc::ptr_eq(&before.servers()[0], &after.servers()[0]));
        assert!(!after.servers()[0].is_up(), "still out");
        assert_eq!(after.servers()[1].spec.weight, 3, "the new weight");
        assert_eq!(after.servers().len(), 3);
    }

    #[tokio::test]
    async fn a_name_is_as_many_servers_as_it_has_addresses() {
        let named = origin(&[("localhost:8080", 2)]);
        let unresolved = build(&named, &Resolved::new(), None);
        assert_eq!(unresolved.servers().len(), 1);
        let mut resolved = Resolved::new();
        resolved.insert(
            "localhost:8080".parse().unwrap(),
            vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()],
        );
        let members = build(&named, &resolved, Some(&unresolved));
        let names: Vec<&str> = members
            .servers()
            .iter()
            .map(|s| s.spec.name.as_str())
            .collect();
        assert_eq!(names, ["localhost:8080@127.0.0.1", "localhost:8080@::1"]);
        assert!(members.servers().iter().all(|s| s.spec.weight == 2));
        assert!(members.targets().all(|t| t.authority == "localhost:8080"));
    }
}
