//! Driving tailscaled through its LocalAPI.
//!
//! tailscaled's disco key never leaves its process, so edgereach cannot send
//! disco itself: it asks tailscaled to ping peers (keeping paths warm and
//! making it send CallMeMaybe) and to re-STUN when the router mapping changes
//! (so fresh endpoints reach the control server at once).
//!
//! - [`api`]: the LocalAPI JSON, pure and fuzzed;
//! - [`client`]: HTTP over the unix socket, every call bounded;
//! - [`select`], [`keepalive`], [`sanity`]: which peers, when, and setup checks;
//! - `peers`: the peer list with its keepalive history;
//! - [`service`]: the actor that publishes the `tailscale` status section.

pub mod api;
pub mod client;
mod health;
pub mod keepalive;
pub mod model;
mod peers;
pub mod sanity;
pub mod select;
pub mod service;
