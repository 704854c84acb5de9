//! The IPv6 pinhole keys of `[portmap]`: their defaults and bounds (the
//! fields themselves sit in `PortmapConfig`, since serde cannot flatten a
//! struct into one that denies unknown keys; `validate` checks the bounds).

use std::time::Duration;

use super::duration::HumanDuration;

/// `portmap.ipv6_pinholes` unless set: on.
pub const DEFAULT_ON: bool = true;
/// `portmap.pinhole_lease` unless set.
pub const DEFAULT_LEASE: HumanDuration = HumanDuration::from_secs(3600);
/// Shortest lease accepted: renewal runs at half of it.
pub const MIN_LEASE: Duration = Duration::from_secs(10);
/// Longest: IGDv2 WANIPv6FirewallControl allows at most 86400 s.
pub const MAX_LEASE: Duration = Duration::from_secs(86_400);

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn parse(extra: &str) -> Result<Config, String> {
        Config::parse(&format!("[portmap]\n{extra}\n"), "test.toml").map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_bounds() {
        let c = parse("").unwrap();
        assert!(c.portmap.ipv6_pinholes);
        assert_eq!(c.portmap.pinhole_lease.get().as_secs(), 3600);
        let c = parse("ipv6_pinholes = false\npinhole_lease = \"2m\"").unwrap();
        assert!(!c.portmap.ipv6_pinholes);
        assert_eq!(c.portmap.pinhole_lease.get().as_secs(), 120);
        let e = parse("pinhole_lease = \"5s\"").unwrap_err();
        assert!(
            e.contains("portmap.pinhole_lease") && e.contains("too short"),
            "{e}"
        );
        let e = parse("pinhole_lease = \"2d\"").unwrap_err();
        assert!(
            e.contains("portmap.pinhole_lease") && e.contains("too long"),
            "{e}"
        );
    }
}
