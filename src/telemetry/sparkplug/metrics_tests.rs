use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use super::*;
use crate::netcheck::report::Report;
use crate::status::{GatewayStatus, Health, Level, MappingStatus, StatusHub};
use crate::telemetry::sparkplug::codec::{decode, encode};

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

fn mapping(name: &str, expires: &str) -> MappingStatus {
    MappingStatus {
        name: name.into(),
        protocol: crate::primitives::Protocol::Udp,
        method: Some(crate::portmap::model::Method::Pcp),
        internal: "192.0.2.10:41641".into(),
        external: Some("203.0.113.2:41641".into()),
        same_port: true,
        lease_s: Some(3600),
        expires: Some(expires.parse().unwrap()),
        last_verified: None,
        proven_at: None,
        proof: None,
        failures: 0,
        state: State::Ok,
        reason: None,
    }
}

fn at(secs: u64) -> SystemTime {
    // 2026-01-01T00:00:00Z + secs
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600 + secs)
}

fn value<'a>(samples: &'a [Sample], name: &str) -> &'a Option<Value> {
    &samples
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("{name}"))
        .value
}

#[test]
fn snapshot_to_metrics() {
    let mut s = starting();
    s.portmap.mappings = vec![mapping("tailscale", "2026-01-01T01:00:00Z")];
    s.portmap.router_reboots = 2;
    s.netcheck.report = Some(Report {
        udp: true,
        ipv4: Some("203.0.113.2:40001".into()),
        mapping_varies_by_dest_ip: Some(true),
        ..Report::default()
    });
    s.tailscale.backend_state = Some("Running".into());
    let m = sample(&s, at(600), 3);
    assert_eq!(value(&m, "NAT/Type"), &text("hard"));
    assert_eq!(value(&m, "NAT/Public Address"), &text("203.0.113.2"));
    assert_eq!(value(&m, "Tailscale/State"), &text("Running"));
    assert_eq!(value(&m, "Tailscale/Peers Direct"), &Some(Value::Int(0)));
    assert_eq!(value(&m, "Portmap/Router Reboots"), &Some(Value::Long(2)));
    assert_eq!(value(&m, "Telemetry/Bad Commands"), &Some(Value::Long(3)));
    assert_eq!(value(&m, "Sections/network/State"), &text("unavailable"));
    assert_eq!(value(&m, "Mappings/tailscale/State"), &text("ok"));
    assert_eq!(value(&m, "Mappings/tailscale/Method"), &text("pcp"));
    assert_eq!(
        value(&m, "Mappings/tailscale/External"),
        &text("203.0.113.2:41641")
    );
    assert_eq!(
        value(&m, "Mappings/tailscale/Lease Left"),
        &Some(Value::Long(3000))
    );
    assert!(value(&m, "Reachability/Verdict").is_some());
    let aliases: HashSet<u64> = m.iter().map(|s| s.alias).collect();
    assert_eq!(aliases.len(), m.len(), "aliases are unique");
    s.portmap.mappings[0].lease_s = Some(0);
    s.netcheck.report = None;
    let m = sample(&s, at(600), 0);
    assert_eq!(value(&m, "Mappings/tailscale/Lease Left"), &None);
    assert_eq!(value(&m, "NAT/Type"), &None);
}

#[test]
fn aliases_are_fixed_per_name() {
    let mut s = starting();
    s.portmap.mappings = vec![mapping("b", "2026-01-01T01:00:00Z")];
    let alias = |m: &[Sample], n: &str| m.iter().find(|s| s.name == n).map(|s| s.alias);
    let one = sample(&s, at(0), 0);
    s.portmap
        .mappings
        .insert(0, mapping("a", "2026-01-01T01:00:00Z"));
    let two = sample(&s, at(0), 0);
    assert_eq!(
        alias(&one, "Mappings/b/State"),
        alias(&two, "Mappings/b/State")
    );
    assert_eq!(alias(&two, "Reachability/Verdict"), Some(3));
    let all: HashSet<u64> = two.iter().map(|s| s.alias).collect();
    assert_eq!(all.len(), two.len());
    // The event metrics' aliases are not taken by anything else.
    assert!(EVENT_TABLE.iter().all(|(a, _, _)| !all.contains(a)));
}

#[test]
fn birth_then_report_by_exception() {
    let mut s = starting();
    s.portmap.mappings = vec![mapping("tailscale", "2026-01-01T01:00:00Z")];
    let mut ex = Exceptions::default();
    let now = millis(at(0));
    let samples = sample(&s, at(0), 0);
    let birth = ex.birth(&samples, None, 7, now);
    assert_eq!(birth.seq, Some(0));
    // bdSeq + every metric + the event metrics, each with name, datatype
    // and timestamp; all but bdSeq with an alias.
    assert_eq!(birth.metrics.len(), 1 + samples.len() + EVENT_TABLE.len());
    assert_eq!(birth.metrics[0].name.as_deref(), Some(BD_SEQ));
    assert_eq!(birth.metrics[0].value, Some(Value::Long(7)));
    for m in &birth.metrics {
        assert!(m.name.is_some() && m.datatype.is_some() && m.timestamp.is_some());
    }
    assert!(birth.metrics[1..].iter().all(|m| m.alias.is_some()));
    let rebirth = birth
        .metrics
        .iter()
        .find(|m| m.name.as_deref() == Some(REBIRTH))
        .unwrap();
    assert_eq!(rebirth.value, Some(Value::Boolean(false)));
    assert!(!ex.needs_rebirth(&samples));

    // Nothing changed: nothing to tell. The lease moves: still nothing
    // (a gauge) unless gauges are asked for.
    assert!(ex.data(&sample(&s, at(0), 0), false, now).is_none());
    assert!(ex.data(&sample(&s, at(60), 0), false, now).is_none());
    let gauges = ex.data(&sample(&s, at(60), 0), true, now).unwrap();
    assert_eq!(gauges.metrics.len(), 1);
    assert_eq!(gauges.metrics[0].value, Some(Value::Long(3540)));
    assert!(gauges.metrics[0].name.is_none(), "NDATA goes by alias");

    // The router reboots: the mapping is lost; the reboot counter, the
    // mapping's state and external address change, and the lease rides along.
    s.portmap.router_reboots = 1;
    s.portmap.mappings[0].state = State::Unavailable;
    s.portmap.mappings[0].external = None;
    s.portmap.health = Health::new(State::Degraded, Some("lost".into()));
    let d = ex.data(&sample(&s, at(120), 0), false, now).unwrap();
    let named: Vec<&str> = d
        .metrics
        .iter()
        .map(|m| {
            let a = m.alias.unwrap();
            samples
                .iter()
                .find(|s| s.alias == a)
                .map_or("?", |s| s.name.as_str())
        })
        .collect();
    for n in [
        "Sections/portmap/State",
        "Portmap/Router Reboots",
        "Mappings/tailscale/State",
        "Mappings/tailscale/External",
        "Mappings/tailscale/Lease Left",
    ] {
        assert!(named.contains(&n), "{n} in {named:?}");
    }
    let ext = d
        .metrics
        .iter()
        .find(|m| m.value.is_none())
        .expect("the external address is null");
    assert_eq!(ext.is_null, Some(true));
    assert!(ex.data(&sample(&s, at(120), 0), false, now).is_none());

    // A mapping added by a reload is not in the NBIRTH.
    s.portmap
        .mappings
        .push(mapping("ssh", "2026-01-01T01:00:00Z"));
    assert!(ex.needs_rebirth(&sample(&s, at(120), 0)));
}

#[test]
fn events_and_death() {
    let hub = StatusHub::new(starting());
    let e = hub.emit("portmap", "router.rebooted", Level::Warn, "epoch went back");
    let p = event(&e, 5);
    assert_eq!(p.metrics.len(), EVENT_TABLE.len());
    assert_eq!(p.metrics[0].value, Some(Value::Long(e.seq)));
    assert_eq!(p.metrics[2].value, text("router.rebooted"));
    assert_eq!(p.metrics[3].value, text("warn"));
    assert!(p.metrics[0].timestamp.unwrap() > 1_700_000_000_000);
    let d = decode(&encode(&death(9, 5))).unwrap();
    assert_eq!(d.seq, None);
    assert_eq!(d.metrics.len(), 1);
    assert_eq!(d.metrics[0].name.as_deref(), Some(BD_SEQ));
    assert_eq!(d.metrics[0].datatype, Some(dt::INT64));
    assert_eq!(d.metrics[0].value, Some(Value::Long(9)));
    // The birth carries the last event.
    let b = Exceptions::default().birth(&[], Some(&e), 1, 5);
    assert!(b
        .metrics
        .iter()
        .any(|m| m.name.as_deref() == Some("Event/Kind") && m.value == text("router.rebooted")));
}
