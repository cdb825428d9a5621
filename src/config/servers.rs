//! `servers = [...]` of an origin: several servers of one scheme, sent one
//! `Host`, weighted, some of them backups; checked once here.

use std::time::Duration;

use http::uri::Authority;

use super::error::ConfigError;
use super::file::{BalanceName, OriginSection, ServerEntry};
use super::origin::{Balance, Origin, Server};
use super::values::invalid;

/// Most servers per origin.
const MAX_SERVERS: usize = 64;
/// Largest weight.
const MAX_WEIGHT: u32 = 100;
/// Most retries (each goes to another server).
const MAX_RETRIES: u32 = 8;

/// The origin `section` describes with `servers`.
pub(super) fn validate_servers(
    section: &OriginSection,
    entries: &[ServerEntry],
    key: &str,
    timeout: Duration,
) -> Result<Origin, ConfigError> {
    if entries.is_empty() || entries.len() > MAX_SERVERS {
        return Err(invalid(
            &format!("{key}.servers"),
            format!("must list 1 to {MAX_SERVERS} servers"),
        ));
    }
    let mut first: Option<Origin> = None;
    let mut servers = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let at = format!("{key}.servers[{i}]");
        let (url, weight, backup) = match entry {
            ServerEntry::Url(url) => (url, None, None),
            ServerEntry::Full(full) => (&full.url, full.weight, full.backup),
        };
        let parsed = Origin::parse(url, timeout).map_err(|e| ConfigError::invalid(&at, e))?;
        if !parsed.base_path.is_empty() {
            return Err(invalid(
                &at,
                "a server is scheme://host:port, without a path",
            ));
        }
        if let Some(first) = &first {
            if first.scheme != parsed.scheme {
                return Err(invalid(
                    &at,
                    "every server of an origin has the same scheme",
                ));
            }
        }
        let weight = weight.unwrap_or(1);
        if !(1..=MAX_WEIGHT).contains(&weight) {
            return Err(invalid(
                &format!("{at}.weight"),
                format!("must be 1 to {MAX_WEIGHT}"),
            ));
        }
        if servers
            .iter()
            .any(|s: &Server| s.authority == parsed.authority)
        {
            return Err(invalid(
                &at,
                format!("{} is listed twice", parsed.authority),
            ));
        }
        servers.push(Server {
            authority: parsed.authority.clone(),
            weight,
            backup: backup.unwrap_or(false),
        });
        first.get_or_insert(parsed);
    }
    if servers.iter().all(|s| s.backup) {
        return Err(invalid(
            &format!("{key}.servers"),
            "at least one server must not be a backup",
        ));
    }
    let mut origin = first.ok_or_else(|| invalid(&format!("{key}.servers"), "is empty"))?;
    if let Some(host) = &section.host {
        origin.authority = host
            .parse::<Authority>()
            .ok()
            .filter(|a| !a.host().is_empty() && !a.as_str().contains('@'))
            .ok_or_else(|| invalid(&format!("{key}.host"), "must be host or host:port"))?;
    }
    origin.servers = servers;
    origin.balance = match section.balance {
        None | Some(BalanceName::RoundRobin) => Balance::RoundRobin,
        Some(BalanceName::LeastConnections) => Balance::LeastConnections,
        Some(BalanceName::KeyHash) => Balance::KeyHash,
    };
    origin.retries = section.retries.unwrap_or(1);
    if origin.retries > MAX_RETRIES {
        return Err(invalid(
            &format!("{key}.retries"),
            format!("must be 0 to {MAX_RETRIES}"),
        ));
    }
    Ok(origin)
}

/// A config of one listener and the origin `origin` describes (its keys
/// after `name = "o"`), for the tests of origin settings.
#[cfg(test)]
pub(super) fn parse_one_origin(origin: &str) -> Result<super::Config, ConfigError> {
    let text = format!(
        "[[listeners]]\naddress = \"127.0.0.1:3000\"\n[[origins]]\nname = \"o\"\n{origin}\n"
    );
    super::ConfigSource::default().parse(&text, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn parse(origin: &str) -> Result<Config, ConfigError> {
        parse_one_origin(origin)
    }

    #[test]
    fn servers_weights_backups_and_host() {
        let config = parse(
            "servers = [\"http://10.0.0.1:8080\", { url = \"http://10.0.0.2:8080\", weight = 3 }, \
             { url = \"http://10.0.0.9:8080\", backup = true }]\nbalance = \"key_hash\"\nretries = 2\nhost = \"app.internal\"",
        )
        .unwrap();
        let origin = &config.origins[0];
        assert_eq!(origin.servers.len(), 3);
        assert_eq!(origin.servers[1].weight, 3);
        assert!(origin.servers[2].backup);
        assert_eq!(origin.balance, Balance::KeyHash);
        assert_eq!(origin.retries, 2);
        assert_eq!(origin.authority.as_str(), "app.internal");
        assert_eq!(origin.id(), "http://app.internal");
    }

    #[test]
    fn bad_server_lists_are_refused_with_their_key() {
        for (origin, key) in [
            ("url = \"http://a\"\nservers = [\"http://b\"]", "origins[0]"),
            ("servers = []", "origins[0].servers"),
            (
                "servers = [\"http://a\", \"https://b\"]",
                "origins[0].servers[1]",
            ),
            ("servers = [\"http://a/path\"]", "origins[0].servers[0]"),
            (
                "servers = [{ url = \"http://a\", weight = 0 }]",
                "origins[0].servers[0].weight",
            ),
            (
                "servers = [\"http://a\", \"http://a\"]",
                "origins[0].servers[1]",
            ),
            (
                "servers = [{ url = \"http://a\", backup = true }]",
                "origins[0].servers",
            ),
            (
                "servers = [\"http://a\"]\nretries = 9",
                "origins[0].retries",
            ),
            ("url = \"http://a\"\nbalance = \"key_hash\"", "origins[0]"),
        ] {
            let err = parse(origin).unwrap_err();
            assert_eq!(err.key(), Some(key), "{origin}: {err}");
        }
    }
}
