//! Pure wire codecs for the port-mapping protocols: no sockets, no clocks.

pub mod natpmp;
pub mod pcp;
