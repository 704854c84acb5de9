//! edgereach: keeps industrial gateways reachable over a Tailscale/Headscale mesh.
//!
//! Each capability runs as its own task and publishes into one
//! [`status::Status`] snapshot plus an event stream; every view renders that.
#![forbid(unsafe_code)]

pub mod config;
pub mod portmap;
pub mod status;
