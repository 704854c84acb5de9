//! The NAT report: tailscale netcheck's fields, plus what tailscale does not
//! tell (filtering type, idle mapping lifetime).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::primitives::Timestamp;

/// NAT filtering behaviour (RFC 4787 / RFC 5780 terms).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Filtering {
    /// Anyone may send to the mapping once it exists ("full cone").
    EndpointIndependent,
    /// Only addresses we sent to may answer, from any port.
    AddressDependent,
    /// Only the exact address and port we sent to may answer.
    AddressAndPortDependent,
}

impl Filtering {
    /// Name as written in JSON and text.
    pub fn name(self) -> &'static str {
        match self {
            Filtering::EndpointIndependent => "endpoint-independent",
            Filtering::AddressDependent => "address-dependent",
            Filtering::AddressAndPortDependent => "address-and-port-dependent",
        }
    }
}

/// A region (a DERP region, or one configured STUN server).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionRef {
    /// DERP region id (configured servers are numbered from 900).
    pub id: u16,
    /// Short code, e.g. `nyc`, or `host:port` for a configured server.
    pub code: String,
}

/// The latest report as netcheck hands it to the other actors (None until
/// the first).
pub type LatestReport = Option<std::sync::Arc<Report>>;

/// One netcheck result.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// When the run finished.
    pub time: Timestamp,
    /// Whether any STUN answer came back over UDP.
    pub udp: bool,
    /// Public IPv4 `ip:port` as a STUN server saw it.
    pub ipv4: Option<String>,
    /// Public IPv6 `[ip]:port` as a STUN server saw it.
    pub ipv6: Option<String>,
    /// Whether this host has a usable IPv6 address at all.
    pub os_has_ipv6: bool,
    /// Whether the public port differs per destination (hard NAT); null
    /// unless at least two destination IPs answered.
    pub mapping_varies_by_dest_ip: Option<bool>,
    /// Port mapping protocols the router answered: `upnp`, `nat-pmp`, `pcp`.
    pub port_mapping: Vec<String>,
    /// Captive portal detected; null when it could not be checked.
    pub captive_portal: Option<bool>,
    /// The nearest region, with tailscale's stickiness rule.
    pub preferred_region: Option<RegionRef>,
    /// Best STUN round trip per region code, in milliseconds.
    pub region_latency_ms: BTreeMap<String, f64>,
    /// NAT filtering, from RFC 5780 CHANGE-REQUEST; null when no server
    /// supports it or the answer was not conclusive.
    pub filtering: Option<Filtering>,
    /// How long the NAT keeps an idle UDP mapping, at least this many
    /// seconds; null until measured (it runs rarely) or when it can't be told.
    pub mapping_lifetime_s: Option<u64>,
    /// Whether the mapped mesh port is reachable from outside; null when it
    /// can't be told from here.
    pub mesh_port_reachable: Option<bool>,
    /// How long the run took, in milliseconds.
    pub duration_ms: u64,
    /// UDP payload bytes sent during the run.
    pub bytes_sent: u64,
    /// Datagrams ignored (wrong transaction, foreign source, not STUN).
    pub ignored_packets: u64,
}

/// Minimum latency gain, in absolute terms, to move the preferred region.
pub const PREFERRED_ABSOLUTE_DIFF: Duration = Duration::from_millis(10);

/// tailscale's rule for keeping the preferred region: stay unless the best
/// region is at least 10 ms faster AND faster by more than a third.
/// `old` is the previous preferred region's current latency (None when it
/// did not answer), `best` the best latency seen.
pub fn keep_preferred(old: Option<Duration>, best: Duration) -> bool {
    match old {
        None => false,
        Some(old) => old.saturating_sub(best) < PREFERRED_ABSOLUTE_DIFF || best > old / 3 * 2,
    }
}

/// Milliseconds with one decimal, as shown to people.
pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn stickiness_follows_tailscale() {
        assert!(
            keep_preferred(Some(d(12)), d(5)),
            "7 ms better: below 10 ms"
        );
        assert!(
            keep_preferred(Some(d(300)), d(250)),
            "50 ms better but only 17%"
        );
        assert!(
            !keep_preferred(Some(d(90)), d(40)),
            "50 ms and 55% better: move"
        );
        assert!(!keep_preferred(None, d(40)), "old region silent: move");
    }

    #[test]
    fn json_field_names() {
        let r = Report {
            filtering: Some(Filtering::AddressAndPortDependent),
            ..Report::default()
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["filtering"], "address-and-port-dependent");
        for key in [
            "udp",
            "ipv4",
            "ipv6",
            "mapping_varies_by_dest_ip",
            "port_mapping",
            "region_latency_ms",
            "preferred_region",
            "captive_portal",
            "mapping_lifetime_s",
        ] {
            assert!(v.get(key).is_some(), "{key}");
        }
    }
}
