//! Durations written the way people write them: "30s", "5m", "1h".

use std::fmt;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration read from and written to configuration as text like `"30s"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(Duration);

/// The longest duration any key accepts: every interval and timeout is
/// added to an `Instant`, and nothing here sensibly waits longer than this.
/// Keys with a smaller sane range check it on top (`config::within`).
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

impl HumanDuration {
    /// Whole seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    /// The wrapped duration.
    pub const fn get(&self) -> Duration {
        self.0
    }

    /// Parse `"30s"`, `"5m"`, `"1h"`, `"500ms"`, `"1h30m"`.
    pub fn parse(text: &str) -> Result<Self, DurationError> {
        let t = text.trim();
        let invalid = || DurationError::Invalid(text.to_owned());
        if t.is_empty() || !t.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(invalid());
        }
        let d = humantime::parse_duration(t).map_err(|_| invalid())?;
        if d > MAX_DURATION {
            return Err(DurationError::TooLong(text.to_owned()));
        }
        Ok(Self(d))
    }
}

/// Why a duration's text was refused (the text is quoted back).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not a number with a unit.
    #[error(
        "invalid duration {0:?}: expected a number with a unit, like \"30s\", \"5m\" or \"1h\""
    )]
    Invalid(String),
    /// Longer than [`MAX_DURATION`].
    #[error("duration {0:?} is too long: expected at most 30days (30 days)")]
    TooLong(String),
}

impl From<Duration> for HumanDuration {
    fn from(d: Duration) -> Self {
        Self(d)
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string like \"30s\", \"5m\" or \"1h\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                HumanDuration::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        assert_eq!(
            HumanDuration::parse("30s").unwrap().get(),
            Duration::from_secs(30)
        );
        assert_eq!(
            HumanDuration::parse("5m").unwrap().get(),
            Duration::from_secs(300)
        );
        assert_eq!(
            HumanDuration::parse("1h").unwrap().get(),
            Duration::from_secs(3600)
        );
        assert_eq!(
            HumanDuration::parse("1h30m").unwrap().get(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            HumanDuration::parse("500ms").unwrap().get(),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn rejects_junk() {
        for bad in ["", "s", "5x", "-5s", "five minutes", "30"] {
            let err = HumanDuration::parse(bad).unwrap_err();
            assert!(matches!(err, DurationError::Invalid(_)), "{bad}: {err}");
            assert!(err.to_string().contains("invalid duration"), "{bad}: {err}");
        }
    }

    #[test]
    fn refuses_what_would_overflow_an_instant() {
        assert_eq!(HumanDuration::parse("30d").unwrap().get(), MAX_DURATION);
        for huge in ["18446744073709551615s", "999999999999h", "30d 1s"] {
            let err = HumanDuration::parse(huge).unwrap_err();
            assert!(matches!(err, DurationError::TooLong(_)), "{huge}: {err}");
            assert!(err.to_string().contains("too long"), "{huge}: {err}");
        }
    }

    #[test]
    fn displays_back() {
        assert_eq!(HumanDuration::from_secs(90).to_string(), "1m 30s");
    }
}
