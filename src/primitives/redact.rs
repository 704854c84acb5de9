//! Credentials out of URLs before they are logged, published or stored.
//!
//! A ControlURL, a broker or a DERP map URL may carry `user:password@`; the
//! status snapshot and the event stream feed the log, the page,
//! `/api/status`, MQTT and the outbox on disk. URL fields go through [`url`];
//! every event message and health reason goes through [`text`], which
//! catches a URL quoted inside an error message as well.

/// `u` with the userinfo (`user:pw@`) of its authority removed; a value
/// without `scheme://` is taken as starting with the authority.
pub fn url(u: &str) -> String {
    let (scheme, rest) = match u.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, u),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let rest = match rest[..authority_end].rfind('@') {
        Some(at) => &rest[at + 1..],
        None => return u.to_string(),
    };
    match scheme {
        Some(s) => format!("{s}://{rest}"),
        None => rest.to_string(),
    }
}

/// [`url`] for an optional value.
pub fn opt_url(u: Option<&str>) -> Option<String> {
    u.map(url)
}

/// Free text with the userinfo of every `scheme://user:pw@host` in it
/// removed. Text without `://` is returned as it is (the common case).
pub fn text(t: &str) -> String {
    if !t.contains("://") {
        return t.to_string();
    }
    let mut out = String::with_capacity(t.len());
    let mut rest = t;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // The authority ends at a path, query, fragment, quote or space.
        let end = tail
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '"' | '\'' | '`' | '<' | '>') || c.is_whitespace()
            })
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        out.push_str(match authority.rfind('@') {
            Some(at) => &authority[at + 1..],
            None => authority,
        });
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
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
            ("user:pw@hs.example:443", "hs.example:443"),
            ("https://hs.example", "https://hs.example"),
            ("inline", "inline"),
            ("", ""),
        ] {
            assert_eq!(url(given), want, "{given}");
        }
    }

    #[test]
    fn urls_inside_text_lose_their_userinfo() {
        assert_eq!(
            text("moved to https://u:pw@hs.example/x (was \"http://a:b@old.example\"); ok"),
            "moved to https://hs.example/x (was \"http://old.example\"); ok"
        );
        assert_eq!(text("no url: a@b"), "no url: a@b");
        assert_eq!(text("end https://u:p@h"), "end https://h");
    }
}
