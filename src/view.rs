//! Plain-text rendering of the status snapshot for the CLI.

use std::fmt::Write;

use crate::status::{Health, State, Status};

/// How many recent events the text view lists.
const EVENTS_SHOWN: usize = 10;

fn state_word(state: State) -> &'static str {
    match state {
        State::Disabled => "disabled",
        State::Unavailable => "unavailable",
        State::Ok => "ok",
        State::Degraded => "degraded",
    }
}

fn line(out: &mut String, name: &str, h: &Health, extra: Option<String>) {
    let detail = h.reason.clone().or(extra).unwrap_or_default();
    let _ = writeln!(out, "{name:<10} {:<12} {detail}", state_word(h.state));
}

/// Render `s` the way `edgereach status` prints it.
pub fn render_status(s: &Status) -> String {
    let mut out = String::new();
    let g = &s.gateway;
    let _ = writeln!(
        out,
        "gateway    {} (site {}), edgereach {}, running since {}",
        g.id,
        if g.site.is_empty() { "-" } else { &g.site },
        g.version,
        g.started_at
    );
    let route = s.network.default_route.as_ref().map(|r| {
        format!(
            "default route {} via {} (source {})",
            r.interface,
            r.gateway.as_deref().unwrap_or("on-link"),
            r.source.as_deref().unwrap_or("none")
        )
    });
    line(&mut out, "network", &s.network.health, route);
    render_portmap(&mut out, &s.portmap);
    let nc = s.netcheck.report.as_ref().map(|r| {
        format!(
            "UDP {}, public {}, hard NAT {}, filtering {}",
            r.udp,
            r.ipv4.as_deref().unwrap_or("none"),
            r.mapping_varies_by_dest_ip
                .map_or("unknown".into(), |b| b.to_string()),
            r.filtering.map_or("unknown", |f| f.name())
        )
    });
    line(&mut out, "netcheck", &s.netcheck.health, nc);
    render_tailscale(&mut out, &s.tailscale);
    render_admission(&mut out, &s.admission);
    let t = &s.telemetry;
    let tl = t.broker.as_ref().map(|b| {
        format!(
            "{b} {}, outbox {} ({} bytes), sent {}, dropped {}",
            if t.connected {
                "connected"
            } else {
                "not connected"
            },
            t.outbox_depth,
            t.outbox_bytes,
            t.sent,
            t.dropped
        )
    });
    line(&mut out, "telemetry", &t.health, tl);
    let web = (!s.web.listening.is_empty())
        .then(|| format!("http://{}", s.web.listening.join(", http://")));
    line(&mut out, "web", &s.web.health, web);
    if let Some(r) = &g.last_reload {
        let _ = writeln!(out, "reload     {r}");
    }
    if !s.events.is_empty() {
        let _ = writeln!(out, "recent events:");
        let skip = s.events.len().saturating_sub(EVENTS_SHOWN);
        for e in s.events.iter().skip(skip) {
            let _ = writeln!(
                out,
                "  {} #{} {:?} {} {}: {}",
                e.time, e.seq, e.level, e.source, e.kind, e.message
            );
        }
    }
    out
}

fn render_admission(out: &mut String, a: &crate::admission::model::AdmissionStatus) {
    line(out, "admission", &a.health, None);
    if let (Some(c), Some(u)) = (&a.cluster_id, &a.headscale_url) {
        let _ = writeln!(
            out,
            "  cluster {c} at {u}{}, last registered {}, next attempt {}",
            if a.from_storage { " (stored)" } else { "" },
            a.last_registration
                .map_or("never".to_string(), |t| t.to_string()),
            a.next_attempt.map_or("-".to_string(), |t| t.to_string())
        );
    }
    if let Some(e) = &a.last_error {
        let _ = writeln!(out, "  last error: {e}");
    }
}

/// The IPv4 mappings, then the IPv6 pinholes.
fn render_portmap(out: &mut String, pm: &crate::status::PortmapStatus) {
    line(out, "portmap", &pm.health, None);
    for m in &pm.mappings {
        let _ = writeln!(
            out,
            "  {:<8} {} ({:?}{})",
            m.name,
            m.route(),
            m.state,
            m.reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
    }
    for p in &pm.pinholes {
        let _ = writeln!(
            out,
            "  pinhole  {} [{}]:{} via {} by {} ({}{})",
            p.protocol,
            p.address,
            p.port,
            p.router,
            p.method,
            p.state.name(),
            p.reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
    }
    if let (true, Some(why)) = (pm.pinholes.is_empty(), &pm.pinholes_reason) {
        let _ = writeln!(out, "  pinholes none: {why}");
    }
}

fn render_tailscale(out: &mut String, t: &crate::tailscale::model::TailscaleStatus) {
    line(out, "tailscale", &t.health, None);
    if let (Some(v), Some(b)) = (&t.version, &t.backend_state) {
        let _ = writeln!(
            out,
            "  tailscaled {v} {b}, {} {}, port {}, {} re-STUN(s)",
            t.hostname.as_deref().unwrap_or("-"),
            t.tailnet_ip.as_deref().unwrap_or("-"),
            t.listen_port.map_or("?".into(), |p| p.to_string()),
            t.restuns
        );
    }
    for c in &t.checks {
        let _ = writeln!(out, "  check {}: {} Fix: {}", c.check, c.message, c.fix);
    }
    for p in &t.peers {
        let ping = p
            .last_ping
            .as_ref()
            .map_or("not pinged yet".to_string(), |l| {
                let via = l
                    .endpoint
                    .clone()
                    .or(l.derp_region.as_ref().map(|r| format!("DERP {r}")))
                    .or(l.error.clone())
                    .unwrap_or_default();
                let lat = l
                    .latency_ms
                    .map(|ms| format!(" {ms} ms"))
                    .unwrap_or_default();
                format!("{:?} {via}{lat} at {}", l.path, l.time)
            });
        let _ = writeln!(
            out,
            "  {:<16} {:<15} {}{}",
            p.hostname,
            p.tailnet_ip.as_deref().unwrap_or("-"),
            if p.keepalive { "" } else { "(no keepalive) " },
            ping
        );
    }
}
