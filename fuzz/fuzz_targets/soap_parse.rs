//! Feeds arbitrary bodies to the SOAP response and fault parsers.
#![no_main]

use edgereach::portmap::protocol::soap;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let body = String::from_utf8_lossy(data);
    if soap::parse_get_specific_entry_response(&body).is_ok() {
        assert!(body.len() <= soap::MAX_BODY_LEN);
    }
    let _ = soap::parse_soap_fault(&body);
    let _ = soap::xml_escape(&body);
});
