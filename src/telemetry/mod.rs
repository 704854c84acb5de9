//! MQTT telemetry: the gateway's state, status snapshot, netcheck reports and
//! events, sent to central monitoring through a durable outbox.
//!
//! - [`frame`]: the outbox's on-disk framing (pure, fuzzed);
//! - [`outbox`]: the outbox itself (files, no MQTT);
//! - [`payload`]: topics and JSON payloads (docs/telemetry.md);
//! - [`client`]: broker URL, TLS, credentials, Last Will, backoff;
//! - [`service`]: the actor;
//! - [`session`]: one MQTT connection and its PUBACK accounting;
//! - [`sparkplug`]: the Sparkplug B edge node.

pub mod client;
pub mod frame;
pub mod outbox;
pub mod payload;
pub mod service;
pub mod session;
pub mod sparkplug;
