//! `netcheck.derp_map` as an http(s) URL: fetched with the admission
//! service's HTTP client (bounded, names re-resolved by TTL), validated, and
//! kept in the state directory, so a restart or an unreachable server still
//! leaves the last good map in use.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::derpmap::DerpMapError;
use crate::admission::client::{AcsClient, AcsError};
use crate::config::AdmissionConfig;
use crate::resolve::NameResolver;
use crate::state::{StateDir, StateError};

/// The last good map fetched from `netcheck.derp_map`.
pub const CACHE_FILE: &str = "netcheck-derp-map.json";
/// How often a fetched map is fetched again.
pub const REFRESH: Duration = Duration::from_secs(3600);
/// Wait before trying again after a failed fetch.
pub const RETRY: Duration = Duration::from_secs(60);

/// Whether `netcheck.derp_map` names a URL rather than a file.
pub fn is_url(source: &str) -> bool {
    source.starts_with("http://") || source.starts_with("https://")
}

/// The cached map for `state_dir`, if one was fetched before.
pub fn cached(state_dir: &Path) -> Option<PathBuf> {
    let p = state_dir.join(CACHE_FILE);
    p.is_file().then_some(p)
}

/// Fetch `url`, check it is a usable DERP map, and store it as the cache.
/// The error names the URL and what went wrong.
pub async fn refresh(
    url: &str,
    state_dir: &Path,
    timeout: Duration,
    resolver: Arc<NameResolver>,
) -> Result<PathBuf, DerpFetchError> {
    let cfg = AdmissionConfig {
        url: url.to_string(),
        timeout: timeout.into(),
        ..AdmissionConfig::default()
    };
    let at = |e: DerpCacheError| DerpFetchError {
        url: crate::redact::url(url),
        problem: e,
    };
    let client = AcsClient::new(&cfg, resolver).map_err(|e| at(e.into()))?;
    let body = client
        .get(super::derpmap::MAX_DERP_MAP)
        .await
        .map_err(|e| at(e.into()))?;
    super::derpmap::decode(&body).map_err(|e| at(e.into()))?;
    store(state_dir, CACHE_FILE, &body).map_err(at)?;
    Ok(state_dir.join(CACHE_FILE))
}

/// Keep the JSON `body` (already checked by its reader) as `file`.
pub(super) fn store(state_dir: &Path, file: &str, body: &[u8]) -> Result<(), DerpCacheError> {
    let value: serde_json::Value = serde_json::from_slice(body)?;
    StateDir::open(state_dir)?.write_json(file, &value)?;
    Ok(())
}

/// Fetching or keeping a DERP map failed.
#[derive(Debug, thiserror::Error)]
pub enum DerpCacheError {
    /// The HTTP fetch failed.
    #[error(transparent)]
    Fetch(#[from] AcsError),
    /// The answer is no usable DERP map.
    #[error(transparent)]
    Decode(#[from] DerpMapError),
    /// The answer is no JSON.
    #[error("not JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The state directory would not take it.
    #[error("cannot keep it: {0}")]
    Keep(#[from] StateError),
}

/// [`refresh`] failed for this URL (credentials stripped).
#[derive(Debug, thiserror::Error)]
#[error("{url}: {problem}")]
pub struct DerpFetchError {
    /// The URL, without userinfo.
    pub url: String,
    /// What went wrong.
    pub problem: DerpCacheError,
}
