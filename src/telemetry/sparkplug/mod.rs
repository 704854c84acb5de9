//! Sparkplug B edge node (`[telemetry] format = "sparkplug"` or `"both"`):
//! the gateway as one Sparkplug edge node, `spBv1.0/{group}/N*/{edge_node}`.
//!
//! - [`codec`]: the protobuf payload and the host's STATE message (pure, fuzzed);
//! - [`metrics`]: the metrics from the status snapshot, NBIRTH/NDATA/NDEATH
//!   payloads and report-by-exception (pure);
//! - [`node`]: the node's MQTT session (Will/bdSeq, seq, NCMD, STATE), driven by
//!   the telemetry actor.

pub mod codec;
pub mod metrics;
pub mod node;
