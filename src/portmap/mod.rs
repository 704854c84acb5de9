//! Port mapping on the site router (UPnP IGD, NAT-PMP, PCP).
//!
//! - [`protocol`]: pure wire codecs, fuzzed;
//! - [`pmp`], [`upnp`] (over [`http`]): one exchange with the router, bounded in time and size,
//!   answers trusted only from the default gateway;
//! - [`router`]: probing and the per-protocol create/renew/check/delete;
//! - [`announce`]: router restart announcements, for repair within seconds;
//! - [`service`]: the actor that owns the mappings and the `portmap` status.

pub mod announce;
pub mod http;
pub mod inspect;
pub mod model;
pub mod pinhole;
pub mod pmp;
pub mod proof;
pub mod protocol;
pub mod router;
pub mod service;
pub mod upnp;
