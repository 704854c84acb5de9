//! Bringing tailscaled onto the assigned cluster through its LocalAPI,
//! unattended: log it in when it is logged out or new, move it when the
//! cluster changed, and otherwise leave a working tailscaled alone.
//!
//! How tailscaled (v1.98) behaves, from its source: `POST /localapi/v0/start`
//! replaces the prefs with `UpdatePrefs` but keeps `Persist` (the node key):
//! "neither UpdatePrefs or reconciliation should change Persist"
//! (ipn/ipnlocal/local.go, startLocked), and it always builds a fresh
//! control client for the prefs' ControlURL. So a Start carrying the new
//! ControlURL moves the node to the new control server with the same node
//! key and makes it reconnect; only `tailscale up --force-reauth` (which adds
//! StartLoginInteractive) would make a new key. `UpdatePrefs` replaces every
//! pref, so we send tailscaled's own current prefs back with only ControlURL,
//! Hostname, WantRunning and LoggedOut changed.

use std::time::Duration;

use super::assignment::{same_url, Assignment};
use super::auth_mode::AuthMode;
use super::secret::Secret;
use crate::deadline::Later;
use crate::tailscale::client::{LocalApi, LocalApiError};

/// How long a start may take to show Running before we report it.
pub const SETTLE: Duration = Duration::from_secs(20);

/// What to do with tailscaled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Nothing: it is where it should be, or must not be touched; why.
    Leave(String),
    /// Log it in to the assigned cluster (it is logged out or new).
    Login,
    /// Move it from its current control server to the assigned one.
    Migrate {
        /// Where it is now.
        from: String,
    },
    /// It should move or log in, but there is no auth key to do it with.
    NeedKey(String),
}

/// Decide from tailscaled's backend state and control URL. `have_key` is
/// whether a fresh auth key from this registration is at hand.
pub fn plan(backend_state: &str, control_url: &str, a: &Assignment, have_key: bool) -> Plan {
    let key_ok = have_key || a.auth_mode == AuthMode::None;
    if a.auth_mode == AuthMode::Oidc {
        return Plan::Leave(
            "auth_mode oidc needs an interactive login; an unattended gateway needs authkey".into(),
        );
    }
    let on_cluster = same_url(control_url, &a.headscale_url);
    match backend_state {
        "NeedsLogin" | "NoState" => {
            if key_ok {
                Plan::Login
            } else {
                Plan::NeedKey(format!(
                    "tailscaled is {backend_state}; waiting for a fresh auth key from the service"
                ))
            }
        }
        "NeedsMachineAuth" => Plan::Leave(format!(
            "tailscaled waits for the node to be approved on {control_url}"
        )),
        "Running" | "Starting" | "Stopped" if !on_cluster => {
            if backend_state == "Stopped" {
                return Plan::Leave(format!(
                    "tailscaled was stopped by its operator (tailscale down); not moving it to {}",
                    a.headscale_url
                ));
            }
            if key_ok {
                Plan::Migrate {
                    from: control_url.to_string(),
                }
            } else {
                Plan::NeedKey(format!(
                    "tailscaled is on {control_url}, assigned {}; waiting for an auth key to move it",
                    a.headscale_url
                ))
            }
        }
        "Running" | "Starting" => Plan::Leave(format!(
            "tailscaled is {backend_state} on the assigned {}",
            a.headscale_url
        )),
        other => Plan::Leave(format!("tailscaled is {other}; left alone")),
    }
}

/// The `ipn.Options` for Start: tailscaled's current prefs with the fields
/// we own changed. The key goes in only here and only when given.
pub fn start_options(
    current_prefs: &serde_json::Value,
    control_url: &str,
    hostname: &str,
    auth_key: Option<&Secret>,
) -> serde_json::Value {
    let mut prefs = match current_prefs {
        serde_json::Value::Object(m) => m.clone(),
        _ => serde_json::Map::new(),
    };
    // Start ignores Persist; sending it back would only move key material
    // around for nothing.
    prefs.remove("Persist");
    prefs.insert("ControlURL".into(), control_url.into());
    prefs.insert("Hostname".into(), hostname.into());
    prefs.insert("WantRunning".into(), true.into());
    prefs.insert("LoggedOut".into(), false.into());
    let mut opts = serde_json::Map::new();
    opts.insert("UpdatePrefs".into(), serde_json::Value::Object(prefs));
    if let Some(k) = auth_key {
        opts.insert("AuthKey".into(), k.expose().into());
    }
    serde_json::Value::Object(opts)
}

/// What a start achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Backend state at the end of the wait.
    pub backend_state: String,
    /// Node key before and after (`nodekey:…`), when tailscaled had one.
    pub node_key_before: Option<String>,
    /// Node key after.
    pub node_key_after: Option<String>,
    /// Control URL after.
    pub control_url: String,
}

/// Start tailscaled on `a` with `auth_key` (consumed: dropped, and so
/// wiped, before this returns), then wait up to [`SETTLE`] for Running.
pub async fn start(
    api: &LocalApi,
    a: &Assignment,
    hostname: &str,
    auth_key: Option<Secret>,
) -> Result<Outcome, LocalApiError> {
    let before = api.status().await?;
    let prefs = api.prefs_json().await?;
    let opts = start_options(&prefs, &a.headscale_url, hostname, auth_key.as_ref());
    // The Secret wipes its copy on drop; the request body copy lives only
    // inside this call.
    drop(auth_key);
    let started = api.start(&opts).await;
    drop(opts);
    started?;
    // Start logs in by itself only a node that has a node key (a move);
    // a new node needs the login kicked, as `tailscale up` does.
    let node_key_before = before
        .self_node
        .as_ref()
        .map(|n| n.public_key.clone())
        .filter(|k| is_real_key(k));
    if node_key_before.is_none() {
        api.login_interactive().await?;
    }
    let deadline = tokio::time::Instant::now().later(SETTLE);
    let mut last = before.backend_state.clone();
    let mut after_key = None;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Ok(st) = api.status().await {
            last = st.backend_state.clone();
            after_key = st.self_node.as_ref().map(|n| n.public_key.clone());
            if last == "Running" {
                break;
            }
        }
    }
    let control_url = api.prefs().await.map(|p| p.control_url).unwrap_or_default();
    Ok(Outcome {
        backend_state: last,
        node_key_before,
        node_key_after: after_key.filter(|k| is_real_key(k)),
        control_url,
    })
}

/// tailscaled shows an all-zero node key before the first login.
fn is_real_key(k: &str) -> bool {
    let hex = k.strip_prefix("nodekey:").unwrap_or(k);
    !hex.is_empty() && hex.chars().any(|c| c != '0')
}

/// A node key shortened for messages (`nodekey:1234abcd…`).
pub fn short_key(k: &str) -> String {
    let end = k.len().min(16);
    format!("{}…", k.get(..end).unwrap_or(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assigned(mode: &str) -> Assignment {
        Assignment::for_test("http://203.0.113.30:8080", mode)
    }

    #[test]
    fn plans_follow_state_and_url() {
        let a = assigned("authkey");
        assert_eq!(plan("NeedsLogin", "", &a, true), Plan::Login);
        assert_eq!(plan("NoState", "", &a, true), Plan::Login);
        assert!(matches!(
            plan("NeedsLogin", "", &a, false),
            Plan::NeedKey(_)
        ));
        assert!(matches!(
            plan("Running", "http://203.0.113.30:8080/", &a, true),
            Plan::Leave(_)
        ));
        assert_eq!(
            plan("Running", "http://203.0.113.31:8080", &a, true),
            Plan::Migrate {
                from: "http://203.0.113.31:8080".into()
            }
        );
        assert!(matches!(
            plan("Running", "http://203.0.113.31:8080", &a, false),
            Plan::NeedKey(_)
        ));
        assert!(matches!(
            plan("Stopped", "http://203.0.113.31:8080", &a, true),
            Plan::Leave(_)
        ));
        assert!(matches!(
            plan("NeedsMachineAuth", "", &a, true),
            Plan::Leave(_)
        ));
        assert_eq!(
            plan("NeedsLogin", "", &assigned("none"), false),
            Plan::Login
        );
        assert!(matches!(
            plan("NeedsLogin", "", &assigned("oidc"), true),
            Plan::Leave(_)
        ));
    }

    #[test]
    fn zero_keys_are_no_keys() {
        assert!(!is_real_key(&format!("nodekey:{}", "0".repeat(64))));
        assert!(!is_real_key(""));
        assert!(is_real_key("nodekey:00ab"));
    }

    #[test]
    fn start_options_keep_other_prefs() {
        let cur = serde_json::json!({"ControlURL": "http://old", "RouteAll": true,
            "CorpDNS": false, "WantRunning": false, "LoggedOut": true, "Persist": {"x": 1}});
        let key = Secret::new("k-1".into());
        let o = start_options(&cur, "http://new", "gw-1", Some(&key));
        let p = &o["UpdatePrefs"];
        assert_eq!(p["ControlURL"], "http://new");
        assert_eq!(p["Hostname"], "gw-1");
        assert_eq!(p["WantRunning"], true);
        assert_eq!(p["LoggedOut"], false);
        assert_eq!(p["RouteAll"], true, "operator's prefs stay");
        assert_eq!(p["CorpDNS"], false);
        assert!(p.get("Persist").is_none());
        assert_eq!(o["AuthKey"], "k-1");
        assert!(start_options(&cur, "u", "h", None).get("AuthKey").is_none());
    }
}
