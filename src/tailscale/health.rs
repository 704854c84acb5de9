//! The tailscale section's health, and the facts the setup checks look at:
//! pure functions of what the actor knows, kept apart from the actor's I/O.

use super::api::{PingPath, TsStatus};
use super::model::{PeerStatus, PingStatus, SanityCheck};
use super::sanity;
use crate::config::Config;
use crate::netcheck::report::Report;
use crate::portmap::model::Mapped;
use crate::status::State;

/// The facts for [`sanity::check`] from the configuration, what portmap
/// holds and has seen of the router, and netcheck's latest report.
pub(super) fn facts(
    cfg: &Config,
    mapped: &Mapped,
    report: Option<&Report>,
    proc: Option<sanity::ProcFacts>,
    listen_port: Option<u16>,
    endpoints: &[String],
) -> sanity::Facts {
    let mapping = cfg
        .portmap
        .mapping
        .iter()
        .find(|m| m.name == cfg.tailscale.mapping)
        .filter(|_| cfg.portmap.enabled);
    // Held as the views say "ok": not one the proof found dead.
    let held = mapping.and_then(|m| {
        mapped
            .mappings
            .iter()
            .find(|h| h.name == m.name && !h.doubted)
    });
    sanity::Facts {
        proc,
        listen_port,
        // A mapping that follows tailscaled is held on its real port.
        mapping_internal_port: held
            .map(|h| h.internal_port)
            .or(mapping.map(|m| m.internal_port)),
        mapping_external: held.map(|h| h.external.to_string()),
        router_maps: !mapped.protocols_seen.is_empty(),
        nat_is_hard: report.and_then(|r| r.mapping_varies_by_dest_ip),
        endpoints: endpoints.to_vec(),
    }
}

/// Oldest tailscaled minor version this driver was checked against.
const TESTED_SINCE: (u32, u32) = (1, 60);

/// Why tailscaled's `version` may not do what this driver asks, if so.
pub(super) fn version_note(version: &str) -> Option<String> {
    match super::api::version_major_minor(version) {
        Some(v) if v >= TESTED_SINCE => None,
        _ => Some(format!(
            "tailscaled {version} is older than or unknown to this driver (checked since {}.{}); pings and re-STUN may not work",
            TESTED_SINCE.0, TESTED_SINCE.1
        )),
    }
}

/// Health of the section from tailscaled's state, the checks and the pings.
pub(super) fn verdict(
    st: &TsStatus,
    checks: &[SanityCheck],
    peers: &[PeerStatus],
    version_note: Option<String>,
) -> (State, Option<String>) {
    if st.backend_state != "Running" {
        return (
            State::Degraded,
            Some(format!(
                "tailscaled is {} (not Running): no tailnet until it is logged in and up",
                st.backend_state
            )),
        );
    }
    if let Some(note) = version_note {
        return (State::Degraded, Some(note));
    }
    if let Some(c) = checks.first() {
        let more = if checks.len() > 1 {
            format!(" (+{} more)", checks.len() - 1)
        } else {
            String::new()
        };
        return (
            State::Degraded,
            Some(format!("{} Fix: {}{more}", c.message, c.fix)),
        );
    }
    let pinged: Vec<_> = peers
        .iter()
        .filter(|p| p.keepalive)
        .filter_map(|p| p.last_ping.as_ref())
        .collect();
    if !pinged.is_empty() && pinged.iter().all(|p| p.path == PingPath::Failed) {
        return (
            State::Degraded,
            Some("no keepalive pong from any selected peer".into()),
        );
    }
    let direct = pinged.iter().filter(|p| p.path == PingPath::Direct).count();
    let selected = peers.iter().filter(|p| p.keepalive).count();
    (
        State::Ok,
        Some(format!(
            "Running; {} peers, {selected} kept alive, {direct} direct at the last ping",
            peers.len()
        )),
    )
}

pub(super) fn describe(p: &PingStatus) -> String {
    let lat = p
        .latency_ms
        .map(|l| format!(" in {l} ms"))
        .unwrap_or_default();
    match (&p.path, &p.endpoint, &p.derp_region) {
        (PingPath::Direct, Some(e), _) => format!("direct via {e}{lat}"),
        (PingPath::Derp, _, Some(r)) => format!("via DERP {r}{lat}"),
        (path, _, _) => format!("{path:?}{lat}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: &str) -> TsStatus {
        super::super::api::decode_status(
            format!(r#"{{"Version":"1.98.10","BackendState":"{state}"}}"#).as_bytes(),
        )
        .unwrap()
    }

    fn peer(path: Option<PingPath>) -> PeerStatus {
        PeerStatus {
            hostname: "a".into(),
            tailnet_ip: Some("100.64.0.1".into()),
            online: true,
            keepalive: true,
            cur_addr: None,
            relay: None,
            last_ping: path.map(|path| PingStatus {
                time: crate::status::Timestamp::default(),
                path,
                endpoint: None,
                derp_region: None,
                latency_ms: None,
                error: None,
            }),
            pings_ok: 0,
            pings_failed: 0,
        }
    }

    #[test]
    fn verdicts() {
        let (s, r) = verdict(&status("NeedsLogin"), &[], &[], None);
        assert_eq!(s, State::Degraded);
        assert!(r.unwrap().contains("NeedsLogin"));
        let (s, r) = verdict(
            &status("Running"),
            &[],
            &[peer(Some(PingPath::Direct))],
            None,
        );
        assert_eq!(s, State::Ok);
        assert!(r.unwrap().contains("1 direct"));
        let (s, _) = verdict(
            &status("Running"),
            &[],
            &[peer(Some(PingPath::Failed))],
            None,
        );
        assert_eq!(s, State::Degraded, "no pong from any selected peer");
        let (s, _) = verdict(&status("Running"), &[], &[peer(None)], None);
        assert_eq!(s, State::Ok, "not pinged yet is not a failure");
        let check = SanityCheck {
            check: "no-fixed-port".into(),
            message: "m.".into(),
            fix: "f".into(),
        };
        let (s, r) = verdict(&status("Running"), &[check], &[], None);
        assert_eq!(s, State::Degraded);
        assert_eq!(r.unwrap(), "m. Fix: f");
        let (s, _) = verdict(&status("Running"), &[], &[], Some("old".into()));
        assert_eq!(s, State::Degraded);
    }
}
