//! IPv6 pinholes: what the kernel says about our addresses and the IPv6
//! default route, and whether a PCP MAP answer really opened the pinhole
//! asked for. Pure: text and bytes in, values out (fuzzed).
//!
//! A pinhole is a MAP for an IPv6 internal address with no translation: the
//! router's firewall lets inbound traffic to `[addr]:port` through. So the
//! answer's external address must be the address being opened (anything
//! else is a foreign or NAT66 answer we don't trust), its family IPv6, and
//! its lifetime non-zero.

use std::net::{IpAddr, Ipv6Addr};

use super::pcp::{MapGrant, MapRequest};

/// `IFA_F_TEMPORARY`: an RFC 8981 privacy address (never opened).
pub const IFA_F_TEMPORARY: u8 = 0x01;
/// `IFA_F_DADFAILED`.
pub const IFA_F_DADFAILED: u8 = 0x08;
/// `IFA_F_DEPRECATED`: preferred lifetime over; kept only for old flows.
pub const IFA_F_DEPRECATED: u8 = 0x20;
/// `IFA_F_TENTATIVE`: duplicate address detection still running.
pub const IFA_F_TENTATIVE: u8 = 0x40;
/// Longest `/proc/net/if_inet6` or `/proc/net/ipv6_route` text parsed.
pub const MAX_PROC_TEXT: usize = 256 * 1024;

/// One line of `/proc/net/if_inet6`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inet6Addr {
    /// The address.
    pub addr: Ipv6Addr,
    /// Interface index.
    pub ifindex: u32,
    /// Prefix length.
    pub prefix_len: u8,
    /// Kernel scope (0 = global, 0x20 = link).
    pub scope: u8,
    /// The low 8 `IFA_F_*` flags (all that file shows).
    pub flags: u8,
    /// Interface name.
    pub ifname: String,
}

impl Inet6Addr {
    /// Whether a pinhole may be opened for it: a global unicast address
    /// (not link-local, ULA, multicast, loopback or v4-mapped) that is
    /// stable (not a privacy address) and usable (not tentative, deprecated
    /// or failed DAD).
    pub fn pinhole_candidate(&self) -> bool {
        let bad = IFA_F_TEMPORARY | IFA_F_DADFAILED | IFA_F_DEPRECATED | IFA_F_TENTATIVE;
        self.scope == 0 && self.flags & bad == 0 && is_global_unicast(self.addr)
    }
}

/// Global unicast by prefix: 2000::/3 (everything the internet routes).
pub fn is_global_unicast(a: Ipv6Addr) -> bool {
    a.segments()[0] & 0xe000 == 0x2000
}

fn hex_addr(s: &str) -> Option<Ipv6Addr> {
    if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(s, 16).ok().map(Ipv6Addr::from)
}

/// Parses `/proc/net/if_inet6`; malformed lines are skipped. At most
/// [`MAX_PROC_TEXT`] bytes are looked at.
pub fn parse_if_inet6(text: &str) -> Vec<Inet6Addr> {
    bounded(text)
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let [addr, idx, plen, scope, flags, name] = f.as_slice() else {
                return None;
            };
            Some(Inet6Addr {
                addr: hex_addr(addr)?,
                ifindex: u32::from_str_radix(idx, 16).ok()?,
                prefix_len: u8::from_str_radix(plen, 16).ok().filter(|&p| p <= 128)?,
                scope: u8::from_str_radix(scope, 16).ok()?,
                flags: u8::from_str_radix(flags, 16).ok()?,
                ifname: (*name).to_string(),
            })
        })
        .collect()
}

/// The IPv6 default route: the next hop and its interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V6DefaultRoute {
    /// Next hop (usually the router's link-local address).
    pub gateway: Ipv6Addr,
    /// Interface name.
    pub ifname: String,
}

/// The lowest-metric IPv6 default route with a next hop, off loopback, in
/// `/proc/net/ipv6_route` format (dest plen src plen nexthop metric refcnt
/// use flags iface). Routes without a gateway (unreachable, on-link) are
/// not a router to ask.
pub fn parse_ipv6_default_route(text: &str) -> Option<V6DefaultRoute> {
    const RTF_UP: u32 = 0x1;
    const RTF_GATEWAY: u32 = 0x2;
    bounded(text)
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let [dest, plen, _src, _splen, hop, metric, _ref, _use, flags, iface] = f.as_slice()
            else {
                return None;
            };
            let flags = u32::from_str_radix(flags, 16).ok()?;
            let default = hex_addr(dest)?.is_unspecified() && *plen == "00";
            let gateway = hex_addr(hop)?;
            let usable = flags & RTF_UP != 0 && flags & RTF_GATEWAY != 0;
            if !default || !usable || gateway.is_unspecified() || *iface == "lo" {
                return None;
            }
            let metric = u32::from_str_radix(metric, 16).ok()?;
            Some((metric, gateway, (*iface).to_string()))
        })
        .min_by_key(|(metric, _, _)| *metric)
        .map(|(_, gateway, ifname)| V6DefaultRoute { gateway, ifname })
}

fn bounded(text: &str) -> &str {
    let mut end = text.len().min(MAX_PROC_TEXT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Why a PCP answer does not stand for the pinhole asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinholeError {
    /// The request was not for an IPv6 address.
    #[error("not an IPv6 pinhole request")]
    NotIpv6,
    /// The answer names an IPv4 external address for an IPv6 pinhole.
    #[error("router answered with IPv4 address {0} for an IPv6 pinhole")]
    WrongFamily(IpAddr),
    /// The answer opens (or translates to) another address.
    #[error("router answered for {got}, not for {asked} (NAT66 or a foreign answer)")]
    ForeignAddress {
        /// Ours.
        asked: Ipv6Addr,
        /// The router's.
        got: Ipv6Addr,
    },
    /// The answer opens another port.
    #[error("router opened port {got}, not {asked}")]
    OtherPort {
        /// Ours.
        asked: u16,
        /// The router's.
        got: u16,
    },
    /// Success with lifetime 0 for a request that was not a deletion.
    #[error("router granted the pinhole with lease 0")]
    ZeroLease,
}

/// A pinhole as the router granted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinholeGrant {
    /// The address opened.
    pub addr: Ipv6Addr,
    /// The port opened.
    pub port: u16,
    /// Granted lease in seconds (0 only for a confirmed deletion).
    pub lease_s: u32,
    /// The router's epoch.
    pub epoch_secs: u32,
}

/// Checks a decoded MAP answer ([`super::pcp::decode_map_response`] already
/// matched nonce, protocol and internal port) against the pinhole `request`.
///
/// External port 0 is taken as the internal port: miniupnpd 2.3.1 answers
/// a renewal of an existing pinhole that way. Any other port is refused.
pub fn check_pcp_pinhole(
    grant: &MapGrant,
    request: &MapRequest,
) -> Result<PinholeGrant, PinholeError> {
    let IpAddr::V6(asked) = request.client_addr else {
        return Err(PinholeError::NotIpv6);
    };
    let got = match grant.mapping.external_addr {
        IpAddr::V6(a) => a,
        other @ IpAddr::V4(_) => return Err(PinholeError::WrongFamily(other)),
    };
    if got != asked {
        return Err(PinholeError::ForeignAddress { asked, got });
    }
    let port = match grant.mapping.external_port {
        0 => request.internal_port,
        p if p == request.internal_port => p,
        got => {
            return Err(PinholeError::OtherPort {
                asked: request.internal_port,
                got,
            })
        }
    };
    if grant.lifetime_secs == 0 && request.lifetime_secs != 0 {
        return Err(PinholeError::ZeroLease);
    }
    Ok(PinholeGrant {
        addr: asked,
        port,
        lease_s: grant.lifetime_secs,
        epoch_secs: grant.epoch_secs,
    })
}

#[cfg(test)]
mod tests;
