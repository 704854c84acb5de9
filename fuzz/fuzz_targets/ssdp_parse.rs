//! Fuzzes the SSDP answer parser and the LOCATION URL splitter.
#![no_main]

use edgereach::portmap::protocol::ssdp::{location_host, parse_response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(response) = parse_response(data) {
        // Whatever the parser accepts must respect its documented limits.
        assert!(!response.location.is_empty());
        assert!(response.location.len() <= 512);
        let _ = location_host(&response.location);
    }
    if let Ok((_, port, path)) = location_host(&String::from_utf8_lossy(data)) {
        assert!(port != 0);
        assert!(path.starts_with('/'));
        assert!(path.bytes().all(|b| b.is_ascii_graphic()));
    }
});
