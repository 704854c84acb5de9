//! edgereach: keeps industrial gateways reachable over a Tailscale/Headscale mesh.
#![forbid(unsafe_code)]

pub mod portmap;
