//! The task that watches an origin's servers off the request path: an
//! active check of each server every interval (`[origins.health]`), and
//! the re-resolution of servers named by a host name (`resolve_every`).
//! It ends with the origin's client.

use std::net::IpAddr;
use std::sync::{Arc, Weak};

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::Group;
use super::balance::Transition;
use super::dial::Target;
use super::members::{self, Members, Resolved};
use crate::config::ActiveCheck;

/// Whether `group`'s origin needs watching: checks, or names to resolve.
pub fn needed(group: &Group) -> bool {
    group.origin.health.check.is_some() || !named_servers(group).is_empty()
}

/// Checks and resolves until the client is gone.
pub async fn run(group: Weak<Group>) {
    let mut next_check = Instant::now();
    let mut next_resolve = Instant::now();
    loop {
        let Some(group) = group.upgrade() else {
            return;
        };
        let named = !named_servers(&group).is_empty();
        if named && Instant::now() >= next_resolve {
            resolve(&group).await;
            next_resolve = Instant::now() + group.origin.resolve_every;
        }
        if let Some(check) = &group.origin.health.check {
            if Instant::now() >= next_check {
                check_all(&group, check).await;
                next_check = Instant::now() + check.interval;
            }
        }
        let wake = match (&group.origin.health.check, named) {
            (Some(_), true) => next_check.min(next_resolve),
            (Some(_), false) => next_check,
            (None, true) => next_resolve,
            (None, false) => return,
        };
        drop(group);
        tokio::time::sleep_until(wake).await;
    }
}

/// One check of every server at once, each bounded by the check's
/// timeout; transitions are logged once.
async fn check_all(group: &Arc<Group>, check: &ActiveCheck) {
    let members = group.members.load_full();
    let mut checks = JoinSet::new();
    for (pool, server) in members.pools.iter().zip(members.servers()) {
        let (pool, server) = (pool.clone(), server.clone());
        let (path, timeout) = (check.path.clone(), check.timeout);
        checks.spawn(async move {
            let outcome = match tokio::time::timeout(timeout, pool.check(&path)).await {
                Ok(Ok(status)) if status.is_success() || status.is_redirection() => Ok(()),
                Ok(Ok(status)) => Err(format!("status {}", status.as_u16())),
                Ok(Err(err)) => Err(err.chain()),
                Err(_) => Err(format!("no answer within {timeout:?}")),
            };
            (server, outcome)
        });
    }
    let health = &group.origin.health;
    while let Some(done) = checks.join_next().await {
        let Ok((server, outcome)) = done else {
            continue;
        };
        let name = &server.spec.name;
        match outcome {
            Ok(()) => {
                if server.check_passed(health.rise) == Some(Transition::Up) {
                    tracing::info!(origin = %group.origin.name, server = %name, "origin server up: its health checks pass");
                    group.changed();
                }
            }
            Err(why) => {
                if server.check_failed(health.fall) == Some(Transition::Down) {
                    tracing::warn!(origin = %group.origin.name, server = %name, error = %why, "origin server down: its health checks fail");
                    group.changed();
                }
            }
        }
    }
}

/// Resolves every server named by a host name; when the addresses changed,
/// the servers become those addresses. A name that does not resolve keeps
/// the addresses it had.
async fn resolve(group: &Arc<Group>) {
    let current = group.members.load_full();
    let mut resolved = Resolved::new();
    for authority in named_servers(group) {
        let port = authority
            .port_u16()
            .unwrap_or(group.origin.scheme.default_port());
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        match tokio::net::lookup_host((host, port)).await {
            Ok(addrs) => {
                let mut ips: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
                ips.sort_unstable();
                ips.dedup();
                resolved.insert(authority, ips);
            }
            Err(err) => {
                tracing::warn!(origin = %group.origin.name, server = %authority, error = %err, "cannot resolve an origin server; keeping its addresses");
                let had: Vec<IpAddr> = current
                    .targets()
                    .filter(|t| t.authority == authority)
                    .filter_map(|t| t.address)
                    .collect();
                resolved.insert(authority, had);
            }
        }
    }
    let now: Vec<&Target> = current.targets().collect();
    let would = members::targets_of(&group.origin, &resolved);
    let unchanged = now.len() == would.len() && now.iter().zip(&would).all(|(a, b)| *a == b);
    if unchanged {
        return;
    }
    match Members::build(
        &group.origin,
        &resolved,
        Some(&current),
        &group.metrics,
        &group.tls,
    ) {
        Ok(members) => {
            let names: Vec<&str> = members
                .servers()
                .iter()
                .map(|s| s.spec.name.as_str())
                .collect();
            tracing::info!(origin = %group.origin.name, servers = ?names, "origin servers re-resolved");
            group.members.store(Arc::new(members));
            group.changed();
        }
        Err(err) => {
            tracing::warn!(origin = %group.origin.name, error = %err, "cannot use the re-resolved origin servers");
        }
    }
}

fn named_servers(group: &Group) -> Vec<http::uri::Authority> {
    group
        .origin
        .servers
        .iter()
        .filter(|s| Target::is_host_name(&s.authority))
        .map(|s| s.authority.clone())
        .collect()
}
