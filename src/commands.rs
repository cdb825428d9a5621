//! The one-shot commands of the binary: `--check-config`, `--clear-cache`,
//! `--health-check` and `cache ...` (a client of a running instance's admin
//! API). Each prints its result on stdout and returns a [`CommandError`]
//! for main to print, with its exit code.

use std::path::PathBuf;

use http::Method;

use crate::admin::admin_file_path;
use crate::admin::client::{
    AdminClientError, ClearOutcome, TOKEN_ENV, Target, clear_cache, health_check,
};
use crate::app::StartupError;
use crate::cli::{CacheAction, Cli, Generated};
use crate::config::{ConfigError, SharedConfig, shared_from_url};
use crate::shared::client::TierError;
use crate::shared::log::clear_fleet;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The proxy could not start (or stop cleanly).
    #[error(transparent)]
    Startup(#[from] StartupError),
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The running instance could not be asked, or said no.
    #[error(transparent)]
    Admin(#[from] AdminClientError),
    /// `top` stopped on an error.
    #[error(transparent)]
    Top(#[from] crate::top::TopError),
    /// Standard output could not be written.
    #[error("cannot write the output")]
    Output(#[source] std::io::Error),
    /// The fleet's shared tier could not be told.
    #[error("the fleet's cache at {redis} was not cleared")]
    Fleet {
        /// Where it is (password hidden).
        redis: String,
        /// Why.
        #[source]
        source: TierError,
    },
}

impl CommandError {
    /// The process exit code: 2 for a configuration that cannot be used
    /// (as for a usage error), 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            CommandError::Startup(err) => err.exit_code(),
            CommandError::Config(_) => 2,
            CommandError::Admin(_)
            | CommandError::Fleet { .. }
            | CommandError::Output(_)
            | CommandError::Top(_) => 1,
        }
    }
}

/// `generate`: shell completions or the man page, from the flags' own
/// definitions (so they never drift from `--help`).
pub fn generate(what: &Generated) -> Result<(), CommandError> {
    use clap::CommandFactory;
    let mut command = Cli::command();
    let mut out = std::io::stdout().lock();
    match what {
        Generated::Completions { shell } => {
            clap_complete::generate(*shell, &mut command, "caching-proxy", &mut out);
            Ok(())
        }
        Generated::Man => clap_mangen::Man::new(command)
            .render(&mut out)
            .map_err(CommandError::Output),
    }
}

/// `--check-config`: validate, print what would be served.
pub fn check(cli: &Cli) -> Result<(), CommandError> {
    let config = cli.source().load()?;
    match &cli.config {
        Some(path) => println!("configuration OK: {}", path.display()),
        None => println!("configuration OK"),
    }
    print!("{}", config.describe());
    Ok(())
}

/// The cache file the flags point at (`--cache-file`, the config's, or
/// `./cache.json`).
fn cache_file(cli: &Cli) -> Result<PathBuf, ConfigError> {
    Ok(match (&cli.cache_file, &cli.config) {
        (Some(file), _) => file.clone(),
        (None, Some(_)) => cli.source().load()?.cache.file,
        (None, None) => PathBuf::from("cache.json"),
    })
}

/// The fleet's shared tier the flags point at (`--shared-cache`, or the
/// config's `[cache.shared]`).
fn shared_tier(cli: &Cli) -> Result<Option<SharedConfig>, ConfigError> {
    match (&cli.shared_cache, &cli.config) {
        (Some(url), _) => shared_from_url(url).map(Some),
        (None, Some(_)) => Ok(cli.source().load()?.cache.shared),
        (None, None) => Ok(None),
    }
}

/// `--clear-cache`: the instance running on the cache file (which carries
/// the purge to its fleet), or the file; and with a shared tier and no
/// instance here, the whole fleet through Redis.
pub async fn clear(cli: &Cli) -> Result<(), CommandError> {
    let cache_file = cache_file(cli)?;
    let shared = shared_tier(cli)?;
    match clear_cache(&cache_file, cli.admin).await? {
        ClearOutcome::Instance {
            purged,
            snapshot_error,
        } => {
            tracing::debug!(purged, "running instance cleared");
            if let Some(why) = snapshot_error {
                eprintln!(
                    "warning: the running instance emptied its memory but could not rewrite its snapshot ({why}); entries in it come back at its next start"
                );
            }
        }
        ClearOutcome::FileOnly => {
            if let Some(shared) = shared {
                let id = clear_fleet(&shared)
                    .await
                    .map_err(|source| CommandError::Fleet {
                        redis: shared.redis.describe(),
                        source,
                    })?;
                tracing::debug!(%id, "fleet cleared through the purge log");
            }
        }
    }
    println!("Cache cleared successfully");
    Ok(())
}

/// `--health-check URL`.
pub async fn health(url: &str) -> Result<(), CommandError> {
    health_check(url).await?;
    println!("ok");
    Ok(())
}

/// `top`: the running instance's dashboard in the terminal.
pub async fn top(cli: &Cli) -> Result<(), CommandError> {
    let target = locate(cli)?;
    crate::top::run(target).await?;
    Ok(())
}

/// The running instance the commands talk to: `--admin`, else the record
/// next to the cache file; the token from the environment or the record.
fn locate(cli: &Cli) -> Result<Target, CommandError> {
    let cache_file = cache_file(cli)?;
    let token = std::env::var(TOKEN_ENV).ok();
    Ok(
        Target::locate(&cache_file, cli.admin, token).ok_or_else(|| {
            AdminClientError::NoInstance {
                record: admin_file_path(&cache_file),
            }
        })?,
    )
}

/// `cache list|show|explain|purge|stats`: prints the admin API's JSON.
pub async fn cache(cli: &Cli, action: &CacheAction) -> Result<(), CommandError> {
    let target = locate(cli)?;
    let encode = |url: &str| form_urlencoded::byte_serialize(url.as_bytes()).collect::<String>();
    let (method, path, body) = match action {
        CacheAction::List { filter, limit } => {
            let filter = encode(filter.as_deref().unwrap_or(""));
            (
                Method::GET,
                format!("/cache/keys?filter={filter}&limit={limit}"),
                None,
            )
        }
        CacheAction::Show { url } => (
            Method::GET,
            format!("/cache/entry?url={}", encode(url)),
            None,
        ),
        CacheAction::Explain { url } => (
            Method::GET,
            format!("/cache/explain?url={}", encode(url)),
            None,
        ),
        CacheAction::Stats => (Method::GET, "/stats".to_owned(), None),
        CacheAction::Purge(what) => {
            let body = match (&what.url, &what.prefix, &what.tag) {
                (Some(url), _, _) => serde_json::json!({ "url": url }),
                (_, Some(prefix), _) => serde_json::json!({ "prefix": prefix }),
                (_, _, Some(tag)) => serde_json::json!({ "tag": tag }),
                _ => serde_json::json!({ "all": true }),
            };
            (Method::POST, "/purge".to_owned(), Some(body.to_string()))
        }
    };
    let answer = target.call(method, &path, body).await?;
    let pretty = serde_json::from_slice::<serde_json::Value>(&answer)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| String::from_utf8_lossy(&answer).into_owned());
    println!("{pretty}");
    Ok(())
}
