//! tailscaled's LocalAPI JSON, decoded tolerantly: unknown fields are ignored,
//! a missing field we rely on is an error naming it. Pure: no I/O, fuzzed.
//!
//! Field names follow tailscale's Go structs (`ipnstate.Status`,
//! `ipnstate.PeerStatus`, `ipnstate.PingResult`, `ipn.Prefs`, `ipn.Notify`,
//! and `tailcfg.DERPMap` through netcheck's own decoder).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::nullable::{empty_as_none, null_as_default};

/// Largest LocalAPI answer we decode (a status with a few thousand peers is
/// well under this); anything bigger is refused, not buffered.
pub const MAX_BODY: usize = 8 << 20;

/// Why a LocalAPI answer could not be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    /// The body is larger than [`MAX_BODY`].
    #[error("{what}: answer of {len} bytes exceeds the {MAX_BODY}-byte limit")]
    TooLarge {
        /// Which answer.
        what: &'static str,
        /// Its size.
        len: usize,
    },
    /// Not JSON, or a required field is missing or of the wrong type.
    #[error("{what}: {message}")]
    Json {
        /// Which answer.
        what: &'static str,
        /// serde's description, naming the field and position.
        message: String,
    },
}

fn decode<'a, T: Deserialize<'a>>(what: &'static str, body: &'a [u8]) -> Result<T, DecodeError> {
    if body.len() > MAX_BODY {
        return Err(DecodeError::TooLarge {
            what,
            len: body.len(),
        });
    }
    serde_json::from_slice(body).map_err(|e| DecodeError::Json {
        what,
        message: e.to_string(),
    })
}

/// `GET /localapi/v0/status`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct TsStatus {
    /// tailscaled's version, e.g. "1.98.10-t…".
    pub version: String,
    /// "NoState", "NeedsLogin", "NeedsMachineAuth", "Stopped", "Starting", "Running".
    pub backend_state: String,
    /// This node; absent before the first login.
    #[serde(default, rename = "Self")]
    pub self_node: Option<TsPeer>,
    /// Health warnings as text.
    #[serde(default, deserialize_with = "null_as_default")]
    pub health: Vec<String>,
    /// Peers by node public key.
    #[serde(default, deserialize_with = "null_as_default")]
    pub peer: BTreeMap<String, TsPeer>,
}

/// One node in the status (self or a peer).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct TsPeer {
    /// Node public key ("nodekey:…").
    pub public_key: String,
    /// The node's own hostname.
    pub host_name: String,
    /// MagicDNS name, may be empty.
    #[serde(default, deserialize_with = "null_as_default", rename = "DNSName")]
    pub dns_name: String,
    /// Tailnet addresses.
    #[serde(default, rename = "TailscaleIPs", deserialize_with = "null_as_default")]
    pub tailscale_ips: Vec<std::net::IpAddr>,
    /// ACL tags ("tag:gw").
    #[serde(default, deserialize_with = "null_as_default")]
    pub tags: Vec<String>,
    /// Candidate endpoints ("ip:port") the node advertises.
    #[serde(default, deserialize_with = "null_as_default")]
    pub addrs: Vec<String>,
    /// The direct endpoint in use, empty when not direct.
    #[serde(default, deserialize_with = "null_as_default")]
    pub cur_addr: String,
    /// Home DERP region code.
    #[serde(default, deserialize_with = "null_as_default")]
    pub relay: String,
    /// Connected to the control server.
    #[serde(default, deserialize_with = "null_as_default")]
    pub online: bool,
    /// Traffic in the last few minutes.
    #[serde(default, deserialize_with = "null_as_default")]
    pub active: bool,
}

impl TsPeer {
    /// The first tailnet IPv4 address, else the first address.
    pub fn tailnet_ip(&self) -> Option<std::net::IpAddr> {
        self.tailscale_ips
            .iter()
            .find(|ip| ip.is_ipv4())
            .or(self.tailscale_ips.first())
            .copied()
    }
}

/// `POST /localapi/v0/ping?type=disco`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct PingResult {
    /// The address pinged.
    #[serde(rename = "IP")]
    pub ip: String,
    /// Why the ping failed, empty on success.
    #[serde(default, deserialize_with = "null_as_default")]
    pub err: String,
    /// Round trip.
    #[serde(default, deserialize_with = "null_as_default")]
    pub latency_seconds: f64,
    /// The direct endpoint that answered, empty when relayed.
    #[serde(default, deserialize_with = "null_as_default")]
    pub endpoint: String,
    /// DERP region that carried the pong, 0 when direct.
    #[serde(default, deserialize_with = "null_as_default", rename = "DERPRegionID")]
    pub derp_region_id: i64,
    /// Its code.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        rename = "DERPRegionCode"
    )]
    pub derp_region_code: String,
    /// Peer relay that carried it, empty when none.
    #[serde(default, deserialize_with = "null_as_default")]
    pub peer_relay: String,
}

/// How a ping was answered, for the status and the page.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum PingPath {
    /// A pong came straight from the peer's endpoint.
    Direct,
    /// A pong came over DERP.
    Derp,
    /// A pong came through a peer relay.
    PeerRelay,
    /// No pong.
    Failed,
}

impl PingResult {
    /// Classify the answer.
    pub fn path(&self) -> PingPath {
        if !self.err.is_empty() {
            PingPath::Failed
        } else if !self.endpoint.is_empty() {
            PingPath::Direct
        } else if !self.peer_relay.is_empty() {
            PingPath::PeerRelay
        } else if self.derp_region_id != 0 {
            PingPath::Derp
        } else {
            PingPath::Failed
        }
    }
}

/// The JSON error body LocalAPI handlers write (`{"error": "..."}`).
#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: String,
}

/// Best text for an error answer: the JSON `error` field, else the body;
/// trimmed and cut to 300 bytes at a char boundary (it ends up in logs).
pub fn error_text(body: &[u8]) -> String {
    let text = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => e.error,
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    let text = text.trim();
    let mut end = text.len().min(300);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// The subset of `ipn.Prefs` edgereach reads (`GET /localapi/v0/prefs`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Prefs {
    /// Control server URL.
    #[serde(rename = "ControlURL")]
    pub control_url: String,
    /// The user wants the node up.
    pub want_running: bool,
    /// Explicitly logged out.
    #[serde(default, deserialize_with = "null_as_default")]
    pub logged_out: bool,
    /// Hostname override, empty when the OS hostname is used.
    #[serde(default, deserialize_with = "null_as_default")]
    pub hostname: String,
}

/// One message of `GET /localapi/v0/watch-ipn-bus` (a stream of JSON objects).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Notify {
    /// Backend version, in the first message.
    #[serde(default, deserialize_with = "empty_as_none")]
    pub version: Option<String>,
    /// New backend state (`ipn.State` as a number).
    #[serde(default)]
    pub state: Option<i64>,
    /// An error the backend wants shown.
    #[serde(default, deserialize_with = "empty_as_none")]
    pub err_message: Option<String>,
}

/// `ipn.State` numbers as names.
pub fn state_name(n: i64) -> &'static str {
    match n {
        0 => "NoState",
        1 => "InUseOtherUser",
        2 => "NeedsLogin",
        3 => "NeedsMachineAuth",
        4 => "Stopped",
        5 => "Starting",
        6 => "Running",
        _ => "Unknown",
    }
}

/// Decode a status answer.
pub fn decode_status(body: &[u8]) -> Result<TsStatus, DecodeError> {
    decode("status", body)
}

/// Decode a ping answer.
pub fn decode_ping(body: &[u8]) -> Result<PingResult, DecodeError> {
    decode("ping", body)
}

/// Decode a prefs answer.
pub fn decode_prefs(body: &[u8]) -> Result<Prefs, DecodeError> {
    decode("prefs", body)
}

/// Decode a `GET /localapi/v0/derpmap` answer with netcheck's DERP map
/// decoder. tailscaled encodes its map as is, and before it has one (never
/// logged in, no netmap yet) the map is Go's nil pointer: `null`, which is
/// `Ok(None)` here rather than an error.
pub fn decode_derp_map(
    body: &[u8],
) -> Result<Option<crate::netcheck::derpmap::DerpMap>, DecodeError> {
    if body.trim_ascii() == b"null" {
        return Ok(None);
    }
    crate::netcheck::derpmap::decode(body)
        .map(Some)
        .map_err(|e| DecodeError::Json {
            what: "derpmap",
            message: e.to_string(),
        })
}

/// Decode one watch-ipn-bus message.
pub fn decode_notify(line: &[u8]) -> Result<Notify, DecodeError> {
    decode("watch-ipn-bus", line)
}

/// A version as (major, minor), from "1.98.10-tabc…" or "1.98.10".
pub fn version_major_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests;
