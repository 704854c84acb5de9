//! The one-line answer at the top of the page: can peers reach this gateway,
//! and if not, why, in plain words. Pure: a function of the snapshot only.

use crate::netcheck::report::Report;
use crate::status::{State, Status};

use super::sections::{self, Peer, PeerPath};

/// How peers can reach the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// Peers reach it straight (mapping, easy NAT, or a direct pong proves it).
    Direct,
    /// Peers reach it only through a DERP relay.
    RelayOnly,
    /// Peers cannot reach it.
    NotReachable,
    /// Not known yet (no NAT report so far).
    Unknown,
}

impl Reach {
    /// Headline as shown on the page.
    pub fn headline(self) -> &'static str {
        match self {
            Reach::Direct => "Reachable direct",
            Reach::RelayOnly => "Relay only",
            Reach::NotReachable => "Not reachable",
            Reach::Unknown => "Not known yet",
        }
    }

    /// Short machine name (CSS class, metrics label).
    pub fn name(self) -> &'static str {
        match self {
            Reach::Direct => "direct",
            Reach::RelayOnly => "relay",
            Reach::NotReachable => "unreachable",
            Reach::Unknown => "unknown",
        }
    }
}

/// The verdict and its reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// How peers reach the gateway.
    pub reach: Reach,
    /// Why, in plain words.
    pub reason: String,
}

fn verdict(reach: Reach, reason: impl Into<String>) -> Verdict {
    Verdict {
        reach,
        reason: reason.into(),
    }
}

/// Decide from the snapshot: the network first, then what tailscaled's
/// keepalive pings showed (proof), then what the port mapping and the NAT
/// report imply.
pub fn decide(s: &Status) -> Verdict {
    decide_at(s, std::time::SystemTime::now())
}

/// [`decide`] at a given time (a proof counts only while it is recent).
pub fn decide_at(s: &Status, now: std::time::SystemTime) -> Verdict {
    if s.network.default_route.is_none() {
        return verdict(
            Reach::NotReachable,
            "This gateway has no network route: check the cable, the switch port and DHCP.",
        );
    }
    if let Some(v) = from_tailscale(s) {
        return v;
    }
    from_nat(s, now)
}

fn from_tailscale(s: &Status) -> Option<Verdict> {
    let ts = &s.tailscale;
    let reason = ts.health.reason.as_deref().unwrap_or("");
    match (ts.health.state, ts.backend_state.as_deref()) {
        // Not watched: tailscaled says nothing here; the NAT decides.
        (State::Disabled, _) => return None,
        (_, Some(b)) if b != "Running" => {
            return Some(verdict(
                Reach::NotReachable,
                format!("The mesh is not up on this gateway: {reason}"),
            ))
        }
        (State::Unavailable, None) if !reason.is_empty() && reason != "starting" => {
            return Some(verdict(
                Reach::NotReachable,
                format!("The mesh is not running on this gateway: {reason}"),
            ))
        }
        _ => {}
    }
    // Only peers pinged so far tell anything.
    let peers: Vec<Peer> = sections::peers(s)
        .into_iter()
        .filter(|p| p.answered.is_some())
        .collect();
    if peers.is_empty() {
        return None;
    }
    let answered = |p: &&Peer| p.answered == Some(true);
    let direct: Vec<&Peer> = peers
        .iter()
        .filter(|p| p.path == PeerPath::Direct)
        .filter(answered)
        .collect();
    if let Some(p) = direct.first() {
        return Some(verdict(
            Reach::Direct,
            format!(
                "{} of {} pinged peers answer directly (e.g. {}{}{}).",
                direct.len(),
                peers.len(),
                p.name,
                p.endpoint
                    .as_deref()
                    .map(|e| format!(" via {e}"))
                    .unwrap_or_default(),
                p.latency_ms
                    .map(|l| format!(", {l:.0} ms"))
                    .unwrap_or_default()
            ),
        ));
    }
    let relayed = peers
        .iter()
        .filter(|p| p.path == PeerPath::Relay)
        .filter(answered)
        .count();
    if relayed > 0 {
        return Some(verdict(
            Reach::RelayOnly,
            format!(
                "{relayed} of {} pinged peers answer only through a relay. {}",
                peers.len(),
                why_not_direct(s)
            ),
        ));
    }
    Some(verdict(
        Reach::NotReachable,
        format!(
            "None of the {} pinged peers answered the last keepalive ping. {}",
            peers.len(),
            why_not_direct(s)
        ),
    ))
}

fn from_nat(s: &Status, now: std::time::SystemTime) -> Verdict {
    let Some(report) = &s.netcheck.report else {
        let why = s.netcheck.health.reason.as_deref().unwrap_or("starting");
        return verdict(
            Reach::Unknown,
            format!("No NAT report yet ({why}); this page refreshes by itself."),
        );
    };
    if !report.udp {
        return verdict(
            Reach::NotReachable,
            "No STUN server answered over UDP: this network blocks outgoing UDP, so peers \
             cannot reach this gateway directly (at best through a DERP relay over HTTPS). \
             Ask the site's IT to allow outgoing UDP.",
        );
    }
    if let Some(words) = &s.portmap.double_nat {
        let mut text = format!(
            "{words}. Peers reach it only through a relay unless the upstream NAT is opened \
             for it."
        );
        if let Some(first) = text.get_mut(..1) {
            first.make_ascii_uppercase();
        }
        return verdict(Reach::RelayOnly, text);
    }
    if let Some(m) = held_mapping(s) {
        if let Some(v) = from_mapping(s, m, report, now) {
            return v;
        }
    }
    match report.mapping_varies_by_dest_ip {
        Some(false) => verdict(
            Reach::Direct,
            format!(
                "The NAT keeps one public address and port ({}) for every destination, so \
                 peers can reach this gateway by hole punching.",
                report.ipv4.as_deref().unwrap_or("?")
            ),
        ),
        Some(true) => verdict(Reach::RelayOnly, why_not_direct(s)),
        None => verdict(
            Reach::Unknown,
            format!(
                "The NAT type is not known: fewer than two STUN servers answered. {}",
                portmap_words(s)
            ),
        ),
    }
}

/// A held mapping is direct only when proven recently from outside, or,
/// where that can't be told, on the router's word (saying so).
fn from_mapping(
    s: &Status,
    m: &crate::status::MappingStatus,
    report: &Report,
    now: std::time::SystemTime,
) -> Option<Verdict> {
    use crate::portmap::model::ProofState;
    if report.mesh_port_reachable == Some(false) {
        return None;
    }
    let proof = &s.portmap.proof;
    let route = format!(
        "The router forwards {} {} to this gateway (port mapping by {}",
        m.protocol,
        m.external.as_deref().unwrap_or("?"),
        m.method.map_or("?", |m| m.name()),
    );
    match proof.state {
        ProofState::Proven if proof.recent_at(now) => Some(verdict(
            Reach::Direct,
            format!(
                "{route}; a packet from outside got through it at {}).",
                proof.proven_at.map_or("?".to_string(), |t| t.to_string())
            ),
        )),
        ProofState::Undecided | ProofState::Off => Some(verdict(
            Reach::Direct,
            format!(
                "{route}; router-side check only: {}).",
                proof.reason.as_deref().unwrap_or("not proven from outside")
            ),
        )),
        ProofState::Pending => Some(verdict(
            Reach::Unknown,
            format!(
                "{route}); proving from outside that it forwards, this page refreshes by itself."
            ),
        )),
        // Failed, or a proof gone stale: not direct, say why below.
        _ => None,
    }
}

fn held_mapping(s: &Status) -> Option<&crate::status::MappingStatus> {
    s.portmap
        .mappings
        .iter()
        .find(|m| m.state == State::Ok && m.external.is_some())
}

/// Why peers cannot come straight in, from the NAT report and port mapping.
fn why_not_direct(s: &Status) -> String {
    let hard = s
        .netcheck
        .report
        .as_ref()
        .and_then(|r: &Report| r.mapping_varies_by_dest_ip);
    let nat = match hard {
        Some(true) => "The NAT is hard (the public port changes with every destination), so hole punching fails",
        Some(false) => "The NAT keeps its port per destination, but no direct path answered",
        None => "The NAT type is not known",
    };
    format!("{nat}; {}", portmap_words(s))
}

fn portmap_words(s: &Status) -> String {
    let pm = &s.portmap;
    if let Some(m) = held_mapping(s) {
        let dead = s
            .netcheck
            .report
            .as_ref()
            .is_some_and(|r| r.mesh_port_reachable == Some(false));
        let proof = &s.portmap.proof;
        let failed = proof.state == crate::portmap::model::ProofState::Failed;
        let stale = proof.state == crate::portmap::model::ProofState::Proven;
        return format!(
            "the router holds {} -> {}{}.",
            m.external.as_deref().unwrap_or("?"),
            m.internal,
            if dead {
                ", but a test packet from outside did not get through it"
            } else if failed {
                ", but a packet from outside did not get through it at the last proof \
                 (repairing: every mapping is deleted and re-added)"
            } else if stale {
                ", but the last proof that it forwards is too old"
            } else {
                ""
            }
        );
    }
    let why = pm.health.reason.as_deref().unwrap_or("no mapping");
    match pm.health.state {
        State::Disabled => format!("port mapping is switched off ({why})."),
        _ => format!("the router holds no port mapping for it ({why})."),
    }
}

#[cfg(test)]
mod tests;
