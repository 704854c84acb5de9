//! The telemetry actor: records netcheck reports and events in the outbox,
//! keeps one MQTT connection (rumqttc, paced by our own jittered backoff),
//! sends what the outbox holds and forgets a record only on its PUBACK.
//!
//! Every connection gets a fresh rumqttc client and event loop: with a clean
//! session rumqttc drops what was in flight on reconnect anyway, and a fresh
//! pair means nothing stale is sent behind our back. After each CONNACK the
//! outbox is sent again from its oldest unacknowledged record (duplicates are
//! possible; consumers drop them by `seq`).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, ConnectionError, Event as MqttEvent, Incoming, Outgoing, QoS};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;

use super::client::{self, Broker};
use super::outbox::Outbox;
use super::payload::{self, topic};
use crate::config::{Config, TelemetryConfig};
use crate::deadline::Later;
use crate::netwatch::NetState;
use crate::shutdown::Shutdown;
use crate::status::{now_rfc3339, Event, State, Status, StatusHub, TelemetryStatus};

/// Outbox records sent and not yet acknowledged, at most.
const WINDOW: usize = 32;
/// Requests the rumqttc client buffers (window + state + status + slack).
const CLIENT_CAPACITY: usize = WINDOW + 16;
/// Time a clean shutdown gives the last records to be acked (the daemon
/// stops telemetry after every other task, within its 2 s budget).
const SHUTDOWN_FLUSH: Duration = Duration::from_millis(250);
/// Change-driven status publishes are at least this far apart, whatever
/// churns: a reason that changed every few seconds must not flood a metered
/// link.
const STATUS_MIN_SPACING: Duration = Duration::from_secs(60);
/// Directory of the outbox inside the state directory.
pub const OUTBOX_DIR: &str = "telemetry-outbox";

type SessionEvent = (u64, Result<MqttEvent, ConnectionError>);

/// What a publish was, to account for its PUBACK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tag {
    Outbox(u64),
    Other,
}

struct Session {
    generation: u64,
    client: AsyncClient,
    task: tokio::task::JoinHandle<()>,
    connected: bool,
    /// Publishes handed to rumqttc, not yet written (FIFO like its channel).
    submitted: VecDeque<Tag>,
    /// A publish rumqttc holds back on a packet-id collision.
    collided: Option<Tag>,
    inflight: HashMap<u16, Tag>,
    /// Highest outbox id handed over in this session.
    sent_up_to: u64,
    /// Outbox records handed over and not acknowledged.
    outstanding: usize,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Actor {
    hub: StatusHub,
    cfg: TelemetryConfig,
    state_dir: std::path::PathBuf,
    outbox: Option<Outbox>,
    broker: Option<Broker>,
    prefix: String,
    session: Option<Session>,
    generation: u64,
    attempt: u32,
    reconnect_at: Option<Instant>,
    session_tx: mpsc::Sender<SessionEvent>,
    shown: TelemetryStatus,
    /// What `shown` was when last put into the snapshot.
    pushed: Option<TelemetryStatus>,
    last_event_seq: u64,
    netcheck_runs: u64,
    fingerprint: String,
    status_due: Option<Instant>,
    periodic_due: Instant,
    last_status: Option<Instant>,
}

/// Run until shutdown.
pub async fn run(
    hub: StatusHub,
    mut config: watch::Receiver<Arc<Config>>,
    _net: watch::Receiver<NetState>,
    mut shutdown: Shutdown,
) {
    // Subscribe before looking at the snapshot, so no event falls in between.
    let mut events = hub.subscribe_events();
    let mut status_rx = hub.watch();
    let (session_tx, mut session_rx) = mpsc::channel(64);
    let cfg = config.borrow_and_update().clone();
    let mut actor = Actor {
        hub: hub.clone(),
        cfg: TelemetryConfig::default(),
        state_dir: cfg.gateway.state_dir(),
        outbox: None,
        broker: None,
        prefix: String::new(),
        session: None,
        generation: 0,
        attempt: 0,
        reconnect_at: None,
        session_tx,
        shown: hub.snapshot().telemetry,
        pushed: None,
        last_event_seq: 0,
        netcheck_runs: 0,
        fingerprint: String::new(),
        status_due: None,
        periodic_due: Instant::now(),
        last_status: None,
    };
    actor.configure(&cfg);
    actor.catch_up_events();
    actor.on_status(&hub.snapshot());
    loop {
        actor.show();
        let deadline = actor.next_deadline();
        tokio::select! {
            _ = shutdown.wait() => {
                while let Ok(e) = events.try_recv() {
                    actor.record_event(e);
                }
                actor.shutdown(&mut events, &mut session_rx).await;
                return;
            }
            r = config.changed() => {
                if r.is_err() {
                    return;
                }
                let cfg = config.borrow_and_update().clone();
                actor.configure(&cfg);
            }
            Some((generation, ev)) = session_rx.recv() => actor.on_session(generation, ev),
            e = events.recv() => match e {
                Ok(e) => actor.record_event(e),
                Err(broadcast::error::RecvError::Lagged(_)) => actor.catch_up_events(),
                Err(broadcast::error::RecvError::Closed) => return,
            },
            r = status_rx.changed() => {
                if r.is_err() {
                    return;
                }
                let snap = status_rx.borrow_and_update().clone();
                actor.on_status(&snap);
            }
            _ = sleep_until(deadline) => actor.on_timer(),
        }
        actor.pump();
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

impl Actor {
    fn enabled(&self) -> bool {
        !self.cfg.mqtt_url.is_empty()
    }

    /// Apply a (new) configuration: reopen what changed, reconnect now.
    fn configure(&mut self, cfg: &Config) {
        let snap = self.hub.snapshot();
        let prefix = payload::topic_prefix(
            &cfg.telemetry.topic_prefix,
            &snap.gateway.site,
            &snap.gateway.id,
        );
        if cfg.telemetry == self.cfg && prefix == self.prefix && self.outbox.is_some() {
            return;
        }
        let bound_changed = cfg.telemetry.outbox_max_bytes != self.cfg.outbox_max_bytes;
        self.cfg = cfg.telemetry.clone();
        self.prefix = prefix;
        self.session = None;
        self.attempt = 0;
        self.shown.connected = false;
        if !self.enabled() {
            self.reconnect_at = None;
            self.shown.broker = None;
            self.shown
                .health
                .set(State::Disabled, Some("telemetry.mqtt_url is empty".into()));
            return;
        }
        if self.outbox.is_none() || bound_changed {
            self.outbox = None;
            let dir = self.state_dir.join(OUTBOX_DIR);
            match Outbox::open(&dir, self.cfg.outbox_max_bytes) {
                Ok((o, rec)) => {
                    if rec.pending > 0 || rec.torn_tail_bytes > 0 || rec.corrupt_bytes > 0 {
                        tracing::info!(
                            pending = rec.pending,
                            torn_tail_bytes = rec.torn_tail_bytes,
                            corrupt_bytes = rec.corrupt_bytes,
                            "telemetry outbox recovered from {}",
                            dir.display()
                        );
                    }
                    self.outbox = Some(o);
                }
                Err(e) => self.error(format!("outbox: {e}; sending without it")),
            }
        }
        match client::parse_url(&self.cfg.mqtt_url) {
            Ok(b) => {
                self.shown.broker = Some(crate::redact::url(&b.to_string()));
                self.broker = Some(b);
                self.reconnect_at = Some(Instant::now());
            }
            Err(e) => {
                self.broker = None;
                self.reconnect_at = None;
                self.shown.broker = None;
                self.unavailable(e.to_string());
            }
        }
    }

    fn error(&mut self, message: String) {
        tracing::warn!("telemetry: {message}");
        self.shown.last_error = Some(message);
    }

    fn unavailable(&mut self, reason: String) {
        self.error(reason.clone());
        self.shown.health.set(State::Unavailable, Some(reason));
    }

    fn next_deadline(&self) -> Option<Instant> {
        let connected = self.session.as_ref().is_some_and(|s| s.connected);
        let mut due = self.reconnect_at;
        if connected {
            for t in [self.status_due, Some(self.periodic_due)]
                .into_iter()
                .flatten()
            {
                due = Some(due.map_or(t, |d| d.min(t)));
            }
        }
        due
    }

    fn on_timer(&mut self) {
        let now = Instant::now();
        if self.reconnect_at.is_some_and(|t| t <= now) {
            self.reconnect_at = None;
            self.connect();
        }
        let connected = self.session.as_ref().is_some_and(|s| s.connected);
        if connected && (self.status_due.is_some_and(|t| t <= now) || self.periodic_due <= now) {
            self.publish_status();
        }
    }

    fn connect(&mut self) {
        let Some(broker) = self.broker.clone() else {
            return;
        };
        let snap = self.hub.snapshot();
        let client_id = format!("edgereach-{}", snap.gateway.id);
        let state_topic = format!("{}/{}", self.prefix, topic::STATE);
        let options = match client::options(&self.cfg, &broker, &client_id, &state_topic) {
            Ok(o) => o,
            Err(e) => {
                // Files may appear later (provisioning): try again, paced.
                self.unavailable(e.to_string());
                self.retry_later();
                return;
            }
        };
        let (client, mut eventloop) = AsyncClient::new(options, CLIENT_CAPACITY);
        self.generation += 1;
        let generation = self.generation;
        let tx = self.session_tx.clone();
        let task = tokio::spawn(async move {
            loop {
                let ev = eventloop.poll().await;
                let end = ev.is_err();
                if tx.send((generation, ev)).await.is_err() || end {
                    return;
                }
            }
        });
        self.session = Some(Session {
            generation,
            client,
            task,
            connected: false,
            submitted: VecDeque::new(),
            collided: None,
            inflight: HashMap::new(),
            sent_up_to: 0,
            outstanding: 0,
        });
    }

    fn retry_later(&mut self) {
        let wait = client::backoff(
            self.attempt,
            self.cfg.reconnect_max.get(),
            client::random_u32(),
        );
        self.attempt = self.attempt.saturating_add(1);
        self.reconnect_at = Some(Instant::now().later(wait));
    }

    fn on_session(&mut self, generation: u64, ev: Result<MqttEvent, ConnectionError>) {
        let Some(session) = self.session.as_mut().filter(|s| s.generation == generation) else {
            return; // from a connection already given up
        };
        match ev {
            Ok(MqttEvent::Incoming(Incoming::ConnAck(_))) => {
                session.connected = true;
                self.attempt = 0;
                self.shown.connected = true;
                self.shown.health.set(State::Ok, None);
                tracing::info!(
                    "telemetry: connected to {}",
                    self.shown.broker.as_deref().unwrap_or("?")
                );
                let online = payload::state_online(&now_rfc3339(), env!("CARGO_PKG_VERSION"));
                self.publish(topic::STATE, true, online, Tag::Other);
                self.publish_status();
            }
            Ok(MqttEvent::Outgoing(Outgoing::Publish(pkid))) => {
                let tag = session
                    .collided
                    .take()
                    .or_else(|| session.submitted.pop_front());
                if let (Some(tag), true) = (tag, pkid != 0) {
                    session.inflight.insert(pkid, tag);
                }
            }
            Ok(MqttEvent::Outgoing(Outgoing::AwaitAck(_))) => {
                session.collided = session.submitted.pop_front();
            }
            Ok(MqttEvent::Incoming(Incoming::PubAck(ack))) => {
                if let Some(tag) = session.inflight.remove(&ack.pkid) {
                    self.shown.sent += 1;
                    if let Tag::Outbox(id) = tag {
                        session.outstanding = session.outstanding.saturating_sub(1);
                        if let Some(o) = self.outbox.as_mut() {
                            if let Err(e) = o.ack(id) {
                                self.error(format!("outbox: {e}"));
                            }
                        }
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                let was_connected = session.connected;
                self.session = None;
                self.shown.connected = false;
                self.retry_later();
                let wait = self
                    .reconnect_at
                    .map(|t| t.saturating_duration_since(Instant::now()))
                    .unwrap_or_default();
                let broker = self.shown.broker.clone().unwrap_or_default();
                let what = if was_connected {
                    "lost connection to"
                } else {
                    "cannot connect to"
                };
                self.unavailable(format!(
                    "{what} {broker}: {}; retrying in {:.1}s",
                    describe(&e),
                    wait.as_secs_f64()
                ));
            }
        }
    }

    /// Hand one message to rumqttc; false when it could not take it now.
    fn publish(&mut self, suffix: &str, retain: bool, payload: Vec<u8>, tag: Tag) -> bool {
        let Some(session) = self.session.as_mut().filter(|s| s.connected) else {
            return false;
        };
        let topic = format!("{}/{suffix}", self.prefix);
        match session
            .client
            .try_publish(topic, QoS::AtLeastOnce, retain, payload)
        {
            Ok(()) => {
                session.submitted.push_back(tag);
                true
            }
            Err(_) => false,
        }
    }

    /// Send outbox records not yet handed over in this session, in order.
    fn pump(&mut self) {
        let Some(session) = self.session.as_ref().filter(|s| s.connected) else {
            return;
        };
        let room = WINDOW.saturating_sub(session.outstanding);
        let after = session.sent_up_to;
        let batch = match (&self.outbox, room) {
            (Some(o), 1..) => o.pending_after(after, room),
            _ => Vec::new(),
        };
        for rec in batch {
            if !self.publish(&rec.topic, false, rec.payload, Tag::Outbox(rec.id)) {
                break;
            }
            if let Some(s) = self.session.as_mut() {
                s.sent_up_to = rec.id;
                s.outstanding += 1;
            }
        }
    }

    /// Store a record durably, or (without an outbox) send it best-effort.
    fn record(&mut self, suffix: &'static str, payload: Vec<u8>) {
        if !self.enabled() {
            return;
        }
        let stored = match self.outbox.as_mut() {
            Some(o) => o.append(suffix, &payload).map_err(|e| e.to_string()),
            None => Err("no outbox".to_string()),
        };
        if let Err(e) = stored {
            self.error(format!("outbox: {e}; sending without it"));
            if !self.publish(suffix, false, payload, Tag::Other) {
                self.shown.dropped += 1;
            }
        }
    }

    fn record_event(&mut self, e: Event) {
        if e.seq <= self.last_event_seq {
            return;
        }
        self.last_event_seq = e.seq;
        self.record(topic::EVENTS, payload::event(&e));
    }

    /// After falling behind the event stream (or at start), take what the
    /// snapshot still holds.
    fn catch_up_events(&mut self) {
        let snap = self.hub.snapshot();
        let first = snap
            .events
            .iter()
            .map(|e| e.seq)
            .find(|&s| s > self.last_event_seq);
        if let Some(first) = first {
            if self.last_event_seq > 0 && first > self.last_event_seq + 1 {
                let lost = first - self.last_event_seq - 1;
                self.shown.dropped += lost;
                self.error(format!(
                    "fell behind the event stream: {lost} events not recorded"
                ));
            }
        }
        for e in snap.events {
            self.record_event(e);
        }
    }

    fn on_status(&mut self, snap: &Status) {
        if snap.netcheck.runs != self.netcheck_runs {
            self.netcheck_runs = snap.netcheck.runs;
            if let Some(r) = &snap.netcheck.report {
                self.record(topic::NETCHECK, payload::netcheck(r));
            }
        }
        let fp = payload::status_fingerprint(snap);
        if fp != self.fingerprint && self.status_due.is_none() {
            let debounced = Instant::now().later(self.cfg.debounce.get());
            let spaced = self
                .last_status
                .map_or(debounced, |t| t + STATUS_MIN_SPACING);
            self.status_due = Some(debounced.max(spaced));
        }
    }

    fn publish_status(&mut self) {
        let snap = self.hub.snapshot();
        let body = payload::status(&snap, &now_rfc3339());
        if self.publish(topic::STATUS, true, body, Tag::Other) {
            self.fingerprint = payload::status_fingerprint(&snap);
            self.status_due = None;
            self.last_status = Some(Instant::now());
            self.periodic_due = Instant::now().later(self.cfg.status_interval.get());
        }
    }

    /// Put our section into the snapshot when it changed.
    fn show(&mut self) {
        if let Some(o) = &self.outbox {
            self.shown.outbox_depth = o.depth() as u64;
            self.shown.outbox_bytes = o.bytes();
            self.shown.dropped = self.shown.dropped.max(o.dropped());
        }
        if self.pushed.as_ref() != Some(&self.shown) {
            let shown = self.shown.clone();
            self.pushed = Some(shown.clone());
            self.hub.update(|s| s.telemetry = shown);
        }
    }

    /// Clean stop (the daemon asks after every other task has stopped):
    /// record the last events, send what is pending, then `offline`, then
    /// DISCONNECT. Whatever is not acknowledged stays in the outbox.
    async fn shutdown(
        &mut self,
        events: &mut broadcast::Receiver<Event>,
        rx: &mut mpsc::Receiver<SessionEvent>,
    ) {
        let deadline = Instant::now().later(SHUTDOWN_FLUSH);
        while let Ok(e) = events.try_recv() {
            self.record_event(e);
        }
        loop {
            self.pump();
            self.show();
            let settled = self
                .session
                .as_ref()
                .is_none_or(|s| !s.connected || (s.submitted.is_empty() && s.inflight.is_empty()));
            if settled {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                Some((generation, ev)) = rx.recv() => self.on_session(generation, ev),
                e = events.recv() => match e {
                    Ok(e) => self.record_event(e),
                    Err(broadcast::error::RecvError::Lagged(_)) => self.catch_up_events(),
                    Err(broadcast::error::RecvError::Closed) => break,
                },
            }
        }
        while let Ok(e) = events.try_recv() {
            self.record_event(e);
        }
        if self.session.as_ref().is_some_and(|s| s.connected) {
            let offline = payload::state_shutdown(&now_rfc3339());
            self.publish(topic::STATE, true, offline, Tag::Other);
            let until = Instant::now().later(Duration::from_millis(150));
            while self
                .session
                .as_ref()
                .is_some_and(|s| !s.submitted.is_empty() || !s.inflight.is_empty())
            {
                match tokio::time::timeout_at(until, rx.recv()).await {
                    Ok(Some((generation, ev))) => self.on_session(generation, ev),
                    _ => break,
                }
            }
        }
        if let Some(s) = self.session.as_ref() {
            let _ = s.client.try_disconnect();
            let generation = s.generation;
            let until = Instant::now().later(Duration::from_millis(100));
            while let Ok(Some((g, ev))) = tokio::time::timeout_at(until, rx.recv()).await {
                if g == generation
                    && matches!(ev, Ok(MqttEvent::Outgoing(Outgoing::Disconnect)) | Err(_))
                {
                    break;
                }
            }
        }
        self.session = None;
        self.shown.connected = false;
        self.shown
            .health
            .set(State::Unavailable, Some("stopped".into()));
        self.show();
    }
}

/// A connection error in words a technician can act on.
fn describe(e: &ConnectionError) -> String {
    match e {
        ConnectionError::ConnectionRefused(code) => {
            format!("the broker refused the connection ({code:?}): check telemetry.credentials_file and the broker's ACL")
        }
        ConnectionError::Tls(t) => {
            let inner = match t {
                rumqttc::TlsError::TLS(r) => Some(r),
                rumqttc::TlsError::Io(io) => io.get_ref().and_then(|e| e.downcast_ref()),
                _ => None,
            };
            match inner {
                Some(r) => format!("TLS: {}", tls_words(r)),
                None => format!("TLS: {t}"),
            }
        }
        ConnectionError::NetworkTimeout => "no answer from the broker (timeout)".into(),
        other => other.to_string(),
    }
}

/// What a rustls error means for the person fixing it; the variant name stays
/// in, so it can be searched for.
pub fn tls_words(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    let cert = match e {
        rustls::Error::InvalidCertificate(c) => c,
        rustls::Error::AlertReceived(a) => {
            return format!(
                "the broker rejected us ({a:?}): check telemetry.client_cert and client_key"
            )
        }
        other => return other.to_string(),
    };
    let why = match cert {
        C::UnknownIssuer => {
            "the broker's certificate is not signed by a CA we trust (telemetry.ca_file)"
        }
        C::Expired | C::ExpiredContext { .. } => "the broker's certificate has expired",
        C::NotValidYet | C::NotValidYetContext { .. } => {
            "the broker's certificate is not valid yet (or this gateway's clock is wrong)"
        }
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            "the broker's certificate does not name the host in telemetry.mqtt_url"
        }
        C::Revoked => "the broker's certificate is revoked",
        _ => "the broker's certificate is not acceptable",
    };
    let variant = format!("{cert:?}");
    let variant = variant.split([' ', '{', '(']).next().unwrap_or("");
    format!("{why} ({variant})")
}
