//! The DERP map tailscaled itself uses (LocalAPI `GET /localapi/v0/derpmap`,
//! what `tailscale debug derp-map` prints and `tailscale netcheck` probes):
//! netcheck's last source of STUN servers, for a gateway whose configuration
//! names none and whose admission service handed no map over. So a gateway
//! configured with nothing measures against its own tailnet's DERP servers.
//!
//! The last good map is kept in memory and in the state directory, so a
//! tailscaled that is restarting (or not up yet at boot) does not empty the
//! report; it is asked again at most every [`REFRESH`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use super::derpmap::{self, DerpMap};
use crate::config::Config;
use crate::deadline::Later;
use crate::tailscale::client::{LocalApi, LocalApiError};

/// The last good map tailscaled gave, in the state directory.
pub const CACHE_FILE: &str = "netcheck-tailscaled-derp-map.json";
/// How often a map tailscaled gave is asked for again. Its map changes only
/// with the control server's netmap, rarely; a few minutes keeps up with that.
pub const REFRESH: Duration = Duration::from_secs(300);
/// Wait before asking again when tailscaled gave no map: it may be starting.
pub const RETRY: Duration = Duration::from_secs(30);

/// Why tailscaled's DERP map is not available.
#[derive(Debug, thiserror::Error)]
pub enum TsMapError {
    /// `tailscale.enabled = false`: edgereach does not talk to tailscaled.
    #[error("tailscale.enabled is false")]
    Disabled,
    /// The LocalAPI call failed (tailscaled absent, restarting, refusing).
    #[error("{0}")]
    LocalApi(#[from] LocalApiError),
    /// tailscaled answered, but has no map (not logged in yet).
    #[error("tailscaled has no DERP map yet (not logged in?)")]
    NoMap,
    /// Not asked yet.
    #[error("tailscaled's DERP map not asked for yet")]
    NotAsked,
}

/// What one refresh did, for the caller's events.
#[derive(Debug)]
pub enum Refreshed {
    /// tailscaled gave a map.
    Fetched,
    /// It gave none; the copy held before (if any) stays in use.
    Failed,
}

/// tailscaled's DERP map, the last good copy, and when to ask again.
#[derive(Debug)]
pub struct TailscaledMap {
    last: Option<DerpMap>,
    /// The body last written to the state directory: an unchanged map is
    /// not written again (gateways run from flash; it is asked every 5 min).
    stored: Option<bytes::Bytes>,
    error: TsMapError,
    next_ask: Option<Instant>,
    /// Why the last good copy could not be kept in the state directory.
    pub store_error: Option<super::derpfetch::DerpCacheError>,
}

impl Default for TailscaledMap {
    fn default() -> Self {
        Self {
            last: None,
            stored: None,
            error: TsMapError::NotAsked,
            next_ask: None,
            store_error: None,
        }
    }
}

impl TailscaledMap {
    /// Ask tailscaled when due (at most every [`REFRESH`] after a success,
    /// every [`RETRY`] after a failure); `None` when it was not due. Without
    /// a copy in memory, the one in the state directory is loaded.
    pub async fn refresh(&mut self, cfg: &Config) -> Option<Refreshed> {
        if !cfg.tailscale.enabled {
            // Not even a kept copy: the operator asked us to leave tailscaled alone.
            self.last = None;
            self.error = TsMapError::Disabled;
            // Re-enabled (SIGHUP): ask at once.
            self.next_ask = None;
            return None;
        }
        if self.next_ask.is_some_and(|t| Instant::now() < t) {
            return None;
        }
        let api = LocalApi::new(&cfg.tailscale.socket, cfg.tailscale.call_timeout.get());
        let state_dir = cfg.gateway.state_dir();
        let outcome = match api.derp_map().await {
            Ok(Some((map, body))) => {
                if self.stored.as_ref() != Some(&body) {
                    self.store_error = super::derpfetch::store(&state_dir, CACHE_FILE, &body).err();
                    self.stored = self.store_error.is_none().then_some(body);
                }
                self.last = Some(map);
                self.next_ask = Some(Instant::now().later(REFRESH));
                return Some(Refreshed::Fetched);
            }
            Ok(None) => TsMapError::NoMap,
            Err(e) => TsMapError::LocalApi(e),
        };
        self.error = outcome;
        self.next_ask = Some(Instant::now().later(RETRY));
        if self.last.is_none() {
            self.last = cached(&state_dir).and_then(|p| load(&p));
        }
        Some(Refreshed::Failed)
    }

    /// The map to use: tailscaled's latest, else the last good copy.
    pub fn map(&self) -> Result<&DerpMap, &TsMapError> {
        self.last.as_ref().ok_or(&self.error)
    }

    /// Why the last ask gave no map (also while a kept copy is in use).
    pub fn error(&self) -> &TsMapError {
        &self.error
    }
}

/// The kept copy for `state_dir`, if there is one.
pub fn cached(state_dir: &Path) -> Option<PathBuf> {
    let p = state_dir.join(CACHE_FILE);
    p.is_file().then_some(p)
}

fn load(path: &Path) -> Option<DerpMap> {
    let bytes = crate::fsread::read_capped(path, derpmap::MAX_DERP_MAP as u64).ok()?;
    derpmap::decode(&bytes).ok()
}

#[cfg(test)]
mod tests;
