//! The TOML configuration: every section optional, unknown keys rejected, and
//! every error naming the file, the line and the key.

mod duration;
mod locate;
mod pinhole;
mod sections;
mod sparkplug;
mod validate;

use std::path::Path;

pub use duration::{DurationError, HumanDuration, MAX_DURATION};
pub use sections::*;
pub use sparkplug::{SparkplugConfig, TelemetryFormat};
pub use validate::{KeyError, Problem};

/// Where the daemon and the CLI look for the configuration by default.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/edgereach/edgereach.toml";

/// Largest configuration file accepted; anything bigger is a mistake.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// A configuration problem, located in its file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read, is no regular file or is too large
    /// (the message names the path).
    #[error("cannot read configuration: {0}")]
    Read(#[from] crate::fsread::ReadError),
    /// The file is not UTF-8 text.
    #[error("{path}: cannot read configuration: not UTF-8 text")]
    NotText {
        /// File that failed.
        path: String,
    },
    /// A key is unknown, has the wrong type or an invalid value.
    #[error("{path}:{line}: {key}: {message}")]
    Invalid {
        /// File that failed.
        path: String,
        /// 1-based line, or 0 when the problem has no single line.
        line: usize,
        /// Dotted key, e.g. `portmap.lease`.
        key: String,
        /// What was wrong and what was expected.
        message: String,
    },
}

impl Config {
    /// Read, parse and validate `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let bytes = crate::fsread::read_capped(path, MAX_CONFIG_BYTES)?;
        let text = String::from_utf8(bytes).map_err(|_| ConfigError::NotText {
            path: shown.clone(),
        })?;
        Self::parse(&text, &shown)
    }

    /// Parse and validate configuration text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let (line, key) = match e.span() {
                Some(span) => locate::key_at(text, span.start),
                None => (0, String::from("(file)")),
            };
            ConfigError::Invalid {
                path: origin.to_string(),
                line,
                key,
                message: one_line(e.message()),
            }
        })?;
        config.validate().map_err(|e| ConfigError::Invalid {
            path: origin.to_string(),
            line: locate::line_of_key(text, &e.key),
            message: e.problem.to_string(),
            key: e.key,
        })?;
        Ok(config)
    }
}

fn one_line(msg: &str) -> String {
    msg.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests;
