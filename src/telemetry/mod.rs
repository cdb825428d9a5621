//! Logging: tracing to stderr, filtered by `RUST_LOG` (default `info`), as
//! text or JSON (`--log-format`), written in batches by [`writer`].

pub mod timestamp;
pub mod writer;

use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing_subscriber::EnvFilter;

use writer::{BatchWriter, FlushGuard};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

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
            let _ = ACCESS_SINK.set(AccessSink {
                writer: writer.clone(),
                format,
            });
            install(format, filter, ansi, writer);
            Some(guard)
        }
        Err(_) => {
            install(format, filter, ansi, std::io::stderr);
            None
        }
    }
}

/// Where access-log lines go once [`init`] ran: formatted by the request
/// path itself (tracing's field-by-field formatting cost more than the
/// rest of a cache hit), in the format the rest of the log uses.
#[derive(Debug)]
pub struct AccessSink {
    writer: BatchWriter,
    /// Text or JSON.
    pub format: LogFormat,
}

static ACCESS_SINK: OnceLock<AccessSink> = OnceLock::new();

impl AccessSink {
    /// The process's sink, if [`init`] installed one.
    pub fn get() -> Option<&'static AccessSink> {
        ACCESS_SINK.get()
    }

    /// Queues one formatted line (ending in a newline).
    pub fn write(&self, line: Vec<u8>) {
        self.writer.send_line(line);
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
