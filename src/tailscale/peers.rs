//! The peers of the `tailscale` section: what tailscaled says of them, with
//! the keepalive history edgereach keeps. Pure functions, apart from the
//! actor's I/O.

use super::api::{PingPath, PingResult};
use super::client::LocalApiError;
use super::model::PingStatus;
use crate::status::now_rfc3339;

/// A keepalive ping's outcome as the status shows it.
pub(super) fn ping_status(result: &Result<PingResult, LocalApiError>) -> PingStatus {
    match result {
        Ok(r) => PingStatus {
            time: now_rfc3339(),
            path: r.path(),
            endpoint: non_empty(&r.endpoint),
            derp_region: non_empty(&r.derp_region_code)
                .or_else(|| (r.derp_region_id != 0).then(|| r.derp_region_id.to_string())),
            latency_ms: (r.err.is_empty()).then(|| (r.latency_seconds * 1e6).round() / 1e3),
            error: non_empty(&r.err),
        },
        Err(e) => PingStatus {
            time: now_rfc3339(),
            path: PingPath::Failed,
            endpoint: None,
            derp_region: None,
            latency_ms: None,
            error: Some(e.to_string()),
        },
    }
}

/// None for tailscaled's empty strings.
pub(super) fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}
