//! Status primitives every section shares: health, severity, events and
//! time. A leaf: it imports nothing else of the crate, so every capability's
//! section type (`model.rs`) can use it while `status` composes the sections.

use serde::{Deserialize, Serialize};

pub mod redact;
pub mod time;
pub mod transport;

pub use time::{Timestamp, TimestampError};
pub use transport::Protocol;

/// Health of one capability, as every section reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Switched off in the configuration.
    Disabled,
    /// Configured, but cannot work (yet); `reason` says why.
    Unavailable,
    /// Working as intended.
    Ok,
    /// Working, but with a problem worth a look; `reason` says which.
    Degraded,
}

/// The state and reason every section carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Current health.
    pub state: State,
    /// Why the capability is not simply ok, in plain words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When `state` last changed.
    pub since: Timestamp,
}

impl Health {
    /// A health value stamped with the current time.
    pub fn new(state: State, reason: Option<String>) -> Self {
        Self {
            state,
            reason,
            since: Timestamp::now(),
        }
    }

    /// Replace state and reason; `since` moves only when the state changes.
    pub fn set(&mut self, state: State, reason: Option<String>) {
        if self.state != state {
            self.since = Timestamp::now();
        }
        self.state = state;
        // Reasons quote URLs and their errors: never with credentials.
        self.reason = reason.map(|r| redact::text(&r));
    }
}

/// Severity of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Normal operation worth recording.
    Info,
    /// Something is off but handled.
    Warn,
    /// Something failed.
    Error,
}

/// One thing that happened, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Monotonically increasing, across daemon restarts too.
    pub seq: u64,
    /// When it happened.
    pub time: Timestamp,
    /// Capability that emitted it (e.g. `network`, `portmap`).
    pub source: String,
    /// Machine-readable kind, e.g. `default_route.changed`.
    pub kind: String,
    /// Severity.
    pub level: Level,
    /// Plain words for a technician.
    pub message: String,
}
