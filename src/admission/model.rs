//! The `admission` section of the status snapshot. Never holds a secret.

use serde::{Deserialize, Serialize};

pub use super::auth_mode::AuthMode;
use crate::primitives::{Health, State, Timestamp};

/// Registration with the admission service and what it assigned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdmissionStatus {
    /// Overall state and reason.
    #[serde(flatten)]
    pub health: Health,
    /// The service URL.
    pub service: Option<String>,
    /// The address it was last reached at (follows DNS).
    pub service_addr: Option<String>,
    /// Assigned cluster.
    pub cluster_id: Option<String>,
    /// Its headscale (tailscaled's control server).
    pub headscale_url: Option<String>,
    /// How it logs in.
    pub auth_mode: Option<AuthMode>,
    /// Where the cluster's DERP map came from: a URL, `inline`, or none.
    pub derp_map: Option<String>,
    /// The service's note.
    pub note: Option<String>,
    /// True while the assignment shown is the stored one from an earlier run.
    pub from_storage: bool,
    /// Last successful registration.
    pub last_registration: Option<Timestamp>,
    /// Last attempt, successful or not.
    pub last_attempt: Option<Timestamp>,
    /// Next planned attempt.
    pub next_attempt: Option<Timestamp>,
    /// The last failure, until a registration succeeds.
    pub last_error: Option<String>,
    /// Successful registrations since start.
    pub registrations: u64,
    /// Consecutive failures.
    pub failures: u32,
    /// What was last done with tailscaled, or why nothing.
    pub provisioning: Option<String>,
    /// Set when the bearer token goes over plain HTTP
    /// (`admission.allow_insecure_http`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<String>,
}

impl AdmissionStatus {
    /// Before the actor ran.
    pub fn starting() -> Self {
        Self {
            health: Health::new(State::Unavailable, Some("starting".into())),
            service: None,
            service_addr: None,
            cluster_id: None,
            headscale_url: None,
            auth_mode: None,
            derp_map: None,
            note: None,
            from_storage: false,
            last_registration: None,
            last_attempt: None,
            next_attempt: None,
            last_error: None,
            registrations: 0,
            failures: 0,
            provisioning: None,
            insecure: None,
        }
    }

    /// Show `a` (from storage or fresh).
    pub fn show(&mut self, a: &super::assignment::Assignment, from_storage: bool) {
        self.cluster_id = Some(a.cluster_id.clone());
        self.headscale_url = Some(crate::redact::url(&a.headscale_url));
        self.auth_mode = Some(a.auth_mode);
        self.derp_map = crate::redact::opt_url(a.derp_map_url.as_deref())
            .or_else(|| a.derp_map_inline.then(|| "inline".to_string()));
        self.note = a.note.clone();
        self.from_storage = from_storage;
        if from_storage {
            self.last_registration = Some(a.registered_at);
        }
    }
}
