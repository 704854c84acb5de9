//! Sparkplug B edge node (`[telemetry] format = "sparkplug"` or `"both"`):
//! the gateway as one Sparkplug edge node, `spBv1.0/{group}/N*/{edge_node}`.
//!
//! - [`codec`]: the protobuf payload and the host's STATE message (pure, fuzzed);

pub mod codec;
