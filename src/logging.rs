//! Logging: journald when systemd started us, stderr otherwise.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Registry};

/// Install the global subscriber. `level` is a tracing filter such as `info`
/// or `edgereach=debug`; an invalid one falls back to `info` with a warning.
pub fn init(level: &str) {
    let (filter, bad_filter) = match EnvFilter::try_new(level) {
        Ok(f) => (f, None),
        Err(e) => (EnvFilter::new("info"), Some(e.to_string())),
    };
    // systemd sets JOURNAL_STREAM for services whose output goes to the journal.
    let under_systemd = std::env::var_os("JOURNAL_STREAM").is_some();
    let journald = if under_systemd {
        tracing_journald::layer().ok()
    } else {
        None
    };
    let fell_back = under_systemd && journald.is_none();
    let registry = Registry::default().with(filter);
    match journald {
        Some(layer) => registry.with(layer).init(),
        None => registry
            .with(
                fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .with_target(false),
            )
            .init(),
    }
    if fell_back {
        tracing::warn!("journald is not reachable; logging to stderr");
    }
    if let Some(e) = bad_filter {
        tracing::warn!("--log-level {level:?} is not a valid filter ({e}); using info");
    }
}
