//! Portmap's own status types (what the views render) and the typed view it
//! hands to other actors. A leaf: imports only the shared status primitives.

use std::net::SocketAddrV4;

use serde::{Deserialize, Serialize};

use crate::primitives::{Health, Protocol, State, Timestamp};

/// The protocol a mapping or pinhole is asked for with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Method {
    /// Port Control Protocol (RFC 6887); the default, as the first one tried.
    #[default]
    #[serde(rename = "pcp")]
    Pcp,
    /// NAT-PMP (RFC 6886).
    #[serde(rename = "nat-pmp")]
    NatPmp,
    /// UPnP IGD.
    #[serde(rename = "upnp")]
    Upnp,
}

impl Method {
    /// Name as in the JSON, events and `/metrics`.
    pub fn name(self) -> &'static str {
        match self {
            Method::Pcp => "pcp",
            Method::NatPmp => "nat-pmp",
            Method::Upnp => "upnp",
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How a mapping is proven from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProofMethod {
    /// An RFC 5780 STUN server's CHANGE-REQUEST answer, sent to the external
    /// port of a canary mapping made like the others.
    #[serde(rename = "stun-rfc5780")]
    StunRfc5780,
}

impl ProofMethod {
    /// Name as in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            ProofMethod::StunRfc5780 => "stun-rfc5780",
        }
    }
}

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
        let Some(at) = self.proven_at else {
            return false;
        };
        let limit = std::time::Duration::from_secs(self.interval_s.saturating_mul(2) + 15);
        at.age_at(now) <= limit
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
    /// How it is proven (a changed answer through a canary mapping made
    /// like the others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<ProofMethod>,
    /// The STUN server asked, `ip:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The canary mapping, `internal -> external via method`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<String>,
    /// Our public address as the STUN server saw it (the canary's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<String>,
    /// The last successful proof.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proven_at: Option<Timestamp>,
    /// The last attempt, whatever its outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt: Option<Timestamp>,
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
    pub protocols_seen: Vec<Method>,
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
    pub protocol: Protocol,
    /// How it is asked for (PCP today).
    pub method: Method,
    /// The router asked (the IPv6 default gateway, `addr%interface`).
    pub router: String,
    /// Lease granted, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_s: Option<u64>,
    /// When the lease ends without renewal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<Timestamp>,
    /// Last successful grant or renewal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_renewed: Option<Timestamp>,
    /// Failed attempts since the last success.
    pub failures: u32,
    /// Where it stands.
    pub state: PinholeState,
    /// Why it is not simply open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What the portmap task holds on the router.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PortmapStatus {
    /// Health of port mapping as a whole.
    #[serde(flatten)]
    pub health: Health,
    /// The router asked (the default gateway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router: Option<String>,
    /// Which protocols answered at the last probe: `pcp`, `nat-pmp`, `upnp`.
    pub protocols_seen: Vec<Method>,
    /// The router's public address, as it reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_ip: Option<String>,
    /// One entry per configured mapping.
    pub mappings: Vec<MappingStatus>,
    /// IPv6 pinholes, one per stable global IPv6 address (`portmap.ipv6_pinholes`).
    #[serde(default)]
    pub pinholes: Vec<PinholeStatus>,
    /// Why there are no pinholes, when there are none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinholes_reason: Option<String>,
    /// Router reboots noticed since start.
    pub router_reboots: u64,
    /// Datagrams ignored because of their source or content.
    pub ignored_packets: u64,
    /// The end-to-end proof that the router really forwards to us.
    #[serde(default)]
    pub proof: ProofStatus,
    /// Set when the site router sits behind another NAT, in plain words: its
    /// mappings can't make this gateway reachable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub double_nat: Option<String>,
}

impl Default for PortmapStatus {
    fn default() -> Self {
        Self {
            health: Health::new(State::Unavailable, None),
            router: None,
            protocols_seen: Vec::new(),
            external_ip: None,
            mappings: Vec::new(),
            pinholes: Vec::new(),
            pinholes_reason: None,
            router_reboots: 0,
            ignored_packets: 0,
            proof: Default::default(),
            double_nat: None,
        }
    }
}

impl MappingStatus {
    /// `udp 192.0.2.10:41641 -> 203.0.113.2:41641 via pcp`, as the CLI views print it.
    pub fn route(&self) -> String {
        format!(
            "{} {} -> {} via {}",
            self.protocol,
            self.internal,
            self.external.as_deref().unwrap_or("-"),
            self.method.map_or("-", Method::name)
        )
    }
}

/// One mapping held on the router.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappingStatus {
    /// Configured name.
    pub name: String,
    /// `udp` or `tcp`.
    pub protocol: Protocol,
    /// Protocol used with the router.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<Method>,
    /// The gateway's side, `ip:port`.
    pub internal: String,
    /// The router's public side, `ip:port`, once granted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<String>,
    /// Whether the external port is the one asked for.
    pub same_port: bool,
    /// Lease granted, in seconds (0 = permanent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_s: Option<u64>,
    /// When the lease ends without renewal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<Timestamp>,
    /// Last successful check on the router.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verified: Option<Timestamp>,
    /// The last time a packet from outside was seen to get through the router
    /// for it; see `portmap.proof`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proven_at: Option<Timestamp>,
    /// How it was proven, with `proven_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<ProofMethod>,
    /// Failed attempts since the last success.
    pub failures: u32,
    /// `ok`, `degraded` or `unavailable`.
    pub state: State,
    /// Why it is not simply ok.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
