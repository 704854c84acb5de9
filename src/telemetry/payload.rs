//! Topics and payloads: compact JSON with a schema version, documented in
//! docs/telemetry.md. Pure functions of the status model.

use serde_json::{json, Value};

use crate::netcheck::report::Report;
use crate::status::{Event, Status, Timestamp};

/// Version of every payload's schema (`"v"`); bumped on incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// Topic suffixes under the prefix.
pub mod topic {
    /// Retained `online`/`offline`, the Last Will.
    pub const STATE: &str = "state";
    /// Retained full status snapshot.
    pub const STATUS: &str = "status";
    /// Every netcheck report.
    pub const NETCHECK: &str = "netcheck";
    /// Every event, with its sequence number.
    pub const EVENTS: &str = "events";
}

/// The topic prefix with `{site}` and `{gateway}` filled in. An empty site
/// becomes `default`, so no topic level is empty.
pub fn topic_prefix(template: &str, site: &str, gateway: &str) -> String {
    let site = if site.is_empty() { "default" } else { site };
    template
        .replace("{site}", site)
        .replace("{gateway}", gateway)
}

fn to_vec(v: &Value) -> Vec<u8> {
    // A Value always serializes.
    serde_json::to_vec(v).unwrap_or_default()
}

/// `state` when connected.
pub fn state_online(time: Timestamp, version: &str) -> Vec<u8> {
    to_vec(&json!({"v": SCHEMA_VERSION, "state": "online", "time": time, "version": version}))
}

/// `state` as the Last Will: the broker sends it when we vanish, so it can
/// carry no time of its own.
pub fn state_will() -> Vec<u8> {
    to_vec(&json!({"v": SCHEMA_VERSION, "state": "offline", "cause": "connection-lost"}))
}

/// `state` published by a clean shutdown.
pub fn state_shutdown(time: Timestamp) -> Vec<u8> {
    to_vec(&json!({"v": SCHEMA_VERSION, "state": "offline", "cause": "shutdown", "time": time}))
}

/// `status`: the whole snapshot except `events` (they have their own topic).
pub fn status(s: &Status, time: Timestamp) -> Vec<u8> {
    let mut snap = serde_json::to_value(s).unwrap_or(Value::Null);
    if let Some(o) = snap.as_object_mut() {
        o.remove("events");
    }
    to_vec(&json!({"v": SCHEMA_VERSION, "time": time, "status": snap}))
}

/// `netcheck`: one report.
pub fn netcheck(r: &Report) -> Vec<u8> {
    to_vec(&json!({"v": SCHEMA_VERSION, "report": r}))
}

/// `events`: one event with its sequence number.
pub fn event(e: &Event) -> Vec<u8> {
    let mut v = serde_json::to_value(e).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert("v".into(), json!(SCHEMA_VERSION));
    }
    to_vec(&v)
}

/// What counts as a change worth a `status` publish: every section's state
/// and reason, the gateway identity, the default route, the mappings' public
/// side and the NAT's public IP and type. Counters, timestamps of routine
/// checks and a hard NAT's per-run port do not count (they would make the
/// status go out every few seconds and blow the byte budget); they still go
/// out with the next change or the periodic snapshot.
pub fn status_fingerprint(s: &Status) -> String {
    let snap = serde_json::to_value(s).unwrap_or(Value::Null);
    let mut fp = serde_json::Map::new();
    if let Some(o) = snap.as_object() {
        // Our own section would publish itself on every counter it shows.
        for (name, section) in o.iter().filter(|(n, _)| n.as_str() != "telemetry") {
            if let Some(state) = section.get("state") {
                fp.insert(
                    name.clone(),
                    json!([state, section.get("reason").unwrap_or(&Value::Null)]),
                );
            }
        }
    }
    let g = &s.gateway;
    fp.insert("gateway".into(), json!([g.id, g.site, g.version]));
    fp.insert(
        "route".into(),
        serde_json::to_value(&s.network.default_route).unwrap_or(Value::Null),
    );
    let mappings: Vec<Value> = s
        .portmap
        .mappings
        .iter()
        .map(|m| json!([m.name, m.external, m.method, m.state]))
        .collect();
    fp.insert(
        "portmap".into(),
        json!([
            s.portmap.external_ip,
            s.portmap.router,
            mappings,
            s.portmap.proof.state,
            s.portmap.double_nat
        ]),
    );
    if let Some(r) = &s.netcheck.report {
        let ip = r
            .ipv4
            .as_deref()
            .map(|a| a.rsplit_once(':').map_or(a, |(ip, _)| ip));
        fp.insert(
            "nat".into(),
            json!([
                r.udp,
                ip,
                r.mapping_varies_by_dest_ip,
                r.filtering,
                r.port_mapping
            ]),
        );
    }
    Value::Object(fp).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{GatewayStatus, Level, State, StatusHub};

    fn starting() -> Status {
        Status::starting(GatewayStatus {
            id: "gw-1".into(),
            site: "plant-7".into(),
            version: "0.1.0".into(),
            started_at: "2026-01-01T00:00:00Z".parse().unwrap(),
            config_path: "/etc/edgereach/edgereach.toml".into(),
            state_dir: "/var/lib/edgereach".into(),
            last_reload: None,
        })
    }

    #[test]
    fn prefix_is_filled() {
        assert_eq!(
            topic_prefix("edgereach/{site}/{gateway}", "plant-7", "gw-1"),
            "edgereach/plant-7/gw-1"
        );
        assert_eq!(
            topic_prefix("edgereach/{site}/{gateway}", "", "gw-1"),
            "edgereach/default/gw-1"
        );
    }

    #[test]
    fn payloads_are_compact_versioned_json() {
        let hub = StatusHub::new(starting());
        let e = hub.emit("portmap", "mapping.lost", Level::Warn, "gone");
        let v: Value = serde_json::from_slice(&event(&e)).unwrap();
        assert_eq!(v["v"], 1);
        assert_eq!(v["seq"], 1);
        assert_eq!(v["kind"], "mapping.lost");
        assert_eq!(v["level"], "warn");
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
        let s = status_payload_value(&hub.snapshot());
        assert!(s["status"].get("events").is_none());
        assert_eq!(s["status"]["gateway"]["id"], "gw-1");
        let raw = String::from_utf8(state_will()).unwrap();
        assert_eq!(
            raw,
            r#"{"cause":"connection-lost","state":"offline","v":1}"#
        );
        assert!(
            !String::from_utf8(status(&hub.snapshot(), Timestamp::now()))
                .unwrap()
                .contains(": ")
        );
        let n: Value = serde_json::from_slice(&netcheck(&Report::default())).unwrap();
        assert_eq!(n["report"]["udp"], false);
    }

    fn status_payload_value(s: &Status) -> Value {
        serde_json::from_slice(&status(s, "2026-01-01T00:00:00Z".parse().unwrap())).unwrap()
    }

    #[test]
    fn fingerprint_ignores_counters_and_sees_health() {
        let mut s = starting();
        let base = status_fingerprint(&s);
        s.netcheck.runs += 5;
        s.portmap.ignored_packets += 3;
        s.events.clear();
        assert_eq!(status_fingerprint(&s), base);
        s.netcheck.report = Some(Report {
            udp: true,
            ipv4: Some("203.0.113.2:1000".into()),
            ..Report::default()
        });
        let with_report = status_fingerprint(&s);
        assert_ne!(with_report, base);
        s.netcheck.report.as_mut().unwrap().ipv4 = Some("203.0.113.2:2000".into());
        assert_eq!(status_fingerprint(&s), with_report, "a hard NAT's port");
        s.tailscale.health.set(State::Ok, None);
        assert_ne!(status_fingerprint(&s), with_report);
    }
}
