//! Netcheck: a STUN-based NAT report that matches `tailscale netcheck` field
//! for field, plus the NAT filtering type and the idle mapping lifetime.
//!
//! - [`stun`], [`derpmap`]: pure codecs, fuzzed;
//! - [`probe`]: the UDP probes (plan, RFC 5780 tests, lifetime estimate);
//! - [`run`]: one report from targets, with region stickiness;
//! - [`derpfetch`], [`tsmap`]: DERP maps from a URL and from tailscaled;
//! - [`service`]: the actor that owns the `netcheck` status section;
//! - [`report`], [`text`]: the report type and its tailscale-style text.

pub mod captive;
pub mod derpfetch;
pub mod derpmap;
pub mod probe;
pub mod reach;
pub mod report;
pub mod run;
pub mod servers;
pub mod service;
pub mod stun;
pub mod text;
pub mod tsmap;
