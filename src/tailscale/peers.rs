//! The peers of the `tailscale` section: what tailscaled says of them, with
//! the keepalive history edgereach keeps. Pure functions, apart from the
//! actor's I/O.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use super::api::{PingPath, PingResult, TsStatus};
use super::client::LocalApiError;
use super::model::{PeerStatus, PingStatus};
use super::select::{self, PeerSelector};
use crate::status::Timestamp;

/// The peer list from one look at tailscaled.
pub(super) struct Merged {
    /// Every peer, with the keepalive history it had.
    pub peers: Vec<PeerStatus>,
    /// The tailnet IP of each peer to keep alive, by tailscaled's key.
    pub targets: HashMap<String, IpAddr>,
    /// Those keys in tailscaled's order.
    pub selected: Vec<String>,
}

/// The peers tailscaled lists in `st`, each with its ping history from
/// `old` (matched by hostname and tailnet IP); `selectors` pick the ones
/// kept alive.
pub(super) fn merge(st: &TsStatus, selectors: &[PeerSelector], old: &[PeerStatus]) -> Merged {
    let id = |host: &str, ip: &str| format!("{host}|{ip}");
    let old: BTreeMap<String, &PeerStatus> = old
        .iter()
        .map(|p| (id(&p.hostname, p.tailnet_ip.as_deref().unwrap_or("")), p))
        .collect();
    let mut out = Merged {
        peers: Vec::with_capacity(st.peer.len()),
        targets: HashMap::new(),
        selected: Vec::new(),
    };
    for (key, p) in &st.peer {
        let ip = p.tailnet_ip();
        let keep = select::selected(selectors, p) && ip.is_some();
        if let (true, Some(ip)) = (keep, ip) {
            out.targets.insert(key.clone(), ip);
            out.selected.push(key.clone());
        }
        let ip_text = ip.map(|i| i.to_string());
        let prev = old.get(&id(&p.host_name, ip_text.as_deref().unwrap_or("")));
        out.peers.push(PeerStatus {
            hostname: p.host_name.clone(),
            tailnet_ip: ip_text,
            online: p.online,
            keepalive: keep,
            cur_addr: non_empty(&p.cur_addr),
            relay: non_empty(&p.relay),
            last_ping: prev.and_then(|x| x.last_ping.clone()),
            pings_ok: prev.map_or(0, |x| x.pings_ok),
            pings_failed: prev.map_or(0, |x| x.pings_failed),
        });
    }
    out
}

/// Count `ping` on the peer with tailnet IP `ip`. When it went from
/// answering to not, or back, or was pinged for the first time: its
/// hostname and whether it had been pinged before.
pub(super) fn record(
    peers: &mut [PeerStatus],
    ip: &str,
    ping: &PingStatus,
) -> Option<(String, bool)> {
    let p = peers
        .iter_mut()
        .find(|p| p.tailnet_ip.as_deref() == Some(ip))?;
    let failed = ping.path == PingPath::Failed;
    let was_failed = p.last_ping.as_ref().map(|l| l.path == PingPath::Failed);
    if failed {
        p.pings_failed += 1;
    } else {
        p.pings_ok += 1;
    }
    p.last_ping = Some(ping.clone());
    (was_failed != Some(failed)).then(|| (p.hostname.clone(), was_failed.is_some()))
}

/// A keepalive ping's outcome as the status shows it.
pub(super) fn ping_status(result: &Result<PingResult, LocalApiError>) -> PingStatus {
    match result {
        Ok(r) => PingStatus {
            time: Timestamp::now(),
            path: r.path(),
            endpoint: non_empty(&r.endpoint),
            derp_region: non_empty(&r.derp_region_code)
                .or_else(|| (r.derp_region_id != 0).then(|| r.derp_region_id.to_string())),
            latency_ms: (r.err.is_empty()).then(|| (r.latency_seconds * 1e6).round() / 1e3),
            error: non_empty(&r.err),
        },
        Err(e) => PingStatus {
            time: Timestamp::now(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(ip: &str) -> PeerStatus {
        PeerStatus {
            hostname: "a".into(),
            tailnet_ip: Some(ip.into()),
            online: true,
            keepalive: true,
            cur_addr: None,
            relay: None,
            last_ping: None,
            pings_ok: 0,
            pings_failed: 0,
        }
    }

    fn ping(path: PingPath) -> PingStatus {
        PingStatus {
            time: Timestamp::default(),
            path,
            endpoint: None,
            derp_region: None,
            latency_ms: None,
            error: None,
        }
    }

    #[test]
    fn a_ping_counts_on_its_peer_and_says_when_it_turned() {
        let mut peers = vec![peer("100.64.0.1"), peer("100.64.0.2")];
        let first = record(&mut peers, "100.64.0.2", &ping(PingPath::Direct));
        assert_eq!(first, Some(("a".into(), false)), "the first ping");
        assert_eq!((peers[1].pings_ok, peers[0].pings_ok), (1, 0));
        assert_eq!(
            record(&mut peers, "100.64.0.2", &ping(PingPath::Derp)),
            None
        );
        let lost = record(&mut peers, "100.64.0.2", &ping(PingPath::Failed));
        assert_eq!(lost, Some(("a".into(), true)));
        assert_eq!((peers[1].pings_ok, peers[1].pings_failed), (2, 1));
        assert_eq!(
            record(&mut peers, "100.64.0.9", &ping(PingPath::Direct)),
            None
        );
    }
}
