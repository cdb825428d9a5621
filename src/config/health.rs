//! `[origins.health]`, `max_connections` and `resolve_every` of an origin:
//! how its servers are watched and bounded, checked once here.

use std::time::Duration;

use http::uri::PathAndQuery;

use super::error::ConfigError;
use super::file::{DurationValue, HealthSection, OriginSection};
use super::origin::{ActiveCheck, Health, Origin, Server};
use super::values::{duration, invalid};

/// Most requests in flight to one server.
const MAX_CONNECTIONS: u32 = 65_536;
/// Largest `fall` and `rise`.
const MAX_COUNT: u32 = 100;
const HOUR: Duration = Duration::from_secs(3600);

/// Sets `origin`'s health, connection bound and re-resolution from
/// `section`. A single-`url` origin with an active check becomes a group
/// of one server, so that the check can take it out.
pub(super) fn apply_pool_settings(
    section: &OriginSection,
    key: &str,
    origin: &mut Origin,
) -> Result<(), ConfigError> {
    if let Some(max) = section.max_connections {
        if !(1..=MAX_CONNECTIONS).contains(&max) {
            return Err(invalid(
                &format!("{key}.max_connections"),
                format!("must be 1 to {MAX_CONNECTIONS}"),
            ));
        }
        origin.max_connections = max;
    }
    if let Some(every) = &section.resolve_every {
        if section.servers.is_none() {
            return Err(invalid(
                &format!("{key}.resolve_every"),
                "needs servers = [...] (a single url is resolved on every connection)",
            ));
        }
        origin.resolve_every = duration(
            &format!("{key}.resolve_every"),
            every,
            Duration::from_secs(1),
            HOUR,
        )?;
    }
    if let Some(health) = &section.health {
        origin.health = validate_health(health, &format!("{key}.health"))?;
    }
    if origin.servers.is_empty() && origin.health.check.is_some() {
        origin.servers.push(Server {
            authority: origin.authority.clone(),
            weight: 1,
            backup: false,
        });
    }
    Ok(())
}

fn validate_health(section: &HealthSection, key: &str) -> Result<Health, ConfigError> {
    let defaults = Health::default();
    let count = |name: &str, value: Option<u32>, default: u32| match value {
        None => Ok(default),
        Some(n) if (1..=MAX_COUNT).contains(&n) => Ok(n),
        Some(_) => Err(invalid(
            &format!("{key}.{name}"),
            format!("must be 1 to {MAX_COUNT}"),
        )),
    };
    let fall = count("fall", section.fall, defaults.fall)?;
    let rise = count("rise", section.rise, defaults.rise)?;
    let within = |name: &str, value: &Option<DurationValue>, min: Duration, default: Duration| {
        value.as_ref().map_or(Ok(default), |t| {
            duration(&format!("{key}.{name}"), t, min, HOUR)
        })
    };
    let back_off = within(
        "back_off",
        &section.back_off,
        Duration::from_millis(100),
        defaults.back_off,
    )?;
    let check = match &section.path {
        None => {
            if section.interval.is_some() || section.timeout.is_some() {
                return Err(invalid(
                    key,
                    "interval and timeout need path (the check's URL path)",
                ));
            }
            None
        }
        Some(path) => {
            let path = path
                .parse::<PathAndQuery>()
                .ok()
                .filter(|p| p.as_str().starts_with('/'))
                .ok_or_else(|| invalid(&format!("{key}.path"), "must be a path like /healthz"))?;
            let interval = within(
                "interval",
                &section.interval,
                Duration::from_millis(100),
                Duration::from_secs(5),
            )?;
            let timeout = within(
                "timeout",
                &section.timeout,
                Duration::from_millis(10),
                Duration::from_secs(2).min(interval),
            )?;
            if timeout > interval {
                return Err(invalid(
                    &format!("{key}.timeout"),
                    "must not be longer than the interval",
                ));
            }
            Some(ActiveCheck {
                path,
                interval,
                timeout,
            })
        }
    };
    Ok(Health {
        check,
        fall,
        rise,
        back_off,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::servers::parse_one_origin as parse;
    use std::time::Duration;

    fn error(origin: &str) -> String {
        parse(origin).unwrap_err().to_string()
    }

    #[test]
    fn defaults_are_passive_only_with_a_bound() {
        let config = parse("url = \"http://127.0.0.1:1\"").unwrap();
        let origin = &config.origins[0];
        assert!(origin.health.check.is_none());
        assert_eq!((origin.health.fall, origin.health.rise), (3, 2));
        assert_eq!(origin.max_connections, 1024);
        assert!(origin.servers.is_empty(), "one url stays one url");
    }

    #[test]
    fn an_active_check_is_read_with_its_defaults() {
        let config = parse(
            "servers = [\"http://127.0.0.1:1\", \"http://127.0.0.1:2\"]\nmax_connections = 8\nresolve_every = \"5s\"\n[origins.health]\npath = \"/healthz\"\nfall = 2\nrise = 4\nback_off = \"3s\"",
        )
        .unwrap();
        let origin = &config.origins[0];
        let check = origin.health.check.as_ref().unwrap();
        assert_eq!(check.path, "/healthz");
        assert_eq!(check.interval, Duration::from_secs(5));
        assert_eq!(check.timeout, Duration::from_secs(2));
        assert_eq!((origin.health.fall, origin.health.rise), (2, 4));
        assert_eq!(origin.health.back_off, Duration::from_secs(3));
        assert_eq!(origin.max_connections, 8);
        assert_eq!(origin.resolve_every, Duration::from_secs(5));
    }

    #[test]
    fn a_checked_single_url_is_a_group_of_one() {
        let config =
            parse("url = \"http://127.0.0.1:7\"\n[origins.health]\npath = \"/up\"").unwrap();
        let origin = &config.origins[0];
        assert_eq!(origin.servers.len(), 1);
        assert_eq!(origin.servers[0].authority, origin.authority);
    }

    #[test]
    fn mistakes_name_their_key() {
        let base = "servers = [\"http://127.0.0.1:1\"]\n";
        for (extra, key) in [
            ("max_connections = 0", "origins[0].max_connections"),
            (
                "[origins.health]\npath = \"healthz\"",
                "origins[0].health.path",
            ),
            ("[origins.health]\nfall = 0", "origins[0].health.fall"),
            ("[origins.health]\ninterval = \"5s\"", "origins[0].health"),
            (
                "[origins.health]\npath = \"/h\"\ninterval = \"1s\"\ntimeout = \"2s\"",
                "origins[0].health.timeout",
            ),
            ("[origins.health]\npath = \"/h\"\nbogus = 1", "bogus"),
        ] {
            let text = error(&format!("{base}{extra}"));
            assert!(text.contains(key), "{extra}: {text}");
        }
        let single = error("url = \"http://127.0.0.1:1\"\nresolve_every = \"5s\"");
        assert!(single.contains("resolve_every"), "{single}");
    }
}
