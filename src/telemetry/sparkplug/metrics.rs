//! The edge node's metrics, read from the status snapshot, and
//! report-by-exception: NBIRTH carries every metric with its name, alias,
//! datatype and timestamp; NDATA only what changed, by alias. Pure.
//!
//! Aliases are fixed per metric name (a table for the node's own metrics,
//! a slot per mapping name for the mappings'), so NDATA kept in the outbox
//! across a restart still means the same metric after the next NBIRTH.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use super::codec::{datatype as dt, Metric, Payload, Value, REBIRTH};
use crate::portmap::model::Method;
use crate::status::{Event, State, Status};
use crate::web::sections::{self, PeerPath};

/// How a metric is reported by exception.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// A state worth telling at once (after the debounce).
    Change,
    /// A gauge that moves all the time (lease left, outbox depth): sent
    /// when something else goes out, or at the status interval.
    Gauge,
}

/// One metric's current value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Metric name.
    pub name: String,
    /// Its alias.
    pub alias: u64,
    /// [`super::codec::datatype`].
    pub datatype: u32,
    /// Reporting class.
    pub class: Class,
    /// The value; `None` is null.
    pub value: Option<Value>,
}

/// The node's own metrics: (alias, name, datatype, class). The event
/// metrics are set by events only, never by a snapshot.
pub const TABLE: &[(u64, &str, u32, Class)] = &[
    (1, REBIRTH, dt::BOOLEAN, Class::Change),
    (2, "Properties/Version", dt::STRING, Class::Change),
    (3, "Reachability/Verdict", dt::STRING, Class::Change),
    (4, "Sections/network/State", dt::STRING, Class::Change),
    (5, "Sections/portmap/State", dt::STRING, Class::Change),
    (6, "Sections/netcheck/State", dt::STRING, Class::Change),
    (7, "Sections/tailscale/State", dt::STRING, Class::Change),
    (8, "Sections/admission/State", dt::STRING, Class::Change),
    (9, "Sections/telemetry/State", dt::STRING, Class::Change),
    (10, "Sections/web/State", dt::STRING, Class::Change),
    (11, "NAT/Type", dt::STRING, Class::Change),
    (12, "NAT/Public Address", dt::STRING, Class::Change),
    (13, "Tailscale/State", dt::STRING, Class::Change),
    (14, "Tailscale/Peers Direct", dt::UINT32, Class::Change),
    (15, "Tailscale/Peers Relayed", dt::UINT32, Class::Change),
    (16, "Portmap/Router Reboots", dt::UINT64, Class::Change),
    (17, "Telemetry/Outbox Depth", dt::UINT64, Class::Gauge),
    (18, "Telemetry/Bad Commands", dt::UINT64, Class::Gauge),
];

/// The event metrics: (alias, name, datatype).
pub const EVENT_TABLE: &[(u64, &str, u32)] = &[
    (20, "Event/Seq", dt::UINT64),
    (21, "Event/Source", dt::STRING),
    (22, "Event/Kind", dt::STRING),
    (23, "Event/Level", dt::STRING),
    (24, "Event/Message", dt::STRING),
];

/// Per mapping: (field, datatype, class), alias = 1000 + 8 x slot + field.
const MAPPING_FIELDS: &[(&str, u32, Class)] = &[
    ("State", dt::STRING, Class::Change),
    ("External", dt::STRING, Class::Change),
    ("Method", dt::STRING, Class::Change),
    ("Lease Left", dt::INT64, Class::Gauge),
];
const MAPPING_BASE: u64 = 1000;
const MAPPING_SLOTS: u64 = 4096;

/// The `bdSeq` metric's name (by name only, in NBIRTH and NDEATH).
pub const BD_SEQ: &str = "bdSeq";

fn text(s: &str) -> Option<Value> {
    Some(Value::String(s.to_string()))
}

fn state_name(s: State) -> &'static str {
    match s {
        State::Disabled => "disabled",
        State::Unavailable => "unavailable",
        State::Ok => "ok",
        State::Degraded => "degraded",
    }
}

/// Each mapping's slot, fixed by its name (a CRC, linear probing among the
/// names in order, so only a clash within one configuration moves one).
fn mapping_slots<'a>(names: impl Iterator<Item = &'a str>) -> BTreeMap<&'a str, u64> {
    let mut sorted: Vec<&str> = names.collect();
    sorted.sort_unstable();
    let mut used = std::collections::HashSet::new();
    let mut out = BTreeMap::new();
    for n in sorted {
        let mut slot = u64::from(crc32fast::hash(n.as_bytes())) % MAPPING_SLOTS;
        while !used.insert(slot) {
            slot = (slot + 1) % MAPPING_SLOTS;
        }
        out.insert(n, slot);
    }
    out
}

/// The NAT type as the NAT report gives it.
pub fn nat_type(s: &Status) -> Option<&'static str> {
    let r = s.netcheck.report.as_ref()?;
    Some(match (r.udp, r.mapping_varies_by_dest_ip) {
        (false, _) => "no-udp",
        (true, Some(true)) => "hard",
        (true, Some(false)) => "easy",
        (true, None) => "unknown",
    })
}

/// Every metric but the event ones, from the snapshot.
pub fn sample(s: &Status, now: SystemTime, bad_commands: u64) -> Vec<Sample> {
    let verdict = crate::web::verdict::decide_at(s, now);
    let peers = sections::peers(s);
    let count = |p: PeerPath| {
        Some(Value::Int(
            peers.iter().filter(|x| x.path == p).count() as u32
        ))
    };
    let public = s
        .netcheck
        .report
        .as_ref()
        .and_then(|r| r.ipv4.as_deref())
        .map(|a| a.rsplit_once(':').map_or(a, |(ip, _)| ip));
    let values: [Option<Value>; 18] = [
        Some(Value::Boolean(false)),
        text(&s.gateway.version),
        text(verdict.reach.name()),
        text(state_name(s.network.health.state)),
        text(state_name(s.portmap.health.state)),
        text(state_name(s.netcheck.health.state)),
        text(state_name(s.tailscale.health.state)),
        text(state_name(s.admission.health.state)),
        text(state_name(s.telemetry.health.state)),
        text(state_name(s.web.health.state)),
        nat_type(s).and_then(text),
        public.and_then(text),
        s.tailscale.backend_state.as_deref().and_then(text),
        count(PeerPath::Direct),
        count(PeerPath::Relay),
        Some(Value::Long(s.portmap.router_reboots)),
        Some(Value::Long(s.telemetry.outbox_depth)),
        Some(Value::Long(bad_commands)),
    ];
    let mut out: Vec<Sample> = TABLE
        .iter()
        .zip(values)
        .map(|(&(alias, name, datatype, class), value)| Sample {
            name: name.to_string(),
            alias,
            datatype,
            class,
            value,
        })
        .collect();
    let slots = mapping_slots(s.portmap.mappings.iter().map(|m| m.name.as_str()));
    for m in &s.portmap.mappings {
        let slot = slots.get(m.name.as_str()).copied().unwrap_or_default();
        let left = match m.lease_s {
            Some(0) => None,
            _ => m.expires.map(|e| Value::Long(e.left_at(now).as_secs())),
        };
        let values = [
            text(state_name(m.state)),
            m.external.as_deref().and_then(text),
            m.method.map(Method::name).and_then(text),
            left,
        ];
        for (field, (&(fname, datatype, class), value)) in
            MAPPING_FIELDS.iter().zip(values).enumerate()
        {
            out.push(Sample {
                name: format!("Mappings/{}/{fname}", m.name),
                alias: MAPPING_BASE + 8 * slot + field as u64,
                datatype,
                class,
                value,
            });
        }
    }
    out
}

/// Milliseconds since the Unix epoch.
pub fn millis(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn event_values(e: Option<&Event>) -> [Option<Value>; 5] {
    match e {
        Some(e) => [
            Some(Value::Long(e.seq)),
            text(&e.source),
            text(&e.kind),
            serde_json::to_value(e.level)
                .ok()
                .and_then(|v| v.as_str().and_then(text)),
            text(&crate::redact::text(&e.message)),
        ],
        None => Default::default(),
    }
}

fn event_time(e: &Event) -> u64 {
    e.time.unix_millis()
}

/// NDEATH: `bdSeq` alone (the MQTT Will of the connection with that bdSeq).
pub fn death(bd_seq: u64, now_ms: u64) -> Payload {
    Payload {
        timestamp: Some(now_ms),
        metrics: vec![Metric::named(
            BD_SEQ,
            None,
            dt::INT64,
            now_ms,
            Some(Value::Long(bd_seq)),
        )],
        ..Payload::default()
    }
}

/// NDATA for one event: the five event metrics, at the event's time.
pub fn event(e: &Event, now_ms: u64) -> Payload {
    let ts = event_time(e);
    let metrics = EVENT_TABLE
        .iter()
        .zip(event_values(Some(e)))
        .map(|(&(alias, _, datatype), v)| Metric::aliased(alias, datatype, ts, v))
        .collect();
    Payload {
        timestamp: Some(now_ms),
        metrics,
        ..Payload::default()
    }
}

/// What the host was last told of each metric, to report by exception.
#[derive(Clone, Debug, Default)]
pub struct Exceptions {
    told: HashMap<u64, Option<Value>>,
}

impl Exceptions {
    /// NBIRTH (seq 0) with every metric, and forget what was told before.
    pub fn birth(
        &mut self,
        samples: &[Sample],
        last_event: Option<&Event>,
        bd_seq: u64,
        now_ms: u64,
    ) -> Payload {
        self.told = samples.iter().map(|s| (s.alias, s.value.clone())).collect();
        let mut metrics = vec![Metric::named(
            BD_SEQ,
            None,
            dt::INT64,
            now_ms,
            Some(Value::Long(bd_seq)),
        )];
        metrics.extend(
            samples.iter().map(|s| {
                Metric::named(&s.name, Some(s.alias), s.datatype, now_ms, s.value.clone())
            }),
        );
        let ets = last_event.map_or(now_ms, event_time);
        metrics.extend(EVENT_TABLE.iter().zip(event_values(last_event)).map(
            |(&(alias, name, datatype), v)| Metric::named(name, Some(alias), datatype, ets, v),
        ));
        Payload {
            timestamp: Some(now_ms),
            metrics,
            seq: Some(0),
            ..Payload::default()
        }
    }

    /// Whether a metric is not in the last NBIRTH (a mapping added by a
    /// reload): NDATA may only carry what NBIRTH declared.
    pub fn needs_rebirth(&self, samples: &[Sample]) -> bool {
        samples.len() != self.told.len()
            || samples.iter().any(|s| !self.told.contains_key(&s.alias))
    }

    /// Whether any `Change` metric differs from what was told.
    pub fn changed(&self, samples: &[Sample]) -> bool {
        samples
            .iter()
            .any(|s| s.class == Class::Change && self.told.get(&s.alias) != Some(&s.value))
    }

    /// NDATA (no seq yet) of what changed: every `Change` metric that
    /// differs, and the `Gauge` ones too when something else goes out or
    /// `gauges` asks for them. `None` when nothing is to be told.
    pub fn data(&mut self, samples: &[Sample], gauges: bool, now_ms: u64) -> Option<Payload> {
        let gauges = gauges || self.changed(samples);
        let mut metrics = Vec::new();
        for s in samples {
            let differs = self.told.get(&s.alias) != Some(&s.value);
            if differs && (s.class == Class::Change || gauges) {
                metrics.push(Metric::aliased(
                    s.alias,
                    s.datatype,
                    now_ms,
                    s.value.clone(),
                ));
                self.told.insert(s.alias, s.value.clone());
            }
        }
        (!metrics.is_empty()).then(|| Payload {
            timestamp: Some(now_ms),
            metrics,
            ..Payload::default()
        })
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
