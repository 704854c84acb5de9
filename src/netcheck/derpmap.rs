//! Tailscale-format DERP map (tailcfg.DERPMap JSON): which STUN servers to
//! probe, per region.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::Deserialize;

/// Largest DERP map accepted.
pub const MAX_DERP_MAP: usize = 1024 * 1024;
/// STUN port when a node gives 0.
const DEFAULT_STUN_PORT: u16 = 3478;

/// The map: regions by id.
#[derive(Clone, Debug, Deserialize)]
pub struct DerpMap {
    /// Regions keyed by their id as a string.
    #[serde(rename = "Regions")]
    pub regions: BTreeMap<String, Region>,
}

/// One region.
#[derive(Clone, Debug, Deserialize)]
pub struct Region {
    /// Region id.
    #[serde(rename = "RegionID")]
    pub region_id: u16,
    /// Short code, e.g. `nyc`.
    #[serde(rename = "RegionCode", default)]
    pub region_code: String,
    /// Long name.
    #[serde(rename = "RegionName", default)]
    pub region_name: String,
    /// Nodes, in preference order.
    #[serde(rename = "Nodes")]
    pub nodes: Vec<Node>,
}

/// One DERP or STUN node.
#[derive(Clone, Debug, Deserialize)]
pub struct Node {
    /// Node name.
    #[serde(rename = "Name", default)]
    pub name: String,
    /// Host name, resolved when IPv4/IPv6 are empty.
    #[serde(rename = "HostName")]
    pub host_name: String,
    /// Forced IPv4: empty = resolve HostName; not an address (e.g. "none") = no IPv4.
    #[serde(rename = "IPv4", default)]
    pub ipv4: String,
    /// Forced IPv6, same rules.
    #[serde(rename = "IPv6", default)]
    pub ipv6: String,
    /// 0 = 3478, -1 = no STUN on this node.
    #[serde(rename = "STUNPort", default)]
    pub stun_port: i32,
    /// Only STUN, no DERP relay.
    #[serde(rename = "STUNOnly", default)]
    pub stun_only: bool,
    /// Test-only address used for STUN instead of IPv4.
    #[serde(rename = "STUNTestIP", default)]
    pub stun_test_ip: String,
}

/// A STUN server taken from the map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StunTarget {
    /// Region id.
    pub region_id: u16,
    /// Region code (or the id when the code is empty).
    pub region_code: String,
    /// Host name (to resolve when no address is forced).
    pub host: String,
    /// IPv4 to use.
    pub ipv4: Option<Ipv4Addr>,
    /// IPv6 to use.
    pub ipv6: Option<Ipv6Addr>,
    /// STUN port.
    pub port: u16,
}

/// Why a DERP map was rejected.
#[derive(Debug, thiserror::Error)]
pub enum DerpMapError {
    /// Larger than [`MAX_DERP_MAP`].
    #[error("DERP map is {0} bytes, more than {MAX_DERP_MAP}")]
    TooLarge(usize),
    /// Not the expected JSON.
    #[error("DERP map is not valid: {0}")]
    Json(String),
    /// A node's STUNPort is out of range.
    #[error("region {region}: node {node:?} has STUNPort {port}")]
    BadPort {
        /// Region id.
        region: u16,
        /// Node name.
        node: String,
        /// The port given.
        port: i32,
    },
}

/// Decode a DERP map; unknown fields are ignored, missing required ones named.
pub fn decode(bytes: &[u8]) -> Result<DerpMap, DerpMapError> {
    if bytes.len() > MAX_DERP_MAP {
        return Err(DerpMapError::TooLarge(bytes.len()));
    }
    let map: DerpMap =
        serde_json::from_slice(bytes).map_err(|e| DerpMapError::Json(e.to_string()))?;
    for r in map.regions.values() {
        for n in &r.nodes {
            if n.stun_port < -1 || n.stun_port > i32::from(u16::MAX) {
                return Err(DerpMapError::BadPort {
                    region: r.region_id,
                    node: n.name.clone(),
                    port: n.stun_port,
                });
            }
        }
    }
    Ok(map)
}

/// Every node that offers STUN, by region id, then node order.
pub fn stun_targets(map: &DerpMap) -> Vec<StunTarget> {
    let mut regions: Vec<&Region> = map.regions.values().collect();
    regions.sort_by_key(|r| r.region_id);
    let mut out = Vec::new();
    for r in regions {
        for n in &r.nodes {
            let Ok(port) = u16::try_from(n.stun_port) else {
                continue; // -1: no STUN
            };
            let forced_v4 = if n.stun_test_ip.is_empty() {
                &n.ipv4
            } else {
                &n.stun_test_ip
            };
            out.push(StunTarget {
                region_id: r.region_id,
                region_code: if r.region_code.is_empty() {
                    r.region_id.to_string()
                } else {
                    r.region_code.clone()
                },
                host: n.host_name.clone(),
                ipv4: forced_v4.parse().ok(),
                ipv6: n.ipv6.parse().ok(),
                port: if port == 0 { DEFAULT_STUN_PORT } else { port },
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAP: &str = r#"{"Regions":{
      "901":{"RegionID":901,"RegionCode":"lab-b","RegionName":"Lab B","Nodes":[
        {"Name":"901a","RegionID":901,"HostName":"stun-b.lab","IPv4":"203.0.113.11","STUNPort":3478,"STUNOnly":true}]},
      "900":{"RegionID":900,"RegionCode":"lab-a","Nodes":[
        {"Name":"900a","RegionID":900,"HostName":"stun-a.lab","IPv4":"203.0.113.10","IPv6":"none","STUNOnly":true,"Future":1},
        {"Name":"900b","RegionID":900,"HostName":"derp.lab","STUNPort":-1}]}
    },"OmitDefaultRegions":true}"#;

    #[test]
    fn targets_in_region_order() {
        let t = stun_targets(&decode(MAP.as_bytes()).unwrap());
        assert_eq!(t.len(), 2, "STUNPort -1 skipped");
        assert_eq!(t[0].region_code, "lab-a");
        assert_eq!(t[0].ipv4, Some(Ipv4Addr::new(203, 0, 113, 10)));
        assert_eq!(t[0].ipv6, None, "\"none\" disables IPv6");
        assert_eq!(t[0].port, 3478, "0 means the default port");
        assert_eq!(t[1].region_id, 901);
    }

    #[test]
    fn missing_and_bad_fields_are_named() {
        let e = decode(br#"{"Regions":{"1":{"RegionID":1}}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("Nodes"), "{e}");
        let e = decode(br#"{"Regions":{"1":{"RegionID":1,"Nodes":[{"Name":"x"}]}}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("HostName"), "{e}");
        let e = decode(
            br#"{"Regions":{"1":{"RegionID":1,"Nodes":[{"HostName":"h","STUNPort":70000}]}}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("STUNPort 70000"), "{e}");
        assert!(decode(b"[]").is_err());
        assert!(matches!(
            decode(&vec![b' '; MAX_DERP_MAP + 1]),
            Err(DerpMapError::TooLarge(_))
        ));
    }
}
