//! Feeds arbitrary datagrams to the PCP decoder and the reply classifier.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use edgereach::portmap::protocol::pcp::{self, MapRequest, Opcode, ResultCode};
use edgereach::portmap::protocol::{classify_reply, Protocol, MAX_MESSAGE_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = classify_reply(data);
    for op in [Opcode::Announce, Opcode::Map] {
        if let Ok(r) = pcp::decode_response(data, op) {
            assert!(data.len() >= pcp::HEADER_LEN && data.len() <= MAX_MESSAGE_LEN);
            assert_eq!(data.len() % 4, 0);
            if op == Opcode::Map && r.result == ResultCode::Success {
                assert!(r.mapping.is_some());
            }
        }
    }
    let request = MapRequest {
        lifetime_secs: 7200,
        client_addr: IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10)),
        nonce: [7; 12],
        protocol: Protocol::Udp,
        internal_port: 41641,
        suggested_external_port: 41641,
        suggested_external_addr: None,
    };
    if let Ok(grant) = pcp::decode_map_response(data, &request) {
        assert_eq!(grant.mapping.nonce, request.nonce);
    }
});
