//! The edge node's MQTT session, driven by the telemetry actor: its own
//! connection (the Will is NDEATH with this connection's `bdSeq`), NCMD and
//! the primary host's STATE subscribed before NBIRTH, NBIRTH on connect (or
//! when the host says online), then the outbox's NDATA in order with `seq`
//! 1, 2, ... 255, 0, ... Every NDATA is on disk in the node's own outbox
//! before it is sent and leaves it on its PUBACK (NBIRTH and NDATA at QoS 1,
//! see docs/telemetry.md); what was recorded before the current NBIRTH goes
//! out flagged historical.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use rumqttc::{ConnectionError, Event as MqttEvent, Incoming, LastWill, QoS};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::codec::{self, REBIRTH};
use super::metrics::{self, Exceptions};
use crate::config::{Config, TelemetryConfig};
use crate::deadline::Later;
use crate::status::{Event, SparkplugStatus, State, Status, StatusHub};
use crate::telemetry::client::{self, Broker};
use crate::telemetry::outbox::Outbox;
use crate::telemetry::session::{Session, SessionEvent, Tag};

/// Directory of the node's outbox inside the state directory.
pub const OUTBOX_DIR: &str = "sparkplug-outbox";
/// File keeping the last `bdSeq` used, in the state directory.
pub const BD_SEQ_FILE: &str = "sparkplug-bdseq.json";
/// The one topic suffix stored in the node's outbox.
const NDATA_RECORD: &str = "ndata";
/// NDATA sent and not yet acknowledged, at most.
const WINDOW: usize = 32;
/// Largest MQTT packet accepted: NCMDs past [`codec::MAX_PAYLOAD`] and up
/// to this are counted and ignored; past it rumqttc drops the connection.
const MAX_INCOMING: usize = 1024 * 1024;
/// Alias of `Node Control/Rebirth` (fixed, see metrics::TABLE).
const REBIRTH_ALIAS: u64 = 1;

#[derive(serde::Serialize, serde::Deserialize)]
struct BdSeqFile {
    bd_seq: u64,
}

/// The node.
pub struct Node {
    hub: StatusHub,
    cfg: TelemetryConfig,
    state_dir: PathBuf,
    outbox: Option<Outbox>,
    broker: Option<Broker>,
    group: String,
    edge: String,
    session: Option<Session>,
    tx: mpsc::Sender<SessionEvent>,
    generation: u64,
    attempt: u32,
    reconnect_at: Option<Instant>,
    /// bdSeq of the current connection (its Will), 0..=255.
    bd_seq: u64,
    /// Last `seq` used in this session.
    seq: u8,
    /// Outbox ids up to this were recorded before the current NBIRTH.
    birth_mark: u64,
    ex: Exceptions,
    host_ts: u64,
    data_due: Option<Instant>,
    /// When a change was last recorded at its leading edge.
    last_data: Option<Instant>,
    gauges_due: Instant,
    last_event: Option<Event>,
    /// What the status shows (`telemetry.sparkplug`).
    pub shown: SparkplugStatus,
}

impl Node {
    /// A node that does nothing until configured with a Sparkplug format.
    pub fn new(hub: StatusHub, state_dir: PathBuf, tx: mpsc::Sender<SessionEvent>) -> Self {
        Node {
            hub,
            cfg: TelemetryConfig::default(),
            state_dir,
            outbox: None,
            broker: None,
            group: String::new(),
            edge: String::new(),
            session: None,
            tx,
            generation: 0,
            attempt: 0,
            reconnect_at: None,
            bd_seq: 0,
            seq: 0,
            birth_mark: 0,
            ex: Exceptions::default(),
            host_ts: 0,
            data_due: None,
            last_data: None,
            gauges_due: Instant::now(),
            last_event: None,
            shown: SparkplugStatus::default(),
        }
    }

    /// Whether the node runs.
    pub fn enabled(&self) -> bool {
        !self.cfg.mqtt_url.is_empty() && self.cfg.format.sparkplug()
    }

    fn topic(&self, kind: &str) -> String {
        format!("spBv1.0/{}/{kind}/{}", self.group, self.edge)
    }

    fn host_topic(&self) -> Option<String> {
        let h = &self.cfg.sparkplug.primary_host_id;
        (!h.is_empty()).then(|| format!("spBv1.0/STATE/{h}"))
    }

    /// Apply a (new) configuration; reconnect when it changed.
    pub fn configure(&mut self, cfg: &Config) {
        let snap = self.hub.snapshot();
        let group = cfg.telemetry.sparkplug.group(&snap.gateway.site);
        let edge = cfg.telemetry.sparkplug.edge_node(&snap.gateway.id);
        if cfg.telemetry == self.cfg && group == self.group && edge == self.edge {
            return;
        }
        let bound_changed = cfg.telemetry.outbox_max_bytes != self.cfg.outbox_max_bytes;
        self.cfg = cfg.telemetry.clone();
        (self.group, self.edge) = (group, edge);
        self.lost();
        self.attempt = 0;
        self.reconnect_at = None;
        if !self.enabled() {
            self.outbox = None;
            self.shown = SparkplugStatus::default();
            return;
        }
        self.shown.group = self.group.clone();
        self.shown.edge_node = self.edge.clone();
        if self.outbox.is_none() || bound_changed {
            self.outbox = None;
            match Outbox::open(&self.state_dir.join(OUTBOX_DIR), self.cfg.outbox_max_bytes) {
                Ok((o, _)) => self.outbox = Some(o),
                Err(e) => self.error(format!("outbox: {e}; NDATA is sent without it")),
            }
        }
        // What a host would have been told: the start, so only changes from
        // here on are recorded until the first NBIRTH.
        let samples = metrics::sample(&snap, SystemTime::now(), self.shown.bad_commands);
        self.ex.birth(&samples, None, 0, 0);
        self.last_event = snap.events.last().cloned();
        match client::parse_url(&self.cfg.mqtt_url) {
            Ok(b) => {
                self.broker = Some(b);
                self.reconnect_at = Some(Instant::now());
            }
            Err(e) => self.error(e.to_string()),
        }
    }

    fn error(&mut self, message: String) {
        tracing::warn!("telemetry (sparkplug): {message}");
        self.shown.last_error = Some(message);
    }

    /// The node's health: ok once born, else why not.
    pub fn health(&self) -> (State, Option<String>) {
        if self.shown.born {
            return (State::Ok, None);
        }
        let why = match (&self.session, self.shown.connected) {
            (Some(_), true) => "connected, waiting for the primary host to be online".to_string(),
            (Some(_), false) => "connecting".to_string(),
            _ => self
                .shown
                .last_error
                .clone()
                .unwrap_or_else(|| "not connected".into()),
        };
        (State::Unavailable, Some(format!("sparkplug: {why}")))
    }

    /// Earliest time [`Node::on_timer`] has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        if !self.enabled() {
            return None;
        }
        [self.reconnect_at, self.data_due, Some(self.gauges_due)]
            .into_iter()
            .flatten()
            .min()
    }

    /// Reconnect, record debounced changes, record the periodic gauges.
    pub fn on_timer(&mut self) {
        let now = Instant::now();
        if self.reconnect_at.is_some_and(|t| t <= now) {
            self.reconnect_at = None;
            self.connect();
        }
        if self.data_due.is_some_and(|t| t <= now) {
            self.data_due = None;
            self.record_changes(false);
        }
        if self.gauges_due <= now {
            self.gauges_due = now.later(self.cfg.status_interval.get());
            self.record_changes(true);
        }
    }

    fn next_bd_seq(&mut self) -> u64 {
        let dir = crate::state::StateDir::open(&self.state_dir);
        let last = dir
            .as_ref()
            .ok()
            .and_then(|d| d.read_json::<BdSeqFile>(BD_SEQ_FILE).ok().flatten())
            .map(|f| f.bd_seq);
        let next = last.map_or(0, |b| (b + 1) % 256);
        let written = dir.and_then(|d| d.write_json(BD_SEQ_FILE, &BdSeqFile { bd_seq: next }));
        if let Err(e) = written {
            self.error(format!("bdSeq not kept across restarts: {e}"));
        }
        next
    }

    fn connect(&mut self) {
        let Some(broker) = self.broker.clone() else {
            return;
        };
        let bd_seq = self.next_bd_seq();
        let now_ms = metrics::millis(SystemTime::now());
        let will = LastWill::new(
            self.topic("NDEATH"),
            codec::encode(&metrics::death(bd_seq, now_ms)),
            QoS::AtLeastOnce,
            false,
        );
        let client_id = format!("edgereach-spb-{}", self.edge);
        let mut options = match client::options(&self.cfg, &broker, &client_id, will) {
            Ok(o) => o,
            Err(e) => {
                self.error(e.to_string());
                self.retry_later();
                return;
            }
        };
        options.set_max_packet_size(MAX_INCOMING, client::MAX_PACKET);
        self.bd_seq = bd_seq;
        self.shown.bd_seq = bd_seq;
        self.generation += 1;
        self.session = Some(Session::start(
            options,
            WINDOW + 16,
            self.generation,
            self.tx.clone(),
        ));
    }

    fn retry_later(&mut self) {
        let max = self.cfg.reconnect_max.get();
        self.reconnect_at = Some(client::retry_at(&mut self.attempt, max));
    }

    /// The connection is gone (or given up): no birth until the next one.
    fn lost(&mut self) {
        self.session = None;
        self.shown.connected = false;
        self.shown.born = false;
        self.shown.host_online = None;
    }

    /// One event of connection `generation`.
    pub fn on_session(&mut self, generation: u64, ev: Result<MqttEvent, ConnectionError>) {
        let Some(session) = self.session.as_mut().filter(|s| s.generation == generation) else {
            return;
        };
        match ev {
            Ok(MqttEvent::Incoming(Incoming::ConnAck(_))) => {
                session.connected = true;
                self.attempt = 0;
                self.shown.connected = true;
                let mut topics = vec![self.topic("NCMD")];
                topics.extend(self.host_topic());
                for t in topics {
                    if let Some(s) = self.session.as_ref() {
                        let _ = s.client.try_subscribe(t, QoS::AtLeastOnce);
                    }
                }
                if self.host_topic().is_none() {
                    self.birth();
                }
            }
            Ok(MqttEvent::Incoming(Incoming::Publish(p))) => self.on_message(&p.topic, &p.payload),
            Ok(ev) => match session.account(&ev) {
                Some(Tag::Outbox(id)) => {
                    session.outstanding = session.outstanding.saturating_sub(1);
                    self.shown.sent += 1;
                    if let Some(Err(e)) = self.outbox.as_mut().map(|o| o.ack(id)) {
                        self.error(format!("outbox: {e}"));
                    }
                }
                Some(Tag::Other) => self.shown.sent += 1,
                None => {}
            },
            Err(e) => {
                if matches!(
                    &e,
                    ConnectionError::MqttState(rumqttc::StateError::Deserialization(
                        rumqttc::Error::PayloadSizeLimitExceeded(_)
                    ))
                ) {
                    // A packet past MAX_INCOMING (or not MQTT): count it.
                    self.shown.bad_commands += 1;
                }
                let what = if self.shown.connected {
                    "lost connection"
                } else {
                    "cannot connect"
                };
                self.error(format!("{what}: {}", client::describe(&e)));
                self.lost();
                self.retry_later();
            }
        }
    }

    fn on_message(&mut self, topic: &str, payload: &[u8]) {
        if topic == self.topic("NCMD") {
            match codec::read_command(payload, REBIRTH_ALIAS) {
                Ok(c) => {
                    if c.unknown > 0 {
                        self.shown.bad_commands += 1;
                        tracing::info!(
                            "sparkplug: NCMD with {} metrics other than {REBIRTH} ignored",
                            c.unknown
                        );
                    }
                    if c.rebirth && self.shown.host_online != Some(false) {
                        self.birth();
                    }
                }
                Err(e) => {
                    self.shown.bad_commands += 1;
                    tracing::info!("sparkplug: NCMD ignored: {e}");
                }
            }
        } else if Some(topic) == self.host_topic().as_deref() {
            let Some(state) = codec::decode_state(payload) else {
                tracing::info!(
                    "sparkplug: STATE message ignored: not {{\"online\":bool,\"timestamp\":ms}}"
                );
                return;
            };
            if state.timestamp < self.host_ts {
                return; // older than what the host already said
            }
            self.host_ts = state.timestamp;
            self.on_host(state.online);
        }
    }

    fn on_host(&mut self, online: bool) {
        self.shown.host_online = Some(online);
        if online && !self.shown.born {
            self.birth();
        } else if !online && self.shown.born {
            // Sparkplug 3.0: NDEATH, disconnect, and connect again (the new
            // connection waits for the host to come back).
            self.publish_death();
            if let Some(s) = self.session.as_ref() {
                let _ = s.client.try_disconnect();
            }
            self.lost();
            self.reconnect_at = Some(Instant::now().later(Duration::from_secs(1)));
        }
    }

    /// NDEATH with this connection's bdSeq, as the Will would say it.
    fn publish_death(&mut self) {
        let now_ms = metrics::millis(SystemTime::now());
        let death = codec::encode(&metrics::death(self.bd_seq, now_ms));
        let topic = self.topic("NDEATH");
        if let Some(s) = self.session.as_mut() {
            s.publish(topic, QoS::AtLeastOnce, false, death, Tag::Other);
        }
    }

    /// NBIRTH with every metric (QoS 1, like NDATA: a host's persistent
    /// session gets it queued). Outbox records not yet handed over in this
    /// connection follow it, those recorded before it flagged historical.
    fn birth(&mut self) {
        let snap = self.hub.snapshot();
        let samples = metrics::sample(&snap, SystemTime::now(), self.shown.bad_commands);
        let now_ms = metrics::millis(SystemTime::now());
        let payload = self
            .ex
            .birth(&samples, self.last_event.as_ref(), self.bd_seq, now_ms);
        let topic = self.topic("NBIRTH");
        let Some(s) = self.session.as_mut() else {
            return;
        };
        if s.publish(
            topic,
            QoS::AtLeastOnce,
            false,
            codec::encode(&payload),
            Tag::Other,
        ) {
            self.seq = 0;
            self.birth_mark = self.outbox.as_ref().map_or(0, |o| o.last_id());
            self.shown.born = true;
            self.shown.births += 1;
            self.data_due = None;
        } else {
            self.error("NBIRTH could not be queued".into());
        }
    }

    /// The snapshot changed: a changed state is recorded after the debounce;
    /// a metric the NBIRTH did not declare needs a new NBIRTH.
    pub fn on_status(&mut self, snap: &Status) {
        if !self.enabled() {
            return;
        }
        let samples = metrics::sample(snap, SystemTime::now(), self.shown.bad_commands);
        if self.shown.born && self.ex.needs_rebirth(&samples) {
            self.birth();
            return;
        }
        if self.data_due.is_none() && self.ex.changed(&samples) {
            // Leading edge: the first change after a quiet debounce goes at
            // once (a short-lived state is seen); the trailing edge gathers
            // what follows within the debounce into one NDATA.
            let now = Instant::now();
            let quiet = self
                .last_data
                .is_none_or(|t| now.saturating_duration_since(t) >= self.cfg.debounce.get());
            if quiet {
                self.last_data = Some(now);
                if let Some(p) = self
                    .ex
                    .data(&samples, false, metrics::millis(SystemTime::now()))
                {
                    self.record(codec::encode(&p));
                }
            }
            self.data_due = Some(now.later(self.cfg.debounce.get()));
        }
    }

    fn record_changes(&mut self, gauges: bool) {
        let snap = self.hub.snapshot();
        let now = SystemTime::now();
        let samples = metrics::sample(&snap, now, self.shown.bad_commands);
        if self.shown.born && self.ex.needs_rebirth(&samples) {
            self.birth();
            return;
        }
        if let Some(p) = self.ex.data(&samples, gauges, metrics::millis(now)) {
            self.record(codec::encode(&p));
        }
    }

    /// An event: NDATA of the event metrics, through the outbox.
    pub fn record_event(&mut self, e: &Event) {
        if !self.enabled() {
            return;
        }
        self.last_event = Some(e.clone());
        let p = metrics::event(e, metrics::millis(SystemTime::now()));
        self.record(codec::encode(&p));
    }

    fn record(&mut self, payload: Vec<u8>) {
        let stored = match self.outbox.as_mut() {
            Some(o) => o.append(NDATA_RECORD, &payload).map_err(|e| e.to_string()),
            None => Err("no outbox".to_string()),
        };
        if let Err(e) = stored {
            self.error(format!("outbox: {e}"));
            self.shown.dropped += 1;
        }
    }

    /// Send outbox records not yet handed over, once born.
    pub fn pump(&mut self) {
        let Some(s) = self
            .session
            .as_ref()
            .filter(|s| s.connected && self.shown.born)
        else {
            return;
        };
        let room = WINDOW.saturating_sub(s.outstanding);
        let batch = match (&self.outbox, room) {
            (Some(o), 1..) => o.pending_after(s.sent_up_to, room),
            _ => Vec::new(),
        };
        let topic = self.topic("NDATA");
        for rec in batch {
            let seq = self.seq.wrapping_add(1);
            let bytes = match codec::stamp(&rec.payload, seq, rec.id <= self.birth_mark) {
                Ok(b) => b,
                Err(e) => {
                    // Not ours to send (a damaged record): let it go.
                    self.error(format!("outbox record {} dropped: {e}", rec.id));
                    if let Some(o) = self.outbox.as_mut() {
                        let _ = o.ack(rec.id);
                    }
                    continue;
                }
            };
            let Some(s) = self.session.as_mut() else {
                return;
            };
            if !s.publish(
                topic.clone(),
                QoS::AtLeastOnce,
                false,
                bytes,
                Tag::Outbox(rec.id),
            ) {
                return;
            }
            self.seq = seq;
            s.sent_up_to = rec.id;
            s.outstanding += 1;
        }
    }

    /// Outbox figures for the status.
    pub fn outbox_figures(&self) -> Option<(u64, u64, u64)> {
        self.outbox
            .as_ref()
            .map(|o| (o.depth() as u64, o.bytes(), o.dropped()))
    }

    /// Clean stop: send what is pending for `budget`, then NDEATH and
    /// DISCONNECT. Unacknowledged NDATA stays in the outbox.
    pub async fn shutdown(&mut self, rx: &mut mpsc::Receiver<SessionEvent>, budget: Duration) {
        let until = Instant::now().later(budget);
        let flush_until = Instant::now().later(budget * 2 / 3);
        let connected = |n: &Self| n.session.as_ref().is_some_and(|s| s.connected);
        let mut death_sent = false;
        while connected(self) {
            self.pump();
            if self.session.as_ref().is_none_or(|s| s.settled()) {
                if death_sent || !self.shown.born {
                    break;
                }
                self.publish_death();
                death_sent = true;
            }
            let wait = if death_sent { until } else { flush_until };
            match tokio::time::timeout_at(wait, rx.recv()).await {
                Ok(Some((g, ev))) => self.on_session(g, ev),
                _ if !death_sent && self.shown.born => {
                    // Out of time for NDATA (it stays in the outbox): NDEATH.
                    self.publish_death();
                    death_sent = true;
                }
                _ => break,
            }
        }
        if let Some(s) = self.session.as_ref() {
            let _ = s.client.try_disconnect();
            let generation = s.generation;
            let until = Instant::now().later(Duration::from_millis(50));
            while let Ok(Some((g, ev))) = tokio::time::timeout_at(until, rx.recv()).await {
                if g == generation
                    && matches!(
                        ev,
                        Ok(MqttEvent::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_)
                    )
                {
                    break;
                }
            }
        }
        self.lost();
    }
}
