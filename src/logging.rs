//! Logging: journald when systemd started us, stderr otherwise.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, Registry};

/// Install the global subscriber. `level` is a tracing filter such as `info`
/// or `info,edgereach::portmap=debug`; an invalid one falls back to `info`
/// with a warning. `Targets` rather than `EnvFilter`: the same directives
/// without span/field matching, and without the regex engine EnvFilter links
/// in (about 10% of the stripped binary, which has a 4 MiB budget on ARM).
pub fn init(level: &str) {
    let (filter, bad_filter) = match level.parse::<Targets>() {
        Ok(f) => (f, None),
        Err(e) => (
            Targets::new().with_default(LevelFilter::INFO),
            Some(e.to_string()),
        ),
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

#[cfg(test)]
mod tests {
    use tracing::Level;
    use tracing_subscriber::filter::Targets;

    #[test]
    fn level_directives_keep_their_meaning() {
        let plain: Targets = "debug".parse().unwrap();
        assert!(plain.would_enable("edgereach::portmap", &Level::DEBUG));
        assert!(!plain.would_enable("edgereach::portmap", &Level::TRACE));

        let mixed: Targets = "info,edgereach::portmap=debug".parse().unwrap();
        assert!(mixed.would_enable("edgereach::portmap::upnp", &Level::DEBUG));
        assert!(!mixed.would_enable("edgereach::netcheck", &Level::DEBUG));
        assert!(mixed.would_enable("edgereach::netcheck", &Level::INFO));
        assert!(!mixed.would_enable("hyper", &Level::DEBUG));
    }

    #[test]
    fn a_bad_directive_is_an_error() {
        assert!("info,edgereach=warn=x".parse::<Targets>().is_err());
    }
}
