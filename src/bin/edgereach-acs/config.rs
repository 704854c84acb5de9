//! The reference service's configuration, placement and key minting.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use edgereach::admission::auth_mode::AuthMode;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// `edgereach-acs --config FILE` (TOML).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcsConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// File with accepted bearer tokens, one per line; empty = no auth.
    #[serde(default)]
    pub tokens_file: String,
    /// Test switch: "", "500", "hang", "garbage", "huge", "reject", "busy".
    #[serde(default)]
    pub fault: String,
    /// Accounts pinned to a cluster id (migration plans), ahead of hashing.
    #[serde(default)]
    pub overrides: BTreeMap<String, String>,
    /// The clusters accounts are placed on.
    #[serde(default, rename = "cluster")]
    pub clusters: Vec<Cluster>,
}

/// One headscale cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// Cluster id.
    pub id: String,
    /// Its headscale URL.
    pub headscale_url: String,
    /// Region code; requests wanting a region go to its clusters when any.
    #[serde(default)]
    pub region: String,
    /// DERP map: a URL handed on as is, or a JSON file path sent inline.
    #[serde(default)]
    pub derp_map: String,
    /// `authkey` (default) or `none`.
    #[serde(default = "authkey")]
    pub auth_mode: AuthMode,
    /// A fixed pre-auth key to hand out (tests, benchmarks).
    #[serde(default)]
    pub auth_key: String,
    /// Mint a fresh pre-auth key per registration with headscale's CLI.
    #[serde(default)]
    pub headscale_cli: Option<HeadscaleCli>,
    /// Free text sent along.
    #[serde(default)]
    pub note: String,
}

fn authkey() -> AuthMode {
    AuthMode::Authkey
}

/// How to run headscale's CLI for this cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadscaleCli {
    /// Program and leading arguments, e.g.
    /// `["headscale", "-c", "/etc/headscale/config.yaml", "--force"]`.
    pub command: Vec<String>,
    /// headscale user id the keys belong to.
    pub user: String,
    /// Key lifetime (headscale syntax, e.g. "1h").
    #[serde(default = "one_hour")]
    pub expiration: String,
}

fn one_hour() -> String {
    "1h".into()
}

impl AcsConfig {
    /// Read and check `path`.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let c: AcsConfig = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if c.clusters.is_empty() {
            return Err(format!("{}: no [[cluster]]", path.display()));
        }
        for cl in &c.clusters {
            edgereach::admission::codec::check_url(&cl.headscale_url)
                .map_err(|e| format!("cluster {}: headscale_url {e}", cl.id))?;
        }
        for (acct, id) in &c.overrides {
            if !c.clusters.iter().any(|cl| &cl.id == id) {
                return Err(format!("overrides.{acct}: no cluster {id:?}"));
            }
        }
        Ok(c)
    }

    /// The accepted tokens (re-read per request so a rotation needs no restart).
    pub fn tokens(&self) -> Option<Vec<String>> {
        if self.tokens_file.is_empty() {
            return None;
        }
        let text = std::fs::read_to_string(&self.tokens_file).unwrap_or_default();
        Some(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from)
                .collect(),
        )
    }

    /// Sticky placement: an override, else rendezvous (highest random
    /// weight) hashing of the account over the clusters of the wanted region
    /// (all clusters when none matches). Rendezvous hashing is a consistent
    /// hash: adding a cluster moves only the accounts that now score highest
    /// on it, removing one moves only its own accounts.
    pub fn place(&self, account: &str, want_region: &str) -> &Cluster {
        if let Some(c) = self
            .overrides
            .get(account)
            .and_then(|id| self.clusters.iter().find(|c| &c.id == id))
        {
            return c;
        }
        let in_region: Vec<&Cluster> = self
            .clusters
            .iter()
            .filter(|c| !want_region.is_empty() && c.region == want_region)
            .collect();
        let pool: Vec<&Cluster> = if in_region.is_empty() {
            self.clusters.iter().collect()
        } else {
            in_region
        };
        pool.into_iter()
            .max_by_key(|c| score(account, &c.id))
            .unwrap_or(&self.clusters[0])
    }
}

fn score(account: &str, cluster: &str) -> [u8; 32] {
    Sha256::new()
        .chain_update(account.as_bytes())
        .chain_update([0])
        .chain_update(cluster.as_bytes())
        .finalize()
        .into()
}

/// The DERP map to send: a URL as is, a file's JSON inline.
pub fn derp_map(cluster: &Cluster) -> Result<Option<serde_json::Value>, String> {
    let d = &cluster.derp_map;
    if d.is_empty() {
        return Ok(None);
    }
    if d.starts_with("http://") || d.starts_with("https://") {
        return Ok(Some(d.clone().into()));
    }
    let text = std::fs::read(PathBuf::from(d)).map_err(|e| format!("{d}: {e}"))?;
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|e| format!("{d}: {e}"))
}

/// A pre-auth key for `cluster` when `wanted`: minted through headscale's
/// CLI when configured, else the fixed one.
pub async fn auth_key(cluster: &Cluster, wanted: bool) -> Result<Option<String>, String> {
    if cluster.auth_mode != AuthMode::Authkey || !wanted {
        return Ok(None);
    }
    let Some(cli) = &cluster.headscale_cli else {
        return Ok((!cluster.auth_key.is_empty()).then(|| cluster.auth_key.clone()));
    };
    let (prog, args) = cli
        .command
        .split_first()
        .ok_or("headscale_cli.command is empty")?;
    let run = tokio::process::Command::new(prog)
        .args(args)
        .args(["preauthkeys", "create", "--user", &cli.user])
        .args(["--expiration", &cli.expiration, "-o", "json"])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(15), run)
        .await
        .map_err(|_| "headscale CLI took longer than 15 s".to_string())?
        .map_err(|e| format!("headscale CLI: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "headscale CLI failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("headscale CLI output is not JSON: {e}"))?;
    v["key"]
        .as_str()
        .filter(|k| !k.is_empty())
        .map(|k| Some(k.to_string()))
        .ok_or_else(|| "headscale CLI output has no key".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(ids: &[&str]) -> AcsConfig {
        AcsConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            tokens_file: String::new(),
            fault: String::new(),
            overrides: BTreeMap::new(),
            clusters: ids
                .iter()
                .map(|id| Cluster {
                    id: id.to_string(),
                    headscale_url: format!("http://{id}.example"),
                    region: String::new(),
                    derp_map: String::new(),
                    auth_mode: authkey(),
                    auth_key: String::new(),
                    headscale_cli: None,
                    note: String::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn placement_is_sticky_and_consistent() {
        let three = cfg(&["A", "B", "C"]);
        let four = cfg(&["A", "B", "C", "D"]);
        let mut moved = 0;
        for i in 0..1000 {
            let acct = format!("acct-{i}");
            let a = &three.place(&acct, "").id;
            assert_eq!(a, &three.place(&acct, "").id, "sticky");
            let b = &four.place(&acct, "").id;
            if a != b {
                assert_eq!(b, "D", "only moves to the new cluster");
                moved += 1;
            }
        }
        assert!(
            (150..350).contains(&moved),
            "about a quarter moves: {moved}"
        );
    }

    #[test]
    fn overrides_and_regions_win() {
        let mut c = cfg(&["A", "B"]);
        c.clusters[1].region = "eu".into();
        assert_eq!(c.place("x", "eu").id, "B");
        c.overrides.insert("x".into(), "A".into());
        assert_eq!(c.place("x", "eu").id, "A");
    }
}
