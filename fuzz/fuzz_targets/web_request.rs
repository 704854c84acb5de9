//! Fuzzes what the status page parses from requests (target split, route,
//! form and query decoding) and the escapers every rendered string goes
//! through.
#![no_main]

use edgereach::web::metrics::label;
use edgereach::web::page::escape;
use edgereach::web::request::{parse_form, route, split_target, MAX_FIELDS, MAX_FORM_BYTES};
use edgereach::web::sections::without_credentials;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(fields) = parse_form(data) {
        assert!(fields.len() <= MAX_FIELDS);
        // Decoding never grows the text.
        assert!(fields.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>() <= MAX_FORM_BYTES);
    }
    let text = String::from_utf8_lossy(data);
    if let Ok((path, query)) = split_target(&text) {
        let _ = route(path);
        if let Some(q) = query {
            let _ = parse_form(q.as_bytes());
        }
    }
    let html = escape(&text);
    assert!(!html.contains(['<', '>', '"', '\'']));
    let l = label(&text);
    assert!(!l.contains('\n'));
    let url = without_credentials(&text);
    assert!(url.len() <= text.len() + 3);
});
