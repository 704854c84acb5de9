//! What netwatch tells the other actors about the network: a leaf of the
//! actor shape (`actor::Context` carries its watch).

use crate::status::{DefaultRoute, InterfaceAddress};

/// What the other tasks need to know about the network.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetState {
    /// IPv4 default route, if any.
    pub default_route: Option<DefaultRoute>,
    /// Whether an IPv6 default route exists.
    pub ipv6_default_route: bool,
    /// Non-loopback addresses.
    pub addresses: Vec<InterfaceAddress>,
}
