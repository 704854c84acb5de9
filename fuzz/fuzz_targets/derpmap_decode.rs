//! Feeds arbitrary bytes to the DERP map decoder and target listing.
#![no_main]

use edgereach::netcheck::derpmap;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(map) = derpmap::decode(data) {
        for t in derpmap::stun_targets(&map) {
            assert!(t.port != 0);
        }
    }
});
