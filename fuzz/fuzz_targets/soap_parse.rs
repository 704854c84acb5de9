//! Fuzzes the GetSpecificPortMappingEntry response and UPnP fault parsers.
#![no_main]

use edgereach::portmap::protocol::soap::{
    parse_get_specific_entry_response, parse_soap_fault, xml_escape,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let body = String::from_utf8_lossy(data);
    let _ = parse_get_specific_entry_response(&body);
    let _ = parse_soap_fault(&body);
    // Escaped text never contains markup characters.
    let escaped = xml_escape(&body);
    assert!(!escaped.contains(['<', '>', '"', '\'']));
});
