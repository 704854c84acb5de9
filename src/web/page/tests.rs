use super::*;
use crate::netcheck::report::Report;
use crate::status::{DefaultRoute, Event, Health, MappingStatus};
use crate::tailscale::api::PingPath;
use crate::web::sections::test_peer;

fn status() -> Status {
    let mut s = crate::web::test_status();
    s.network.default_route = Some(DefaultRoute {
        interface: "eth0".into(),
        gateway: Some("192.0.2.1".into()),
        source: Some("192.0.2.10".into()),
    });
    s.netcheck.report = Some(Report {
        udp: true,
        ipv4: Some("203.0.113.2:40001".into()),
        mapping_varies_by_dest_ip: Some(true),
        region_latency_ms: [("203.0.113.10:3478".to_string(), 1.25)].into(),
        ..Report::default()
    });
    s.portmap.health = Health::new(State::Ok, None);
    s.portmap.mappings = vec![MappingStatus {
        name: "tailscale".into(),
        protocol: crate::primitives::Protocol::Udp,
        method: Some(crate::portmap::model::Method::Pcp),
        internal: "192.0.2.10:41641".into(),
        external: Some("203.0.113.2:41641".into()),
        same_port: true,
        lease_s: Some(3600),
        expires: Some("2026-01-01T01:00:00Z".parse().unwrap()),
        last_verified: None,
        proven_at: None,
        proof: None,
        failures: 0,
        state: State::Ok,
        reason: None,
    }];
    s.portmap.proof = crate::portmap::model::ProofStatus {
        state: crate::portmap::model::ProofState::Proven,
        proven_at: Some("2026-01-01T00:09:50Z".parse().unwrap()),
        interval_s: 30,
        ..Default::default()
    };
    s
}

fn at(t: &str) -> SystemTime {
    humantime::parse_rfc3339(t).unwrap()
}

#[test]
fn verdict_comes_first_and_sections_follow() {
    let page = render(&status(), at("2026-01-01T00:10:00Z"), None, false);
    let verdict = page.find("id=\"verdict\">Reachable direct<").expect(&page);
    for section in [
        "Port mappings",
        "NAT and netcheck",
        "Mesh peers",
        "Registration",
        "Telemetry",
        "Recent events",
    ] {
        let at = page.find(&format!("<h2>{section}")).expect(section);
        assert!(at > verdict, "{section} before the verdict");
    }
    assert!(
        page.contains("<td>203.0.113.2:41641</td><td>50m 00s</td>"),
        "{page}"
    );
    assert!(page.contains("hard (the public port changes per destination)"));
    assert!(
        page.contains("203.0.113.10:3478 1.2 ms") || page.contains("203.0.113.10:3478 1.3 ms"),
        "{page}"
    );
    assert!(page.contains("content=\"10;url=/\""), "refreshes by itself");
    assert!(!page.contains("<form"), "actions are off by default");
}

#[test]
fn no_script_and_no_external_asset() {
    let page = render(&status(), SystemTime::now(), None, true);
    assert!(!page.to_ascii_lowercase().contains("<script"));
    assert!(!page.contains("src="));
    for (i, _) in page.match_indices("href=\"") {
        assert!(page[i + 6..].starts_with('/'), "external link at {i}");
    }
    for (i, _) in page.match_indices("action=\"") {
        assert!(page[i + 8..].starts_with("/action/"), "form target at {i}");
    }
    assert_eq!(page.matches("method=\"post\"").count(), 2);
}

#[test]
fn everything_from_the_snapshot_is_escaped() {
    let mut s = status();
    s.gateway.site = "<b>site</b>".into();
    s.events.push(Event {
        seq: 1,
        time: "2026-01-01T00:00:00Z".parse().unwrap(),
        source: "portmap".into(),
        kind: "x".into(),
        level: crate::status::Level::Warn,
        message: "<script>alert('x')</script> & \"quoted\"".into(),
    });
    s.portmap.mappings[0].reason = Some("<img src=x onerror=alert(1)>".into());
    let page = render(&s, SystemTime::now(), None, false);
    assert!(!page.contains("<script>alert"));
    assert!(!page.contains("<img"));
    assert!(!page.contains("<b>site</b>"));
    assert!(
        page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;quoted&quot;")
    );
}

#[test]
fn missing_sections_show_a_dash_and_their_reason() {
    let mut s = status();
    s.tailscale.health = Health::new(
        State::Unavailable,
        Some("tailscaled's LocalAPI socket is missing".into()),
    );
    s.netcheck.report = None;
    s.portmap.mappings.clear();
    let page = render(&s, SystemTime::now(), None, false);
    assert!(page.contains("<p id=\"peers\">\u{2014}</p>"), "{page}");
    assert!(page.contains("tailscaled&#39;s LocalAPI socket is missing"));
    assert!(page.contains("<dt>Cluster</dt><dd>\u{2014}</dd>"));
    assert!(page.contains("<dt>Outbox</dt><dd>\u{2014}</dd>"));
}

#[test]
fn peers_and_telemetry_render_without_secrets() {
    let mut s = status();
    s.tailscale.version = Some("1.98.1".into());
    s.tailscale.backend_state = Some("Running".into());
    s.tailscale.checks = vec![crate::tailscale::model::SanityCheck {
        check: "no-fixed-port".into(),
        message: "tailscaled <picks> a random port.".into(),
        fix: "start it with --port=41641".into(),
    }];
    s.tailscale.peers = vec![
        test_peer(
            "gw-a",
            Some((
                PingPath::Direct,
                Some("203.0.113.50:41641"),
                None,
                Some(2.0),
                None,
            )),
        ),
        test_peer(
            "gw-b",
            Some((PingPath::Derp, None, Some("lab"), Some(41.0), None)),
        ),
        test_peer("gw-c", None),
    ];
    s.telemetry = crate::status::TelemetryStatus {
        broker: Some("mqtt://gw:hunter2@203.0.113.20:1883".into()),
        outbox_depth: 3,
        ..Default::default()
    };
    let page = render(&s, SystemTime::now(), None, false);
    assert!(page.contains("direct 203.0.113.50:41641"), "{page}");
    assert!(page.contains("relay lab"));
    assert!(page.contains("not pinged yet"));
    assert!(page.contains("tailscaled 1.98.1 Running"));
    assert!(page.contains(
        "tailscaled &lt;picks&gt; a random port. <b>Fix:</b> start it with --port=41641"
    ));
    assert!(page.contains("41.0 ms"));
    assert!(page.contains("mqtt://203.0.113.20:1883"));
    assert!(page.contains("3 waiting"));
    assert!(!page.contains("hunter2"));
}

#[test]
fn notice_after_an_action() {
    let page = render(
        &status(),
        SystemTime::now(),
        Some(Notice::Started(Action::Remap)),
        true,
    );
    assert!(page.contains("Re-mapping was asked for"));
}

#[test]
fn short_durations_read_as_a_technician_says_them() {
    assert_eq!(
        short_duration(Duration::from_secs(3 * 3600 + 120)),
        "3h 02m"
    );
}

#[test]
fn pinholes_show_beside_the_mappings_with_lease_and_reason() {
    use crate::portmap::model::{PinholeState, PinholeStatus};
    let mut s = status();
    s.portmap.pinholes = vec![
        PinholeStatus {
            address: "2001:db8:1:2::10".into(),
            port: 41641,
            protocol: crate::primitives::Protocol::Udp,
            method: crate::portmap::model::Method::Pcp,
            router: "fe80::1%eth0".into(),
            lease_s: Some(3600),
            expires: Some("2026-01-01T00:40:00Z".parse().unwrap()),
            last_renewed: Some("2026-01-01T00:00:00Z".parse().unwrap()),
            state: PinholeState::Open,
            ..Default::default()
        },
        PinholeStatus {
            address: "2001:db8:1:2::<b>".into(),
            port: 41641,
            protocol: crate::primitives::Protocol::Udp,
            method: crate::portmap::model::Method::Pcp,
            router: "fe80::1%eth0".into(),
            failures: 2,
            state: PinholeState::Failed,
            reason: Some("router answered NOT_AUTHORIZED".into()),
            ..Default::default()
        },
    ];
    let html = render(&s, at("2026-01-01T00:10:00Z"), None, false);
    let table = html
        .split("<table id=\"pinholes\">")
        .nth(1)
        .expect("pinholes table");
    assert!(table.contains("udp [2001:db8:1:2::10]:41641"), "{table}");
    assert!(table.contains("fe80::1%eth0 by pcp"), "{table}");
    assert!(table.contains("30m"), "lease left: {table}");
    assert!(
        table.contains("failed: router answered NOT_AUTHORIZED"),
        "{table}"
    );
    assert!(
        table.contains("&lt;b&gt;") && !table.contains("<b>"),
        "escaped"
    );
    // None yet: the reason instead of an empty table.
    s.portmap.pinholes.clear();
    s.portmap.pinholes_reason = Some("no IPv6 default route with a router".into());
    let html = render(&s, at("2026-01-01T00:10:00Z"), None, false);
    assert!(html.contains("IPv6 pinholes: no IPv6 default route with a router."));
    let text = crate::view::render_status(&s);
    assert!(
        text.contains("pinholes none: no IPv6 default route"),
        "{text}"
    );
}
