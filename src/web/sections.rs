//! What the page, the verdict and the metrics read from the tailscale,
//! admission and telemetry sections, read tolerantly: a field that is not
//! there (yet) is `None` and shows as "—", never an error.

use crate::status::Status;
use crate::tailscale::api::PingPath;
use crate::tailscale::model::PeerStatus;

/// How a peer's last keepalive ping travelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerPath {
    /// Straight to the peer's endpoint.
    Direct,
    /// Through a DERP relay.
    Relay,
    /// Not known (no answer yet).
    Unknown,
}

/// One tailscaled peer as the views show it.
#[derive(Clone, Debug, PartialEq)]
pub struct Peer {
    /// Host name.
    pub name: String,
    /// Tailnet address.
    pub tailnet_ip: Option<String>,
    /// Path of the last keepalive ping.
    pub path: PeerPath,
    /// Endpoint of a direct answer.
    pub endpoint: Option<String>,
    /// DERP region of a relayed answer.
    pub derp_region: Option<String>,
    /// Round trip of the last ping, in milliseconds.
    pub latency_ms: Option<f64>,
    /// Whether the last ping was answered (None: not pinged yet).
    pub answered: Option<bool>,
    /// Why the last ping failed.
    pub error: Option<String>,
}

/// The peers the tailscale section lists, with their last keepalive ping.
pub fn peers(s: &Status) -> Vec<Peer> {
    s.tailscale.peers.iter().map(peer).collect()
}

fn peer(p: &PeerStatus) -> Peer {
    let ping = p.last_ping.as_ref();
    let path = match ping.map(|l| &l.path) {
        Some(PingPath::Direct) => PeerPath::Direct,
        Some(PingPath::Derp) | Some(PingPath::PeerRelay) => PeerPath::Relay,
        Some(PingPath::Failed) | None => PeerPath::Unknown,
    };
    Peer {
        name: p.hostname.clone(),
        tailnet_ip: p.tailnet_ip.clone(),
        path,
        endpoint: ping.and_then(|l| l.endpoint.clone()),
        derp_region: ping.and_then(|l| l.derp_region.clone()),
        latency_ms: ping.and_then(|l| l.latency_ms),
        answered: ping.map(|l| l.path != PingPath::Failed),
        error: ping.and_then(|l| l.error.clone()).filter(|e| !e.is_empty()),
    }
}

/// Registration with the admission service.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Registration {
    /// Cluster the gateway was placed in.
    pub cluster: Option<String>,
    /// Control server (Headscale) URL.
    pub control_server: Option<String>,
}

/// What the admission section says about the registration.
pub fn registration(s: &Status) -> Registration {
    let a = &s.admission;
    Registration {
        cluster: a.cluster_id.clone(),
        control_server: a
            .headscale_url
            .clone()
            .or_else(|| s.tailscale.control_url.clone())
            .map(|u| without_credentials(&u)),
    }
}

/// MQTT telemetry as the views show it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Telemetry {
    /// Broker URL, credentials removed.
    pub broker: Option<String>,
    /// Messages waiting in the outbox.
    pub outbox_depth: Option<u64>,
    /// Whether the broker connection is up.
    pub connected: Option<bool>,
}

/// What the telemetry section says (nothing while no broker is configured).
pub fn telemetry(s: &Status) -> Telemetry {
    let t = &s.telemetry;
    if t.broker.is_none() {
        return Telemetry::default();
    }
    Telemetry {
        broker: t.broker.as_deref().map(without_credentials),
        outbox_depth: Some(t.outbox_depth),
        connected: Some(t.connected),
    }
}

/// `scheme://user:secret@host/...` without `user:secret@`: URLs may carry
/// credentials, and no secret is ever shown.
pub fn without_credentials(url: &str) -> String {
    crate::redact::url(url)
}

/// A test peer's last ping: path, endpoint, DERP region, latency, error.
#[cfg(test)]
pub(crate) type TestPing<'a> = (
    PingPath,
    Option<&'a str>,
    Option<&'a str>,
    Option<f64>,
    Option<&'a str>,
);

/// A peer for tests, with its last ping.
#[cfg(test)]
pub(crate) fn test_peer(name: &str, ping: Option<TestPing<'_>>) -> PeerStatus {
    PeerStatus {
        hostname: name.into(),
        tailnet_ip: Some("100.64.0.9".into()),
        online: true,
        keepalive: true,
        cur_addr: None,
        relay: None,
        last_ping: ping.map(
            |(path, ep, derp, lat, err)| crate::tailscale::model::PingStatus {
                time: "2026-01-01T00:00:00Z".parse().unwrap(),
                path,
                endpoint: ep.map(Into::into),
                derp_region: derp.map(Into::into),
                latency_ms: lat,
                error: err.map(Into::into),
            },
        ),
        pings_ok: 0,
        pings_failed: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_removed_from_urls() {
        assert_eq!(
            without_credentials("mqtts://gw:s3cret@broker.example:8883/x@y"),
            "mqtts://broker.example:8883/x@y"
        );
        assert_eq!(
            without_credentials("https://hs-a.example.com"),
            "https://hs-a.example.com"
        );
        assert_eq!(without_credentials("user:pw@host:1"), "host:1");
    }

    #[test]
    fn sections_without_data_give_nothing() {
        let s = crate::web::test_status();
        assert!(peers(&s).is_empty());
        assert_eq!(registration(&s), Registration::default());
        assert_eq!(telemetry(&s), Telemetry::default());
    }

    #[test]
    fn peers_carry_their_last_ping() {
        let mut s = crate::web::test_status();
        s.tailscale.peers = vec![
            test_peer(
                "gw-a",
                Some((
                    PingPath::Direct,
                    Some("203.0.113.50:41641"),
                    None,
                    Some(3.5),
                    None,
                )),
            ),
            test_peer(
                "gw-b",
                Some((PingPath::Derp, None, Some("lab"), Some(40.0), None)),
            ),
            test_peer(
                "gw-c",
                Some((PingPath::Failed, None, None, None, Some("timeout"))),
            ),
            test_peer("gw-d", None),
        ];
        let p = peers(&s);
        assert_eq!(p.len(), 4);
        assert_eq!(p[0].path, PeerPath::Direct);
        assert_eq!(p[0].answered, Some(true));
        assert_eq!(p[0].endpoint.as_deref(), Some("203.0.113.50:41641"));
        assert_eq!(p[1].path, PeerPath::Relay);
        assert_eq!(p[1].derp_region.as_deref(), Some("lab"));
        assert_eq!(p[2].answered, Some(false));
        assert_eq!(p[2].error.as_deref(), Some("timeout"));
        assert_eq!(p[3].answered, None);
    }

    #[test]
    fn telemetry_and_registration_fields_are_found() {
        let mut s = crate::web::test_status();
        s.telemetry = crate::status::TelemetryStatus {
            broker: Some("mqtt://u:p@203.0.113.20:1883".into()),
            outbox_depth: 7,
            ..Default::default()
        };
        s.admission.cluster_id = Some("A".into());
        s.admission.headscale_url = Some("https://hs-a.example.com".into());
        let t = telemetry(&s);
        assert_eq!(t.broker.as_deref(), Some("mqtt://203.0.113.20:1883"));
        assert_eq!(t.outbox_depth, Some(7));
        let r = registration(&s);
        assert_eq!(r.cluster.as_deref(), Some("A"));
        assert_eq!(
            r.control_server.as_deref(),
            Some("https://hs-a.example.com")
        );
    }
}
