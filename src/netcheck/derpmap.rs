//! Tailscale-format DERP map (`tailcfg.DERPMap` JSON, as served by a control
//! server or `tailscale debug derp-map`): which STUN servers netcheck probes.
//!
//! Field names follow Go's `encoding/json` rules: an exact key match wins,
//! otherwise keys match case-insensitively (so `omitDefaultRegions`, the tag
//! tailscale actually emits, and `OmitDefaultRegions` both work, as do the
//! lower-case keys found in hand-written maps); `null` counts as absent and
//! unknown keys are ignored. `Regions` and `Nodes` must be there, but Go
//! writes a nil map or slice as `null`, which means "none", and a `null`
//! region or node (a nil pointer) is skipped. Node semantics follow the `tailcfg.DERPNode`
//! docs: `STUNPort` 0 means 3478 and -1 means no STUN; `IPv4`/`IPv6` empty
//! means "resolve `HostName`", a valid address is used as is, and anything
//! else (conventionally `"none"`) disables that family.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::{Map, Value};

#[cfg(test)]
mod tests;

/// Largest DERP map accepted, in bytes.
pub const MAX_DERP_MAP: usize = 1024 * 1024;
/// STUN port used when a node gives `STUNPort` 0 or none.
pub const DEFAULT_STUN_PORT: u16 = 3478;
/// DERP (HTTPS) port used when a node gives `DERPPort` 0 or none.
pub const DEFAULT_DERP_PORT: u16 = 443;

/// A decoded DERP map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerpMap {
    /// Regions, sorted by region id.
    pub regions: Vec<DerpRegion>,
    /// `OmitDefaultRegions`: use only these regions, not Tailscale's defaults.
    pub omit_default_regions: bool,
}

/// One region (`tailcfg.DERPRegion`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerpRegion {
    /// `RegionID`, also the region's key in `Regions`.
    pub region_id: u16,
    /// `RegionCode`, e.g. `nyc`.
    pub region_code: String,
    /// `RegionName`, e.g. `New York City`.
    pub region_name: String,
    /// `Avoid`: clients should not pick this region as home.
    pub avoid: bool,
    /// `Nodes`, in the map's (priority) order.
    pub nodes: Vec<DerpNode>,
}

/// Where to get a node's address for one IP family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpSetting<T> {
    /// Field empty or absent: resolve `HostName`.
    Dns,
    /// Field holds an address of this family: use it, no DNS.
    Fixed(T),
    /// Field holds anything else (conventionally `"none"`): do not use this family.
    Disabled,
}

impl<T> IpSetting<T> {
    fn parse(s: &str) -> Self
    where
        T: std::str::FromStr,
    {
        if s.is_empty() {
            Self::Dns
        } else {
            s.parse().map_or(Self::Disabled, Self::Fixed)
        }
    }
}

/// One node (`tailcfg.DERPNode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerpNode {
    /// `Name`, e.g. `1a` (not a host name).
    pub name: String,
    /// `HostName`: required, non-empty.
    pub host_name: String,
    /// `IPv4`.
    pub ipv4: IpSetting<Ipv4Addr>,
    /// `IPv6`.
    pub ipv6: IpSetting<Ipv6Addr>,
    /// STUN port; `None` when `STUNPort` is -1 (STUN disabled).
    pub stun_port: Option<u16>,
    /// `STUNOnly`: a STUN server but not a DERP relay.
    pub stun_only: bool,
    /// `DERPPort` (0 means [`DEFAULT_DERP_PORT`]).
    pub derp_port: u16,
    /// `CanPort80`: answers plain HTTP on port 80 (captive-portal checks).
    pub can_port80: bool,
}

/// A STUN server to probe, from [`stun_targets`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StunTarget {
    /// Region id.
    pub region_id: u16,
    /// Region code.
    pub region_code: String,
    /// The node's `HostName`.
    pub host: String,
    /// Fixed IPv4 address, if the map gives one.
    pub ipv4: Option<Ipv4Addr>,
    /// Fixed IPv6 address, if the map gives one.
    pub ipv6: Option<Ipv6Addr>,
    /// True when IPv4 should come from resolving `host` (A records).
    pub resolve_ipv4: bool,
    /// True when IPv6 should come from resolving `host` (AAAA records).
    pub resolve_ipv6: bool,
    /// UDP port of the STUN server.
    pub port: u16,
}

/// Why a DERP map was rejected. `path` names the offending field, e.g.
/// `Regions["1"].Nodes[0].HostName`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DerpMapError {
    /// Input larger than [`MAX_DERP_MAP`].
    #[error("DERP map of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Input length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not JSON at all (serde_json's message, with line and column).
    #[error("DERP map is not valid JSON: {detail}")]
    Json {
        /// Parser message.
        detail: String,
    },
    /// A required field is absent or null.
    #[error("DERP map: {path} is missing")]
    Missing {
        /// The field.
        path: String,
    },
    /// A field has the wrong JSON type.
    #[error("DERP map: {path} must be {expected}")]
    WrongType {
        /// The field.
        path: String,
        /// What it should be.
        expected: &'static str,
    },
    /// A number outside its allowed range.
    #[error("DERP map: {path} = {value} is out of range {range}")]
    OutOfRange {
        /// The field.
        path: String,
        /// The value found.
        value: i64,
        /// The allowed range.
        range: &'static str,
    },
    /// A `Regions` key that is not a decimal integer.
    #[error("DERP map: region key {key:?} is not an integer")]
    BadRegionKey {
        /// The key.
        key: String,
    },
    /// A `Regions` key that differs from the region's `RegionID`.
    #[error("DERP map: region key {key:?} does not match RegionID {region_id}")]
    RegionKeyMismatch {
        /// The key.
        key: String,
        /// The region's id.
        region_id: u16,
    },
    /// Two keys (e.g. `"1"` and `"01"`) for the same region.
    #[error("DERP map: region {region_id} appears twice")]
    DuplicateRegion {
        /// The id.
        region_id: u16,
    },
    /// A node whose `RegionID` is neither 0 nor its region's id.
    #[error("DERP map: {path} = {found} but the node is in region {region_id}")]
    NodeRegionMismatch {
        /// The field.
        path: String,
        /// The node's value.
        found: i64,
        /// The enclosing region.
        region_id: u16,
    },
    /// `HostName` present but empty.
    #[error("DERP map: {path} is empty")]
    EmptyHostName {
        /// The field.
        path: String,
    },
}

/// Decodes a DERP map. See the module docs for the accepted forms.
pub fn decode(json: &[u8]) -> Result<DerpMap, DerpMapError> {
    if json.len() > MAX_DERP_MAP {
        return Err(DerpMapError::TooLarge {
            len: json.len(),
            max: MAX_DERP_MAP,
        });
    }
    let root: Value = serde_json::from_slice(json).map_err(|e| DerpMapError::Json {
        detail: e.to_string(),
    })?;
    let top = Obj::new(&root, String::new())?;
    let empty = Map::new();
    // Required, but Go writes a nil map as `null`: no regions.
    let regions_obj = match top
        .present("Regions")
        .ok_or_else(|| top.missing("Regions"))?
    {
        Value::Null => &empty,
        v => v.as_object().ok_or_else(|| DerpMapError::WrongType {
            path: "Regions".into(),
            expected: "an object",
        })?,
    };
    let mut regions = BTreeMap::new();
    for (key, value) in regions_obj {
        if value.is_null() {
            continue; // a nil *DERPRegion: tailscale skips it too
        }
        let region = decode_region(key, value)?;
        let id = region.region_id;
        if regions.insert(id, region).is_some() {
            return Err(DerpMapError::DuplicateRegion { region_id: id });
        }
    }
    Ok(DerpMap {
        regions: regions.into_values().collect(),
        omit_default_regions: top.boolean("OmitDefaultRegions")?.unwrap_or(false),
    })
}

/// Every node that serves STUN on at least one usable family, ordered by
/// region id, then node order within the region. Nodes with `STUNPort` -1, or
/// with both `IPv4` and `IPv6` disabled, are left out.
pub fn stun_targets(map: &DerpMap) -> Vec<StunTarget> {
    let mut out = Vec::new();
    for region in &map.regions {
        for node in &region.nodes {
            let Some(port) = node.stun_port else { continue };
            let (ipv4, resolve_ipv4) = split(node.ipv4);
            let (ipv6, resolve_ipv6) = split(node.ipv6);
            if ipv4.is_none() && ipv6.is_none() && !resolve_ipv4 && !resolve_ipv6 {
                continue;
            }
            out.push(StunTarget {
                region_id: region.region_id,
                region_code: region.region_code.clone(),
                host: node.host_name.clone(),
                ipv4,
                ipv6,
                resolve_ipv4,
                resolve_ipv6,
                port,
            });
        }
    }
    out
}

/// DERP relays that answer `http://IPv4/generate_204` (fixed IPv4,
/// `CanPort80`, not STUN-only, region not avoided), as tailscale's captive
/// portal check picks them; at most one per address, map order.
pub fn captive_endpoints(map: &DerpMap) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    for region in map.regions.iter().filter(|r| !r.avoid) {
        for node in region.nodes.iter().filter(|n| n.can_port80 && !n.stun_only) {
            if let IpSetting::Fixed(ip) = node.ipv4 {
                if !out.contains(&ip) {
                    out.push(ip);
                }
            }
        }
    }
    out
}

/// (fixed address, resolve via DNS).
fn split<T>(s: IpSetting<T>) -> (Option<T>, bool) {
    match s {
        IpSetting::Dns => (None, true),
        IpSetting::Fixed(a) => (Some(a), false),
        IpSetting::Disabled => (None, false),
    }
}

fn decode_region(key: &str, value: &Value) -> Result<DerpRegion, DerpMapError> {
    let obj = Obj::new(value, format!("Regions[{key:?}]"))?;
    let region_id = obj.ranged("RegionID", 1, i64::from(u16::MAX), "1..=65535")?;
    let region_id = region_id.ok_or_else(|| obj.missing("RegionID"))?;
    let key_id: i64 = key.parse().map_err(|_| DerpMapError::BadRegionKey {
        key: key.to_owned(),
    })?;
    let region_id = u16::try_from(region_id).unwrap_or_default();
    if key_id != i64::from(region_id) {
        return Err(DerpMapError::RegionKeyMismatch {
            key: key.to_owned(),
            region_id,
        });
    }
    let no_nodes = Vec::new();
    // Required, but a nil slice is `null`: a region without nodes.
    let nodes_arr = match obj.present("Nodes").ok_or_else(|| obj.missing("Nodes"))? {
        Value::Null => &no_nodes,
        v => v.as_array().ok_or_else(|| DerpMapError::WrongType {
            path: obj.path("Nodes"),
            expected: "an array",
        })?,
    };
    let mut nodes = Vec::with_capacity(nodes_arr.len());
    for (i, n) in nodes_arr.iter().enumerate() {
        if n.is_null() {
            continue; // a nil *DERPNode
        }
        nodes.push(decode_node(
            &format!("{}[{i}]", obj.path("Nodes")),
            n,
            region_id,
        )?);
    }
    Ok(DerpRegion {
        region_id,
        region_code: obj.string("RegionCode")?.unwrap_or_default().to_owned(),
        region_name: obj.string("RegionName")?.unwrap_or_default().to_owned(),
        avoid: obj.boolean("Avoid")?.unwrap_or(false),
        nodes,
    })
}

fn decode_node(path: &str, value: &Value, region_id: u16) -> Result<DerpNode, DerpMapError> {
    let obj = Obj::new(value, path.to_owned())?;
    if let Some(found) = obj.int("RegionID")? {
        if found != 0 && found != i64::from(region_id) {
            return Err(DerpMapError::NodeRegionMismatch {
                path: obj.path("RegionID"),
                found,
                region_id,
            });
        }
    }
    let host_name = obj
        .string("HostName")?
        .ok_or_else(|| obj.missing("HostName"))?;
    if host_name.is_empty() {
        return Err(DerpMapError::EmptyHostName {
            path: obj.path("HostName"),
        });
    }
    let stun_port = match obj.ranged("STUNPort", -1, 65535, "-1..=65535")? {
        Some(-1) => None,
        Some(0) | None => Some(DEFAULT_STUN_PORT),
        Some(p) => Some(u16::try_from(p).unwrap_or(DEFAULT_STUN_PORT)),
    };
    let derp_port = match obj.ranged("DERPPort", 0, 65535, "0..=65535")? {
        Some(0) | None => DEFAULT_DERP_PORT,
        Some(p) => u16::try_from(p).unwrap_or(DEFAULT_DERP_PORT),
    };
    Ok(DerpNode {
        name: obj.string("Name")?.unwrap_or_default().to_owned(),
        host_name: host_name.to_owned(),
        ipv4: IpSetting::parse(obj.string("IPv4")?.unwrap_or_default()),
        ipv6: IpSetting::parse(obj.string("IPv6")?.unwrap_or_default()),
        stun_port,
        stun_only: obj.boolean("STUNOnly")?.unwrap_or(false),
        derp_port,
        can_port80: obj.boolean("CanPort80")?.unwrap_or(false),
    })
}

/// A JSON object plus its path, with Go-style field lookup.
struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

impl<'a> Obj<'a> {
    fn new(value: &'a Value, path: String) -> Result<Self, DerpMapError> {
        match value.as_object() {
            Some(map) => Ok(Self { map, path }),
            None => Err(DerpMapError::WrongType {
                path: if path.is_empty() {
                    "the top level".into()
                } else {
                    path
                },
                expected: "an object",
            }),
        }
    }

    fn path(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    fn missing(&self, name: &str) -> DerpMapError {
        DerpMapError::Missing {
            path: self.path(name),
        }
    }

    /// Exact key first, then the first case-insensitive match; null is absent.
    fn get(&self, name: &str) -> Option<&'a Value> {
        self.present(name).filter(|v| !v.is_null())
    }

    /// The key's value as written, `null` included (absent is `None`).
    fn present(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name).or_else(|| {
            self.map
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        })
    }

    fn typed<T>(
        &self,
        name: &str,
        expected: &'static str,
        conv: impl Fn(&'a Value) -> Option<T>,
    ) -> Result<Option<T>, DerpMapError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => conv(v).map(Some).ok_or_else(|| DerpMapError::WrongType {
                path: self.path(name),
                expected,
            }),
        }
    }

    fn string(&self, name: &str) -> Result<Option<&'a str>, DerpMapError> {
        self.typed(name, "a string", Value::as_str)
    }

    fn boolean(&self, name: &str) -> Result<Option<bool>, DerpMapError> {
        self.typed(name, "a boolean", Value::as_bool)
    }

    fn int(&self, name: &str) -> Result<Option<i64>, DerpMapError> {
        self.typed(name, "an integer", Value::as_i64)
    }

    fn ranged(
        &self,
        name: &str,
        min: i64,
        max: i64,
        range: &'static str,
    ) -> Result<Option<i64>, DerpMapError> {
        match self.int(name)? {
            Some(v) if v < min || v > max => Err(DerpMapError::OutOfRange {
                path: self.path(name),
                value: v,
                range,
            }),
            other => Ok(other),
        }
    }
}
