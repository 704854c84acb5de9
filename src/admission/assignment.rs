//! The stored assignment: what the service said last, kept in the state
//! directory so a gateway that boots while the service is unreachable still
//! knows its cluster. Never holds the auth key.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::auth_mode::AuthMode;
use super::codec::{BootstrapResponse, DerpMapRef};
use crate::primitives::Timestamp;
use crate::state::{StateDir, StateError};

/// File name of the stored assignment.
pub const ASSIGNMENT_FILE: &str = "admission.json";
/// File name of the assigned cluster's DERP map (Tailscale JSON), which
/// netcheck uses when `netcheck.derp_map` is empty.
pub const DERP_MAP_FILE: &str = "admission-derp.json";

/// The assignment as stored and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// Assigned cluster.
    pub cluster_id: String,
    /// Its headscale URL.
    pub headscale_url: String,
    /// How it logs in.
    pub auth_mode: AuthMode,
    /// The DERP map URL the service named, if it gave a URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derp_map_url: Option<String>,
    /// Whether the service gave a DERP map inline.
    #[serde(default)]
    pub derp_map_inline: bool,
    /// The service's note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// When the service gave it.
    pub registered_at: Timestamp,
    /// The service URL that gave it.
    pub service: String,
}

impl Assignment {
    /// The assignment in an answer (without its key).
    pub fn from_response(r: &BootstrapResponse, service: &str) -> Self {
        Self {
            cluster_id: r.cluster_id.clone(),
            headscale_url: r.headscale_url.clone(),
            auth_mode: r.auth_mode,
            derp_map_url: match &r.derp_map {
                Some(DerpMapRef::Url(u)) => Some(u.clone()),
                _ => None,
            },
            derp_map_inline: matches!(r.derp_map, Some(DerpMapRef::Inline(_))),
            note: r.note.clone(),
            registered_at: Timestamp::now(),
            service: service.to_string(),
        }
    }

    /// Cluster "A" on `headscale_url` with `auth_mode`, nothing else set: the
    /// fixture of the provisioning and service tests.
    #[cfg(test)]
    pub(crate) fn for_test(headscale_url: &str, auth_mode: &str) -> Self {
        Self {
            cluster_id: "A".into(),
            headscale_url: headscale_url.into(),
            auth_mode: AuthMode::from_name(auth_mode).expect("a test names a real auth mode"),
            derp_map_url: None,
            derp_map_inline: false,
            note: None,
            registered_at: Timestamp::default(),
            service: String::new(),
        }
    }

    /// Same cluster and control server as `other`?
    pub fn same_place(&self, other: &Assignment) -> bool {
        self.cluster_id == other.cluster_id && same_url(&self.headscale_url, &other.headscale_url)
    }

    /// The stored assignment, if any (a corrupt file is moved aside).
    pub fn load(dir: &StateDir) -> Result<Option<Self>, StateError> {
        dir.read_json(ASSIGNMENT_FILE)
    }

    /// Store atomically.
    pub fn store(&self, dir: &StateDir) -> Result<(), StateError> {
        dir.write_json(ASSIGNMENT_FILE, self)
    }
}

/// Store the cluster's DERP map (already validated) for netcheck.
pub fn store_derp_map(dir: &StateDir, map: &serde_json::Value) -> Result<(), StateError> {
    dir.write_json(DERP_MAP_FILE, map)
}

/// Where netcheck finds the assigned DERP map, if one was stored.
pub fn stored_derp_map(state_dir: &Path) -> Option<PathBuf> {
    let p = state_dir.join(DERP_MAP_FILE);
    p.is_file().then_some(p)
}

/// Control URLs compare equal regardless of a trailing slash and case of
/// the scheme and host.
pub fn same_url(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        let s = s.trim_end_matches('/');
        match s.split_once("://") {
            Some((scheme, rest)) => {
                let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
                format!(
                    "{}://{}/{}",
                    scheme.to_ascii_lowercase(),
                    host.to_ascii_lowercase(),
                    path
                )
            }
            None => s.to_string(),
        }
    };
    norm(a) == norm(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response() -> BootstrapResponse {
        super::super::codec::decode_response(
            br#"{"cluster_id":"A","headscale_url":"http://hs-a:8080","auth_mode":"authkey","auth_key":"secret-key-1","derp_map":"https://derp.example/map.json"}"#,
        )
        .unwrap()
    }

    #[test]
    fn stored_assignment_never_holds_the_key() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path()).unwrap();
        let a = Assignment::from_response(&response(), "https://acs.example");
        a.store(&dir).unwrap();
        let text = std::fs::read_to_string(tmp.path().join(ASSIGNMENT_FILE)).unwrap();
        assert!(!text.contains("secret-key-1"), "{text}");
        assert_eq!(Assignment::load(&dir).unwrap(), Some(a.clone()));
        assert_eq!(
            a.derp_map_url.as_deref(),
            Some("https://derp.example/map.json")
        );
    }

    #[test]
    fn urls_compare_loosely() {
        assert!(same_url("http://HS-A:8080/", "http://hs-a:8080"));
        assert!(!same_url("http://hs-a:8080", "http://hs-b:8080"));
        let a = Assignment::from_response(&response(), "x");
        let mut b = a.clone();
        b.headscale_url.push('/');
        assert!(a.same_place(&b));
        b.cluster_id = "B".into();
        assert!(!a.same_place(&b));
    }
}
