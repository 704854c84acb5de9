//! Fuzzes our IGD answer parsers: GetSpecificPortMappingEntry, UPnP faults
//! and the device description (service choice and control URL resolution).
//! The mapping actions' answers are igd-next's to parse.
#![no_main]

use edgereach::portmap::protocol::description::parse_description;
use edgereach::portmap::protocol::soap::{
    parse_get_specific_entry_response, parse_soap_fault, xml_escape,
};
use edgereach::portmap::protocol::ssdp::location_host;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let body = String::from_utf8_lossy(data);
    let _ = parse_get_specific_entry_response(&body);
    let _ = parse_soap_fault(&body);
    // A control URL (and the IPv6 firewall's), when found, is always a literal-IP http:// URL.
    if let Ok(service) = parse_description(&body, "http://10.77.0.1:5000/rootDesc.xml") {
        assert!(location_host(&service.control_url).is_ok());
        if let Some(firewall) = &service.firewall_control_url {
            assert!(location_host(firewall).is_ok());
        }
    }
    // Escaped text never contains markup characters.
    let escaped = xml_escape(&body);
    assert!(!escaped.contains(['<', '>', '"', '\'']));
});
