//! The `caching-proxy` binary: parse flags, validate, run, map errors to
//! one line and an exit code.

use std::process::ExitCode;
use std::sync::Arc;

use caching_proxy::admin::{self, ClearOutcome};
use caching_proxy::cli::Cli;
use caching_proxy::clock::SystemClock;
use caching_proxy::{Error, app, telemetry};
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
    } else {
        match cli.to_config() {
            Ok(config) => runtime.block_on(async {
                let running = app::start(config, Arc::new(SystemClock)).await?;
                wait_for_stop_signal().await;
                tracing::info!("shutting down");
                running.shutdown().await
            }),
            Err(err) => Err(err),
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}

async fn clear(cli: &Cli) -> Result<(), Error> {
    match admin::clear_cache(&cli.cache_file).await? {
        ClearOutcome::Instance { purged } => {
            tracing::debug!(purged, "running instance cleared");
        }
        ClearOutcome::FileOnly => {}
    }
    println!("Cache cleared successfully");
    Ok(())
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
