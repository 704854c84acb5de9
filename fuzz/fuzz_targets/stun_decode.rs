//! Feeds arbitrary datagrams to the STUN Binding response decoder.
#![no_main]

use edgereach::netcheck::stun::{self, TransactionId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Use the datagram's own transaction id when it has one, so the fuzzer
    // reaches the attribute decoding.
    let tid: [u8; 12] = data.get(8..20).and_then(|t| t.try_into().ok()).unwrap_or_default();
    let _ = stun::looks_like_stun(data);
    if let Ok(r) = stun::decode_binding_response(data, &TransactionId::new(tid)) {
        assert!(data.len() <= stun::MAX_DATAGRAM);
        let _ = r.mapped.port();
    }
});
