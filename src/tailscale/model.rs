//! The `tailscale` section of the status snapshot.

use serde::{Deserialize, Serialize};

use super::api::PingPath;
use crate::primitives::{Health, State, Timestamp};

/// What edgereach knows about tailscaled and its peers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TailscaleStatus {
    /// Overall state and reason.
    #[serde(flatten)]
    pub health: Health,
    /// The LocalAPI socket in use.
    pub socket: String,
    /// tailscaled's version, once it answered.
    pub version: Option<String>,
    /// Its backend state ("Running", "NeedsLogin", …).
    pub backend_state: Option<String>,
    /// Its process id (from the socket's peer credentials).
    pub pid: Option<i32>,
    /// This node's hostname in the tailnet.
    pub hostname: Option<String>,
    /// This node's tailnet IPv4 address.
    pub tailnet_ip: Option<String>,
    /// The control server it talks to.
    pub control_url: Option<String>,
    /// Its UDP port, when it could be told.
    pub listen_port: Option<u16>,
    /// The endpoints it advertises to peers.
    pub endpoints: Vec<String>,
    /// Setup problems found, each with its fix.
    pub checks: Vec<SanityCheck>,
    /// Re-STUN requests made (mapping changes, tailscaled returning).
    pub restuns: u64,
    /// When the last re-STUN was asked for.
    pub last_restun: Option<Timestamp>,
    /// Keepalive pings sent and failed since start.
    pub pings_sent: u64,
    /// Of those, how many got no pong.
    pub pings_failed: u64,
    /// Peers, with their last keepalive result.
    pub peers: Vec<PeerStatus>,
}

impl TailscaleStatus {
    /// Before the first contact.
    pub fn starting(socket: &std::path::Path) -> Self {
        Self {
            health: Health::new(State::Unavailable, Some("starting".into())),
            socket: socket.display().to_string(),
            version: None,
            backend_state: None,
            pid: None,
            hostname: None,
            tailnet_ip: None,
            control_url: None,
            listen_port: None,
            endpoints: Vec::new(),
            checks: Vec::new(),
            restuns: 0,
            last_restun: None,
            pings_sent: 0,
            pings_failed: 0,
            peers: Vec::new(),
        }
    }
}

/// tailscaled's backend as the tailscale actor last saw it, for the other
/// actors (admission); never read out of the views.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backend {
    /// Its backend state ("Running", "NeedsLogin", …); None while it does
    /// not answer.
    pub state: Option<String>,
    /// The control server it talks to (credentials removed), once known.
    pub control_url: Option<String>,
}

/// A setup problem and how to fix it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SanityCheck {
    /// Stable identifier ("port-mismatch", "no-fixed-port", "own-portmapper", …).
    pub check: String,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub fix: String,
}

/// One peer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PeerStatus {
    /// Its hostname.
    pub hostname: String,
    /// Its tailnet IPv4 address.
    pub tailnet_ip: Option<String>,
    /// Connected to the control server.
    pub online: bool,
    /// Selected for keepalive pings.
    pub keepalive: bool,
    /// tailscaled's current direct endpoint for it, if any.
    pub cur_addr: Option<String>,
    /// Its home DERP region.
    pub relay: Option<String>,
    /// The last keepalive ping.
    pub last_ping: Option<PingStatus>,
    /// Pings answered.
    pub pings_ok: u64,
    /// Pings not answered.
    pub pings_failed: u64,
}

/// How one ping went.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PingStatus {
    /// When.
    pub time: Timestamp,
    /// Direct, DERP, peer relay or failed.
    pub path: PingPath,
    /// The direct endpoint that answered.
    pub endpoint: Option<String>,
    /// The DERP region that carried the pong.
    pub derp_region: Option<String>,
    /// Round trip in milliseconds.
    pub latency_ms: Option<f64>,
    /// Why it failed.
    pub error: Option<String>,
}
