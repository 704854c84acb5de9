//! Feeds arbitrary datagrams to the SSDP response parser and LOCATION check.
#![no_main]

use edgereach::portmap::protocol::ssdp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = ssdp::parse_response(data) {
        assert!(data.len() <= ssdp::MAX_DATAGRAM_LEN);
        assert!(!r.location.is_empty());
        let _ = ssdp::location_host(&r.location);
    }
    let _ = ssdp::location_host(&String::from_utf8_lossy(data));
});
