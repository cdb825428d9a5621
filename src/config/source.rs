//! Where a [`Config`] comes from: an optional TOML file plus CLI flags that
//! override it for the single-origin case. Loading at startup, for
//! `--check-config` and on every reload goes through [`ConfigSource::load`].

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::{ConfigError, Place};
use super::file::{
    AdminSection, DurationValue, FileConfig, ListenerSection, OriginSection, SizeValue,
};
use super::locate::{line_and_column, position_of};
use super::{Config, Origin, validate};

/// Flags that override the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--port`: replaces the listeners with `[::]:PORT`.
    pub port: Option<u16>,
    /// `--origin`: replaces origins and routes with one catch-all origin.
    pub origin: Option<String>,
    /// `--cache-ttl` in seconds.
    pub cache_ttl: Option<u64>,
    /// `--cache-file` (relative to the working directory).
    pub cache_file: Option<PathBuf>,
    /// `--timeout` in seconds, for every origin.
    pub timeout: Option<u64>,
    /// `--cache-size` in bytes.
    pub cache_size: Option<u64>,
    /// `--max-object-size` in bytes.
    pub max_object_size: Option<u64>,
    /// `--shared-cache URL`: the fleet's Redis.
    pub shared_cache: Option<String>,
    /// `--admin ADDR`: the admin API's address.
    pub admin: Option<std::net::SocketAddr>,
    /// The admin token from the environment (`CACHING_PROXY_ADMIN_TOKEN`),
    /// used when the file gives none.
    pub admin_token: Option<String>,
}

impl Overrides {
    fn apply(&self, raw: &mut FileConfig) {
        if let Some(port) = self.port {
            raw.listeners = vec![ListenerSection {
                address: format!("[::]:{port}"),
                tls: None,
            }];
        }
        if let Some(url) = &self.origin {
            raw.origins = vec![OriginSection {
                name: "default".into(),
                url: Some(url.clone()),
                servers: None,
                balance: None,
                retries: None,
                host: None,
                timeout: None,
                read_timeout: None,
                connect_timeout: None,
                ca_file: None,
                pool_idle_timeout: None,
                max_connections: None,
                resolve_every: None,
                health: None,
            }];
            raw.routes = Vec::new();
        }
        if let Some(timeout) = self.timeout {
            for origin in &mut raw.origins {
                origin.timeout = Some(DurationValue::Seconds(to_i64(timeout)));
            }
        }
        if let Some(ttl) = self.cache_ttl {
            raw.cache.ttl = Some(DurationValue::Seconds(to_i64(ttl)));
        }
        if let Some(size) = self.cache_size {
            raw.cache.max_size = Some(SizeValue::Bytes(to_i64(size)));
        }
        if let Some(url) = &self.shared_cache {
            let shared = raw.cache.shared.get_or_insert_with(Default::default);
            shared.url = Some(url.clone());
            shared.urls = None;
        }
        if let Some(size) = self.max_object_size {
            raw.cache.max_object_size = Some(SizeValue::Bytes(to_i64(size)));
        }
        if self.admin.is_some() || self.admin_token.is_some() {
            let section = raw.admin.get_or_insert(AdminSection {
                address: None,
                token: None,
                token_file: None,
            });
            if let Some(address) = self.admin {
                section.address = Some(address.to_string());
            }
            if section.token.is_none() && section.token_file.is_none() {
                section.token = self.admin_token.clone();
            }
        }
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A config file (optional) and the flags that override it.
#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    /// `--config FILE`
    pub path: Option<PathBuf>,
    /// The other flags.
    pub overrides: Overrides,
}

impl ConfigSource {
    /// Reads, parses, overrides and validates.
    pub fn load(&self) -> Result<Config, ConfigError> {
        match &self.path {
            None => self.parse("", None),
            Some(path) => {
                let text = fs::read_to_string(path).map_err(|source| ConfigError::Unreadable {
                    path: path.clone(),
                    source,
                })?;
                self.parse(&text, Some(path))
            }
        }
    }

    /// Parses `text` as the file at `path` would be.
    pub fn parse(&self, text: &str, path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut raw: FileConfig = toml::from_str(text).map_err(|e| toml_error(path, text, &e))?;
        if let Some(url) = &self.overrides.origin {
            // The flag's own error, without a file position.
            Origin::parse(url, Duration::from_secs(30))?;
        }
        self.overrides.apply(&mut raw);
        let base_dir = path
            .and_then(Path::parent)
            .filter(|dir| !dir.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut config = validate(&raw, base_dir).map_err(|err| match path {
            Some(path) => err.placed(|key| Place {
                file: path.to_owned(),
                position: position_of(text, key),
            }),
            None => err,
        })?;
        if let Some(file) = &self.overrides.cache_file {
            config.cache.file = file.clone();
        }
        Ok(config)
    }
}

/// A TOML syntax or type error, at its place in the file.
fn toml_error(path: Option<&Path>, text: &str, err: &toml::de::Error) -> ConfigError {
    ConfigError::Syntax {
        at: Place {
            file: path.map_or_else(|| PathBuf::from("<flags>"), Path::to_owned),
            position: err.span().map(|span| line_and_column(text, span.start)),
        },
        message: err.message().trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Policy;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        ConfigSource::default().parse(text, Some(Path::new("/etc/cp/proxy.toml")))
    }

    fn error(text: &str) -> String {
        match parse(text) {
            Err(e) => crate::error::chain(&e),
            Ok(_) => panic!("accepted: {text}"),
        }
    }

    const MINIMAL: &str = "[[listeners]]\naddress = \"127.0.0.1:3000\"\n[[origins]]\nname = \"a\"\nurl = \"http://127.0.0.1:9\"\n";

    #[test]
    fn minimal_file_gets_a_catch_all_route() {
        let config = parse(MINIMAL).unwrap();
        assert_eq!(config.routes.len(), 1);
        assert_eq!(config.routes[0].origin, "a");
        assert_eq!(config.cache.file, PathBuf::from("/etc/cp/cache.json"));
    }

    #[test]
    fn syntax_and_unknown_keys_name_line_and_column() {
        let e = error("[cache]\nttl = 5\ntll = 3\n");
        assert!(e.contains("proxy.toml:3:1:"), "{e}");
        assert!(e.contains("unknown field `tll`"), "{e}");
        let e = error("[[listeners]]\naddress = \n");
        assert!(e.contains("proxy.toml:2:"), "{e}");
    }

    #[test]
    fn semantic_errors_name_the_key() {
        let e = error(&format!("{MINIMAL}[[routes]]\norigin = \"b\"\n"));
        assert!(
            e.contains("routes[0].origin: unknown origin 'b' (known: a)"),
            "{e}"
        );
        let e = error(&format!(
            "{MINIMAL}[[listeners]]\naddress = \"127.0.0.1:3000\"\n"
        ));
        assert!(e.contains("listeners[1].address"), "{e}");
        let e = error(&format!("{MINIMAL}[cache]\nttl = \"soon\"\n"));
        assert!(e.contains("cache.ttl"), "{e}");
        let e = error(&format!(
            "{MINIMAL}[[routes]]\norigin = \"a\"\npolicy = \"force\"\n"
        ));
        assert!(e.contains("routes[0].policy"), "{e}");
        let e = error(&format!(
            "{MINIMAL}[[routes]]\norigin = \"a\"\nhost = \"a.test:80\"\n"
        ));
        assert!(e.contains("routes[0].host"), "{e}");
        let e = error(
            "[[listeners]]\naddress = \"127.0.0.1:1\"\n[[origins]]\nname = \"a\"\nurl = \"ftp://x\"\n",
        );
        assert!(
            e.contains("origins[0].url: invalid origin URL 'ftp://x'"),
            "{e}"
        );
        assert!(error("").contains("listeners"));
        let e = error(
            "[[listeners]]\naddress = \"127.0.0.1:1\"\ntls = { cert = \"missing.pem\", key = \"k.pem\" }\n[[origins]]\nname = \"a\"\nurl = \"http://h\"\n",
        );
        assert!(
            e.contains("listeners[0].tls.cert: cannot read /etc/cp/missing.pem"),
            "{e}"
        );
        let e = error(&format!("{MINIMAL}[limits]\nmax_connections = 0\n"));
        assert!(e.contains("limits.max_connections"), "{e}");
        let e = error(&format!("{MINIMAL}[cache]\nmax_size = -1\n"));
        assert!(e.contains("cache.max_size: must not be negative"), "{e}");
        let e = error(&format!("{MINIMAL}[admin]\naddress = \"0.0.0.0:9901\"\n"));
        assert!(
            e.contains("admin.address: off loopback the admin API needs a token"),
            "{e}"
        );
    }

    #[test]
    fn durations_and_sizes_accept_units() {
        let config = parse(&format!(
            "{MINIMAL}[cache]\nttl = \"5m\"\nmax_size = \"1GiB\"\nmax_object_size = 1024\n[[routes]]\norigin = \"a\"\nttl = 60\npolicy = \"force\"\n"
        ))
        .unwrap();
        assert_eq!(config.cache.ttl, Some(Duration::from_secs(300)));
        assert_eq!(config.cache.max_size, 1 << 30);
        assert_eq!(config.cache.max_object_size, 1024);
        assert_eq!(config.routes[0].ttl, Some(Duration::from_secs(60)));
        assert_eq!(config.routes[0].policy, Policy::Force);
    }

    #[test]
    fn flags_override_the_file() {
        let source = ConfigSource {
            path: None,
            overrides: Overrides {
                port: Some(8080),
                origin: Some("http://127.0.0.1:9/api".into()),
                cache_ttl: Some(60),
                cache_file: Some("c.json".into()),
                ..Overrides::default()
            },
        };
        let config = source
            .parse(MINIMAL, Some(Path::new("proxy.toml")))
            .unwrap();
        assert_eq!(config.listeners[0].address.to_string(), "[::]:8080");
        assert_eq!(config.origins[0].name, "default");
        assert_eq!(config.routes[0].ttl, Some(Duration::from_secs(60)));
        assert_eq!(config.cache.file, PathBuf::from("c.json"));
    }

    #[test]
    fn a_bad_origin_flag_is_its_own_error() {
        let source = ConfigSource {
            path: None,
            overrides: Overrides {
                port: Some(1),
                origin: Some("nope".into()),
                ..Overrides::default()
            },
        };
        let e = source.load().unwrap_err();
        assert!(
            e.to_string().starts_with("invalid origin URL 'nope': "),
            "{e}"
        );
    }
}
