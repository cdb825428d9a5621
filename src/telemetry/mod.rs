//! Logging: tracing to stderr, filtered by `RUST_LOG` (default `info`), as
//! text or JSON (`--log-format`), written in batches by [`writer`].

pub mod writer;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;
use writer::{BatchWriter, FlushGuard};

/// Installs the global subscriber: text or one JSON object per line,
/// written to stderr by a background thread (a request never waits for a
/// `write` system call). Keep the returned guard alive: dropping it
/// writes what is queued. Safe to call more than once. Without a thread
/// for the writer, lines are written directly.
pub fn init(format: LogFormat) -> Option<FlushGuard> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    match BatchWriter::spawn(std::io::stderr()) {
        Ok((writer, guard)) => {
            install(format, filter, ansi, writer);
            Some(guard)
        }
        Err(_) => {
            install(format, filter, ansi, std::io::stderr);
            None
        }
    }
}

fn install<W>(format: LogFormat, filter: EnvFilter, ansi: bool, writer: W)
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(true);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(ansi).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
