//! In-process fakes for the actors' tests, without root: a router
//! (NAT-PMP, PCP: `router`; UPnP IGD: `igd`) on a loopback address and
//! tailscaled's LocalAPI on a unix socket (`localapi`), each speaking the
//! real protocol with bytes written here by hand; `portmap_actor` runs the
//! daemon's portmap actor against them. Built for tokio's paused clock.

#![allow(dead_code)] // each test binary uses part of it

pub mod igd;
pub mod localapi;
pub mod portmap_actor;
pub mod router;

use edgereach::status::{GatewayStatus, Status, StatusHub};

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
