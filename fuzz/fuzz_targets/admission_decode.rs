//! Feeds arbitrary bytes to the admission service codec: the bootstrap
//! answer, the request (the reference service's side) and error reasons.
#![no_main]

use edgereach::admission::codec::{
    decode_request, decode_response, error_reason, MAX_BODY, MAX_TEXT,
};
use edgereach::admission::secret::Secret;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = decode_response(data) {
        assert!(data.len() <= MAX_BODY);
        assert!(!r.cluster_id.is_empty() && r.cluster_id.len() <= 64);
        assert!(r.headscale_url.starts_with("http"));
        assert!(matches!(r.auth_mode.name(), "authkey" | "none" | "oidc"));
        // Debug output never carries the key: the key adds no occurrence of
        // itself to the Debug text (compared with an empty key, which prints the
        // same redaction marker). A key can equal some other text, say a
        // field name like "derp_map": that shows with or without the key.
        if let Some(k) = r.auth_key.as_ref().filter(|k| !k.expose().is_empty()) {
            let count = |text: String| text.matches(k.expose()).count();
            let mut without = r.clone();
            without.auth_key = Some(Secret::new(String::new()));
            assert!(count(format!("{r:?}")) <= count(format!("{without:?}")));
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
