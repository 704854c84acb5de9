//! Guarding the page's actions: the token (read from a file, compared in
//! constant time) and the cross-site checks. Pure except for reading the
//! token file.

use std::path::Path;

use sha2::{Digest, Sha256};

/// Shortest token accepted: a guessable token is no protection.
pub const MIN_TOKEN_CHARS: usize = 16;
/// Largest token file read.
const MAX_TOKEN_FILE_BYTES: u64 = 4096;
/// Header that may carry the token instead of the form field (for scripts).
pub const TOKEN_HEADER: &str = "x-edgereach-token";

/// The action token, kept only as its digest.
#[derive(Clone)]
pub struct Token([u8; 32]);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

/// Why the token file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Reading failed, or the path is no regular file (the message names it).
    #[error("cannot read the action token file {0}")]
    Read(#[from] crate::fsread::ReadError),
    /// The file is not one short line of at least [`MIN_TOKEN_CHARS`].
    #[error("the action token file {path} must hold one line of {MIN_TOKEN_CHARS} to 4096 characters without spaces")]
    Unfit {
        /// The file.
        path: String,
    },
}

impl Token {
    /// Read the token from `path`: one line, surrounding whitespace ignored.
    pub fn load(path: &Path) -> Result<Self, TokenError> {
        let shown = path.display().to_string();
        let bytes = match crate::fsread::read_capped(path, MAX_TOKEN_FILE_BYTES) {
            Err(crate::fsread::ReadError::TooLarge { .. }) => {
                return Err(TokenError::Unfit { path: shown })
            }
            other => zeroize::Zeroizing::new(other?),
        };
        let text = std::str::from_utf8(&bytes).map_err(|_| TokenError::Unfit {
            path: shown.clone(),
        })?;
        Self::from_text(text).ok_or(TokenError::Unfit { path: shown })
    }

    /// A token from text, or None when it is too short or has spaces.
    pub fn from_text(text: &str) -> Option<Self> {
        let t = text.trim();
        let fit = t.chars().count() >= MIN_TOKEN_CHARS && !t.chars().any(char::is_whitespace);
        fit.then(|| Self(Sha256::digest(t.as_bytes()).into()))
    }

    /// Whether `given` is the token. Both sides are hashed first and the
    /// digests compared without an early exit, so neither the length nor a
    /// matching prefix shows in the timing.
    pub fn matches(&self, given: &str) -> bool {
        let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        let diff = self
            .0
            .iter()
            .zip(given.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

/// What the request says about where it came from.
#[derive(Clone, Copy, Debug, Default)]
pub struct Provenance<'a> {
    /// `Host` header.
    pub host: Option<&'a str>,
    /// `Origin` header.
    pub origin: Option<&'a str>,
    /// `Sec-Fetch-Site` header.
    pub sec_fetch_site: Option<&'a str>,
}

/// Refuse what a browser marks as coming from another site. A form on
/// another site can make a browser POST here, but it cannot know the token;
/// these checks refuse such requests before the token is even looked at.
/// Returns why the request is refused.
pub fn cross_site(p: Provenance<'_>) -> Option<&'static str> {
    if let Some(site) = p.sec_fetch_site {
        if !matches!(site, "same-origin" | "none") {
            return Some("the browser says this request comes from another site");
        }
    }
    if let Some(origin) = p.origin {
        let host = p.host.unwrap_or("");
        let same = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|o| !host.is_empty() && o.eq_ignore_ascii_case(host));
        if !same {
            return Some("the request's Origin is not this page");
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_rules() {
        let t = Token::from_text("  correct-horse-battery\n").unwrap();
        assert!(t.matches("correct-horse-battery"));
        assert!(!t.matches("correct-horse-batter"));
        assert!(!t.matches(""));
        assert!(!t.matches("correct-horse-battery "));
        assert!(Token::from_text("short").is_none());
        assert!(Token::from_text("has a space in the middle").is_none());
        assert_eq!(format!("{t:?}"), "Token(..)", "the token never prints");
    }

    #[test]
    fn token_file_is_read_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        std::fs::write(&p, "0123456789abcdef0123\n").unwrap();
        assert!(Token::load(&p).unwrap().matches("0123456789abcdef0123"));
        std::fs::write(&p, "x".repeat(5000)).unwrap();
        assert!(matches!(Token::load(&p), Err(TokenError::Unfit { .. })));
        let e = Token::load(&dir.path().join("missing")).unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
    }

    #[test]
    fn cross_site_requests_are_refused() {
        let host = Some("192.0.2.10:8088");
        let ok = |origin, site| {
            cross_site(Provenance {
                host,
                origin,
                sec_fetch_site: site,
            })
            .is_none()
        };
        assert!(ok(None, None), "curl with the token");
        assert!(ok(Some("http://192.0.2.10:8088"), Some("same-origin")));
        assert!(ok(None, Some("none")));
        assert!(!ok(Some("http://evil.example"), None));
        assert!(!ok(Some("null"), None));
        assert!(!ok(None, Some("cross-site")));
        assert!(!ok(None, Some("same-site")));
        assert!(!ok(Some("http://192.0.2.10:8088.evil.example"), None));
        assert!(cross_site(Provenance {
            host: None,
            origin: Some("http://192.0.2.10:8088"),
            sec_fetch_site: None
        })
        .is_some());
    }
}
