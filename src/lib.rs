//! edgereach: keeps industrial gateways reachable over a Tailscale/Headscale mesh.
//!
//! Each capability runs as its own task and publishes into one
//! [`status::Status`] snapshot plus an event stream; every view renders that.
// One audited exception, `heap::trim` (a glibc call); tests/unsafe_audit.rs
// keeps `unsafe` out of every other file.
#![deny(unsafe_code)]

pub mod actor;
pub mod admission;
pub mod config;
pub mod control;
pub mod daemon;
pub mod deadline;
pub mod entropy;
pub mod fsread;
pub mod heap;
pub mod http_client;
pub mod logging;
pub mod netcheck;
pub mod netwatch;
pub mod nullable;
pub mod poke;
pub mod primitives;
pub use primitives::redact;
pub mod portmap;
pub mod resolve;
pub mod safefs;
pub mod shutdown;
pub mod state;
pub mod status;
pub mod tailscale;
pub mod telemetry;
pub mod view;
pub mod web;
