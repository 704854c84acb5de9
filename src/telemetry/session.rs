//! One MQTT connection: a fresh rumqttc client and event loop, its events
//! forwarded to the owning actor tagged with a generation (so events of a
//! connection already given up are told apart), and the accounting that
//! maps each PUBACK back to what was published.

use std::collections::{HashMap, VecDeque};

use rumqttc::{
    AsyncClient, ConnectionError, Event as MqttEvent, Incoming, MqttOptions, Outgoing, QoS,
};
use tokio::sync::mpsc;

/// An event of connection `generation`.
pub type SessionEvent = (u64, Result<MqttEvent, ConnectionError>);

/// What a publish was, to account for its PUBACK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tag {
    /// Outbox record `id`.
    Outbox(u64),
    /// Anything else (state, status, birth).
    Other,
}

/// One connection and what is in flight on it.
pub struct Session {
    /// Which connection this is.
    pub generation: u64,
    /// The rumqttc client.
    pub client: AsyncClient,
    task: tokio::task::JoinHandle<()>,
    /// CONNACK received and not lost since.
    pub connected: bool,
    /// Publishes handed to rumqttc, not yet written (FIFO like its channel).
    submitted: VecDeque<Tag>,
    /// A publish rumqttc holds back on a packet-id collision.
    collided: Option<Tag>,
    inflight: HashMap<u16, Tag>,
    /// Highest outbox id handed over in this session.
    pub sent_up_to: u64,
    /// Outbox records handed over and not acknowledged.
    pub outstanding: usize,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Session {
    /// Connect with `options`; events go to `tx` as `(generation, event)`.
    pub fn start(
        options: MqttOptions,
        capacity: usize,
        generation: u64,
        tx: mpsc::Sender<SessionEvent>,
    ) -> Self {
        let (client, mut eventloop) = AsyncClient::new(options, capacity);
        let task = tokio::spawn(async move {
            loop {
                let ev = eventloop.poll().await;
                let end = ev.is_err();
                if tx.send((generation, ev)).await.is_err() || end {
                    return;
                }
            }
        });
        Session {
            generation,
            client,
            task,
            connected: false,
            submitted: VecDeque::new(),
            collided: None,
            inflight: HashMap::new(),
            sent_up_to: 0,
            outstanding: 0,
        }
    }

    /// Hand one message to rumqttc; false when not connected or it could
    /// not take it now.
    pub fn publish(
        &mut self,
        topic: String,
        qos: QoS,
        retain: bool,
        payload: Vec<u8>,
        tag: Tag,
    ) -> bool {
        if !self.connected {
            return false;
        }
        match self.client.try_publish(topic, qos, retain, payload) {
            Ok(()) => {
                self.submitted.push_back(tag);
                true
            }
            Err(_) => false,
        }
    }

    /// Follow publishes out and acknowledgements in; returns the tag a
    /// PUBACK settled.
    pub fn account(&mut self, ev: &MqttEvent) -> Option<Tag> {
        match ev {
            MqttEvent::Outgoing(Outgoing::Publish(pkid)) => {
                let tag = self.collided.take().or_else(|| self.submitted.pop_front());
                if let (Some(tag), true) = (tag, *pkid != 0) {
                    self.inflight.insert(*pkid, tag);
                }
                None
            }
            MqttEvent::Outgoing(Outgoing::AwaitAck(_)) => {
                self.collided = self.submitted.pop_front();
                None
            }
            MqttEvent::Incoming(Incoming::PubAck(ack)) => self.inflight.remove(&ack.pkid),
            _ => None,
        }
    }

    /// Nothing handed over is still unwritten or unacknowledged.
    pub fn settled(&self) -> bool {
        self.submitted.is_empty() && self.inflight.is_empty()
    }
}
