//! Feeds arbitrary bytes to the admission service codec: the bootstrap
//! answer, the request (the reference service's side) and error reasons.
#![no_main]

use edgereach::admission::codec::{
    decode_request, decode_response, error_reason, MAX_BODY, MAX_TEXT,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = decode_response(data) {
        assert!(data.len() <= MAX_BODY);
        assert!(!r.cluster_id.is_empty() && r.cluster_id.len() <= 64);
        assert!(r.headscale_url.starts_with("http"));
        assert!(matches!(r.auth_mode.as_str(), "authkey" | "none" | "oidc"));
        // Debug output never carries the key. (A key of a few characters,
        // say ",", appears in any Debug text by coincidence: look only for
        // keys long enough to be told apart, as real pre-auth keys are.)
        if let Some(k) = r.auth_key.as_ref().filter(|k| k.expose().len() >= 8) {
            assert!(!format!("{r:?}").contains(k.expose()));
        }
        if let Some(n) = &r.note {
            assert!(n.len() <= MAX_TEXT + 3 && !n.chars().any(char::is_control));
        }
    }
    if let Ok(q) = decode_request(data) {
        assert!(!q.account.is_empty());
    }
    let reason = error_reason(data);
    assert!(reason.len() <= MAX_TEXT + 3);
    assert!(!reason.chars().any(char::is_control));
});
