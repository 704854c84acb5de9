//! Feeds arbitrary bytes to the DERP map decoder and the target listing.
#![no_main]

use edgereach::netcheck::derpmap::{decode, stun_targets, MAX_DERP_MAP};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(map) = decode(data) {
        assert!(data.len() <= MAX_DERP_MAP);
        let ids: Vec<u16> = map.regions.iter().map(|r| r.region_id).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        let targets = stun_targets(&map);
        assert!(targets.windows(2).all(|w| w[0].region_id <= w[1].region_id));
        for t in &targets {
            assert!(!t.host.is_empty() && t.port != 0);
            assert!(t.ipv4.is_some() || t.ipv6.is_some() || t.resolve_ipv4 || t.resolve_ipv6);
        }
    }
});
