//! What a request asks for, from its target and form body: a pure codec
//! without I/O, bounded in size, fuzzed (`fuzz/fuzz_targets/web_request.rs`).

/// Longest request target (path and query) accepted.
pub const MAX_TARGET_BYTES: usize = 512;
/// Longest form body accepted.
pub const MAX_FORM_BYTES: usize = 2048;
/// Most fields in a query or form.
pub const MAX_FIELDS: usize = 16;

/// The pages and endpoints the server knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// `/`: the status page.
    Page,
    /// `/api/status`: the snapshot as JSON.
    ApiStatus,
    /// `/metrics`: Prometheus text format.
    Metrics,
    /// `/healthz`: liveness.
    Healthz,
    /// `/action/netcheck`, `/action/remap`: POST only, with the token.
    Action(Action),
    /// Anything else.
    NotFound,
}

/// What a technician can ask the gateway to do from the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Run a full NAT report now.
    Netcheck,
    /// Delete and re-add the port mappings now.
    Remap,
}

impl Action {
    /// Name used in paths, events and the page.
    pub fn name(self) -> &'static str {
        match self {
            Action::Netcheck => "netcheck",
            Action::Remap => "remap",
        }
    }

    /// Parse a name as [`Action::name`] writes it.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "netcheck" => Some(Action::Netcheck),
            "remap" => Some(Action::Remap),
            _ => None,
        }
    }
}

/// Why a request target or form was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Longer than the limit.
    #[error("{what} is {len} bytes, more than the {max} allowed")]
    TooLong {
        /// Which part.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// More fields than the limit.
    #[error("more than {MAX_FIELDS} fields")]
    TooManyFields,
    /// A `%` not followed by two hex digits, at this byte offset.
    #[error("bad percent-escape at byte {0}")]
    BadEscape(usize),
    /// The decoded text is not UTF-8.
    #[error("field {0} is not UTF-8 after decoding")]
    NotUtf8(usize),
}

/// The route a request target names (the query, if any, is ignored here;
/// see [`split_target`]). Exact paths only: nothing is normalised, so no
/// spelling of a path reaches something it should not.
pub fn route(path: &str) -> Route {
    match path {
        "/" | "/index.html" => Route::Page,
        "/api/status" => Route::ApiStatus,
        "/metrics" => Route::Metrics,
        "/healthz" => Route::Healthz,
        _ => match path.strip_prefix("/action/").and_then(Action::from_name) {
            Some(a) => Route::Action(a),
            None => Route::NotFound,
        },
    }
}

/// Split a request target into path and query, refusing over-long ones.
pub fn split_target(target: &str) -> Result<(&str, Option<&str>), RequestError> {
    if target.len() > MAX_TARGET_BYTES {
        return Err(RequestError::TooLong {
            what: "request target",
            len: target.len(),
            max: MAX_TARGET_BYTES,
        });
    }
    Ok(match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    })
}

/// Decode `application/x-www-form-urlencoded` text (a form body or a query)
/// into name/value pairs, in order.
pub fn parse_form(input: &[u8]) -> Result<Vec<(String, String)>, RequestError> {
    if input.len() > MAX_FORM_BYTES {
        return Err(RequestError::TooLong {
            what: "form",
            len: input.len(),
            max: MAX_FORM_BYTES,
        });
    }
    let mut out = Vec::new();
    let mut offset = 0;
    for pair in input.split(|&b| b == b'&') {
        let start = offset;
        offset += pair.len() + 1;
        if pair.is_empty() {
            continue;
        }
        if out.len() == MAX_FIELDS {
            return Err(RequestError::TooManyFields);
        }
        let eq = pair.iter().position(|&b| b == b'=').unwrap_or(pair.len());
        let value = pair.get(eq + 1..).unwrap_or_default();
        let field = out.len();
        let name = decode(&pair[..eq], start, field)?;
        let value = decode(value, start + eq + 1, field)?;
        out.push((name, value));
    }
    Ok(out)
}

/// The first value of `name` in decoded pairs.
pub fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn decode(raw: &[u8], at: usize, field: usize) -> Result<String, RequestError> {
    let mut bytes = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex = |b: Option<&u8>| b.and_then(|&b| (b as char).to_digit(16));
                match (hex(raw.get(i + 1)), hex(raw.get(i + 2))) {
                    (Some(h), Some(l)) => bytes.push((h * 16 + l) as u8),
                    _ => return Err(RequestError::BadEscape(at + i)),
                }
                i += 2;
            }
            b => bytes.push(b),
        }
        i += 1;
    }
    String::from_utf8(bytes).map_err(|_| RequestError::NotUtf8(field))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_exact() {
        assert_eq!(route("/"), Route::Page);
        assert_eq!(route("/api/status"), Route::ApiStatus);
        assert_eq!(route("/metrics"), Route::Metrics);
        assert_eq!(route("/healthz"), Route::Healthz);
        assert_eq!(route("/action/netcheck"), Route::Action(Action::Netcheck));
        assert_eq!(route("/action/remap"), Route::Action(Action::Remap));
        for other in [
            "/api/status/",
            "//metrics",
            "/action/",
            "/action/remap/x",
            "/action/../metrics",
            "/%2e%2e/etc/passwd",
            "",
            "*",
            "/METRICS",
        ] {
            assert_eq!(route(other), Route::NotFound, "{other:?}");
        }
    }

    #[test]
    fn targets_split_and_are_bounded() {
        assert_eq!(
            split_target("/?done=remap").unwrap(),
            ("/", Some("done=remap"))
        );
        assert_eq!(split_target("/metrics").unwrap(), ("/metrics", None));
        let long = format!("/{}", "a".repeat(MAX_TARGET_BYTES));
        assert!(matches!(
            split_target(&long),
            Err(RequestError::TooLong { .. })
        ));
    }

    #[test]
    fn forms_decode() {
        let f = parse_form(b"token=ab%2Bc+d&x=&flag&&y=%E2%9C%93").unwrap();
        assert_eq!(
            f,
            [
                ("token".into(), "ab+c d".into()),
                ("x".into(), String::new()),
                ("flag".into(), String::new()),
                ("y".into(), "\u{2713}".into()),
            ]
        );
        assert_eq!(field(&f, "token"), Some("ab+c d"));
        assert_eq!(field(&f, "nope"), None);
        assert_eq!(parse_form(b"").unwrap(), []);
    }

    #[test]
    fn bad_forms_are_refused_with_where() {
        assert_eq!(parse_form(b"a=%4"), Err(RequestError::BadEscape(2)));
        assert_eq!(parse_form(b"a=%zz"), Err(RequestError::BadEscape(2)));
        assert_eq!(parse_form(b"a=%ff"), Err(RequestError::NotUtf8(0)));
        let many = "a=1&".repeat(MAX_FIELDS + 1);
        assert_eq!(
            parse_form(many.as_bytes()),
            Err(RequestError::TooManyFields)
        );
        let big = vec![b'a'; MAX_FORM_BYTES + 1];
        assert!(matches!(
            parse_form(&big),
            Err(RequestError::TooLong { .. })
        ));
    }
}
