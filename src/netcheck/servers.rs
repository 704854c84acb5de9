//! The STUN servers netcheck found to speak RFC 5780, handed to the actors
//! that need one (portmap's end-to-end proof) through a `watch` netcheck owns.

use std::net::SocketAddr;

/// A STUN server that offered an RFC 5780 alternate address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rfc5780Server {
    /// Where requests go.
    pub addr: SocketAddr,
    /// Its OTHER-ADDRESS: where a CHANGE-REQUEST answer comes from.
    pub other: SocketAddr,
}

/// What netcheck publishes: the RFC 5780 servers that answered its last full
/// report, fastest first (empty until one did).
pub type Rfc5780Servers = Vec<Rfc5780Server>;
