//! Port mapping on the site router (UPnP IGD, NAT-PMP, PCP).

pub mod protocol;
