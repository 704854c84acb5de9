//! MQTT telemetry: the gateway's state, status snapshot, netcheck reports and
//! events, sent to central monitoring through a durable outbox.

pub mod frame;
pub mod outbox;
