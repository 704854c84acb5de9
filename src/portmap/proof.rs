//! End-to-end proof that the router forwards to us, not just that it says so.
//!
//! A router's "success" proves nothing: miniupnpd answers PCP renewals with
//! success after its kernel rules were flushed, and firmware that wipes its
//! table keeps listing entries (tailscale #10597, #21208). The mesh port
//! itself can't be probed (tailscaled owns it), so a small canary mapping on a
//! spare port is held beside it, made and renewed the same way, sharing its
//! fate. From the canary socket we ask an RFC 5780 STUN server to answer from
//! its *other* address and port (CHANGE-REQUEST) to our public address at the
//! canary's *external* port (RESPONSE-PORT). Nobody there ever sent to that
//! address, so only a working forwarding rule lets the answer in.
//!
//! Pure I/O over one socket; what to do with the outcome is the service's.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;

use crate::deadline::Later;
pub use crate::netcheck::servers::Rfc5780Server as ProofServer;
use crate::netcheck::stun::{self, ChangeRequest, StunError, TransactionId};

/// Largest datagram read (STUN answers are far smaller).
const MAX_DATAGRAM: usize = 1500;
/// Sends per exchange, spread over its budget.
const TRIES: u32 = 3;

/// UDP payload bytes one proof moved, both ways.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Sent to the server.
    pub sent: u64,
    /// Read from the canary socket.
    pub received: u64,
}

/// What one proof found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The changed answer came in through the external port: inbound works.
    /// `reflexive` is our public address as the server saw it.
    Forwarded {
        /// Our address as the server saw it.
        reflexive: SocketAddr,
    },
    /// The server answered a plain request (so it is alive and sees us at
    /// `reflexive`) but the changed answer to the external port never came.
    NotForwarded {
        /// Our address as the server saw it.
        reflexive: SocketAddr,
    },
    /// The server refused or ignored CHANGE-REQUEST/RESPONSE-PORT, or offers
    /// no alternate address: nothing can be told from it.
    Unsupported,
    /// The server answered nothing at all: nothing can be told.
    Silent,
}

/// Prove that `external_port` on our public address reaches `socket`:
/// first the changed request (its answer alone settles it), then, if that
/// stays unanswered, a plain request to tell a dead mapping from a server
/// that is gone. Bounded by `budget` per exchange; the bytes are added up.
pub async fn prove(
    socket: &UdpSocket,
    server: ProofServer,
    external_port: u16,
    budget: Duration,
    traffic: &mut Traffic,
) -> Outcome {
    let tid = new_tid();
    let both = ChangeRequest {
        change_ip: true,
        change_port: true,
    };
    let Ok(changed) = stun::binding_request_to(&tid, Some(both), Some(external_port)) else {
        return Outcome::Unsupported;
    };
    match exchange(socket, server.addr, &changed, &tid, budget, traffic).await {
        Reply::Answer { from, mapped, .. } if from.ip() == server.other.ip() => {
            return Outcome::Forwarded { reflexive: mapped }
        }
        // The server answered from the address we asked to, not the other:
        // it ignored CHANGE-REQUEST. An error answer: it refused it.
        Reply::Answer { .. } | Reply::Refused => return Outcome::Unsupported,
        Reply::Nothing => {}
    }
    let tid = new_tid();
    let Ok(plain) = stun::binding_request(&tid, None) else {
        return Outcome::Unsupported;
    };
    match exchange(socket, server.addr, &plain, &tid, budget, traffic).await {
        Reply::Answer { other: None, .. } => Outcome::Unsupported,
        Reply::Answer { mapped, .. } => Outcome::NotForwarded { reflexive: mapped },
        Reply::Refused => Outcome::Unsupported,
        Reply::Nothing => Outcome::Silent,
    }
}

enum Reply {
    Answer {
        from: SocketAddr,
        mapped: SocketAddr,
        other: Option<SocketAddr>,
    },
    Refused,
    Nothing,
}

/// Send `req` up to [`TRIES`] times within `budget` and wait for the
/// answer to `tid`; anything else arriving on the socket is skipped.
async fn exchange(
    socket: &UdpSocket,
    to: SocketAddr,
    req: &[u8],
    tid: &TransactionId,
    budget: Duration,
    traffic: &mut Traffic,
) -> Reply {
    let deadline = Instant::now().later(budget);
    let gap = budget / TRIES;
    let mut buf = [0u8; MAX_DATAGRAM];
    for k in 0..TRIES {
        if socket.send_to(req, to).await.is_ok() {
            traffic.sent += req.len() as u64;
        }
        let until = if k + 1 == TRIES {
            deadline
        } else {
            Instant::now().later(gap).min(deadline)
        };
        while let Ok(Ok((n, from))) =
            tokio::time::timeout_at(until, socket.recv_from(&mut buf)).await
        {
            traffic.received += n as u64;
            match stun::decode_binding_response(buf.get(..n).unwrap_or_default(), tid) {
                Ok(r) => {
                    return Reply::Answer {
                        from,
                        mapped: r.mapped,
                        other: r.other_address,
                    }
                }
                Err(StunError::ErrorResponse { .. }) => return Reply::Refused,
                // Not ours, or junk: keep waiting for the answer.
                Err(_) => {}
            }
        }
    }
    Reply::Nothing
}

fn new_tid() -> TransactionId {
    let mut b = [0u8; 12];
    crate::entropy::fill(&mut b);
    TransactionId::new(b)
}

/// Why the router's own public address says it sits behind another NAT:
/// a private (RFC 1918), shared (RFC 6598, carrier-grade NAT) or otherwise
/// non-global address. None when the address looks public (or is unknown).
pub fn upstream_nat_hint(router_external: Ipv4Addr) -> Option<&'static str> {
    let o = router_external.octets();
    if router_external.is_unspecified() {
        None
    } else if router_external.is_private() {
        Some("a private address")
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        Some("a carrier-grade NAT (shared, 100.64.0.0/10) address")
    } else if router_external.is_loopback() || router_external.is_link_local() {
        Some("a local address")
    } else {
        None
    }
}

/// The IPv4 address of a reflexive address, if it is IPv4.
pub fn v4_of(a: SocketAddr) -> Option<Ipv4Addr> {
    match a.ip() {
        IpAddr::V4(v) => Some(v),
        IpAddr::V6(v) => v.to_ipv4_mapped(),
    }
}

#[cfg(test)]
mod tests;
