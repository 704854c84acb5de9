use super::*;
use crate::portmap::protocol::pcp::{self, Mapping};
use crate::portmap::protocol::Protocol;

/// As a lab gateway shows it: link-local, loopback, a static global
/// address (nodad), plus a privacy, a tentative and a ULA address.
const IF_INET6: &str = "\
fe80000000000000a472d9fffe0fbe6b 02 40 20 80     eth0
00000000000000000000000000000001 01 80 10 80       lo
20010db8000001000000000000000010 02 40 00 82     eth0
20010db8000001001111222233334444 02 40 00 01     eth0
20010db8000001000000000000000099 02 40 00 c0     eth0
fd000000000000000000000000000001 02 40 00 80     eth0
garbage line
20010db800000100000000000000001 02 40 00 80     eth0
";

const IPV6_ROUTE: &str = "\
20010db8000001000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000002 00000200 00000001 00000000 00000003     eth1
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
";

#[test]
fn if_inet6_lines_and_candidates() {
    let all = parse_if_inet6(IF_INET6);
    assert_eq!(all.len(), 6, "two malformed lines skipped: {all:?}");
    assert_eq!(
        all[2].addr,
        "2001:db8:0:100::10".parse::<Ipv6Addr>().unwrap()
    );
    assert_eq!(
        (all[2].ifindex, all[2].prefix_len, all[2].flags),
        (2, 64, 0x82)
    );
    let ok: Vec<String> = all
        .iter()
        .filter(|a| a.pinhole_candidate())
        .map(|a| a.addr.to_string())
        .collect();
    assert_eq!(
        ok,
        ["2001:db8:0:100::10"],
        "no link-local, privacy, tentative or ULA"
    );
}

#[test]
fn default_route_lowest_metric_with_gateway() {
    let r = parse_ipv6_default_route(IPV6_ROUTE).unwrap();
    assert_eq!(r.gateway, "fe80::2".parse::<Ipv6Addr>().unwrap());
    assert_eq!(r.ifname, "eth1");
    assert_eq!(parse_ipv6_default_route(""), None);
    // Only the unreachable default on lo: no router.
    assert_eq!(
        parse_ipv6_default_route(IPV6_ROUTE.lines().nth(3).unwrap()),
        None
    );
}

fn request(lifetime: u32) -> MapRequest {
    MapRequest {
        lifetime_secs: lifetime,
        client_addr: IpAddr::V6("2001:db8:0:100::10".parse().unwrap()),
        nonce: [9; 12],
        protocol: Protocol::Udp,
        internal_port: 41641,
        suggested_external_port: 41641,
        suggested_external_addr: None,
    }
}

fn grant(addr: &str, port: u16, lifetime: u32) -> MapGrant {
    MapGrant {
        mapping: Mapping {
            nonce: [9; 12],
            protocol: Protocol::Udp,
            internal_port: 41641,
            external_port: port,
            external_addr: addr.parse().unwrap(),
        },
        lifetime_secs: lifetime,
        epoch_secs: 7,
    }
}

#[test]
fn pinhole_answers_checked() {
    let r = request(120);
    let ok = check_pcp_pinhole(&grant("2001:db8:0:100::10", 41641, 120), &r).unwrap();
    assert_eq!((ok.port, ok.lease_s, ok.epoch_secs), (41641, 120, 7));
    // miniupnpd 2.3.1 renewal: external port 0
    let renew = check_pcp_pinhole(&grant("2001:db8:0:100::10", 0, 120), &r).unwrap();
    assert_eq!(renew.port, 41641);
    let e = |g| check_pcp_pinhole(&g, &r).unwrap_err();
    assert!(matches!(
        e(grant("203.0.113.2", 41641, 120)),
        PinholeError::WrongFamily(_)
    ));
    assert!(matches!(
        e(grant("2001:db8:0:100::99", 41641, 120)),
        PinholeError::ForeignAddress { .. }
    ));
    assert_eq!(
        e(grant("2001:db8:0:100::10", 5000, 120)),
        PinholeError::OtherPort {
            asked: 41641,
            got: 5000
        }
    );
    assert_eq!(
        e(grant("2001:db8:0:100::10", 41641, 0)),
        PinholeError::ZeroLease
    );
    // A deletion is confirmed by lifetime 0.
    let del = check_pcp_pinhole(&grant("2001:db8:0:100::10", 41641, 0), &request(0)).unwrap();
    assert_eq!(del.lease_s, 0);
    let mut v4 = request(120);
    v4.client_addr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 10));
    assert_eq!(
        check_pcp_pinhole(&grant("2001:db8:0:100::10", 41641, 120), &v4),
        Err(PinholeError::NotIpv6)
    );
}

/// The whole path from the wire: an IPv6 MAP request encodes the address
/// as is, and miniupnpd's answer (captured in the lab) decodes and checks.
#[test]
fn ipv6_map_round_trip_golden() {
    let r = request(120);
    let wire = r.encode();
    assert_eq!(&wire[8..24], &r.client_addr_octets());
    assert_eq!(&wire[44..60], &[0u8; 16], "suggested external :: for IPv6");
    let mut answer = wire;
    answer[1] |= 0x80;
    answer[8..12].copy_from_slice(&7u32.to_be_bytes()); // epoch
    answer[12..24].fill(0);
    answer[42..44].copy_from_slice(&41641u16.to_be_bytes());
    answer[44..60].copy_from_slice(&r.client_addr_octets());
    let g = pcp::decode_map_response(&answer, &r).unwrap();
    let p = check_pcp_pinhole(&g, &r).unwrap();
    assert_eq!(
        (p.addr.to_string().as_str(), p.port, p.lease_s),
        ("2001:db8:0:100::10", 41641, 120)
    );
}

trait Octets {
    fn client_addr_octets(&self) -> [u8; 16];
}

impl Octets for MapRequest {
    fn client_addr_octets(&self) -> [u8; 16] {
        match self.client_addr {
            IpAddr::V6(a) => a.octets(),
            IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        }
    }
}

#[test]
fn parsers_never_panic() {
    let mut rng = crate::portmap::protocol::XorShift::new(41641);
    for _ in 0..3000 {
        let bytes = rng.bytes(300);
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse_if_inet6(&text);
        let _ = parse_ipv6_default_route(&text);
    }
    let big = "a".repeat(MAX_PROC_TEXT + 10) + "é";
    assert!(parse_if_inet6(&big).is_empty());
}
