//! `/metrics`: the snapshot in Prometheus text format (version 0.0.4).

use std::fmt::Write;
use std::time::SystemTime;

use crate::portmap::model::Method;
use crate::status::{Health, State, Status};

use super::sections::{self, PeerPath};
use super::verdict;

/// Content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A label value with `\`, `"` and newlines escaped.
pub fn label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

struct Out(String);

impl Out {
    /// Start a metric family.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", label(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

fn b(v: bool) -> f64 {
    if v {
        1.0
    } else {
        0.0
    }
}

/// Render the snapshot as metrics.
pub fn render(s: &Status, now: SystemTime) -> String {
    let mut o = Out(String::with_capacity(4096));
    overview(&mut o, s, now);
    portmap(&mut o, s, now);
    netcheck(&mut o, s);
    tailscale(&mut o, s);
    telemetry(&mut o, s);
    web(&mut o, s);
    o.one(
        "edgereach_time_seconds",
        "gauge",
        "The gateway's clock (Unix time) when /metrics was rendered: \
         timestamp(edgereach_time_seconds) - edgereach_time_seconds is its skew.",
        unix_seconds(now),
    );
    o.0
}

/// Build info, each section's state and the page's verdict.
fn overview(o: &mut Out, s: &Status, now: SystemTime) {
    o.family(
        "edgereach_build_info",
        "gauge",
        "edgereach version and gateway id.",
    );
    o.sample(
        "edgereach_build_info",
        &[("version", &s.gateway.version), ("gateway", &s.gateway.id)],
        1.0,
    );
    o.family(
        "edgereach_section_ok",
        "gauge",
        "1 when a status section is ok, else 0 (state label says which).",
    );
    let sections: [(&str, &Health); 7] = [
        ("network", &s.network.health),
        ("portmap", &s.portmap.health),
        ("netcheck", &s.netcheck.health),
        ("tailscale", &s.tailscale.health),
        ("admission", &s.admission.health),
        ("telemetry", &s.telemetry.health),
        ("web", &s.web.health),
    ];
    for (name, h) in sections {
        let state = serde_json::to_value(h.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        o.sample(
            "edgereach_section_ok",
            &[("section", name), ("state", &state)],
            b(h.state == State::Ok),
        );
    }
    let v = verdict::decide_at(s, now);
    o.family(
        "edgereach_reachability",
        "gauge",
        "1 for the page's current verdict (direct, relay, unreachable, unknown).",
    );
    o.sample(
        "edgereach_reachability",
        &[("verdict", v.reach.name())],
        1.0,
    );
}

/// The outbox and the Sparkplug node.
fn telemetry(o: &mut Out, s: &Status) {
    if let Some(depth) = sections::telemetry(s).outbox_depth {
        o.one(
            "edgereach_telemetry_outbox_depth",
            "gauge",
            "Telemetry messages waiting in the outbox.",
            depth as f64,
        );
        o.one(
            "edgereach_telemetry_dropped_total",
            "counter",
            "Telemetry records dropped because the outbox was full (kept across restarts).",
            s.telemetry.dropped as f64,
        );
    }
    if let Some(sp) = &s.telemetry.sparkplug {
        o.one(
            "edgereach_telemetry_sparkplug_born",
            "gauge",
            "1 while the Sparkplug edge node is connected and its NBIRTH is out.",
            b(sp.born),
        );
        o.one(
            "edgereach_telemetry_sparkplug_births_total",
            "counter",
            "Sparkplug NBIRTHs sent since start.",
            sp.births as f64,
        );
        o.one(
            "edgereach_telemetry_sparkplug_bad_commands_total",
            "counter",
            "Sparkplug NCMD messages ignored (not protobuf, too large, unknown metrics) since start.",
            sp.bad_commands as f64,
        );
    }
}

/// `now` as Unix seconds with millisecond precision (0 before 1970).
/// The IPv6 pinholes beside the IPv4 mappings.
fn pinholes(o: &mut Out, s: &Status, now: SystemTime) {
    let pm = &s.portmap;
    o.family(
        "edgereach_portmap_pinhole_up",
        "gauge",
        "1 while the router holds the IPv6 pinhole for the address and port.",
    );
    for p in &pm.pinholes {
        let port = p.port.to_string();
        o.sample(
            "edgereach_portmap_pinhole_up",
            &[
                ("address", &p.address),
                ("port", &port),
                ("method", p.method.name()),
            ],
            b(p.state == crate::portmap::model::PinholeState::Open),
        );
    }
    o.family(
        "edgereach_portmap_pinhole_lease_remaining_seconds",
        "gauge",
        "Seconds until the IPv6 pinhole's lease ends without renewal.",
    );
    for p in &pm.pinholes {
        if let Some(left) = p.expires.map(|e| e.left_at(now)) {
            o.sample(
                "edgereach_portmap_pinhole_lease_remaining_seconds",
                &[("address", &p.address)],
                left.as_secs() as f64,
            );
        }
    }
}

fn unix_seconds(now: SystemTime) -> f64 {
    now.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as f64 / 1000.0)
        .unwrap_or(0.0)
}

fn portmap(o: &mut Out, s: &Status, now: SystemTime) {
    let pm = &s.portmap;
    o.family(
        "edgereach_portmap_mapping_up",
        "gauge",
        "1 while the router holds the mapping and it checks out.",
    );
    for m in &pm.mappings {
        o.sample(
            "edgereach_portmap_mapping_up",
            &[
                ("mapping", &m.name),
                ("protocol", m.protocol.name()),
                ("method", m.method.map_or("", Method::name)),
            ],
            b(m.state == State::Ok && m.external.is_some()),
        );
    }
    o.family(
        "edgereach_portmap_lease_remaining_seconds",
        "gauge",
        "Seconds until the mapping's lease ends without renewal (absent for permanent leases).",
    );
    for m in &pm.mappings {
        if m.lease_s == Some(0) {
            continue;
        }
        if let Some(left) = m.expires.map(|e| e.left_at(now)) {
            o.sample(
                "edgereach_portmap_lease_remaining_seconds",
                &[("mapping", &m.name)],
                left.as_secs() as f64,
            );
        }
    }
    pinholes(o, s, now);
    o.one(
        "edgereach_portmap_router_reboots_total",
        "counter",
        "Router reboots noticed since start.",
        pm.router_reboots as f64,
    );
    proof(o, s, now);
    o.one(
        "edgereach_portmap_ignored_packets_total",
        "counter",
        "Datagrams from the router side ignored for their source or content.",
        pm.ignored_packets as f64,
    );
}

/// The end-to-end proof and double NAT.
fn proof(o: &mut Out, s: &Status, now: SystemTime) {
    let proof = &s.portmap.proof;
    o.family(
        "edgereach_portmap_proof_state",
        "gauge",
        "1 for the end-to-end proof's current state (proven, failed, undecided, double_nat, ...).",
    );
    o.sample(
        "edgereach_portmap_proof_state",
        &[("state", proof.state.name())],
        1.0,
    );
    o.one(
        "edgereach_portmap_proven",
        "gauge",
        "1 while the last proof that a packet from outside gets through the router is recent.",
        b(proof.recent_at(now)),
    );
    o.one(
        "edgereach_portmap_double_nat",
        "gauge",
        "1 when the site router sits behind another NAT (its mappings can't help).",
        b(s.portmap.double_nat.is_some()),
    );
    o.one(
        "edgereach_portmap_proof_attempts_total",
        "counter",
        "End-to-end proofs attempted since start.",
        proof.attempts as f64,
    );
    o.one(
        "edgereach_portmap_dead_repairs_total",
        "counter",
        "Mappings found dead from outside and deleted and re-added since start.",
        proof.dead_repairs as f64,
    );
}

fn netcheck(o: &mut Out, s: &Status) {
    let nc = &s.netcheck;
    o.one(
        "edgereach_netcheck_runs_total",
        "counter",
        "NAT reports made since start.",
        nc.runs as f64,
    );
    let Some(r) = &nc.report else { return };
    o.one(
        "edgereach_netcheck_udp",
        "gauge",
        "1 when a STUN server answered over UDP in the latest report.",
        b(r.udp),
    );
    if let Some(hard) = r.mapping_varies_by_dest_ip {
        o.one(
            "edgereach_netcheck_mapping_varies_by_dest_ip",
            "gauge",
            "1 behind a hard NAT (public port changes per destination).",
            b(hard),
        );
    }
    o.family(
        "edgereach_netcheck_latency_seconds",
        "gauge",
        "Best STUN round trip per region in the latest report.",
    );
    for (region, ms) in &r.region_latency_ms {
        o.sample(
            "edgereach_netcheck_latency_seconds",
            &[("region", region)],
            ms / 1000.0,
        );
    }
    o.one(
        "edgereach_netcheck_ignored_packets",
        "gauge",
        "Datagrams ignored during the latest report (foreign source, wrong transaction, not STUN).",
        r.ignored_packets as f64,
    );
}

fn tailscale(o: &mut Out, s: &Status) {
    let peers = sections::peers(s);
    if peers.is_empty() {
        return;
    }
    o.family(
        "edgereach_keepalive_pings_total",
        "counter",
        "Keepalive pings per peer, answered or not.",
    );
    for p in &s.tailscale.peers {
        o.sample(
            "edgereach_keepalive_pings_total",
            &[("peer", &p.hostname), ("result", "ok")],
            p.pings_ok as f64,
        );
        o.sample(
            "edgereach_keepalive_pings_total",
            &[("peer", &p.hostname), ("result", "failed")],
            p.pings_failed as f64,
        );
    }
    o.family(
        "edgereach_keepalive_ok",
        "gauge",
        "1 when the peer answered the last keepalive ping.",
    );
    for p in peers.iter().filter(|p| p.answered.is_some()) {
        o.sample(
            "edgereach_keepalive_ok",
            &[("peer", &p.name)],
            b(p.answered == Some(true)),
        );
    }
    o.family(
        "edgereach_keepalive_direct",
        "gauge",
        "1 when the peer's last answer came directly, 0 via a DERP relay.",
    );
    for p in peers.iter().filter(|p| p.path != PeerPath::Unknown) {
        o.sample(
            "edgereach_keepalive_direct",
            &[("peer", &p.name)],
            b(p.path == PeerPath::Direct),
        );
    }
    o.family(
        "edgereach_keepalive_latency_seconds",
        "gauge",
        "Round trip of the peer's last keepalive ping.",
    );
    for p in &peers {
        if let Some(ms) = p.latency_ms {
            o.sample(
                "edgereach_keepalive_latency_seconds",
                &[("peer", &p.name)],
                ms / 1000.0,
            );
        }
    }
}

fn web(o: &mut Out, s: &Status) {
    let w = &s.web;
    o.one(
        "edgereach_web_connections_open",
        "gauge",
        "Connections to the status page open now.",
        w.connections_open as f64,
    );
    o.one(
        "edgereach_web_requests_total",
        "counter",
        "Requests answered by the status page.",
        w.requests as f64,
    );
    o.family(
        "edgereach_web_rejected_connections_total",
        "counter",
        "Connections closed at once because a cap was reached.",
    );
    o.sample(
        "edgereach_web_rejected_connections_total",
        &[("cap", "per_client")],
        w.rejected_per_client as f64,
    );
    o.sample(
        "edgereach_web_rejected_connections_total",
        &[("cap", "total")],
        w.rejected_total as f64,
    );
    o.one(
        "edgereach_web_rate_limited_total",
        "counter",
        "Requests answered 429 Too Many Requests.",
        w.rate_limited as f64,
    );
    o.one(
        "edgereach_web_header_timeouts_total",
        "counter",
        "Connections closed for not sending a request head in time (slow headers).",
        w.header_timeouts as f64,
    );
    o.one(
        "edgereach_web_idle_closed_total",
        "counter",
        "Connections closed after the idle timeout.",
        w.idle_closed as f64,
    );
    o.one(
        "edgereach_web_heap_trims_total",
        "counter",
        "Times freed memory was given back to the system after a burst of connections.",
        w.heap_trims as f64,
    );
    o.family(
        "edgereach_web_actions_total",
        "counter",
        "Page actions carried out or refused.",
    );
    o.sample(
        "edgereach_web_actions_total",
        &[("outcome", "run")],
        w.actions_run as f64,
    );
    o.sample(
        "edgereach_web_actions_total",
        &[("outcome", "refused")],
        w.actions_refused as f64,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn every_sample_has_a_type_line_and_names_are_valid() {
        let mut s = crate::web::test_status();
        s.gateway.id = "gw \"quoted\"".into();
        s.netcheck.report = Some(crate::netcheck::report::Report {
            udp: true,
            region_latency_ms: [("203.0.113.10:3478".to_string(), 2.5)].into(),
            ..Default::default()
        });
        s.web.rate_limited = 4;
        let text = render(&s, SystemTime::now());
        let mut typed = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap();
                assert!(typed.insert(name.to_string()), "TYPE twice: {name}");
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let name: String = line
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            assert!(typed.contains(&name), "no TYPE before {line}");
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
        assert!(text
            .contains("edgereach_netcheck_latency_seconds{region=\"203.0.113.10:3478\"} 0.0025"));
        assert!(text.contains("gateway=\"gw \\\"quoted\\\"\""));
        assert!(text.contains("edgereach_web_rate_limited_total 4"));
        assert!(text.contains("edgereach_reachability{verdict=\"unreachable\"} 1"));
        assert!(
            !text.contains("edgereach_telemetry_dropped_total"),
            "telemetry off"
        );
    }

    #[test]
    fn clock_and_dropped_records_are_exported() {
        let mut s = crate::web::test_status();
        s.telemetry.broker = Some("mqtt://broker.invalid:1883".into());
        s.telemetry.dropped = 7;
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_800_000_000_250);
        let text = render(&s, now);
        assert!(
            text.contains("\nedgereach_telemetry_dropped_total 7\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE edgereach_telemetry_dropped_total counter"));
        assert!(!text.contains("sparkplug"));
        s.telemetry.sparkplug = Some(crate::status::SparkplugStatus {
            bad_commands: 4,
            ..Default::default()
        });
        let text = render(&s, now);
        assert!(text.contains("\nedgereach_telemetry_sparkplug_bad_commands_total 4\n"));
        assert!(text.contains("\nedgereach_telemetry_sparkplug_born 0\n"));
        assert!(
            text.contains("\nedgereach_time_seconds 1800000000.25\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE edgereach_time_seconds gauge"));
    }
}
