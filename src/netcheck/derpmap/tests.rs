use super::*;

const SAMPLE: &str = r#"{
  "Regions": {
    "1": {"RegionID": 1, "RegionCode": "nyc", "RegionName": "New York",
          "Nodes": [{"Name": "1a", "RegionID": 1, "HostName": "derp1.example",
                     "IPv4": "203.0.113.10", "IPv6": "2001:db8::10",
                     "STUNPort": 3478, "STUNOnly": true, "DERPPort": 443}]}
  },
  "OmitDefaultRegions": false
}"#;

fn err(json: &str) -> DerpMapError {
    decode(json.as_bytes()).unwrap_err()
}

/// A one-region map whose single node has the given extra fields.
fn one_node(extra: &str) -> String {
    format!(
        r#"{{"Regions": {{"900": {{"RegionID": 900, "RegionCode": "lab",
           "Nodes": [{{"Name": "900a", "HostName": "stun.lab"{extra}}}]}}}}}}"#
    )
}

#[test]
fn decodes_the_sample() {
    let map = decode(SAMPLE.as_bytes()).unwrap();
    assert!(!map.omit_default_regions);
    assert_eq!(map.regions.len(), 1);
    let r = &map.regions[0];
    assert_eq!((r.region_id, r.region_code.as_str()), (1, "nyc"));
    assert_eq!(r.region_name, "New York");
    let n = &r.nodes[0];
    assert_eq!(n.name, "1a");
    assert_eq!(n.host_name, "derp1.example");
    assert_eq!(n.ipv4, IpSetting::Fixed(Ipv4Addr::new(203, 0, 113, 10)));
    assert_eq!(n.ipv6, IpSetting::Fixed("2001:db8::10".parse().unwrap()));
    assert_eq!(
        (n.stun_port, n.stun_only, n.derp_port),
        (Some(3478), true, 443)
    );
    let t = stun_targets(&map);
    assert_eq!(
        t,
        vec![StunTarget {
            region_id: 1,
            region_code: "nyc".into(),
            host: "derp1.example".into(),
            ipv4: Some(Ipv4Addr::new(203, 0, 113, 10)),
            ipv6: Some("2001:db8::10".parse().unwrap()),
            resolve_ipv4: false,
            resolve_ipv6: false,
            port: 3478,
        }]
    );
}

#[test]
fn targets_ordered_by_region_then_node() {
    let json = r#"{"Regions": {
        "10": {"RegionID": 10, "RegionCode": "b", "Nodes": [
            {"HostName": "b1"}, {"HostName": "b2", "STUNPort": -1}, {"HostName": "b3"}]},
        "2": {"RegionID": 2, "RegionCode": "a", "Nodes": [{"HostName": "a1", "STUNPort": 0}]},
        "900": {"RegionID": 900, "RegionCode": "c", "Nodes": []}
    }}"#;
    let map = decode(json.as_bytes()).unwrap();
    let ids: Vec<u16> = map.regions.iter().map(|r| r.region_id).collect();
    assert_eq!(ids, [2, 10, 900]);
    let t = stun_targets(&map);
    let hosts: Vec<(&str, u16)> = t.iter().map(|t| (t.host.as_str(), t.port)).collect();
    assert_eq!(hosts, [("a1", 3478), ("b1", 3478), ("b3", 3478)]);
    assert!(t.iter().all(|t| t.resolve_ipv4 && t.resolve_ipv6));
}

#[test]
fn stun_port_values() {
    let port =
        |extra: &str| decode(one_node(extra).as_bytes()).unwrap().regions[0].nodes[0].stun_port;
    assert_eq!(port(""), Some(3478));
    assert_eq!(port(r#", "STUNPort": 0"#), Some(3478));
    assert_eq!(port(r#", "STUNPort": 34780"#), Some(34780));
    assert_eq!(port(r#", "STUNPort": -1"#), None);
    let m = decode(one_node(r#", "STUNPort": -1"#).as_bytes()).unwrap();
    assert!(stun_targets(&m).is_empty());
    assert!(matches!(
        err(&one_node(r#", "STUNPort": -2"#)),
        DerpMapError::OutOfRange { value: -2, .. }
    ));
    assert!(matches!(
        err(&one_node(r#", "STUNPort": 65536"#)),
        DerpMapError::OutOfRange { value: 65536, .. }
    ));
    assert!(matches!(
        err(&one_node(r#", "STUNPort": "3478""#)),
        DerpMapError::WrongType {
            expected: "an integer",
            ..
        }
    ));
}

#[test]
fn stun_only_and_ip_settings() {
    let m =
        decode(one_node(r#", "STUNOnly": true, "IPv4": "none", "IPv6": """#).as_bytes()).unwrap();
    let n = &m.regions[0].nodes[0];
    assert!(n.stun_only);
    assert_eq!((n.ipv4, n.ipv6), (IpSetting::Disabled, IpSetting::Dns));
    let t = &stun_targets(&m)[0];
    assert_eq!(
        (t.ipv4, t.ipv6, t.resolve_ipv4, t.resolve_ipv6),
        (None, None, false, true)
    );
    // Not an address of the field's family: that family is off (tailcfg docs).
    let m = decode(one_node(r#", "IPv4": "2001:db8::1", "IPv6": "none""#).as_bytes()).unwrap();
    assert!(stun_targets(&m).is_empty(), "both families disabled");
    let m = decode(one_node(r#", "IPv4": null, "IPv6": "2001:db8::1""#).as_bytes()).unwrap();
    let t = &stun_targets(&m)[0];
    assert_eq!(
        (t.resolve_ipv4, t.ipv6),
        (true, Some("2001:db8::1".parse().unwrap()))
    );
}

#[test]
fn missing_required_fields() {
    assert_eq!(
        err(r#"{"OmitDefaultRegions": true}"#),
        DerpMapError::Missing {
            path: "Regions".into()
        }
    );
    // Go's nil map is `null`: no regions, not a broken map.
    assert!(decode(br#"{"Regions": null}"#).unwrap().regions.is_empty());
    assert_eq!(
        err(r#"{"Regions": {"1": {"RegionCode": "x", "Nodes": []}}}"#),
        DerpMapError::Missing {
            path: r#"Regions["1"].RegionID"#.into()
        }
    );
    assert_eq!(
        err(r#"{"Regions": {"1": {"RegionID": 1}}}"#),
        DerpMapError::Missing {
            path: r#"Regions["1"].Nodes"#.into()
        }
    );
    assert_eq!(
        err(r#"{"Regions": {"1": {"RegionID": 1, "Nodes": [{"Name": "1a"}]}}}"#),
        DerpMapError::Missing {
            path: r#"Regions["1"].Nodes[0].HostName"#.into()
        }
    );
    assert!(matches!(
        err(r#"{"Regions": {"1": {"RegionID": 1, "Nodes": [{"HostName": ""}]}}}"#),
        DerpMapError::EmptyHostName { .. }
    ));
    let e = err(r#"{"Regions": {"1": {"RegionID": 1, "Nodes": [{"Name": "1a"}]}}}"#);
    assert_eq!(
        e.to_string(),
        r#"DERP map: Regions["1"].Nodes[0].HostName is missing"#
    );
}

#[test]
fn structural_errors() {
    assert!(matches!(err("[]"), DerpMapError::WrongType { .. }));
    assert!(matches!(err("{"), DerpMapError::Json { .. }));
    assert!(matches!(
        err(r#"{"Regions": []}"#),
        DerpMapError::WrongType { .. }
    ));
    assert!(matches!(
        err(r#"{"Regions": {"x": {"RegionID": 1, "Nodes": []}}}"#),
        DerpMapError::BadRegionKey { .. }
    ));
    assert!(matches!(
        err(r#"{"Regions": {"2": {"RegionID": 1, "Nodes": []}}}"#),
        DerpMapError::RegionKeyMismatch { region_id: 1, .. }
    ));
    assert_eq!(
        err(
            r#"{"Regions": {"1": {"RegionID": 1, "Nodes": []}, "01": {"RegionID": 1, "Nodes": []}}}"#
        ),
        DerpMapError::DuplicateRegion { region_id: 1 }
    );
    assert!(matches!(
        err(r#"{"Regions": {"0": {"RegionID": 0, "Nodes": []}}}"#),
        DerpMapError::OutOfRange { value: 0, .. }
    ));
    assert!(matches!(
        err(r#"{"Regions": {"1": {"RegionID": 1, "Nodes": [{"HostName": "h", "RegionID": 2}]}}}"#),
        DerpMapError::NodeRegionMismatch {
            found: 2,
            region_id: 1,
            ..
        }
    ));
    // A nil *DERPNode is skipped, as tailscale does; a non-object is not.
    let m = decode(br#"{"Regions": {"1": {"RegionID": 1, "Nodes": [null]}}}"#).unwrap();
    assert!(m.regions[0].nodes.is_empty());
    assert!(matches!(
        err(r#"{"Regions": {"1": {"RegionID": 1, "Nodes": [7]}}}"#),
        DerpMapError::WrongType { .. }
    ));
    assert!(matches!(
        err(r#"{"Regions": {"1": {"RegionID": 1.5, "Nodes": []}}}"#),
        DerpMapError::WrongType { .. }
    ));
}

#[test]
fn go_style_keys_and_unknown_fields() {
    // The tag tailscale emits is `omitDefaultRegions`; lower-case keys appear
    // in hand-written maps. Unknown fields are ignored.
    let json = r#"{"omitDefaultRegions": true, "Extra": [1, 2],
        "regions": {"901": {"regionid": 901, "regioncode": "lab", "avoid": true,
            "HomeParams": {}, "nodes": [{"hostname": "s.lab", "stunport": 34780,
            "stunonly": true, "InsecureForTests": true, "STUNTestIP": "127.0.0.1"}]}}}"#;
    let map = decode(json.as_bytes()).unwrap();
    assert!(map.omit_default_regions);
    assert!(map.regions[0].avoid);
    let t = stun_targets(&map);
    assert_eq!(
        (t[0].region_id, t[0].port, t[0].host.as_str()),
        (901, 34780, "s.lab")
    );
    // An exact-case key wins over a case-insensitive one.
    let json = r#"{"Regions": {}, "omitdefaultregions": false, "OmitDefaultRegions": true}"#;
    assert!(decode(json.as_bytes()).unwrap().omit_default_regions);
}

#[test]
fn size_limit() {
    let mut big = String::from(r#"{"Regions": {}, "pad": ""#);
    big.push_str(&" ".repeat(MAX_DERP_MAP));
    big.push_str("\"}");
    assert!(matches!(
        decode(big.as_bytes()),
        Err(DerpMapError::TooLarge {
            max: MAX_DERP_MAP,
            ..
        })
    ));
    // Deep nesting is refused by serde_json's recursion limit, not the stack.
    let deep = format!(
        r#"{{"Regions": {{}}, "x": {}{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    assert!(matches!(
        decode(deep.as_bytes()),
        Err(DerpMapError::Json { .. })
    ));
}

#[test]
fn captive_endpoints_are_port80_relays() {
    let map = decode(
        br#"{"Regions":{
        "1":{"RegionID":1,"RegionCode":"a","Nodes":[
            {"Name":"1s","RegionID":1,"HostName":"s","IPv4":"203.0.113.10","STUNOnly":true,"CanPort80":true},
            {"Name":"1d","RegionID":1,"HostName":"d","IPv4":"203.0.113.40","CanPort80":true},
            {"Name":"1n","RegionID":1,"HostName":"n","IPv4":"203.0.113.41"},
            {"Name":"1h","RegionID":1,"HostName":"derp.example","CanPort80":true}]},
        "2":{"RegionID":2,"RegionCode":"b","Avoid":true,"Nodes":[
            {"Name":"2d","RegionID":2,"HostName":"d2","IPv4":"203.0.113.42","CanPort80":true}]},
        "3":{"RegionID":3,"RegionCode":"c","Nodes":[
            {"Name":"3d","RegionID":3,"HostName":"d","IPv4":"203.0.113.40","CanPort80":true}]}
    }}"#,
    )
    .unwrap();
    assert_eq!(
        captive_endpoints(&map),
        vec!["203.0.113.40".parse::<std::net::Ipv4Addr>().unwrap()],
        "STUN-only, no CanPort80, no fixed IPv4, avoided regions and duplicates are left out"
    );
}
