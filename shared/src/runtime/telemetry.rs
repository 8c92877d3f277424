//! Logging: JSON lines on stdout (CloudWatch Logs), level from `RUST_LOG` (default `info`).

use tracing_subscriber::EnvFilter;

/// Installs the JSON subscriber once; later calls do nothing.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false)
        .try_init();
}
