use super::*;
use std::time::Duration;

fn err_of(text: &str) -> String {
    Config::parse(text, "test.toml").unwrap_err().to_string()
}

#[test]
fn empty_file_gives_defaults() {
    let c = Config::parse("", "test.toml").unwrap();
    assert_eq!(c, Config::default());
    assert_eq!(c.portmap.mapping, vec![MappingConfig::tailscale()]);
    assert_eq!(c.portmap.lease.get(), Duration::from_secs(3600));
    assert_eq!(c.web.listen[0].to_string(), "127.0.0.1:8088");
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let e = err_of("[portmap]\nenabled = true\nleese = \"1h\"\n");
    assert!(e.starts_with("test.toml:3: portmap.leese: "), "{e}");
    assert!(e.contains("unknown field"), "{e}");
    assert!(!e.contains('\n'), "one line: {e}");
}

#[test]
fn unknown_section_is_rejected() {
    let e = err_of("[portmapp]\nenabled = true\n");
    assert!(e.starts_with("test.toml:1: portmapp: "), "{e}");
}

#[test]
fn wrong_type_names_key() {
    let e = err_of("[tailscale]\nenabled = \"yes\"\n");
    assert!(e.starts_with("test.toml:2: tailscale.enabled: "), "{e}");
    assert!(
        e.contains("expected a boolean") || e.contains("invalid type"),
        "{e}"
    );
}

#[test]
fn bad_duration_names_key_and_expectation() {
    let e = err_of("[netcheck]\ninterval = \"5x\"\n");
    assert!(e.starts_with("test.toml:2: netcheck.interval: "), "{e}");
    assert!(e.contains("\"30s\""), "{e}");
}

#[test]
fn duration_as_number_is_rejected() {
    let e = err_of("[portmap]\nlease = 3600\n");
    assert!(e.starts_with("test.toml:2: portmap.lease: "), "{e}");
}

#[test]
fn semantic_errors_are_located() {
    let e = err_of("[portmap]\nlease = \"1s\"\n");
    assert_eq!(
        e,
        "test.toml:2: portmap.lease: 1s is too short: expected at least 10s"
    );
    let e = err_of("[tailscale]\n\nkeepalive_interval = \"50s\"\n");
    assert!(
        e.starts_with("test.toml:3: tailscale.keepalive_interval: "),
        "{e}"
    );
    let e = err_of("[gateway]\nid = \"gw/../x\"\n");
    assert!(e.starts_with("test.toml:2: gateway.id: "), "{e}");
    let e = err_of("[netcheck]\nstun_servers = [\"nohost\"]\n");
    assert!(e.starts_with("test.toml:2: netcheck.stun_servers: "), "{e}");
    let e = err_of("[telemetry]\nmqtt_url = \"http://x\"\n");
    assert!(e.starts_with("test.toml:2: telemetry.mqtt_url: "), "{e}");
}

#[test]
fn mapping_list_replaces_default_and_is_checked() {
    let c = Config::parse(
        "[[portmap.mapping]]\nname = \"ssh\"\nprotocol = \"tcp\"\ninternal_port = 22\nexternal_port = 2222\n",
        "t",
    )
    .unwrap();
    assert_eq!(c.portmap.mapping.len(), 1);
    assert_eq!(c.portmap.mapping[0].protocol, Protocol::Tcp);
    let e = err_of("[[portmap.mapping]]\nname = \"x\"\nprotocol = \"sctp\"\ninternal_port = 1\nexternal_port = 1\n");
    assert!(
        e.starts_with("test.toml:3: portmap.mapping.protocol: "),
        "{e}"
    );
    let e = err_of("[[portmap.mapping]]\nname = \"x\"\nprotocol = \"udp\"\ninternal_port = 0\nexternal_port = 1\n");
    assert!(e.starts_with("test.toml:1: portmap.mapping: "), "{e}");
}

#[test]
fn example_config_loads_with_real_loader() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/edgereach.toml");
    let c = Config::load(&path).unwrap();
    assert_eq!(c.gateway.site, "plant-7");
    assert_eq!(c.portmap.mapping, vec![MappingConfig::tailscale()]);
    assert!(
        c.netcheck.stun_servers.is_empty() && c.netcheck.derp_map.is_empty(),
        "the example leaves netcheck to the admission service's or tailscaled's map"
    );
    assert_eq!(
        c.web,
        WebConfig::default(),
        "the example shows the defaults"
    );
}

#[test]
fn round_trips_through_toml() {
    let c = Config::default();
    let text = toml::to_string(&c).unwrap();
    assert_eq!(Config::parse(&text, "t").unwrap(), c);
}

#[test]
fn web_defaults_and_limits() {
    let c = Config::default().web;
    assert_eq!(c.header_timeout.get(), Duration::from_secs(10));
    assert_eq!(c.idle_timeout.get(), Duration::from_secs(5));
    assert_eq!(c.max_connections_per_ip, 16);
    assert_eq!(c.max_connections, 256);
    assert_eq!(c.requests_per_minute, 600);
    assert!(!c.actions_enabled);
    let c = Config::parse(
        "[web]\nlisten = [\"192.0.2.10:80\", \"[::1]:8088\"]\nheader_timeout = \"3s\"\nmax_connections_per_ip = 2\n",
        "t",
    )
    .unwrap();
    assert_eq!(c.web.listen.len(), 2);
    assert_eq!(c.web.header_timeout.get(), Duration::from_secs(3));
    assert_eq!(c.web.max_connections_per_ip, 2);
    let e = err_of("[web]\nheader_timeout = \"0s\"\n");
    assert!(e.starts_with("test.toml:2: web.header_timeout: "), "{e}");
    let e = err_of("[web]\n\nidle_timeout = \"1h\"\n");
    assert!(e.starts_with("test.toml:3: web.idle_timeout: "), "{e}");
    assert!(e.contains("too long"), "{e}");
    let e = err_of("[web]\nmax_connections = 0\n");
    assert!(e.starts_with("test.toml:2: web.max_connections: "), "{e}");
    let e = err_of("[web]\nmax_connections_per_ip = 100000\n");
    assert!(
        e.starts_with("test.toml:2: web.max_connections_per_ip: "),
        "{e}"
    );
    let e = err_of("[web]\nrequests_per_minute = 0\n");
    assert!(
        e.starts_with("test.toml:2: web.requests_per_minute: "),
        "{e}"
    );
    let e = err_of("[web]\nactions_enabled = true\n");
    assert!(e.contains("web.action_token_file: "), "{e}");
    let e = err_of("[web]\nlisten = [\"localhost:80\"]\n");
    assert!(e.starts_with("test.toml:2: web.listen"), "{e}");
}

#[test]
fn telemetry_keys_have_defaults_and_are_checked() {
    let t = Config::parse("", "test.toml").unwrap().telemetry;
    assert_eq!(t.keepalive.get(), Duration::from_secs(120));
    assert_eq!(t.status_interval.get(), Duration::from_secs(900));
    assert_eq!(t.debounce.get(), Duration::from_secs(10));
    assert_eq!(t.outbox_max_bytes, 8 * 1024 * 1024);
    assert_eq!(t.reconnect_max.get(), Duration::from_secs(60));
    assert!(t.ca_file.is_empty() && t.credentials_file.is_empty());
    let ok = Config::parse(
        "[telemetry]\nmqtt_url = \"mqtts://b:8883\"\nca_file = \"/ca.pem\"\nclient_cert = \"/c.pem\"\nclient_key = \"/k.pem\"\nkeepalive = \"30s\"\n",
        "test.toml",
    )
    .unwrap();
    assert_eq!(ok.telemetry.ca_file, "/ca.pem");
    let cases = [
        ("keepalive = \"1s\"", "telemetry.keepalive"),
        ("status_interval = \"1s\"", "telemetry.status_interval"),
        ("debounce = \"1h\"", "telemetry.debounce"),
        ("outbox_max_bytes = 1000", "telemetry.outbox_max_bytes"),
        ("reconnect_max = \"0s\"", "telemetry.reconnect_max"),
        ("topic_prefix = \"a/#\"", "telemetry.topic_prefix"),
        ("client_cert = \"/c.pem\"", "telemetry.client_cert"),
    ];
    for (line, key) in cases {
        let e = err_of(&format!("[telemetry]\nmqtt_url = \"mqtts://b\"\n{line}\n"));
        assert!(
            e.starts_with(&format!("test.toml:3: {key}: ")),
            "{line}: {e}"
        );
    }
    let e = err_of("[telemetry]\nmqtt_url = \"mqtt://b\"\nca_file = \"/ca.pem\"\n");
    assert!(
        e.contains("telemetry.ca_file") && e.contains("not mqtts"),
        "{e}"
    );
}

#[test]
fn admission_keys_have_defaults_and_checks() {
    let c = Config::parse("", "t").unwrap();
    assert_eq!(c.admission.interval.get(), Duration::from_secs(600));
    assert_eq!(c.admission.startup_spread.get(), Duration::from_secs(90));
    assert_eq!(c.admission.timeout.get(), Duration::from_secs(15));
    assert_eq!(c.admission.retry_max.get(), Duration::from_secs(300));
    let c = Config::parse(
        "[admission]\nurl = \"https://acs.example\"\naccount = \"acme\"\nca_file = \"/ca.pem\"\nclient_cert = \"/c.pem\"\nclient_key = \"/k.pem\"\nstartup_spread = \"0s\"\n",
        "t",
    )
    .unwrap();
    assert_eq!(c.admission.ca_file, "/ca.pem");
    assert_eq!(c.admission.startup_spread.get(), Duration::ZERO);
    let e = err_of("[admission]\nclient_cert = \"/c.pem\"\n");
    assert!(e.starts_with("test.toml:2: admission.client_cert: "), "{e}");
    let e = err_of("[admission]\nurl = \"https://acs.example\"\n");
    assert!(e.contains("admission.account: must be set"), "{e}");
    let e = err_of("[admission]\ntimeout = \"100ms\"\n");
    assert!(e.starts_with("test.toml:2: admission.timeout: "), "{e}");
}
