//! The one line a reload logs: what changed, setting by setting (`cache.ttl:
//! 60s -> 120s`), and which changes wait for the next restart.

use std::fmt::Display;
use std::net::SocketAddr;
use std::time::Duration;

use crate::config::{Config, Origin, RouteConfig};

/// What changed between `old` and `new`, given the listeners a reload
/// added and removed and the route tables before and after.
pub fn describe(
    old: &Config,
    new: &Config,
    added: &[SocketAddr],
    removed: &[SocketAddr],
    routes_before: &[String],
    routes_after: &[String],
) -> String {
    let mut changes = Changes::default();
    let list = |addrs: &[SocketAddr]| {
        addrs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !added.is_empty() {
        changes.push(format!("listeners added: {}", list(added)));
    }
    if !removed.is_empty() {
        changes.push(format!("listeners removed: {}", list(removed)));
    }
    origins(&mut changes, &old.origins, &new.origins);
    if routes_before != routes_after {
        changes.push(format!("routes: {}", routes_after.join("; ")));
    }
    routes(&mut changes, &old.routes, &new.routes);
    let (a, b) = (&old.cache, &new.cache);
    changes.setting("cache.ttl", secs(a.ttl), secs(b.ttl));
    changes.setting(
        "cache.max_object_size",
        a.max_object_size,
        b.max_object_size,
    );
    changes.setting(
        "cache.compress_min_size",
        a.compress_min_size,
        b.compress_min_size,
    );
    changes.setting("cache.grace", secs(Some(a.grace)), secs(Some(b.grace)));
    changes.setting("cache.keep", secs(Some(a.keep)), secs(Some(b.keep)));
    changes.setting(
        "cache.targeted_cache_control",
        names(&a.targeted),
        names(&b.targeted),
    );
    changes.setting(
        "cache.tag_headers",
        names(&a.tag_headers),
        names(&b.tag_headers),
    );
    changes.setting("cache.expose_tag_headers", a.expose_tags, b.expose_tags);
    for (changed, what) in [
        (a.file != b.file, "cache.file"),
        (a.max_size != b.max_size, "cache.max_size"),
        (a.write_delay != b.write_delay, "cache.write_delay"),
        (a.load_wait != b.load_wait, "cache.load_wait"),
        (a.shared != b.shared, "cache.shared"),
        (old.admin != new.admin, "admin"),
        (old.limits != new.limits, "limits (for listeners that stay)"),
    ] {
        if changed {
            tracing::warn!("{what} changed: it applies at the next restart, not live");
            changes.push(format!("{what} needs a restart"));
        }
    }
    changes.finish()
}

#[derive(Default)]
struct Changes(Vec<String>);

impl Changes {
    fn push(&mut self, change: String) {
        self.0.push(change);
    }

    /// Notes `key: old -> new` when the value changed.
    fn setting<T: PartialEq + Display>(&mut self, key: &str, old: T, new: T) {
        if old != new {
            self.0.push(format!("{key}: {old} -> {new}"));
        }
    }

    fn finish(self) -> String {
        if self.0.is_empty() {
            "no change".into()
        } else {
            self.0.join("; ")
        }
    }
}

fn origins(changes: &mut Changes, old: &[Origin], new: &[Origin]) {
    let label = |o: &Origin| format!("{}={}", o.name, o.id());
    let added: Vec<_> = new
        .iter()
        .filter(|o| !old.iter().any(|p| p.name == o.name && p.id() == o.id()))
        .map(label)
        .collect();
    let removed: Vec<_> = old
        .iter()
        .filter(|o| !new.iter().any(|n| n.name == o.name && n.id() == o.id()))
        .map(label)
        .collect();
    if !added.is_empty() {
        changes.push(format!("origins added: {}", added.join(", ")));
    }
    if !removed.is_empty() {
        changes.push(format!("origins removed: {}", removed.join(", ")));
    }
    for o in new {
        let Some(p) = old.iter().find(|p| p.name == o.name && p.id() == o.id()) else {
            continue;
        };
        let key = |field: &str| format!("origins.{}.{field}", o.name);
        changes.setting(
            &key("timeout"),
            secs(Some(p.timeout)),
            secs(Some(o.timeout)),
        );
        changes.setting(
            &key("read_timeout"),
            secs(Some(p.read_timeout)),
            secs(Some(o.read_timeout)),
        );
        changes.setting(
            &key("connect_timeout"),
            secs(Some(p.connect_timeout)),
            secs(Some(o.connect_timeout)),
        );
        changes.setting(
            &key("pool_idle_timeout"),
            secs(Some(p.pool_idle_timeout)),
            secs(Some(o.pool_idle_timeout)),
        );
        if p.extra_roots != o.extra_roots {
            changes.push(format!("{}: new certificates", key("ca_file")));
        }
    }
}

fn routes(changes: &mut Changes, old: &[RouteConfig], new: &[RouteConfig]) {
    for route in new {
        let Some(before) = old.iter().find(|r| r.name == route.name) else {
            continue;
        };
        let key = |field: &str| format!("routes.{}.{field}", route.name);
        changes.setting(&key("ttl"), secs(before.ttl), secs(route.ttl));
        changes.setting(
            &key("policy"),
            before.policy.as_str(),
            route.policy.as_str(),
        );
        changes.setting(&key("compress"), before.compress, route.compress);
        changes.setting(&key("slice"), slice(before.slice), slice(route.slice));
        changes.setting(&key("key"), before.key.to_string(), route.key.to_string());
    }
}

/// A slice size as a log line says it.
fn slice(size: Option<u64>) -> String {
    size.map_or_else(|| "off".to_owned(), |bytes| format!("{bytes} bytes"))
}

/// A duration as the config file would spell it (`none` when unset).
fn secs(duration: Option<Duration>) -> String {
    duration.map_or("none".into(), |d| humantime::format_duration(d).to_string())
}

fn names(names: &[http::HeaderName]) -> String {
    let names: Vec<_> = names.iter().map(http::HeaderName::as_str).collect();
    format!("[{}]", names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Origin;

    fn config() -> Config {
        let origin = Origin::parse("http://o.test", Duration::from_secs(30)).unwrap();
        Config::single("127.0.0.1:0".parse().unwrap(), origin, "cache.json".into())
    }

    #[test]
    fn each_changed_setting_is_named_with_its_values() {
        let old = config();
        let mut new = config();
        new.cache.ttl = Some(Duration::from_secs(120));
        new.routes[0].ttl = new.cache.ttl;
        new.cache.grace = Duration::from_secs(30);
        new.origins[0].timeout = Duration::from_secs(5);
        let line = describe(&old, &new, &[], &[], &[], &[]);
        for part in [
            "cache.ttl: none -> 2m",
            "routes.default.ttl: none -> 2m",
            "cache.grace: 0s -> 30s",
            "origins.default.timeout: 30s -> 5s",
        ] {
            assert!(line.contains(part), "{part} not in {line}");
        }
        assert_eq!(describe(&old, &config(), &[], &[], &[], &[]), "no change");
    }

    #[test]
    fn settings_that_need_a_restart_say_so() {
        let old = config();
        let mut new = config();
        new.cache.max_size = 1 << 20;
        let line = describe(&old, &new, &[], &[], &[], &[]);
        assert_eq!(line, "cache.max_size needs a restart");
    }
}
