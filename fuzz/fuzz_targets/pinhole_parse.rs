//! Feeds arbitrary text to the `/proc/net/if_inet6` and `/proc/net/ipv6_route`
//! parsers, and arbitrary datagrams as answers to an IPv6 pinhole MAP.
#![no_main]

use std::net::{IpAddr, Ipv6Addr};

use edgereach::portmap::protocol::pcp::{self, MapRequest};
use edgereach::portmap::protocol::pinhole;
use edgereach::portmap::protocol::Protocol;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for a in pinhole::parse_if_inet6(&text) {
        assert!(a.prefix_len <= 128);
        if a.pinhole_candidate() {
            assert!(pinhole::is_global_unicast(a.addr));
        }
    }
    if let Some(r) = pinhole::parse_ipv6_default_route(&text) {
        assert!(!r.gateway.is_unspecified());
    }
    let me = Ipv6Addr::new(0x2001, 0xdb8, 0, 0x100, 0, 0, 0, 0x10);
    for lifetime in [120, 0] {
        let request = MapRequest {
            lifetime_secs: lifetime,
            client_addr: IpAddr::V6(me),
            nonce: [7; 12],
            protocol: Protocol::Udp,
            internal_port: 41641,
            suggested_external_port: 41641,
            suggested_external_addr: None,
        };
        if let Ok(grant) = pcp::decode_map_response(data, &request) {
            if let Ok(p) = pinhole::check_pcp_pinhole(&grant, &request) {
                assert_eq!(p.addr, me);
                assert_eq!(p.port, 41641);
                assert!(lifetime == 0 || p.lease_s > 0);
            }
        }
    }
});
