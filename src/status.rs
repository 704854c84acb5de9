//! The one status model: a single `Status` snapshot plus an `Event` stream.
//!
//! Every capability task publishes into the [`StatusHub`]; the CLI, the web page,
//! metrics and MQTT only ever render what the hub holds. Nothing keeps a second copy.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

pub use crate::portmap::model::{MappingStatus, PortmapStatus};
pub use crate::primitives::{Event, Health, Level, State, Timestamp};

/// How many recent events the snapshot keeps for views that show history.
pub const RECENT_EVENTS: usize = 50;

/// Who this gateway is and how the daemon runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayStatus {
    /// Stable gateway identity.
    pub id: String,
    /// Site name from the configuration.
    pub site: String,
    /// edgereach version.
    pub version: String,
    /// Daemon start time.
    pub started_at: Timestamp,
    /// Configuration file in use.
    pub config_path: String,
    /// Machine-level state directory.
    pub state_dir: String,
    /// Last configuration reload outcome, if any reload was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reload: Option<String>,
}

/// The default route the gateway uses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultRoute {
    /// Interface of the default route.
    pub interface: String,
    /// Next hop (the site router), when the route has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// The gateway's own IPv4 address on that interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl DefaultRoute {
    /// The router and our IPv4 address toward it, when both are known.
    pub fn router_and_source(&self) -> Option<(std::net::Ipv4Addr, std::net::Ipv4Addr)> {
        Some((
            self.gateway.as_deref()?.parse().ok()?,
            self.source.as_deref()?.parse().ok()?,
        ))
    }
}

/// One address configured on an interface.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceAddress {
    /// Interface name.
    pub interface: String,
    /// Address without prefix length.
    pub address: String,
}

/// Network readiness as seen through netlink.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkStatus {
    /// Health of network readiness.
    #[serde(flatten)]
    pub health: Health,
    /// IPv4 default route, when one exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_route: Option<DefaultRoute>,
    /// Whether an IPv6 default route exists.
    pub ipv6_default_route: bool,
    /// Non-loopback addresses.
    pub addresses: Vec<InterfaceAddress>,
    /// How many route or address changes were noticed since start.
    pub changes: u64,
}

/// The latest NAT report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetcheckStatus {
    /// Health of netcheck.
    #[serde(flatten)]
    pub health: Health,
    /// The latest report (also what `edgereach netcheck --format json` prints).
    pub report: Option<crate::netcheck::report::Report>,
    /// Reports made since start.
    pub runs: u64,
}

/// The MQTT telemetry connection and its outbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TelemetryStatus {
    /// Health of telemetry.
    #[serde(flatten)]
    pub health: Health,
    /// The broker, `mqtt[s]://host:port` (never credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker: Option<String>,
    /// Whether the broker accepted our connection and it is up.
    pub connected: bool,
    /// Records (netcheck reports, events) on disk waiting for the broker's ack.
    pub outbox_depth: u64,
    /// Bytes the outbox takes on disk.
    pub outbox_bytes: u64,
    /// Messages the broker acknowledged since start.
    pub sent: u64,
    /// Records dropped because the outbox was full (kept across restarts).
    pub dropped: u64,
    /// The last connection or outbox error, kept after recovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The Sparkplug B edge node, when `telemetry.format` includes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparkplug: Option<SparkplugStatus>,
}

/// The Sparkplug B edge node (`telemetry.sparkplug` in the status).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SparkplugStatus {
    /// Sparkplug group id.
    pub group: String,
    /// Sparkplug edge node id.
    pub edge_node: String,
    /// The node's own MQTT connection is up.
    pub connected: bool,
    /// NBIRTH sent on this connection (NDATA flows).
    pub born: bool,
    /// `bdSeq` of the current connection (and its NDEATH Will).
    pub bd_seq: u64,
    /// NBIRTHs sent since start.
    pub births: u64,
    /// What the primary host last said (absent without one or before it spoke).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_online: Option<bool>,
    /// NCMD messages ignored: not protobuf, too large, or with metrics that
    /// are not `Node Control/Rebirth`.
    pub bad_commands: u64,
    /// NDATA and NBIRTH the broker took since start.
    pub sent: u64,
    /// NDATA that could not be stored.
    pub dropped: u64,
    /// The last connection or outbox error, kept after recovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl Default for TelemetryStatus {
    fn default() -> Self {
        Self {
            health: Health::new(State::Unavailable, Some("starting".to_string())),
            broker: None,
            connected: false,
            outbox_depth: 0,
            outbox_bytes: 0,
            sent: 0,
            dropped: 0,
            last_error: None,
            sparkplug: None,
        }
    }
}

/// The local web page's server and what it turned away.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebStatus {
    /// Health of the page.
    #[serde(flatten)]
    pub health: Health,
    /// Addresses served, `ip:port`.
    pub listening: Vec<String>,
    /// Whether the page offers "run netcheck now" and "re-map now".
    pub actions_enabled: bool,
    /// Connections open now.
    pub connections_open: u64,
    /// Requests answered since start (429s included).
    pub requests: u64,
    /// Connections closed at once: the client already held its share.
    pub rejected_per_client: u64,
    /// Connections closed at once: the server held its total.
    pub rejected_total: u64,
    /// Requests answered 429 (too many from one client).
    pub rate_limited: u64,
    /// Connections closed for not sending a complete request head in time.
    pub header_timeouts: u64,
    /// Connections closed after `idle_timeout` without traffic.
    pub idle_closed: u64,
    /// Actions carried out.
    pub actions_run: u64,
    /// Action requests refused (no or wrong token, cross-site, disabled).
    pub actions_refused: u64,
    /// Times the freed memory of a burst of connections was given back to
    /// the system once the burst was over.
    #[serde(default)]
    pub heap_trims: u64,
}

impl Default for WebStatus {
    fn default() -> Self {
        Self {
            health: Health::new(State::Unavailable, None),
            listening: Vec::new(),
            actions_enabled: false,
            connections_open: 0,
            requests: 0,
            rejected_per_client: 0,
            rejected_total: 0,
            rate_limited: 0,
            header_timeouts: 0,
            idle_closed: 0,
            actions_run: 0,
            actions_refused: 0,
            heap_trims: 0,
        }
    }
}

/// The whole truth about this gateway, as every view renders it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// Identity and daemon facts.
    pub gateway: GatewayStatus,
    /// Routes and addresses.
    pub network: NetworkStatus,
    /// Router port mappings.
    pub portmap: PortmapStatus,
    /// STUN NAT report.
    pub netcheck: NetcheckStatus,
    /// tailscaled driver and keepalive.
    pub tailscale: crate::tailscale::model::TailscaleStatus,
    /// Admission service registration.
    pub admission: crate::admission::model::AdmissionStatus,
    /// MQTT telemetry.
    pub telemetry: TelemetryStatus,
    /// Local web page.
    pub web: WebStatus,
    /// Most recent events, oldest first (at most [`RECENT_EVENTS`]).
    pub events: Vec<Event>,
}

impl Status {
    /// A fresh snapshot where every capability is still starting.
    pub fn starting(gateway: GatewayStatus) -> Self {
        Self {
            gateway,
            network: NetworkStatus {
                health: Health::new(State::Unavailable, Some("starting".to_string())),
                default_route: None,
                ipv6_default_route: false,
                addresses: Vec::new(),
                changes: 0,
            },
            portmap: PortmapStatus {
                health: Health::new(State::Unavailable, Some("starting".to_string())),
                ..PortmapStatus::default()
            },
            netcheck: NetcheckStatus {
                health: Health::new(State::Unavailable, Some("starting".to_string())),
                report: None,
                runs: 0,
            },
            tailscale: crate::tailscale::model::TailscaleStatus::starting(std::path::Path::new("")),
            admission: crate::admission::model::AdmissionStatus::starting(),
            telemetry: TelemetryStatus::default(),
            web: WebStatus {
                health: Health::new(State::Unavailable, Some("starting".to_string())),
                ..WebStatus::default()
            },
            events: Vec::new(),
        }
    }
}

/// Owner of the snapshot and the event stream; cheap to clone into every task.
#[derive(Clone)]
pub struct StatusHub {
    inner: Arc<HubInner>,
}

struct HubInner {
    status: watch::Sender<Status>,
    events: broadcast::Sender<Event>,
    seq: Mutex<EventSeq>,
}

/// The last sequence number used, and where it is kept across restarts.
struct EventSeq {
    last: u64,
    store: Option<crate::state::EventSeqStore>,
}

impl StatusHub {
    /// Start a hub holding `initial`; event numbers start at 1.
    pub fn new(initial: Status) -> Self {
        Self::build(
            initial,
            EventSeq {
                last: 0,
                store: None,
            },
        )
    }

    /// Start a hub whose event numbers continue from `store` (see
    /// [`crate::state::EventSeqStore`]): they keep increasing across restarts.
    pub fn with_event_seq(initial: Status, store: crate::state::EventSeqStore, last: u64) -> Self {
        Self::build(
            initial,
            EventSeq {
                last,
                store: Some(store),
            },
        )
    }

    fn build(initial: Status, seq: EventSeq) -> Self {
        let (status, _) = watch::channel(initial);
        let (events, _) = broadcast::channel(256);
        Self {
            inner: Arc::new(HubInner {
                status,
                events,
                seq: Mutex::new(seq),
            }),
        }
    }

    /// Clean stop: store the exact last event number.
    pub fn close_event_seq(&self) {
        let mut seq = self.inner.seq.lock().unwrap_or_else(|p| p.into_inner());
        let last = seq.last;
        if let Some(store) = seq.store.as_mut() {
            if let Err(e) = store.close(last) {
                tracing::warn!("cannot store the last event number: {e}");
            }
        }
    }

    /// Change the snapshot in place; watchers are woken once, and only when
    /// `f` really changed something (an actor re-publishing what it already
    /// said wakes no view).
    pub fn update(&self, f: impl FnOnce(&mut Status)) {
        self.inner.status.send_if_modified(|s| {
            let before = s.clone();
            f(s);
            *s != before
        });
    }

    /// A copy of the current snapshot.
    pub fn snapshot(&self) -> Status {
        self.inner.status.borrow().clone()
    }

    /// Watch the snapshot for changes.
    pub fn watch(&self) -> watch::Receiver<Status> {
        self.inner.status.subscribe()
    }

    /// Subscribe to events emitted from now on.
    pub fn subscribe_events(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// Record an event: it gets the next sequence number, joins the snapshot's
    /// recent events and goes to every subscriber.
    pub fn emit(
        &self,
        source: &str,
        kind: &str,
        level: Level,
        message: impl Into<String>,
    ) -> Event {
        // Held until the event is out, so subscribers see numbers in order.
        let mut seq = self.inner.seq.lock().unwrap_or_else(|p| p.into_inner());
        seq.last += 1;
        let number = seq.last;
        if let Some(store) = seq.store.as_mut() {
            store.record(number);
        }
        let event = Event {
            seq: number,
            time: Timestamp::now(),
            source: source.to_string(),
            kind: kind.to_string(),
            level,
            // Logged, shown, published and stored: never with credentials.
            message: crate::redact::text(&message.into()),
        };
        match level {
            Level::Info => tracing::info!(source, kind, "{}", event.message),
            Level::Warn => tracing::warn!(source, kind, "{}", event.message),
            Level::Error => tracing::error!(source, kind, "{}", event.message),
        }
        let recorded = event.clone();
        self.update(move |s| {
            s.events.push(recorded);
            let excess = s.events.len().saturating_sub(RECENT_EVENTS);
            s.events.drain(..excess);
        });
        // No subscriber is fine: the snapshot already holds the event.
        let _ = self.inner.events.send(event.clone());
        drop(seq);
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway() -> GatewayStatus {
        GatewayStatus {
            id: "gw-test".into(),
            site: "lab".into(),
            version: "0".into(),
            started_at: Timestamp::now(),
            config_path: "x".into(),
            state_dir: "y".into(),
            last_reload: None,
        }
    }

    #[test]
    fn top_level_keys_are_the_contract() {
        let v = serde_json::to_value(Status::starting(gateway())).unwrap();
        let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "admission",
                "events",
                "gateway",
                "netcheck",
                "network",
                "portmap",
                "tailscale",
                "telemetry",
                "web"
            ]
        );
        assert_eq!(v["portmap"]["state"], "unavailable");
        assert_eq!(v["portmap"]["reason"], "starting");
    }

    #[test]
    fn events_are_numbered_and_bounded() {
        let hub = StatusHub::new(Status::starting(gateway()));
        let mut rx = hub.subscribe_events();
        for i in 0..(RECENT_EVENTS + 7) {
            hub.emit("test", "tick", Level::Info, format!("tick {i}"));
        }
        let snap = hub.snapshot();
        assert_eq!(snap.events.len(), RECENT_EVENTS);
        assert_eq!(snap.events.first().unwrap().seq, 8);
        assert_eq!(snap.events.last().unwrap().seq, (RECENT_EVENTS + 7) as u64);
        assert_eq!(rx.try_recv().unwrap().seq, 1);
    }

    #[test]
    fn since_moves_only_on_state_change() {
        let mut h = Health::new(State::Ok, None);
        let old = Timestamp::default();
        h.since = old;
        h.set(State::Ok, Some("same state".into()));
        assert_eq!(h.since, old);
        h.set(State::Degraded, Some("worse".into()));
        assert_ne!(h.since, old);
    }

    #[test]
    fn watchers_wake_only_on_a_real_change() {
        let hub = StatusHub::new(Status::starting(gateway()));
        let mut rx = hub.watch();
        rx.borrow_and_update();
        hub.update(|s| s.portmap.router_reboots = 0);
        assert!(!rx.has_changed().unwrap(), "the same value wakes nobody");
        hub.update(|s| s.portmap.router_reboots = 1);
        assert!(rx.has_changed().unwrap());
        rx.borrow_and_update();
        hub.update(|s| s.portmap.router_reboots = 1);
        assert!(!rx.has_changed().unwrap());
    }
}
