//! Credentials out of URLs before they are logged, published or stored.
//!
//! A ControlURL, a broker or a DERP map URL may carry `user:password@`; the
//! status snapshot feeds the log, the page, `/api/status`, MQTT and the
//! outbox on disk, so every URL that enters it goes through [`url`].

/// `text` with the userinfo (`user:pw@`) of its authority removed. Text that
/// is no `scheme://` URL is returned unchanged.
pub fn url(text: &str) -> String {
    let Some(scheme_end) = text.find("://").map(|i| i + 3) else {
        return text.to_string();
    };
    let rest = &text[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}{}", &text[..scheme_end], &rest[at + 1..]),
        None => text.to_string(),
    }
}

/// [`url`] for an optional value.
pub fn opt_url(text: Option<&str>) -> Option<String> {
    text.map(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_stripped_and_the_rest_kept() {
        for (given, want) in [
            ("https://user:pw@hs.example", "https://hs.example"),
            (
                "https://user:pw@hs.example:8443/a?b=c@d",
                "https://hs.example:8443/a?b=c@d",
            ),
            ("mqtts://u@[2001:db8::1]:8883", "mqtts://[2001:db8::1]:8883"),
            ("http://a@b@c/x", "http://c/x"),
            ("https://hs.example/path@x", "https://hs.example/path@x"),
            ("https://hs.example", "https://hs.example"),
            ("inline", "inline"),
            ("", ""),
        ] {
            assert_eq!(url(given), want, "{given}");
        }
    }
}
