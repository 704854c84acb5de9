//! `netcheck.derp_map` as an http(s) URL: fetched with the admission
//! service's HTTP client (bounded, names re-resolved by TTL), validated, and
//! kept in the state directory, so a restart or an unreachable server still
//! leaves the last good map in use.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::admission::client::AcsClient;
use crate::config::AdmissionConfig;
use crate::resolve::NameResolver;
use crate::state::StateDir;

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
) -> Result<PathBuf, String> {
    let cfg = AdmissionConfig {
        url: url.to_string(),
        timeout: timeout.into(),
        ..AdmissionConfig::default()
    };
    let client = AcsClient::new(&cfg, resolver).map_err(|e| format!("{url}: {e}"))?;
    let body = client
        .get(super::derpmap::MAX_DERP_MAP)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    super::derpmap::decode(&body).map_err(|e| format!("{url}: {e}"))?;
    let value: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| format!("{url}: {e}"))?;
    let dir = StateDir::open(state_dir).map_err(|e| format!("{url}: cannot keep it: {e}"))?;
    dir.write_json(CACHE_FILE, &value)
        .map_err(|e| format!("{url}: cannot keep it: {e}"))?;
    Ok(state_dir.join(CACHE_FILE))
}
