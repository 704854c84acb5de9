//! Feeds arbitrary datagrams to the NAT-PMP decoder and the reply classifier.
#![no_main]

use edgereach::portmap::protocol::natpmp::{self, MapRequest, Opcode, ResultCode};
use edgereach::portmap::protocol::{classify_reply, Protocol};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = classify_reply(data);
    for op in [Opcode::ExternalAddress, Opcode::MapUdp, Opcode::MapTcp] {
        if let Ok(r) = natpmp::decode_response(data, op) {
            assert_eq!(r.body.is_some(), r.result == ResultCode::Success);
            assert!(data.len() >= 8 && data.len() <= op.response_len());
        }
    }
    let request = MapRequest {
        protocol: Protocol::Udp,
        internal_port: 41641,
        suggested_external_port: 41641,
        lifetime_secs: 7200,
    };
    if let Ok(grant) = natpmp::decode_map_response(data, &request) {
        assert_eq!(grant.mapping.internal_port, 41641);
    }
});
