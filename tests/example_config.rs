//! `proxy.example.toml` is valid and documents every section.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use caching_proxy::config::{ConfigSource, Policy};

#[test]
fn the_example_config_is_valid() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("proxy.example.toml");
    let config = ConfigSource {
        path: Some(path.clone()),
        overrides: Default::default(),
    }
    .load()
    .unwrap();
    assert_eq!(config.listeners.len(), 1);
    assert_eq!(config.origins.len(), 2);
    assert_eq!(config.routes.len(), 4);
    assert_eq!(config.cache.ttl, Some(Duration::from_secs(300)));
    assert_eq!(config.routes[1].policy, Policy::Force);
    assert_eq!(config.routes[2].slice, Some(1024 * 1024));
    assert_eq!(
        config.routes[3].ttl,
        Some(Duration::from_secs(300)),
        "inherits [cache].ttl"
    );
    assert_eq!(config.admin.address.map(|a| a.port()), Some(9901));

    let text = std::fs::read_to_string(&path).unwrap();
    for key in [
        "[cache]",
        "file =",
        "ttl =",
        "max_size =",
        "max_object_size =",
        "write_delay =",
        "grace =",
        "keep =",
        "targeted_cache_control =",
        "tag_headers =",
        "expose_tag_headers =",
        "[[listeners]]",
        "address =",
        "tls =",
        "[[origins]]",
        "name =",
        "url =",
        "timeout =",
        "connect_timeout =",
        "pool_idle_timeout =",
        "ca_file =",
        "[[routes]]",
        "host =",
        "path_prefix =",
        "origin =",
        "policy =",
        "[admin]",
        "token =",
        "token_file =",
        "[limits]",
        "max_connections =",
        "header_read_timeout =",
        "shutdown_grace =",
        "servers =",
        "balance =",
        "retries =",
        "resolve_every =",
        "[origins.health]",
        "interval =",
        "fall =",
        "rise =",
        "back_off =",
    ] {
        assert!(
            text.contains(key),
            "proxy.example.toml does not document {key}"
        );
    }
}

#[test]
fn the_commented_pool_of_servers_is_valid_once_uncommented() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("proxy.example.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let start = text
        .find("# [[origins]]\n# name = \"app\"")
        .expect("the pool example");
    let block: String = text[start..]
        .lines()
        .take_while(|l| l.starts_with('#'))
        .map(|l| format!("{}\n", l.trim_start_matches('#').trim_start()))
        .collect();
    let toml = format!("[[listeners]]\naddress = \"127.0.0.1:0\"\n{block}");
    let config = ConfigSource::default().parse(&toml, None).unwrap();
    let origin = &config.origins[0];
    assert_eq!(origin.servers.len(), 3);
    assert_eq!(origin.max_connections, 1024);
    let check = origin.health.check.as_ref().expect("an active check");
    assert_eq!(check.path, "/healthz");
    assert_eq!((origin.health.fall, origin.health.rise), (3, 2));
}
