//! Logging: JSON lines when stdout is not a terminal (containers, files), readable text on a
//! terminal. `RUST_LOG` picks the levels (default `info`). Lines go through a buffer to a
//! thread of their own, so a thread serving requests never waits on stdout (a line is dropped,
//! not waited for, if 128k lines are ever pending).

use std::io::IsTerminal as _;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTo {
    Stdout,
    /// For a command whose standard output is its result (`dead-letters export`).
    Stderr,
}

/// Starts logging; keep the guard until the process ends (dropping it flushes the buffer).
pub fn init(to: LogTo) -> WorkerGuard {
    let (writer, guard) = match to {
        LogTo::Stdout => tracing_appender::non_blocking(std::io::stdout()),
        LogTo::Stderr => tracing_appender::non_blocking(std::io::stderr()),
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    // A second init (tests start several apps in one process) is harmless: keep the first.
    let _ = if std::io::stdout().is_terminal() {
        builder.try_init()
    } else {
        builder.json().with_current_span(false).try_init()
    };
    guard
}
