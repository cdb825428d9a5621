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
use crate::cli::{CacheAction, Cli};
use crate::config::ConfigError;

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
}

impl CommandError {
    /// The process exit code: 2 for a configuration that cannot be used
    /// (as for a usage error), 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            CommandError::Startup(err) => err.exit_code(),
            CommandError::Config(_) => 2,
            CommandError::Admin(_) => 1,
        }
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

/// `--clear-cache`.
pub async fn clear(cli: &Cli) -> Result<(), CommandError> {
    let cache_file = cache_file(cli)?;
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
        ClearOutcome::FileOnly => {}
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

/// `cache list|show|explain|purge|stats`: prints the admin API's JSON.
pub async fn cache(cli: &Cli, action: &CacheAction) -> Result<(), CommandError> {
    let cache_file = cache_file(cli)?;
    let token = std::env::var(TOKEN_ENV).ok();
    let target = Target::locate(&cache_file, cli.admin, token).ok_or_else(|| {
        AdminClientError::NoInstance {
            record: admin_file_path(&cache_file),
        }
    })?;
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
