//! The status page: one screen, no external assets, no JavaScript, readable
//! on a phone. Everything shown comes from the snapshot and is HTML-escaped.

use std::fmt::Write;
use std::time::{Duration, SystemTime};

use crate::status::{Health, Level, State, Status, Timestamp};

use super::request::Action;
use super::sections::{self, PeerPath};
use super::verdict;

/// Seconds between the page's own reloads.
pub const REFRESH_SECS: u32 = 10;
/// Events listed, newest first.
const EVENTS_SHOWN: usize = 15;
/// Shown where a value is missing.
const NONE: &str = "\u{2014}";

/// A one-line message above the verdict, after an action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    /// The action was asked of its actor.
    Started(Action),
}

/// Escape text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

const STYLE: &str = "body{font:16px/1.4 system-ui,sans-serif;margin:0 auto;max-width:46em;padding:.5em;color:#111;background:#fafafa}\
h1{font-size:1.6em;margin:.1em 0}h2{font-size:1.1em;margin:1em 0 .3em;border-bottom:1px solid #ccc}\
.v{padding:.6em .8em;border-radius:.4em;color:#fff}.v p{margin:.2em 0}\
.direct{background:#1b7a2f}.relay{background:#b35c00}.unreachable{background:#b00020}.unknown{background:#555}\
.meta{font-size:.85em;color:#555}.note{background:#e8f0fe;padding:.4em .6em;border-radius:.3em}\
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.2em .4em;border-bottom:1px solid #ddd;vertical-align:top}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:.1em .8em;margin:0}dt{color:#555}dd{margin:0;overflow-wrap:anywhere}\
.ok{color:#1b7a2f}.degraded,.warn{color:#b35c00}.unavailable,.error{color:#b00020}.disabled{color:#555}\
ul{padding-left:1.2em;margin:.2em 0}li{overflow-wrap:anywhere}form{display:inline-block;margin:.2em .5em .2em 0}\
input,button{font-size:1em;padding:.3em}";

/// Render the whole page.
pub fn render(s: &Status, now: SystemTime, notice: Option<Notice>, actions: bool) -> String {
    let v = verdict::decide_at(s, now);
    let g = &s.gateway;
    let site = if g.site.is_empty() { NONE } else { &g.site };
    let mut o = String::with_capacity(8192);
    let _ = write!(
        o,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECS};url=/\">\
         <title>{} \u{b7} {}: {}</title><style>{STYLE}</style></head><body>",
        escape(&g.id),
        escape(site),
        v.reach.headline()
    );
    if let Some(Notice::Started(a)) = notice {
        let what = match a {
            Action::Netcheck => "A NAT report was asked for; it shows here within seconds.",
            Action::Remap => "Re-mapping was asked for; the mappings below update within seconds.",
        };
        let _ = write!(o, "<p class=\"note\">{what}</p>");
    }
    let _ = write!(
        o,
        "<header class=\"v {}\"><h1 id=\"verdict\">{}</h1><p id=\"reason\">{}</p></header>\
         <p class=\"meta\">Gateway <b>{}</b> \u{b7} site {} \u{b7} edgereach {} \u{b7} running since {} \u{b7} page of {}</p>",
        v.reach.name(),
        v.reach.headline(),
        escape(&v.reason),
        escape(&g.id),
        escape(site),
        escape(&g.version),
        g.started_at,
        Timestamp::at(now),
    );
    mappings(&mut o, s, now);
    netcheck(&mut o, s);
    peers(&mut o, s);
    registration(&mut o, s);
    telemetry(&mut o, s);
    if actions {
        action_forms(&mut o);
    }
    events(&mut o, s);
    let _ = write!(
        o,
        "<p class=\"meta\">Network: {} \u{b7} <a href=\"/api/status\">status JSON</a> \u{b7} \
         <a href=\"/metrics\">metrics</a></p></body></html>",
        health_words(&s.network.health)
    );
    o
}

fn health_words(h: &Health) -> String {
    state_words(h.state, h.reason.as_deref())
}

fn state_words(state: State, reason: Option<&str>) -> String {
    let word = state_word(state);
    match reason {
        Some(r) => format!("<span class=\"{word}\">{word}</span>: {}", escape(r)),
        None => format!("<span class=\"{word}\">{word}</span>"),
    }
}

fn state_word(s: State) -> &'static str {
    match s {
        State::Disabled => "disabled",
        State::Unavailable => "unavailable",
        State::Ok => "ok",
        State::Degraded => "degraded",
    }
}

fn or_none(v: Option<&str>) -> String {
    v.map_or_else(|| NONE.to_string(), escape)
}

fn time_or_none(t: Option<Timestamp>) -> String {
    t.map_or_else(|| NONE.to_string(), |t| t.to_string())
}

fn mappings(o: &mut String, s: &Status, now: SystemTime) {
    let pm = &s.portmap;
    let _ = write!(o, "<h2>Port mappings</h2><p>{}", health_words(&pm.health));
    if let Some(r) = &pm.router {
        let _ = write!(o, " \u{b7} router {}", escape(r));
        if !pm.protocols_seen.is_empty() {
            let names: Vec<&str> = pm.protocols_seen.iter().map(|m| m.name()).collect();
            let _ = write!(o, " speaks {}", names.join(", "));
        }
    }
    o.push_str("</p>");
    if pm.mappings.is_empty() {
        return;
    }
    o.push_str(
        "<div class=\"scroll\"><table id=\"mappings\"><tr><th>Protocol</th><th>External address</th>\
         <th>Lease left</th><th>Proven from outside</th><th>State</th></tr>",
    );
    for m in &pm.mappings {
        let lease = match (m.lease_s, m.expires) {
            (Some(0), _) => "permanent".to_string(),
            (_, Some(e)) => short_duration(e.left_at(now)),
            _ => NONE.to_string(),
        };
        let _ = write!(
            o,
            "<tr><td>{} {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            m.protocol,
            escape(&m.name),
            or_none(m.external.as_deref()),
            lease,
            time_or_none(m.proven_at),
            state_words(m.state, m.reason.as_deref()),
        );
    }
    o.push_str("</table></div>");
    proof(o, s);
    pinholes(o, s, now);
}

/// The IPv6 pinholes, beside the IPv4 mappings: a router's firewall drops
/// unsolicited inbound IPv6 just as a NAT does.
fn pinholes(o: &mut String, s: &Status, now: SystemTime) {
    let pm = &s.portmap;
    if pm.pinholes.is_empty() {
        if let Some(why) = &pm.pinholes_reason {
            let _ = write!(o, "<p id=\"pinholes\">IPv6 pinholes: {}.</p>", escape(why));
        }
        return;
    }
    o.push_str(
        "<div class=\"scroll\"><table id=\"pinholes\"><tr><th>IPv6 pinhole</th><th>Router</th>\
         <th>Lease left</th><th>Last renewed</th><th>State</th></tr>",
    );
    for p in &pm.pinholes {
        let lease = p
            .expires
            .map_or_else(|| NONE.to_string(), |e| short_duration(e.left_at(now)));
        let state = match &p.reason {
            Some(r) => format!("{}: {}", p.state.name(), escape(r)),
            None => p.state.name().to_string(),
        };
        let _ = write!(
            o,
            "<tr><td>{} [{}]:{}</td><td>{} by {}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            p.protocol,
            escape(&p.address),
            p.port,
            escape(&p.router),
            p.method,
            lease,
            time_or_none(p.last_renewed),
            state,
        );
    }
    o.push_str("</table></div>");
}

/// The end-to-end proof, in plain words under the table.
fn proof(o: &mut String, s: &Status) {
    use crate::portmap::model::ProofState;
    let p = &s.portmap.proof;
    let words = match p.state {
        ProofState::Proven => format!(
            "a packet from outside got through the router at {} (STUN server {}, seen as {})",
            time_or_none(p.proven_at),
            or_none(p.server.as_deref()),
            or_none(p.public.as_deref())
        ),
        ProofState::Off | ProofState::Pending => {
            or_none(p.reason.as_deref().or(Some(p.state.name())))
        }
        _ => or_none(p.reason.as_deref()),
    };
    let _ = write!(
        o,
        "<p id=\"proof\">Proof ({}): {words}; {} attempts, {} dead mappings repaired.</p>",
        p.state.name(),
        p.attempts,
        p.dead_repairs
    );
    if let Some(d) = &s.portmap.double_nat {
        let _ = write!(o, "<p id=\"double-nat\" class=\"warn\">{}</p>", escape(d));
    }
}

fn netcheck(o: &mut String, s: &Status) {
    let nc = &s.netcheck;
    let _ = write!(
        o,
        "<h2>NAT and netcheck</h2><p>{}</p>",
        health_words(&nc.health)
    );
    let Some(r) = &nc.report else { return };
    let nat = match r.mapping_varies_by_dest_ip {
        Some(true) => "hard (the public port changes per destination)",
        Some(false) => "easy (one public port for all destinations)",
        None => NONE,
    };
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let latency: Vec<String> = r
        .region_latency_ms
        .iter()
        .map(|(k, v)| format!("{} {v:.1} ms", escape(k)))
        .collect();
    let _ = write!(
        o,
        "<dl id=\"netcheck\"><dt>NAT type</dt><dd>{nat}</dd><dt>Filtering</dt><dd>{}</dd>\
         <dt>UDP</dt><dd>{}</dd><dt>Public IPv4</dt><dd>{}</dd><dt>Public IPv6</dt><dd>{}</dd>\
         <dt>Port mapping</dt><dd>{}</dd><dt>Nearest</dt><dd>{}</dd><dt>Latency</dt><dd>{}</dd>\
         <dt>Mapped port from outside</dt><dd>{}</dd>\
         <dt>Idle mapping kept</dt><dd>{}</dd><dt>Report</dt><dd>{} ({} ms, run {})</dd></dl>",
        r.filtering.map_or(NONE, |f| f.name()),
        yes_no(r.udp),
        or_none(r.ipv4.as_deref()),
        or_none(r.ipv6.as_deref()),
        if r.port_mapping.is_empty() {
            "none seen".to_string()
        } else {
            escape(&r.port_mapping.join(", "))
        },
        or_none(r.preferred_region.as_ref().map(|p| p.code.as_str())),
        if latency.is_empty() {
            NONE.to_string()
        } else {
            latency.join(", ")
        },
        match r.mesh_port_reachable {
            Some(true) => "gets through",
            Some(false) => "<span class=\"error\">does not get through</span>",
            None => NONE,
        },
        r.mapping_lifetime_s
            .map_or_else(|| NONE.to_string(), |t| format!("at least {t}s")),
        r.time,
        r.duration_ms,
        nc.runs,
    );
}

fn peers(o: &mut String, s: &Status) {
    let t = &s.tailscale;
    let _ = write!(o, "<h2>Mesh peers</h2><p>{}</p>", health_words(&t.health));
    if let (Some(v), Some(b)) = (&t.version, &t.backend_state) {
        let _ = write!(
            o,
            "<p class=\"meta\">tailscaled {} {} \u{b7} {} {} \u{b7} UDP port {}</p>",
            escape(v),
            escape(b),
            or_none(t.hostname.as_deref()),
            or_none(t.tailnet_ip.as_deref()),
            t.listen_port
                .map_or_else(|| NONE.to_string(), |p| p.to_string()),
        );
    }
    if !t.checks.is_empty() {
        o.push_str("<ul id=\"checks\">");
        for c in &t.checks {
            let _ = write!(
                o,
                "<li class=\"warn\">{} <b>Fix:</b> {}</li>",
                escape(&c.message),
                escape(&c.fix)
            );
        }
        o.push_str("</ul>");
    }
    let list = sections::peers(s);
    if list.is_empty() {
        let _ = write!(o, "<p id=\"peers\">{NONE}</p>");
        return;
    }
    o.push_str(
        "<div class=\"scroll\"><table id=\"peers\"><tr><th>Peer</th><th>Path</th><th>Latency</th></tr>",
    );
    for (p, raw) in list.iter().zip(&t.peers) {
        let path = match (p.path, p.answered) {
            (_, Some(false)) => format!(
                "<span class=\"error\">no answer</span>{}",
                p.error
                    .as_deref()
                    .map(|e| format!(": {}", escape(e)))
                    .unwrap_or_default()
            ),
            (PeerPath::Direct, _) => format!("direct {}", or_none(p.endpoint.as_deref())),
            (PeerPath::Relay, _) => format!("relay {}", or_none(p.derp_region.as_deref())),
            (PeerPath::Unknown, _) if !raw.online => "offline".to_string(),
            (PeerPath::Unknown, _) => "not pinged yet".to_string(),
        };
        let _ = write!(
            o,
            "<tr><td>{}<br><span class=\"meta\">{}</span></td><td>{path}</td><td>{}</td></tr>",
            escape(&p.name),
            or_none(p.tailnet_ip.as_deref()),
            p.latency_ms
                .map_or_else(|| NONE.to_string(), |l| format!("{l:.1} ms")),
        );
    }
    o.push_str("</table></div>");
}

fn registration(o: &mut String, s: &Status) {
    let r = sections::registration(s);
    let _ = write!(
        o,
        "<h2>Registration</h2><p>{}</p><dl id=\"registration\"><dt>Cluster</dt><dd>{}</dd>\
         <dt>Control server</dt><dd>{}</dd></dl>",
        health_words(&s.admission.health),
        or_none(r.cluster.as_deref()),
        or_none(r.control_server.as_deref()),
    );
}

fn telemetry(o: &mut String, s: &Status) {
    let t = sections::telemetry(s);
    let _ = write!(
        o,
        "<h2>Telemetry</h2><p>{}</p><dl id=\"telemetry\"><dt>Broker</dt><dd>{}{}</dd>\
         <dt>Outbox</dt><dd>{}</dd></dl>",
        health_words(&s.telemetry.health),
        or_none(t.broker.as_deref()),
        match t.connected {
            Some(true) => " (connected)",
            Some(false) => " (not connected)",
            None => "",
        },
        t.outbox_depth
            .map_or_else(|| NONE.to_string(), |d| format!("{d} waiting")),
    );
}

fn action_forms(o: &mut String) {
    o.push_str("<h2>Actions</h2>");
    for (a, label) in [
        (Action::Netcheck, "Run netcheck now"),
        (Action::Remap, "Re-map now"),
    ] {
        let _ = write!(
            o,
            "<form method=\"post\" action=\"/action/{}\"><input type=\"password\" name=\"token\" \
             placeholder=\"action token\" autocomplete=\"off\" required> <button>{label}</button></form>",
            a.name()
        );
    }
}

fn events(o: &mut String, s: &Status) {
    o.push_str("<h2>Recent events</h2><ul id=\"events\">");
    if s.events.is_empty() {
        let _ = write!(o, "<li>{NONE}</li>");
    }
    for e in s.events.iter().rev().take(EVENTS_SHOWN) {
        let class = match e.level {
            Level::Info => "",
            Level::Warn => " class=\"warn\"",
            Level::Error => " class=\"error\"",
        };
        let _ = write!(
            o,
            "<li{class}><span class=\"meta\">{} {}</span> {}</li>",
            e.time.to_string().get(11..19).unwrap_or_default(),
            escape(&e.source),
            escape(&e.message)
        );
    }
    o.push_str("</ul>");
}

/// A short page for refusals and errors, linking back to the status page.
pub fn message_page(title: &str, text: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{0}</title>\
         <style>{STYLE}</style></head><body><h1>{0}</h1><p>{1}</p><p><a href=\"/\">Back to the status page</a></p></body></html>",
        escape(title),
        escape(text)
    )
}

#[cfg(test)]
mod tests;
