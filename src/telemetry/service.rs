//! The telemetry actor: records netcheck reports and events in the outbox,
//! keeps one MQTT connection (rumqttc, paced by our own jittered backoff),
//! sends what the outbox holds and forgets a record only on its PUBACK.
//!
//! Every connection gets a fresh rumqttc client and event loop: with a clean
//! session rumqttc drops what was in flight on reconnect anyway, and a fresh
//! pair means nothing stale is sent behind our back. After each CONNACK the
//! outbox is sent again from its oldest unacknowledged record (duplicates are
//! possible; consumers drop them by `seq`).

use std::time::Duration;

use rumqttc::{ConnectionError, Event as MqttEvent, Incoming, Outgoing, QoS};
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use super::client::{self, Broker};
use super::outbox::Outbox;
use super::payload::{self, topic};
use super::session::{Session, SessionEvent, Tag};
use super::sparkplug::node::Node;
use crate::actor::Context;
use crate::config::{Config, TelemetryConfig};
use crate::deadline::Later;
use crate::status::{Event, Health, State, Status, StatusHub, TelemetryStatus, Timestamp};

/// Outbox records sent and not yet acknowledged, at most.
const WINDOW: usize = 32;
/// Requests the rumqttc client buffers (window + state + status + slack).
const CLIENT_CAPACITY: usize = WINDOW + 16;
/// Time a clean shutdown gives the last records to be acked (the daemon
/// stops telemetry after every other task, within its 2 s budget).
const SHUTDOWN_FLUSH: Duration = Duration::from_millis(250);
/// What the Sparkplug node gets of it before the JSON connection: alone,
/// or beside JSON (whose flush then follows).
const NODE_FLUSH_ALONE: Duration = Duration::from_millis(350);
const NODE_FLUSH_BOTH: Duration = Duration::from_millis(100);
/// Change-driven status publishes are at least this far apart, whatever
/// churns: a reason that changed every few seconds must not flood a metered
/// link.
const STATUS_MIN_SPACING: Duration = Duration::from_secs(60);
/// Directory of the outbox inside the state directory.
pub const OUTBOX_DIR: &str = "telemetry-outbox";

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
    last_event_seq: u64,
    netcheck_runs: u64,
    fingerprint: String,
    status_due: Option<Instant>,
    periodic_due: Instant,
    last_status: Option<Instant>,
    /// The Sparkplug B edge node (idle unless `format` includes it).
    node: Node,
    /// The section's health: the JSON connection's and the node's together.
    health: Health,
}

/// Run until shutdown.
pub async fn run(ctx: Context) {
    let Context {
        hub,
        mut config,
        stop: mut shutdown,
        ..
    } = ctx;
    // Subscribe before looking at the snapshot, so no event falls in between.
    let mut events = hub.subscribe_events();
    let mut status_rx = hub.watch();
    let (session_tx, mut session_rx) = mpsc::channel(64);
    let (node_tx, mut node_rx) = mpsc::channel(64);
    let cfg = config.borrow_and_update().clone();
    let shown = hub.snapshot().telemetry;
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
        health: shown.health.clone(),
        shown,
        last_event_seq: 0,
        netcheck_runs: 0,
        fingerprint: String::new(),
        status_due: None,
        periodic_due: Instant::now(),
        last_status: None,
        node: Node::new(hub.clone(), cfg.gateway.state_dir(), node_tx),
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
                let budget = if actor.enabled() { NODE_FLUSH_BOTH } else { NODE_FLUSH_ALONE };
                actor.node.shutdown(&mut node_rx, budget).await;
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
            Some((generation, ev)) = node_rx.recv() => actor.node.on_session(generation, ev),
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
    /// Whether the JSON topics are published.
    fn enabled(&self) -> bool {
        !self.cfg.mqtt_url.is_empty() && self.cfg.format.json()
    }

    /// Apply a (new) configuration: reopen what changed, reconnect now.
    fn configure(&mut self, cfg: &Config) {
        self.node.configure(cfg);
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
            self.shown.broker = client::parse_url(&self.cfg.mqtt_url)
                .ok()
                .map(|b| crate::redact::url(&b.to_string()));
            let why = if self.cfg.mqtt_url.is_empty() {
                "telemetry.mqtt_url is empty"
            } else {
                "telemetry.format is sparkplug"
            };
            self.shown.health.set(State::Disabled, Some(why.into()));
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
        let mut due = [self.reconnect_at, self.node.next_deadline()]
            .into_iter()
            .flatten()
            .min();
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
        self.node.on_timer();
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
        let options = match client::options(
            &self.cfg,
            &broker,
            &client_id,
            client::state_will(&state_topic),
        ) {
            Ok(o) => o,
            Err(e) => {
                // Files may appear later (provisioning): try again, paced.
                self.unavailable(e.to_string());
                self.retry_later();
                return;
            }
        };
        self.generation += 1;
        self.session = Some(Session::start(
            options,
            CLIENT_CAPACITY,
            self.generation,
            self.session_tx.clone(),
        ));
    }

    fn retry_later(&mut self) {
        let max = self.cfg.reconnect_max.get();
        self.reconnect_at = Some(client::retry_at(&mut self.attempt, max));
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
                let online = payload::state_online(Timestamp::now(), env!("CARGO_PKG_VERSION"));
                self.publish(topic::STATE, true, online, Tag::Other);
                self.publish_status();
            }
            Ok(ev) => {
                if let Some(tag) = session.account(&ev) {
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
                    client::describe(&e),
                    wait.as_secs_f64()
                ));
            }
        }
    }

    /// Hand one message to rumqttc; false when it could not take it now.
    fn publish(&mut self, suffix: &str, retain: bool, payload: Vec<u8>, tag: Tag) -> bool {
        let Some(session) = self.session.as_mut() else {
            return false;
        };
        let topic = format!("{}/{suffix}", self.prefix);
        session.publish(topic, QoS::AtLeastOnce, retain, payload, tag)
    }

    /// Send outbox records not yet handed over in this session, in order.
    fn pump(&mut self) {
        self.node.pump();
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
        self.node.record_event(&e);
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
        self.node.on_status(snap);
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
        let body = payload::status(&snap, Timestamp::now());
        if self.publish(topic::STATUS, true, body, Tag::Other) {
            self.fingerprint = payload::status_fingerprint(&snap);
            self.status_due = None;
            self.last_status = Some(Instant::now());
            self.periodic_due = Instant::now().later(self.cfg.status_interval.get());
        }
    }

    /// Put our section into the snapshot.
    fn show(&mut self) {
        let mut out = self.shown.clone();
        let (mut depth, mut bytes, mut dropped) = (0, 0, 0);
        for (d, b, dr) in [
            self.outbox
                .as_ref()
                .map(|o| (o.depth() as u64, o.bytes(), o.dropped())),
            self.node.outbox_figures(),
        ]
        .into_iter()
        .flatten()
        {
            (depth, bytes, dropped) = (depth + d, bytes + b, dropped + dr);
        }
        out.outbox_depth = depth;
        out.outbox_bytes = bytes;
        out.dropped = self.shown.dropped.max(dropped);
        let (state, why) = match (self.enabled(), self.node.enabled()) {
            (_, false) => (self.shown.health.state, self.shown.health.reason.clone()),
            (false, true) => self.node.health(),
            (true, true) => match (self.shown.health.state, self.node.health()) {
                (State::Ok, (State::Ok, _)) => (State::Ok, None),
                (State::Ok, (_, why)) => (State::Degraded, why),
                (json, _) => (json, self.shown.health.reason.clone()),
            },
        };
        self.health.set(state, why);
        out.health = self.health.clone();
        out.connected = self.shown.connected || (!self.enabled() && self.node.shown.connected);
        out.sparkplug = self.node.enabled().then(|| self.node.shown.clone());
        self.shown.sparkplug = out.sparkplug.clone();
        // The hub wakes the views only if this really changed the section.
        self.hub.update(|s| s.telemetry = out);
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
                .is_none_or(|s| !s.connected || s.settled());
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
            let offline = payload::state_shutdown(Timestamp::now());
            self.publish(topic::STATE, true, offline, Tag::Other);
            let until = Instant::now().later(Duration::from_millis(150));
            while self.session.as_ref().is_some_and(|s| !s.settled()) {
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
