//! Raw file config to typed [`Config`], once, at the edge. Every error
//! names the key it is about (`routes[1].origin: ...`).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::error::ConfigError;
use super::file::{
    DurationValue, FileConfig, ListenerSection, OriginSection, PolicyName, RouteSection,
};
use super::values::{bytes, duration, invalid, slice_size};
use super::{
    AdminConfig, CacheConfig, Config, HostMatch, ListenerConfig, ListenerTls, MAX_TTL_SECS, Origin,
    Policy, RouteConfig, TtlFrom,
};

const DAY: Duration = Duration::from_secs(86_400);

/// Validates `raw`; relative paths are taken from `base_dir` (the config
/// file's directory).
pub fn validate(raw: &FileConfig, base_dir: &Path) -> Result<Config, ConfigError> {
    let mut cache = validate_cache(raw, base_dir)?;
    if raw.listeners.is_empty() {
        return Err(invalid(
            "listeners",
            "at least one [[listeners]] is required",
        ));
    }
    let mut seen = HashSet::new();
    let mut listeners = Vec::new();
    for (i, section) in raw.listeners.iter().enumerate() {
        let listener = validate_listener(section, &format!("listeners[{i}]"), base_dir)?;
        if !seen.insert(listener.address) {
            return Err(invalid(
                &format!("listeners[{i}].address"),
                format!("{} is listed twice", listener.address),
            ));
        }
        listeners.push(listener);
    }
    if let Some(section) = &raw.cache.shared {
        let port = listeners.first().map_or(0, |l| l.address.port());
        cache.shared = Some(super::shared::validate_shared(section, port)?);
    }
    if raw.origins.is_empty() {
        return Err(invalid("origins", "at least one [[origins]] is required"));
    }
    let mut names = HashSet::new();
    let mut origins = Vec::new();
    for (i, section) in raw.origins.iter().enumerate() {
        let origin = validate_origin(section, &format!("origins[{i}]"), base_dir)?;
        if !names.insert(origin.name.clone()) {
            return Err(invalid(
                &format!("origins[{i}].name"),
                format!("'{}' is used twice", origin.name),
            ));
        }
        origins.push(origin);
    }
    let routes = if raw.routes.is_empty() {
        if origins.len() > 1 {
            return Err(invalid(
                "routes",
                "with more than one origin, [[routes]] must say which requests go where",
            ));
        }
        vec![RouteConfig::catch_all(origins[0].name.clone(), cache.ttl)]
    } else {
        raw.routes
            .iter()
            .enumerate()
            .map(|(i, r)| validate_route(r, &format!("routes[{i}]"), &names, &cache))
            .collect::<Result<_, _>>()?
    };
    let limits = super::limits::validate_limits(&raw.limits)?;
    let admin = validate_admin(raw, base_dir)?;
    Ok(Config {
        listeners,
        origins,
        routes,
        cache,
        limits,
        admin,
    })
}

fn validate_cache(raw: &FileConfig, base_dir: &Path) -> Result<CacheConfig, ConfigError> {
    let section = &raw.cache;
    let file = section
        .file
        .clone()
        .unwrap_or_else(|| PathBuf::from("cache.json"));
    let mut cache = CacheConfig::with_file(base_dir.join(file));
    cache.ttl = section
        .ttl
        .as_ref()
        .map(|t| ttl("cache.ttl", t))
        .transpose()?;
    if let Some(size) = &section.max_size {
        cache.max_size = bytes("cache.max_size", size)?;
    }
    if let Some(size) = &section.max_object_size {
        cache.max_object_size = bytes("cache.max_object_size", size)?;
    }
    if let Some(size) = &section.compress_min_size {
        cache.compress_min_size = bytes("cache.compress_min_size", size)?;
    }
    if cache.max_object_size > cache.max_size {
        return Err(invalid(
            "cache.max_object_size",
            "must not exceed cache.max_size",
        ));
    }
    if let Some(grace) = &section.grace {
        cache.grace = duration("cache.grace", grace, Duration::ZERO, DAY)?;
    }
    if let Some(keep) = &section.keep {
        cache.keep = duration(
            "cache.keep",
            keep,
            Duration::ZERO,
            Duration::from_secs(MAX_TTL_SECS),
        )?;
    }
    if let Some(names) = &section.targeted_cache_control {
        cache.targeted = header_names("cache.targeted_cache_control", names)?;
    }
    if let Some(names) = &section.tag_headers {
        cache.tag_headers = header_names("cache.tag_headers", names)?;
    }
    if let Some(expose) = section.expose_tag_headers {
        cache.expose_tags = expose;
    }
    if let Some(delay) = &section.write_delay {
        cache.write_delay = duration(
            "cache.write_delay",
            delay,
            Duration::ZERO,
            Duration::from_secs(3600),
        )?;
    }
    if let Some(wait) = &section.load_wait {
        cache.load_wait = duration(
            "cache.load_wait",
            wait,
            Duration::ZERO,
            Duration::from_secs(3600),
        )?;
    }
    Ok(cache)
}

fn validate_listener(
    section: &ListenerSection,
    key: &str,
    base_dir: &Path,
) -> Result<ListenerConfig, ConfigError> {
    let address = socket_addr(&format!("{key}.address"), &section.address)?;
    let tls = match &section.tls {
        None => None,
        Some(tls) => {
            let cert = base_dir.join(&tls.cert);
            let key_file = base_dir.join(&tls.key);
            let chain = load_certs(&format!("{key}.tls.cert"), &cert)?;
            let private_key = PrivateKeyDer::from_pem_file(&key_file).map_err(|e| {
                ConfigError::invalid_because(
                    format!("{key}.tls.key"),
                    format!("cannot read {}", key_file.display()),
                    e,
                )
            })?;
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut server = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .and_then(|b| b.with_no_client_auth().with_single_cert(chain, private_key))
                .map_err(|e| {
                    ConfigError::invalid_because(
                        format!("{key}.tls"),
                        "certificate and key do not fit",
                        e,
                    )
                })?;
            server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            Some(ListenerTls {
                cert,
                key: key_file,
                server: Arc::new(server),
            })
        }
    };
    Ok(ListenerConfig { address, tls })
}

fn validate_origin(
    section: &OriginSection,
    key: &str,
    base_dir: &Path,
) -> Result<Origin, ConfigError> {
    if section.name.trim().is_empty() {
        return Err(invalid(&format!("{key}.name"), "must not be empty"));
    }
    let timeout = match &section.timeout {
        Some(t) => duration(&format!("{key}.timeout"), t, Duration::from_secs(1), DAY)?,
        None => Duration::from_secs(30),
    };
    let mut origin = match (&section.url, &section.servers) {
        (Some(url), None) => Origin::parse(url, timeout)
            .map_err(|e| ConfigError::invalid(format!("{key}.url"), e))?,
        (None, Some(servers)) => super::servers::validate_servers(section, servers, key, timeout)?,
        (Some(_), Some(_)) => {
            return Err(invalid(key, "give url (one server) or servers, not both"));
        }
        (None, None) => return Err(invalid(&format!("{key}.url"), "is required (or servers)")),
    };
    if section.servers.is_none()
        && (section.balance.is_some() || section.host.is_some() || section.retries.is_some())
    {
        return Err(invalid(
            key,
            "balance, retries and host need servers = [...]",
        ));
    }
    origin.name = section.name.clone();
    if let Some(t) = &section.read_timeout {
        origin.read_timeout = duration(
            &format!("{key}.read_timeout"),
            t,
            Duration::from_millis(100),
            DAY,
        )?;
    }
    if let Some(t) = &section.connect_timeout {
        origin.connect_timeout = duration(
            &format!("{key}.connect_timeout"),
            t,
            Duration::from_millis(1),
            DAY,
        )?;
    }
    if let Some(t) = &section.pool_idle_timeout {
        origin.pool_idle_timeout =
            duration(&format!("{key}.pool_idle_timeout"), t, Duration::ZERO, DAY)?;
    }
    if let Some(ca_file) = &section.ca_file {
        let path = base_dir.join(ca_file);
        origin.extra_roots = load_certs(&format!("{key}.ca_file"), &path)?;
    }
    super::health::apply_pool_settings(section, key, &mut origin)?;
    Ok(origin)
}

fn validate_route(
    section: &RouteSection,
    key: &str,
    origins: &HashSet<String>,
    cache: &CacheConfig,
) -> Result<RouteConfig, ConfigError> {
    let default_ttl = cache.ttl;
    if !origins.contains(&section.origin) {
        let mut known: Vec<_> = origins.iter().map(String::as_str).collect();
        known.sort_unstable();
        return Err(invalid(
            &format!("{key}.origin"),
            format!(
                "unknown origin '{}' (known: {})",
                section.origin,
                known.join(", ")
            ),
        ));
    }
    if let Some(host) = &section.host {
        let bare = host.strip_prefix("*.").unwrap_or(host);
        let valid = !bare.is_empty()
            && !bare.contains('*')
            && http::uri::Authority::try_from(bare)
                .is_ok_and(|a| a.port().is_none() && a.as_str() == bare);
        if !valid {
            return Err(invalid(
                &format!("{key}.host"),
                format!("'{host}' is not a host name or *.suffix (no port, no path)"),
            ));
        }
    }
    let path_prefix = section.path_prefix.clone().unwrap_or_else(|| "/".into());
    if !path_prefix.starts_with('/') {
        return Err(invalid(
            &format!("{key}.path_prefix"),
            "must start with '/'",
        ));
    }
    let (ttl, ttl_from) = match &section.ttl {
        Some(t) => (Some(ttl(&format!("{key}.ttl"), t)?), TtlFrom::Route),
        None => (default_ttl, TtlFrom::Cache),
    };
    let policy = match section.policy.unwrap_or(PolicyName::Standard) {
        PolicyName::Standard => Policy::Standard,
        PolicyName::Force => Policy::Force,
        PolicyName::Bypass => Policy::Bypass,
    };
    if policy == Policy::Force && ttl.is_none() {
        return Err(invalid(
            &format!("{key}.policy"),
            "\"force\" needs a ttl (on the route or in [cache])",
        ));
    }
    let host = HostMatch::parse(section.host.as_deref());
    let name = section.name.clone().unwrap_or_else(|| match &host {
        HostMatch::Any => path_prefix.clone(),
        _ => format!("{host}{path_prefix}"),
    });
    Ok(RouteConfig {
        name,
        host,
        path_prefix,
        ttl_from,
        origin: section.origin.clone(),
        ttl,
        policy,
        key: super::route_key::key_rule(section.key.as_ref(), key)?,
        compress: section.compress.unwrap_or(true),
        slice: slice_size(
            &format!("{key}.slice"),
            section.slice.as_ref(),
            cache.max_object_size,
        )?,
    })
}

fn validate_admin(raw: &FileConfig, base_dir: &Path) -> Result<AdminConfig, ConfigError> {
    let Some(section) = &raw.admin else {
        return Ok(AdminConfig::default());
    };
    let address = section
        .address
        .as_deref()
        .map(|a| socket_addr("admin.address", a))
        .transpose()?;
    let token = match (&section.token, &section.token_file) {
        (Some(_), Some(_)) => {
            return Err(invalid("admin.token", "give token or token_file, not both"));
        }
        (Some(token), None) => Some(token.trim().to_owned()),
        (None, Some(file)) => {
            let path = base_dir.join(file);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ConfigError::invalid_because(
                    "admin.token_file",
                    format!("cannot read {}", path.display()),
                    e,
                )
            })?;
            Some(text.trim().to_owned())
        }
        (None, None) => None,
    };
    if token.as_deref() == Some("") {
        return Err(invalid("admin.token", "must not be empty"));
    }
    if address.is_some_and(|a| !a.ip().is_loopback()) && token.is_none() {
        return Err(invalid(
            "admin.address",
            "off loopback the admin API needs a token (admin.token, admin.token_file or CACHING_PROXY_ADMIN_TOKEN)",
        ));
    }
    Ok(AdminConfig { address, token })
}

fn header_names(key: &str, names: &[String]) -> Result<Vec<http::HeaderName>, ConfigError> {
    names
        .iter()
        .map(|n| {
            http::HeaderName::from_bytes(n.as_bytes())
                .map_err(|_| invalid(key, format!("'{n}' is not a header name")))
        })
        .collect()
}

/// Every certificate in a PEM file; none is an error.
fn load_certs(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| {
            ConfigError::invalid_because(key, format!("cannot read {}", path.display()), e)
        })?;
    if certs.is_empty() {
        return Err(invalid(
            key,
            format!("no certificate in {}", path.display()),
        ));
    }
    Ok(certs)
}

fn socket_addr(key: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse().map_err(|_| {
        invalid(
            key,
            format!("'{text}' is not an ip:port address (e.g. 0.0.0.0:3000 or [::]:3000)"),
        )
    })
}

fn ttl(key: &str, value: &DurationValue) -> Result<Duration, ConfigError> {
    duration(
        key,
        value,
        Duration::from_secs(1),
        Duration::from_secs(MAX_TTL_SECS),
    )
}
