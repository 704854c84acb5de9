//! The admission service's JSON (the seed's `POST /api/v1/bootstrap`), pure
//! and bounded: no I/O, every field checked for size and shape, fuzzed.
//!
//! Request: the seed's `{account, plan, want_region}` plus who is asking
//! (gateway id, agent version, architecture) and the latest NAT summary.
//! Answer: `{cluster_id, headscale_url, derp_map, auth_mode, note}` plus
//! `auth_key` when `auth_mode` is `authkey` and the gateway needs one: it
//! says so (`needs_auth_key`: tailscaled is new or logged out) and names the
//! cluster it is on (`current_cluster_id`), so a service mints a pre-auth
//! key only for a login or a move, not for every periodic registration. `derp_map` is either a URL (as
//! in the seed) or a Tailscale-format DERP map object given inline.
//! Error answers carry `{"error": "...", "reason": "..."}`; only a cleaned,
//! shortened reason is ever shown.

use serde::{Deserialize, Serialize};

use super::auth_mode::AuthMode;
use super::secret::Secret;
use crate::nullable::{empty_as_none, null_as_default};

/// Largest answer body read from the service.
pub const MAX_BODY: usize = 64 * 1024;
/// Longest reason or note shown from the service.
pub const MAX_TEXT: usize = 300;
const MAX_ID: usize = 64;
const MAX_URL: usize = 2048;
const MAX_AUTH_KEY: usize = 512;
/// Path of the bootstrap call below the service's base URL.
pub const BOOTSTRAP_PATH: &str = "/api/v1/bootstrap";

/// What the gateway sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BootstrapRequest {
    /// Tenant account.
    pub account: String,
    /// Plan name.
    #[serde(default, deserialize_with = "null_as_default")]
    pub plan: String,
    /// Wanted region.
    #[serde(default, deserialize_with = "null_as_default")]
    pub want_region: String,
    /// This gateway's stable id (also its tailnet hostname).
    #[serde(default, deserialize_with = "null_as_default")]
    pub gateway_id: String,
    /// edgereach version.
    #[serde(default, deserialize_with = "null_as_default")]
    pub agent_version: String,
    /// CPU architecture (`aarch64`, `arm`, `x86_64`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub arch: String,
    /// The latest NAT report in short, when one exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netcheck: Option<NetcheckSummary>,
    /// The cluster this gateway is assigned to now, if any.
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub current_cluster_id: Option<String>,
    /// tailscaled is new or logged out: a login needs a pre-auth key.
    #[serde(default, deserialize_with = "null_as_default")]
    pub needs_auth_key: bool,
}

/// The NAT facts the service may use for placement.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetcheckSummary {
    /// When the report was made (RFC 3339 UTC).
    #[serde(default, deserialize_with = "null_as_default")]
    pub time: String,
    /// UDP works at all.
    #[serde(default, deserialize_with = "null_as_default")]
    pub udp: bool,
    /// Public IPv4 `ip:port`.
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv4: Option<String>,
    /// Hard NAT (endpoint-dependent mapping).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping_varies_by_dest_ip: Option<bool>,
    /// Port mapping protocols the router offers.
    #[serde(default, deserialize_with = "null_as_default")]
    pub port_mapping: Vec<String>,
    /// Nearest region code.
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub preferred_region: Option<String>,
    /// Best latency to the nearest region, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_latency_ms: Option<f64>,
}

impl NetcheckSummary {
    /// The summary of a full report.
    pub fn of(r: &crate::netcheck::report::Report) -> Self {
        let preferred = r.preferred_region.as_ref().map(|p| p.code.clone());
        Self {
            time: r.time.to_string(),
            udp: r.udp,
            ipv4: r.ipv4.clone(),
            mapping_varies_by_dest_ip: r.mapping_varies_by_dest_ip,
            port_mapping: r.port_mapping.clone(),
            preferred_latency_ms: preferred
                .as_ref()
                .and_then(|c| r.region_latency_ms.get(c).copied()),
            preferred_region: preferred,
        }
    }
}

/// Where the DERP map of the assigned cluster comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DerpMapRef {
    /// A URL to fetch it from (the seed's form).
    Url(String),
    /// The map itself, Tailscale JSON, re-encoded compactly.
    Inline(serde_json::Value),
}

/// The service's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BootstrapResponse {
    /// Assigned cluster.
    pub cluster_id: String,
    /// Its headscale (tailscaled's ControlURL).
    pub headscale_url: String,
    /// Its DERP map, when it has one of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derp_map: Option<DerpMapRef>,
    /// `authkey` (a pre-auth key is included), `none` (the node is known to
    /// the cluster already), or something unattended gateways can't do
    /// (`oidc`).
    #[serde(deserialize_with = "auth_mode_field")]
    pub auth_mode: AuthMode,
    /// Pre-auth key for `authkey`, when the gateway needs one (a login or a
    /// move); a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_key: Option<Secret>,
    /// Free text from the service.
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub note: Option<String>,
}

/// An error answer's body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Short machine code, e.g. `unknown_account`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub error: String,
    /// Plain words.
    #[serde(default, deserialize_with = "null_as_default")]
    pub reason: String,
}

/// Why an answer could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// Larger than [`MAX_BODY`].
    #[error("answer of {0} bytes exceeds the {MAX_BODY}-byte limit")]
    TooLarge(usize),
    /// Not JSON of the expected shape.
    #[error("answer is not the bootstrap JSON: {0}")]
    Json(String),
    /// A field is there but unusable.
    #[error("answer field {field}: {why}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        why: String,
    },
}

fn field(field: &'static str, why: impl std::fmt::Display) -> CodecError {
    CodecError::Field {
        field,
        why: why.to_string(),
    }
}

/// An id or URL that does not have the expected form (quoted back, cleaned).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// Not 1-64 letters, digits or `-_.:+`.
    #[error("{0:?}: expected 1-{MAX_ID} letters, digits or -_.:+")]
    Id(String),
    /// Not an absolute http(s) URL with a host.
    #[error("{0:?}: expected an absolute http:// or https:// URL")]
    Url(String),
}

/// `auth_mode` as its enum; what is none of them is an error naming the
/// field and quoting the text back, cleaned.
fn auth_mode_field<'de, D: serde::Deserializer<'de>>(d: D) -> Result<AuthMode, D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
    AuthMode::from_name(&text).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "auth_mode {:?} is not one of authkey, none, oidc",
            clean(&text)
        ))
    })
}

/// Decode and check a bootstrap answer.
pub fn decode_response(body: &[u8]) -> Result<BootstrapResponse, CodecError> {
    if body.len() > MAX_BODY {
        return Err(CodecError::TooLarge(body.len()));
    }
    let mut r: BootstrapResponse =
        serde_json::from_slice(body).map_err(|e| CodecError::Json(short(&e.to_string())))?;
    check_id(&r.cluster_id).map_err(|w| field("cluster_id", w))?;
    check_url(&r.headscale_url).map_err(|w| field("headscale_url", w))?;
    // "" where a service meant "none": no key, no DERP map of its own.
    if r.auth_key
        .as_ref()
        .is_some_and(|k| k.expose().trim().is_empty())
    {
        r.auth_key = None;
    }
    if matches!(&r.derp_map, Some(DerpMapRef::Url(u)) if u.trim().is_empty()) {
        r.derp_map = None;
    }
    if let Some(k) = &r.auth_key {
        let k = k.expose();
        if k.is_empty() || k.len() > MAX_AUTH_KEY || !k.chars().all(|c| c.is_ascii_graphic()) {
            return Err(field(
                "auth_key",
                format!("expected 1-{MAX_AUTH_KEY} printable ASCII characters"),
            ));
        }
    }
    match &mut r.derp_map {
        Some(DerpMapRef::Url(u)) => check_url(u).map_err(|w| field("derp_map", w))?,
        Some(DerpMapRef::Inline(v)) => {
            let bytes = serde_json::to_vec(v).map_err(|e| field("derp_map", e.to_string()))?;
            crate::netcheck::derpmap::decode(&bytes)
                .map_err(|e| field("derp_map", short(&e.to_string())))?;
        }
        None => {}
    }
    r.note = r.note.as_deref().map(clean).filter(|n| !n.is_empty());
    Ok(r)
}

/// Decode a bootstrap request (the reference service's side).
pub fn decode_request(body: &[u8]) -> Result<BootstrapRequest, CodecError> {
    if body.len() > MAX_BODY {
        return Err(CodecError::TooLarge(body.len()));
    }
    let r: BootstrapRequest =
        serde_json::from_slice(body).map_err(|e| CodecError::Json(short(&e.to_string())))?;
    check_id(&r.account).map_err(|w| field("account", w))?;
    if let Some(c) = &r.current_cluster_id {
        check_id(c).map_err(|w| field("current_cluster_id", w))?;
    }
    for (name, v) in [
        ("plan", &r.plan),
        ("want_region", &r.want_region),
        ("gateway_id", &r.gateway_id),
        ("agent_version", &r.agent_version),
        ("arch", &r.arch),
    ] {
        if !v.is_empty() {
            check_id(v).map_err(|w| field(name, w))?;
        }
    }
    Ok(r)
}

/// The reason to show for an error answer: the JSON `reason` (or `error`),
/// else the start of the body; cleaned of control characters and cut short.
pub fn error_reason(body: &[u8]) -> String {
    let head = &body[..body.len().min(MAX_BODY)];
    if let Ok(e) = serde_json::from_slice::<ErrorBody>(head) {
        let text = match (e.error.is_empty(), e.reason.is_empty()) {
            (_, false) if !e.error.is_empty() => format!("{}: {}", e.error, e.reason),
            (_, false) => e.reason,
            (false, true) => e.error,
            (true, true) => String::new(),
        };
        let text = clean(&text);
        if !text.is_empty() {
            return text;
        }
    }
    clean(&String::from_utf8_lossy(
        &head[..head.len().min(MAX_TEXT * 4)],
    ))
}

/// Ids, accounts, regions: 1-64 of letters, digits, `-_.:`.
fn check_id(s: &str) -> Result<(), ValueError> {
    let ok = !s.is_empty()
        && s.len() <= MAX_ID
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '+'));
    if ok {
        Ok(())
    } else {
        Err(ValueError::Id(clean(s)))
    }
}

/// An absolute http(s) URL with a host, no spaces, bounded.
pub fn check_url(s: &str) -> Result<(), ValueError> {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    let ok = s.len() <= MAX_URL
        && rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/'))
        && s.chars().all(|c| c.is_ascii_graphic())
        && s.parse::<hyper::Uri>().is_ok();
    if ok {
        Ok(())
    } else {
        Err(ValueError::Url(clean(s)))
    }
}

/// Printable text only, whitespace collapsed, at most [`MAX_TEXT`] bytes.
pub fn clean(s: &str) -> String {
    let collapsed = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    short(&collapsed)
}

fn short(s: &str) -> String {
    if s.len() <= MAX_TEXT {
        return s.to_string();
    }
    let mut end = MAX_TEXT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok_body() -> serde_json::Value {
        serde_json::json!({
            "cluster_id": "A",
            "headscale_url": "https://hs-a.example.com",
            "derp_map": "https://derp.example.com/map.json",
            "auth_mode": "authkey",
            "auth_key": "hskey-auth-abc123",
            "note": "stick to cluster A"
        })
    }

    #[test]
    fn seed_answer_decodes() {
        let r = decode_response(&serde_json::to_vec(&ok_body()).unwrap()).unwrap();
        assert_eq!(r.cluster_id, "A");
        assert_eq!(r.headscale_url, "https://hs-a.example.com");
        assert_eq!(
            r.derp_map,
            Some(DerpMapRef::Url("https://derp.example.com/map.json".into()))
        );
        assert_eq!(r.auth_key.as_ref().unwrap().expose(), "hskey-auth-abc123");
        assert!(!format!("{r:?}").contains("abc123"), "Debug hides the key");
    }

    #[test]
    fn inline_derp_map_is_checked() {
        let mut v = ok_body();
        v["derp_map"] = serde_json::json!({"Regions": {"900": {"RegionID": 900, "RegionCode": "a",
            "Nodes": [{"Name": "a", "RegionID": 900, "HostName": "203.0.113.10", "STUNOnly": true}]}}});
        let r = decode_response(&serde_json::to_vec(&v).unwrap()).unwrap();
        assert!(matches!(r.derp_map, Some(DerpMapRef::Inline(_))));
        v["derp_map"] = serde_json::json!({"Regions": 5});
        let e = decode_response(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(e.to_string().starts_with("answer field derp_map"), "{e}");
    }

    #[test]
    fn bad_fields_are_named() {
        for (key, val, want) in [
            ("cluster_id", serde_json::json!(""), "cluster_id"),
            ("cluster_id", serde_json::json!("a b"), "cluster_id"),
            (
                "headscale_url",
                serde_json::json!("ftp://x"),
                "headscale_url",
            ),
            (
                "headscale_url",
                serde_json::json!("http:///x"),
                "headscale_url",
            ),
            ("auth_mode", serde_json::json!("magic"), "auth_mode"),
            ("auth_key", serde_json::json!("has space"), "auth_key"),
        ] {
            let mut v = ok_body();
            v[key] = val;
            let e = decode_response(&serde_json::to_vec(&v).unwrap()).unwrap_err();
            assert!(e.to_string().contains(want), "{key}: {e}");
            assert!(!e.to_string().contains("abc123"), "{e}");
        }
    }

    #[test]
    fn garbage_and_huge_answers_fail_cleanly() {
        assert!(matches!(
            decode_response(b"<html>oops</html>"),
            Err(CodecError::Json(_))
        ));
        let huge = vec![b' '; MAX_BODY + 1];
        assert_eq!(
            decode_response(&huge),
            Err(CodecError::TooLarge(MAX_BODY + 1))
        );
        assert!(decode_response(b"").is_err());
    }

    #[test]
    fn none_mode_needs_no_key_and_notes_are_cleaned() {
        let mut v = ok_body();
        v["auth_mode"] = "none".into();
        v.as_object_mut().unwrap().remove("auth_key");
        v["note"] = "line1\nline2\u{7}".into();
        let r = decode_response(&serde_json::to_vec(&v).unwrap()).unwrap();
        assert_eq!(r.note.as_deref(), Some("line1 line2"));
    }

    #[test]
    fn error_reasons_are_short_and_clean() {
        assert_eq!(
            error_reason(br#"{"error":"unknown_account","reason":"no such account"}"#),
            "unknown_account: no such account"
        );
        assert_eq!(error_reason(b"plain\r\ntext"), "plain text");
        let long = "x".repeat(5000);
        assert!(error_reason(long.as_bytes()).len() <= MAX_TEXT + 3);
    }

    #[test]
    fn request_round_trip_and_checks() {
        let req = BootstrapRequest {
            account: "acme-inc".into(),
            plan: "pro".into(),
            want_region: "ap-sg".into(),
            gateway_id: "gw-1".into(),
            agent_version: "0.1.0".into(),
            arch: "aarch64".into(),
            netcheck: Some(NetcheckSummary::default()),
            current_cluster_id: Some("A".into()),
            needs_auth_key: true,
        };
        let bytes = serde_json::to_vec(&req).unwrap();
        assert_eq!(decode_request(&bytes).unwrap(), req);
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        for k in ["account", "plan", "want_region"] {
            assert!(v.get(k).is_some(), "seed field {k}");
        }
        assert!(decode_request(br#"{"account":""}"#).is_err());
        assert!(decode_request(br#"{"account":"a","arch":"x y"}"#).is_err());
    }
}
