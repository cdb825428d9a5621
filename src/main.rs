//! The `caching-proxy` binary: parse flags, pick the command, run it, and
//! map errors to one line and an exit code.

use std::process::ExitCode;
use std::sync::Arc;

use caching_proxy::app::{self, RunningProxy};
use caching_proxy::cli::{Cli, Command};
use caching_proxy::clock::SystemClock;
use caching_proxy::commands::{self, CommandError};
use caching_proxy::error::chain;
use caching_proxy::telemetry;
use clap::Parser;

/// jemalloc: it gives large freed blocks back, which the cache's memory
/// bound needs (`docs/architecture.md`, "The memory bound holds for the
/// process").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The async runtime: work-stealing threads, one per CPU; with one CPU to
/// run on (a pinned process, a one-CPU container), a single-threaded one.
/// There is nothing to steal from then, and the work-stealing scheduler's
/// bounded run queue sends the overflow of a busy moment (a thousand
/// connections, hundreds of HTTP/2 streams) to a queue it serves only now
/// and then: those requests waited many times the median
/// (bench/results/2026-12-08-0105-one-cpu-runtime.md).
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let one_cpu = std::thread::available_parallelism().is_ok_and(|cpus| cpus.get() == 1);
    let mut builder = if one_cpu {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder.enable_all().build()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _log_writer = telemetry::init(cli.log_format);
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = match (&cli.command, &cli.health_check) {
        (Some(Command::Cache { action }), _) => runtime.block_on(commands::cache(&cli, action)),
        (Some(Command::Generate { what }), _) => commands::generate(what),
        (Some(Command::Top), _) => runtime.block_on(commands::top(&cli)),
        (None, Some(url)) => runtime.block_on(commands::health(url)),
        (None, None) if cli.clear_cache => runtime.block_on(commands::clear(&cli)),
        (None, None) if cli.check_config => commands::check(&cli),
        (None, None) => runtime.block_on(serve(&cli)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", chain(&err));
            ExitCode::from(err.exit_code())
        }
    }
}

async fn serve(cli: &Cli) -> Result<(), CommandError> {
    let running = app::start_from(cli.source(), Arc::new(SystemClock)).await?;
    reload_on_sighup(&running);
    wait_for_stop_signal().await;
    tracing::info!("shutting down");
    Ok(running.shutdown().await?)
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
