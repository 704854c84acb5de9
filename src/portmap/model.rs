//! Portmap's own status types (what the views render) and the typed view it
//! hands to other actors. A leaf: imports nothing from the crate.

use std::net::SocketAddrV4;

use serde::{Deserialize, Serialize};

/// Where the end-to-end proof stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProofState {
    /// `portmap.prove` is false.
    Off,
    /// No attempt yet (no mapping, or no server known yet).
    #[default]
    Pending,
    /// A packet from outside came in through the router at the last attempt.
    Proven,
    /// The router claims the mapping but a packet from outside did not get
    /// through it: the mapping is dead (it is being, or was, repaired).
    Failed,
    /// It can't be told here (no RFC 5780 STUN server, server silent, no
    /// canary mapping): only the router-side check stands.
    Undecided,
    /// The router sits behind another NAT: its mapping can't make us
    /// reachable, whatever it says.
    DoubleNat,
}

impl ProofStatus {
    /// Whether the last attempt proved forwarding and is at most two periods
    /// (plus a little slack) old at `now`.
    pub fn recent_at(&self, now: std::time::SystemTime) -> bool {
        if self.state != ProofState::Proven {
            return false;
        }
        let Some(at) = self
            .proven_at
            .as_deref()
            .and_then(|t| humantime::parse_rfc3339(t).ok())
        else {
            return false;
        };
        let limit = std::time::Duration::from_secs(self.interval_s.saturating_mul(2) + 15);
        now.duration_since(at).map_or(true, |age| age <= limit)
    }
}

impl ProofState {
    /// Name as in the JSON and `/metrics`.
    pub fn name(self) -> &'static str {
        match self {
            ProofState::Off => "off",
            ProofState::Pending => "pending",
            ProofState::Proven => "proven",
            ProofState::Failed => "failed",
            ProofState::Undecided => "undecided",
            ProofState::DoubleNat => "double_nat",
        }
    }
}

/// The proof's section of the portmap status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofStatus {
    /// Where it stands.
    pub state: ProofState,
    /// Why, in plain words, when not simply proven.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How it is proven: `stun-rfc5780` (a changed answer through a canary
    /// mapping made like the others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The STUN server asked, `ip:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The canary mapping, `internal -> external via method`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<String>,
    /// Our public address as the STUN server saw it (the canary's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<String>,
    /// The last successful proof (RFC 3339 UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proven_at: Option<String>,
    /// The last attempt, whatever its outcome (RFC 3339 UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt: Option<String>,
    /// How often it runs (`portmap.verify_interval`), in seconds: a proof
    /// older than two periods is stale.
    pub interval_s: u64,
    /// Attempts since start.
    pub attempts: u64,
    /// Dead mappings found and repaired (deleted and re-added) since start.
    pub dead_repairs: u64,
    /// Bytes of STUN sent for the proof since start (UDP payload).
    pub bytes_sent: u64,
    /// Bytes of STUN received for it since start (UDP payload).
    pub bytes_received: u64,
}

/// A mapping as other actors need it (tailscale: re-STUN when it changes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldMapping {
    /// Configured name.
    pub name: String,
    /// The router's public side.
    pub external: SocketAddrV4,
    /// Our port it forwards to.
    pub internal_port: u16,
    /// The proof found that the router's word does not hold for it (the
    /// mapping is dead, or behind a double NAT): the views show it degraded.
    pub doubted: bool,
}

/// What portmap holds, for the other actors; never read out of the views.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mapped {
    /// Bumped whenever a mapping was made, came back, moved or was repaired:
    /// each bump is a reason for tailscaled to learn its endpoints anew.
    pub generation: u64,
    /// Mappings the router holds for us now (the canary excluded).
    pub mappings: Vec<HeldMapping>,
    /// The mapping protocols the router answered (`upnp`, `pcp`, `nat-pmp`,
    /// as in the status), from the last router found; kept while idle.
    pub protocols_seen: Vec<String>,
}

/// Where an IPv6 pinhole stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PinholeState {
    /// Not asked yet, or being asked.
    #[default]
    Pending,
    /// The router granted it and the grant checked out.
    Open,
    /// The router refused it or gave an answer that does not stand (see
    /// the reason); retried with backoff.
    Failed,
}

impl PinholeState {
    /// Name as in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            PinholeState::Pending => "pending",
            PinholeState::Open => "open",
            PinholeState::Failed => "failed",
        }
    }
}

/// One IPv6 pinhole in the portmap status, beside the IPv4 `mappings`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinholeStatus {
    /// The gateway's global IPv6 address the pinhole opens.
    pub address: String,
    /// The port opened (tailscaled's UDP port).
    pub port: u16,
    /// `udp` (tailscaled speaks UDP only).
    pub protocol: crate::primitives::Protocol,
    /// How it is asked for: `pcp`.
    pub method: String,
    /// The router asked (the IPv6 default gateway, `addr%interface`).
    pub router: String,
    /// Lease granted, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_s: Option<u64>,
    /// When the lease ends without renewal (RFC 3339 UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Last successful grant or renewal (RFC 3339 UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_renewed: Option<String>,
    /// Failed attempts since the last success.
    pub failures: u32,
    /// Where it stands.
    pub state: PinholeState,
    /// Why it is not simply open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
