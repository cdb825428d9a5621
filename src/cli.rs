//! Command-line flags (clap derive) and their translation into a
//! [`ConfigSource`]: the config file, if any, plus overriding flags.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{ConfigSource, MAX_TTL_SECS, Overrides, parse_size};
use crate::telemetry::LogFormat;

const EXAMPLES: &str = "\
Examples:
  caching-proxy --port 3000 --origin http://dummyjson.com
      Cache dummyjson.com on port 3000; curl -i localhost:3000/products
      answers X-Cache: MISS, then X-Cache: HIT.
  caching-proxy --port 8080 --origin https://api.example.com/v2 --cache-ttl 60
      Forward /x to https://api.example.com/v2/x; cached entries expire after
      60 seconds at most.
  caching-proxy --clear-cache
      Empty ./cache.json, and the memory of an instance running on it.
  caching-proxy --config proxy.toml
      Serve the listeners, origins and routes of proxy.toml; edits to the
      file apply live. Add --check-config to validate it and exit.
  caching-proxy cache explain http://localhost:3000/products
      Ask the running instance whether that URL would be a HIT, and why.

Log level: RUST_LOG (e.g. RUST_LOG=debug); one access-log line per request.";

/// A caching HTTP reverse proxy.
#[derive(Debug, Parser)]
#[command(
    name = "caching-proxy",
    version,
    about = "A caching HTTP reverse proxy: forwards requests to an origin and answers repeats from its cache",
    after_help = EXAMPLES,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    /// Port to listen on (1-65535), on all interfaces, IPv4 and IPv6.
    #[arg(
        long,
        value_name = "PORT",
        value_parser = clap::value_parser!(u16).range(1..),
        required_unless_present_any = ["clear_cache", "config", "health_check"]
    )]
    pub port: Option<u16>,

    /// Origin server to forward to: an absolute http:// or https:// URL; a
    /// path prefix is kept (--origin http://host/api maps /x to /api/x).
    #[arg(long, value_name = "URL", required_unless_present_any = ["clear_cache", "config", "health_check"])]
    pub origin: Option<String>,

    /// Default lifetime of a cached response, and a cap: no entry lives
    /// longer than SECONDS after it was stored. Without it, responses without
    /// their own freshness (max-age, Expires) stay until evicted or cleared.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=MAX_TTL_SECS))]
    pub cache_ttl: Option<u64>,

    /// Seconds to wait for the origin's response headers before answering
    /// 504 Gateway Timeout [default: 30].
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub timeout: Option<u64>,

    /// Where the cache is saved so that it survives restarts
    /// [default: cache.json].
    #[arg(long, value_name = "PATH")]
    pub cache_file: Option<PathBuf>,

    /// Memory the cache may use, e.g. 256MiB, 1GiB [default: 256MiB].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub cache_size: Option<u64>,

    /// Responses larger than this stream through uncached, e.g. 8MiB
    /// [default: 8MiB].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_object_size: Option<u64>,

    /// Share a second cache tier with the other instances of a fleet
    /// through this Redis (redis:// or rediss://): one origin fetch per URL
    /// for the whole fleet, purges everywhere (see docs/scale-out.md).
    #[arg(long, value_name = "URL")]
    pub shared_cache: Option<String>,

    /// Load listeners, origins, routes and cache settings from a TOML file
    /// (see proxy.example.toml); the other flags override it. Edits to the
    /// file apply live; SIGHUP reloads it too.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Validate the configuration, print what it would serve, and exit
    /// (0 if valid, 2 if not).
    #[arg(long, conflicts_with = "clear_cache")]
    pub check_config: bool,

    /// Empty the cache (the file, and the memory of an instance running on
    /// it, found through the cache file's .admin record or --admin ADDR;
    /// with a shared tier, every instance of the fleet), print "Cache
    /// cleared successfully" and exit.
    #[arg(long, conflicts_with_all = ["port", "origin", "cache_ttl"])]
    pub clear_cache: bool,

    /// Address of the admin API (health, metrics, purge, inspection); it
    /// needs a token (CACHING_PROXY_ADMIN_TOKEN) off loopback
    /// [default: an ephemeral port on 127.0.0.1]. The `cache` commands use
    /// it to find a running instance.
    #[arg(long, value_name = "ADDR", global = true)]
    pub admin: Option<SocketAddr>,

    /// Log format: text for people, json for machines.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// GET the URL, exit 0 if it answers 2xx within 5 s, else 1 (for
    /// container health checks).
    #[arg(long, value_name = "URL", conflicts_with_all = ["port", "origin", "clear_cache"])]
    pub health_check: Option<String>,

    /// Commands for a running instance.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect or purge the cache of a running instance (found through the
    /// cache file's .admin record, or --admin).
    Cache {
        /// What to do.
        #[command(subcommand)]
        action: CacheAction,
    },
    /// A live view of a running instance in the terminal (like varnishtop):
    /// requests, hit ratio, routes, the top URLs; q quits.
    Top,
    /// Write shell completions or the man page to standard output (for
    /// packagers: `caching-proxy generate man > caching-proxy.1`).
    #[command(hide = true)]
    Generate {
        /// What to write.
        #[command(subcommand)]
        what: Generated,
    },
}

/// `caching-proxy generate ...`
#[derive(Debug, Subcommand)]
pub enum Generated {
    /// Completions for a shell.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// The man page, caching-proxy(1), in roff.
    Man,
}

/// `caching-proxy cache ...`
#[derive(Debug, Subcommand)]
pub enum CacheAction {
    /// List stored entries.
    List {
        /// Only URLs containing this text.
        #[arg(long)]
        filter: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Show one URL's stored variants with their headers.
    Show {
        /// e.g. http://localhost:3000/products
        url: String,
    },
    /// Would a GET for this URL be a HIT or a MISS, and why?
    Explain {
        /// e.g. http://localhost:3000/products
        url: String,
    },
    /// Remove entries.
    Purge(PurgeArgs),
    /// Counters: entries, bytes, hits, misses, reloads, snapshots.
    Stats,
}

/// What to purge: exactly one.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct PurgeArgs {
    /// One URL, every variant.
    #[arg(long)]
    pub url: Option<String>,
    /// Every URL starting with this.
    #[arg(long)]
    pub prefix: Option<String>,
    /// Every entry tagged so (Surrogate-Key / Cache-Tag).
    #[arg(long)]
    pub tag: Option<String>,
    /// Everything.
    #[arg(long)]
    pub all: bool,
}

impl Cli {
    /// The config file and the flags that override it.
    pub fn source(&self) -> ConfigSource {
        ConfigSource {
            path: self.config.clone(),
            overrides: Overrides {
                port: self.port,
                origin: self.origin.clone(),
                cache_ttl: self.cache_ttl,
                cache_file: self.cache_file.clone(),
                timeout: self.timeout,
                cache_size: self.cache_size,
                max_object_size: self.max_object_size,
                shared_cache: self.shared_cache.clone(),
                admin: self.admin,
                admin_token: std::env::var(crate::admin::client::TOKEN_ENV).ok(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("caching-proxy").chain(args.iter().copied()))
    }

    #[test]
    fn port_range_is_enforced() {
        assert!(parse(&["--port", "0", "--origin", "http://h"]).is_err());
        assert!(parse(&["--port", "70000", "--origin", "http://h"]).is_err());
        assert!(parse(&["--port", "65535", "--origin", "http://h"]).is_ok());
    }

    #[test]
    fn port_and_origin_required_unless_clearing() {
        assert!(parse(&["--port", "3000"]).is_err());
        assert!(parse(&["--clear-cache"]).is_ok());
        assert!(parse(&["--clear-cache", "--port", "3000"]).is_err());
    }

    #[test]
    fn flags_become_config() {
        let cli = parse(&[
            "--port",
            "3000",
            "--origin",
            "http://h/api",
            "--cache-ttl",
            "60",
            "--max-object-size",
            "1MiB",
        ])
        .unwrap();
        let config = cli.source().load().unwrap();
        assert_eq!(config.listeners[0].address.port(), 3000);
        assert_eq!(config.cache.ttl, Some(Duration::from_secs(60)));
        assert_eq!(config.cache.max_object_size, 1024 * 1024);
        assert_eq!(config.origins[0].base_path, "/api");
        assert_eq!(config.origins[0].timeout, Duration::from_secs(30));
        assert_eq!(config.cache.file, PathBuf::from("./cache.json"));
    }

    #[test]
    fn a_config_file_makes_port_and_origin_optional() {
        assert!(parse(&["--config", "proxy.toml"]).is_ok());
        assert!(parse(&["--config", "proxy.toml", "--check-config"]).is_ok());
    }

    #[test]
    fn sizes_accept_units() {
        assert_eq!(parse_size("8MiB"), Ok(8 * 1024 * 1024));
        assert_eq!(parse_size("1024"), Ok(1024));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("0").is_err());
    }
}
