//! Feeds arbitrary datagrams to the STUN Binding response decoder.
#![no_main]

use edgereach::netcheck::stun::{
    self, decode_binding_response, looks_like_stun, peek_transaction_id, TransactionId,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let looks = looks_like_stun(data);
    let peeked = peek_transaction_id(data);
    assert_eq!(looks, peeked.is_some());
    // Decode against the datagram's own id (reaches attribute parsing) and
    // against a fixed one (exercises the mismatch path).
    let own = peeked.unwrap_or_default();
    for tid in [own, TransactionId::new([0x5a; 12])] {
        if let Ok(r) = decode_binding_response(data, &tid) {
            assert!(looks);
            assert!(data.len() <= stun::MAX_DATAGRAM);
            assert_eq!(tid, own);
            assert!(r.mapped.port() != 0 && !r.mapped.ip().is_unspecified());
        }
    }
});
