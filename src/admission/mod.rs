//! Registration with the admission/control service (the seed's ACS) and
//! unattended provisioning of tailscaled on the assigned Headscale cluster.
//!
//! - [`codec`]: the bootstrap JSON, pure, bounded and fuzzed;
//! - [`client`]: HTTP(S) with rustls (ring), DNS by TTL per attempt, bounded;
//! - [`assignment`]: the stored assignment (never the auth key);
//! - [`schedule`]: start spread, periodic re-registration, backoff;
//! - [`provision`]: what to do with tailscaled, and doing it;
//! - [`service`]: the actor publishing the `admission` status section.

pub mod assignment;
pub mod auth_mode;
pub mod client;
pub mod codec;
pub mod model;
pub mod provision;
pub mod schedule;
pub mod secret;
pub mod service;
