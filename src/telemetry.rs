//! Logging: JSON lines when stdout is not a terminal (containers, files), readable text on a
//! terminal. `RUST_LOG` picks the levels (default `info`).

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    // A second init (tests start several apps in one process) is harmless: keep the first.
    let _ = if std::io::stdout().is_terminal() {
        builder.try_init()
    } else {
        builder.json().with_current_span(false).try_init()
    };
}
