//! Is the mapped mesh port reachable from outside? Told, where it can be,
//! with RFC 5780: from a spare socket we ask an RFC 5780 server to answer
//! from its other address and port (CHANGE-REQUEST) to our public address at
//! the mapping's external port (RESPONSE-PORT). Nobody there ever sent to that
//! address, so only a working router mapping lets the answer in, and it
//! arrives on the mapping's internal port. That port is normally tailscaled's:
//! the test can only run while it is free; otherwise the answer is "can't be
//! told" (None). Because it binds that port, only `edgereach netcheck
//! --mesh-port` runs it, on purpose, never the daemon by itself: a tailscaled
//! starting during the test would fall back to a random port.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::stun::{self, ChangeRequest};
use crate::deadline::Later;

/// The mapping to test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeshMapping {
    /// The port on this host the router forwards to.
    pub internal_port: u16,
    /// The router's external port.
    pub external_port: u16,
}

impl MeshMapping {
    /// The mapping named `name` in the status, if the router holds it now.
    pub fn held(status: &crate::status::PortmapStatus, name: &str) -> Option<Self> {
        let m = status
            .mappings
            .iter()
            .find(|m| m.name == name && m.state == crate::status::State::Ok)?;
        let port = |s: &str| s.parse::<SocketAddr>().ok().map(|a| a.port());
        Some(Self {
            internal_port: port(&m.internal)?,
            external_port: port(m.external.as_deref()?)?,
        })
    }
}

/// Some(true): the answer came in through the mapping; Some(false): it did
/// not within `budget`; None: can't be told (the internal port is in use, or
/// the server does not honour RESPONSE-PORT).
pub async fn mesh_port_reachable(
    mesh: MeshMapping,
    server: SocketAddr,
    budget: Duration,
    bytes_sent: &mut u64,
) -> Option<bool> {
    if !server.is_ipv4() {
        return None;
    }
    // The receiver: the internal port itself. In use (tailscaled) = can't tell.
    let receiver = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, mesh.internal_port))
        .await
        .ok()?;
    let sender = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await.ok()?;
    let tid = super::probe::new_tid();
    let both = ChangeRequest {
        change_ip: true,
        change_port: true,
    };
    let req = stun::binding_request_to(&tid, Some(both), Some(mesh.external_port)).ok()?;
    let deadline = Instant::now().later(budget);
    let gap = budget / 3;
    let mut rbuf = [0u8; 1500];
    let mut sbuf = [0u8; 1500];
    for k in 0..3u32 {
        if sender.send_to(&req, server).await.is_ok() {
            *bytes_sent += req.len() as u64;
        }
        let until = if k == 2 {
            deadline
        } else {
            Instant::now().later(gap).min(deadline)
        };
        loop {
            tokio::select! {
                r = tokio::time::timeout_at(until, receiver.recv_from(&mut rbuf)) => match r {
                    Ok(Ok((n, _))) => {
                        if stun::decode_binding_response(rbuf.get(..n).unwrap_or_default(), &tid).is_ok() {
                            return Some(true);
                        }
                    }
                    _ => break,
                },
                // An answer (or error) on the sender means the server ignored
                // RESPONSE-PORT or refused it: nothing can be told from it.
                Ok((n, _)) = sender.recv_from(&mut sbuf) => {
                    if stun::looks_like_stun(sbuf.get(..n).unwrap_or_default()) {
                        return None;
                    }
                }
            }
        }
    }
    Some(false)
}
