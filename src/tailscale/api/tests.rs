use super::*;

/// A real answer of tailscaled 1.98.10 in the lab (gateway C behind the hard
/// NAT, one peer).
const STATUS_1_98: &str = include_str!("../testdata/status-1.98.10.json");

#[test]
fn real_status_decodes() {
    let s = decode_status(STATUS_1_98.as_bytes()).unwrap();
    assert_eq!(s.backend_state, "Running");
    assert_eq!(version_major_minor(&s.version), Some((1, 98)));
    let me = s.self_node.as_ref().unwrap();
    assert_eq!(me.host_name, "c");
    assert_eq!(me.tailnet_ip().unwrap().to_string(), "100.64.0.1");
    assert!(me.addrs.iter().any(|a| a == "203.0.113.2:41641"));
    assert_eq!(s.peer.len(), 1);
    let a = s.peer.values().next().unwrap();
    assert_eq!(a.host_name, "a");
    assert!(a.addrs.is_empty(), "Go's null slice decodes as empty");
    assert_eq!(a.relay, "lab-a");
}

#[test]
fn unknown_fields_are_ignored_and_missing_ones_named() {
    let s = decode_status(br#"{"Version":"1.2.3","BackendState":"NeedsLogin","Future":{"x":1}}"#)
        .unwrap();
    assert_eq!(s.backend_state, "NeedsLogin");
    assert!(s.self_node.is_none());
    let e = decode_status(br#"{"Version":"1.2.3"}"#).unwrap_err();
    assert!(e.to_string().contains("BackendState"), "{e}");
    let e = decode_status(b"<html>").unwrap_err();
    assert!(e.to_string().starts_with("status: "), "{e}");
}

#[test]
fn oversized_answers_are_refused() {
    let big = vec![b' '; MAX_BODY + 1];
    assert!(matches!(
        decode_status(&big),
        Err(DecodeError::TooLarge { .. })
    ));
}

#[test]
fn ping_paths() {
    let direct = decode_ping(br#"{"IP":"100.64.0.2","NodeIP":"100.64.0.2","NodeName":"a","Err":"","LatencySeconds":0.00090665,"Endpoint":"203.0.113.50:41641","PeerRelay":"","DERPRegionID":0,"DERPRegionCode":""}"#).unwrap();
    assert_eq!(direct.path(), PingPath::Direct);
    let derp = decode_ping(
        br#"{"IP":"100.64.0.2","LatencySeconds":0.03,"DERPRegionID":900,"DERPRegionCode":"lab-a"}"#,
    )
    .unwrap();
    assert_eq!(derp.path(), PingPath::Derp);
    let failed = decode_ping(br#"{"IP":"100.64.0.2","Err":"timeout"}"#).unwrap();
    assert_eq!(failed.path(), PingPath::Failed);
    assert!(decode_ping(br#"{"Err":"x"}"#).is_err(), "IP is required");
}

#[test]
fn error_bodies() {
    assert_eq!(
        error_text(br#"{"error":"no matching peer"}"#),
        "no matching peer"
    );
    assert_eq!(error_text(b"debug access denied\n"), "debug access denied");
    let long = "é".repeat(400);
    assert!(error_text(long.as_bytes()).len() <= 300);
}

#[test]
fn prefs_and_notify() {
    let p = decode_prefs(br#"{"ControlURL":"http://203.0.113.30:8080","WantRunning":true,"LoggedOut":false,"Hostname":"c","Config":{"PrivateNodeKey":"privkey:redacted"}}"#).unwrap();
    assert_eq!(p.control_url, "http://203.0.113.30:8080");
    assert!(p.want_running);
    let n = decode_notify(br#"{"Version":"1.98.10","State":6}"#).unwrap();
    assert_eq!(n.state.map(state_name), Some("Running"));
    assert_eq!(state_name(42), "Unknown");
}

#[test]
fn versions() {
    assert_eq!(version_major_minor("1.98.10-ERR-BuildInfo"), Some((1, 98)));
    assert_eq!(version_major_minor("1.60"), Some((1, 60)));
    assert_eq!(version_major_minor("dev"), None);
}

/// `GET /localapi/v0/derpmap` of tailscaled 1.98.10 in the lab, joined to
/// the lab headscale (two STUN-only regions).
const DERPMAP_1_98: &str = include_str!("../testdata/derpmap-1.98.10.json");

#[test]
fn real_derp_map_decodes() {
    let m = decode_derp_map(DERPMAP_1_98.as_bytes()).unwrap().unwrap();
    let targets = crate::netcheck::derpmap::stun_targets(&m);
    let got: Vec<(u16, &str, String, u16)> = targets
        .iter()
        .map(|t| {
            (
                t.region_id,
                t.region_code.as_str(),
                format!("{:?}", t.ipv4),
                t.port,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (900, "lab-a", "Some(203.0.113.10)".to_string(), 3478),
            (901, "lab-b", "Some(203.0.113.11)".to_string(), 3478)
        ]
    );
    assert!(targets.iter().all(|t| !t.resolve_ipv6), "IPv6 \"none\"");
}

/// What the same tailscaled answers before it ever logged in.
#[test]
fn derp_map_null_is_no_map_yet() {
    assert_eq!(decode_derp_map(b"null\n"), Ok(None));
    assert_eq!(decode_derp_map(b"  null"), Ok(None));
}

/// tailscaled encodes `tailcfg.DERPMap` as is: nil maps and slices become
/// `null`, omitempty fields are left out. Optional nulls are absent; a
/// required field stays required.
#[test]
fn derp_map_with_go_nulls() {
    let body = br#"{
	"HomeParams": null,
	"Regions": {
		"900": {
			"RegionID": 900,
			"RegionCode": "lab-a",
			"RegionName": null,
			"Nodes": [
				{"Name": "900a", "RegionID": 900, "HostName": "203.0.113.10",
				 "IPv4": "203.0.113.10", "IPv6": null, "STUNPort": 3478, "STUNOnly": true}
			]
		}
	}
}
"#;
    let m = decode_derp_map(body).unwrap().unwrap();
    assert_eq!(m.regions.len(), 1);
    assert_eq!(m.regions[0].region_code, "lab-a");
    assert_eq!(m.regions[0].region_name, "");
    let e =
        decode_derp_map(br#"{"Regions": {"1": {"RegionID": 1, "Nodes": [{"HostName": null}]}}}"#)
            .unwrap_err();
    assert!(e.to_string().contains("HostName is missing"), "{e}");
    assert!(e.to_string().starts_with("derpmap: "), "{e}");
}
