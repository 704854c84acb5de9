//! Wall-clock instants in the status: one type for every "when", kept as a
//! time (so views compute ages and leases without parsing text back) and
//! written as RFC 3339 UTC with seconds precision on every wire.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// 9999-12-31T23:59:59Z, the last second RFC 3339 can write.
const LAST_UNIX_S: u64 = 253_402_300_799;

/// A wall-clock instant, whole seconds since the Unix epoch.
///
/// Whole seconds because that is what the JSON carries: a value read back
/// from the status (or the state dir) equals the one that was written, so a
/// round trip never looks like a change. The default is the epoch, for a
/// record built field by field before its time is set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    unix_s: u64,
}

/// A text that is not an RFC 3339 UTC time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an RFC 3339 UTC time (like 2026-12-04T18:30:00Z): {text:?}")]
pub struct TimestampError {
    /// The text, cut to 40 characters.
    pub text: String,
}

impl Timestamp {
    /// Now, by the system clock.
    pub fn now() -> Self {
        Self::at(SystemTime::now())
    }

    /// `t`, cut to whole seconds; a time before 1970 is the epoch, one after
    /// 9999 is the last second of 9999 (RFC 3339 has four year digits).
    pub fn at(t: SystemTime) -> Self {
        let unix_s = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Self::from_unix_secs(unix_s)
    }

    /// `unix_s` seconds after the epoch, at most the last second of 9999.
    pub fn from_unix_secs(unix_s: u64) -> Self {
        Self {
            unix_s: unix_s.min(LAST_UNIX_S),
        }
    }

    /// `d` from now (saturating far in the future).
    pub fn in_(d: Duration) -> Self {
        Self::from_unix_secs(Self::now().unix_s.saturating_add(d.as_secs()))
    }

    /// Seconds since the Unix epoch.
    pub fn unix_secs(self) -> u64 {
        self.unix_s
    }

    /// Milliseconds since the Unix epoch (Sparkplug's timestamps).
    pub fn unix_millis(self) -> u64 {
        self.unix_s.saturating_mul(1000)
    }

    /// As a `SystemTime`.
    pub fn system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.unix_s)
    }

    /// How long before `now` this was; zero if it is in the future.
    pub fn age_at(self, now: SystemTime) -> Duration {
        now.duration_since(self.system_time())
            .unwrap_or(Duration::ZERO)
    }

    /// How long after `now` this is; zero once past.
    pub fn left_at(self, now: SystemTime) -> Duration {
        self.system_time()
            .duration_since(now)
            .unwrap_or(Duration::ZERO)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}",
            humantime::format_rfc3339_seconds(self.system_time())
        )
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        humantime::parse_rfc3339(s)
            .map(Self::at)
            .map_err(|_| TimestampError {
                text: s.chars().take(40).collect(),
            })
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_as_rfc3339_seconds_and_read_back_equal() {
        let t = Timestamp::at(UNIX_EPOCH + Duration::from_millis(1_800_000_000_750));
        assert_eq!(t.to_string(), "2027-01-15T08:00:00Z");
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2027-01-15T08:00:00Z\"");
        let back: Timestamp = serde_json::from_str(&json).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.unix_millis(), 1_800_000_000_000);
    }

    #[test]
    fn ages_and_leases_never_go_negative() {
        let t = Timestamp::at(UNIX_EPOCH + Duration::from_secs(1000));
        let later = UNIX_EPOCH + Duration::from_secs(1030);
        assert_eq!(t.age_at(later), Duration::from_secs(30));
        assert_eq!(t.left_at(later), Duration::ZERO);
        let earlier = UNIX_EPOCH + Duration::from_secs(990);
        assert_eq!(t.age_at(earlier), Duration::ZERO);
        assert_eq!(t.left_at(earlier), Duration::from_secs(10));
    }

    #[test]
    fn bad_text_is_an_error_naming_it() {
        for bad in ["", "yesterday", "2026-13-01T00:00:00Z", "2026-12-04 18:30"] {
            let e = bad.parse::<Timestamp>().unwrap_err();
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
        assert!(serde_json::from_str::<Timestamp>("42").is_err());
        let long = "x".repeat(10_000);
        assert!(long.parse::<Timestamp>().unwrap_err().text.len() <= 40);
    }

    #[test]
    fn extreme_times_print_without_panicking() {
        let far = Timestamp::from_unix_secs(u64::MAX);
        assert_eq!(far.to_string(), "9999-12-31T23:59:59Z");
        assert_eq!(
            Timestamp::at(UNIX_EPOCH - Duration::from_secs(5)).unix_secs(),
            0
        );
    }
}
