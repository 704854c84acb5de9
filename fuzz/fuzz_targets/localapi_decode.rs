//! Feeds arbitrary bytes to every tailscaled LocalAPI decoder.
#![no_main]

use edgereach::tailscale::api::{
    decode_derp_map, decode_notify, decode_ping, decode_prefs, decode_status, error_text,
    version_major_minor, MAX_BODY,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = decode_status(data) {
        assert!(data.len() <= MAX_BODY);
        let _ = version_major_minor(&s.version);
        for p in s.peer.values().chain(s.self_node.iter()) {
            let _ = p.tailnet_ip();
        }
    }
    if let Ok(p) = decode_ping(data) {
        let _ = p.path();
    }
    let _ = decode_prefs(data);
    let _ = decode_notify(data);
    let _ = decode_derp_map(data);
    assert!(error_text(data).len() <= 300);
});
