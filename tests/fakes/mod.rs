//! In-process fakes for the actors' tests, without root: a router
//! (NAT-PMP, PCP: `router`; UPnP IGD: `igd`) on a loopback address and
//! tailscaled's LocalAPI on a unix socket (`localapi`), each speaking the
//! real protocol with bytes written here by hand; `portmap_actor` runs the
//! daemon's portmap actor against them; `stun` is a STUN server (RFC 5389,
//! RFC 5780) with the NAT in front of the gateway, `netcheck_actor` runs the
//! netcheck actor against it; the router's `forwarder` tells the STUN server
//! where an answer to an external port goes (portmap's proof).
//!
//! Built for tokio's paused clock (`#[tokio::test(start_paused = true)]`),
//! and that needs no real time even with real sockets, as long as every fake
//! runs as a task on the test's own (current-thread) runtime, never on a
//! thread of its own: a paused runtime with nothing to run polls its sockets
//! once without waiting before it moves the clock to the next timer, and a
//! task that this poll wakes stops the move (tokio 1.54: `schedule` calls
//! `unpark_self`, so the time driver's `did_wake` is set). A loopback
//! datagram is in the receiver's queue when `send_to` returns, so the next
//! idle poll finds it: each hop costs no virtual time, and no timeout of the
//! code under test fires with an answer waiting (netcheck's reports show
//! 0.0 ms to a fake and exactly a fake's added delay). A fake on another
//! thread could answer after that poll, and the clock would have jumped.

#![allow(dead_code)] // each test binary uses part of it

pub mod igd;
pub mod localapi;
pub mod netcheck_actor;
pub mod portmap_actor;
pub mod router;
pub mod stun;

use edgereach::netwatch::NetState;
use edgereach::status::{DefaultRoute, GatewayStatus, Status, StatusHub};

/// A network with a default route over loopback through `gateway`.
pub fn network(gateway: &str) -> NetState {
    NetState {
        default_route: Some(DefaultRoute {
            interface: "lo".into(),
            gateway: Some(gateway.into()),
            source: Some("127.0.0.1".into()),
        }),
        ipv6_default_route: false,
        addresses: Vec::new(),
    }
}

/// A status hub as the daemon starts with one.
pub fn hub() -> StatusHub {
    StatusHub::new(Status::starting(GatewayStatus {
        id: "gw-inproc".into(),
        site: "test".into(),
        version: "0".into(),
        started_at: "2026-01-01T00:00:00Z".parse().unwrap(),
        config_path: "-".into(),
        state_dir: "-".into(),
        last_reload: None,
    }))
}
