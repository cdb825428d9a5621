//! The `caching-proxy` binary: parse flags, load and validate the
//! configuration, run, and map errors to one line and an exit code.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use caching_proxy::admin::{self, ClearOutcome};
use caching_proxy::app::{self, RunningProxy};
use caching_proxy::cli::Cli;
use caching_proxy::clock::SystemClock;
use caching_proxy::{Error, telemetry};
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = if cli.clear_cache {
        runtime.block_on(clear(&cli))
    } else if cli.check_config {
        check(&cli)
    } else {
        runtime.block_on(serve(&cli))
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}

async fn serve(cli: &Cli) -> Result<(), Error> {
    let running = app::start_from(cli.source(), Arc::new(SystemClock)).await?;
    reload_on_sighup(&running);
    wait_for_stop_signal().await;
    tracing::info!("shutting down");
    running.shutdown().await
}

/// `--check-config`: validate, print what would be served, exit.
fn check(cli: &Cli) -> Result<(), Error> {
    let config = cli.source().load()?;
    match &cli.config {
        Some(path) => println!("configuration OK: {}", path.display()),
        None => println!("configuration OK"),
    }
    print!("{}", config.describe());
    Ok(())
}

async fn clear(cli: &Cli) -> Result<(), Error> {
    let cache_file = match (&cli.cache_file, &cli.config) {
        (Some(file), _) => file.clone(),
        (None, Some(_)) => cli.source().load()?.cache.file,
        (None, None) => PathBuf::from("cache.json"),
    };
    match admin::clear_cache(&cache_file).await? {
        ClearOutcome::Instance { purged } => {
            tracing::debug!(purged, "running instance cleared");
        }
        ClearOutcome::FileOnly => {}
    }
    println!("Cache cleared successfully");
    Ok(())
}

/// SIGHUP reloads the configuration file.
fn reload_on_sighup(running: &RunningProxy) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let reloader = running.reloader().clone();
        match signal(SignalKind::hangup()) {
            Ok(mut hangups) => {
                tokio::spawn(async move {
                    while hangups.recv().await.is_some() {
                        // The outcome is logged by the reloader.
                        let _ = reloader.reload("SIGHUP").await;
                    }
                });
            }
            Err(err) => tracing::warn!(error = %err, "SIGHUP reload unavailable"),
        }
    }
}

/// SIGTERM or SIGINT (Ctrl-C).
async fn wait_for_stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
