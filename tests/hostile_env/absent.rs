//! Empty or null where "absent" was meant (issue 16).
//!
//! Property tests over the decoders, hand-rolled (no proptest in the offline
//! registry): every optional field of a valid document is, one at a time and
//! then in random combinations, removed, `null`, `""` (strings) or `[]`
//! (arrays), and the document must still decode; every required field made
//! absent or `null` must still be refused.

use serde_json::{json, Value};

fn at<'a>(v: &'a mut Value, path: &[&str]) -> &'a mut Value {
    path.iter().fold(v, |v, k| match v {
        Value::Array(a) => &mut a[k.parse::<usize>().unwrap()],
        other => &mut other[*k],
    })
}

/// The field at `path` removed, `null`, and empty when it is a string or array.
fn absent_forms(base: &Value, path: &[&str]) -> Vec<(String, Value)> {
    let (parent, last) = path.split_at(path.len() - 1);
    let mut out = Vec::new();
    let mut removed = base.clone();
    if let Value::Object(m) = at(&mut removed, parent) {
        m.remove(last[0]);
    }
    out.push((format!("{} removed", path.join(".")), removed));
    let mut forms = vec![("null", Value::Null)];
    match at(&mut base.clone(), path) {
        Value::String(_) => forms.push(("\"\"", json!(""))),
        Value::Array(_) => forms.push(("[]", json!([]))),
        _ => {}
    }
    for (name, f) in forms {
        let mut v = base.clone();
        *at(&mut v, path) = f;
        out.push((format!("{} = {name}", path.join(".")), v));
    }
    out
}

struct Xorshift(u64);
impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Checks one decoder: `ok` must accept every absent form of `optional`
/// (alone and 300 random combinations), and refuse `required` fields
/// removed or `null`.
fn check_decoder(
    name: &str,
    base: Value,
    optional: &[&[&str]],
    required: &[&[&str]],
    ok: impl Fn(&[u8]) -> Result<(), String>,
) {
    let bytes = |v: &Value| serde_json::to_vec(v).unwrap();
    ok(&bytes(&base)).unwrap_or_else(|e| panic!("{name}: base refused: {e}"));
    let mut failures = Vec::new();
    for path in optional {
        for (what, v) in absent_forms(&base, path) {
            if let Err(e) = ok(&bytes(&v)) {
                failures.push(format!("{name}: {what}: refused: {e}"));
            }
        }
    }
    for path in required {
        // Absent and null only: whether "" is a value (a peer's empty
        // HostName) or refused (an empty cluster_id) is the decoder's call.
        for (what, v) in absent_forms(&base, path).into_iter().take(2) {
            if ok(&bytes(&v)).is_ok() {
                failures.push(format!("{name}: required {what}: accepted"));
            }
        }
    }
    let mut rng = Xorshift(0x9e37_79b9_7f4a_7c15 ^ name.len() as u64);
    for _ in 0..300 {
        let mut v = base.clone();
        // Deepest paths first, so a removed parent does not hide a child.
        let mut picked: Vec<_> = optional
            .iter()
            .filter(|_| rng.next().is_multiple_of(2))
            .collect();
        picked.sort_by_key(|p| std::cmp::Reverse(p.len()));
        let mut what = Vec::new();
        for path in picked {
            let forms = absent_forms(&v, path);
            let (w, f) = &forms[(rng.next() % forms.len() as u64) as usize];
            what.push(w.clone());
            v = f.clone();
        }
        if let Err(e) = ok(&bytes(&v)) {
            failures.push(format!("{name}: {}: refused: {e}", what.join(", ")));
            break;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn derp_map_doc() -> Value {
    json!({
        "Regions": {"900": {
            "RegionID": 900, "RegionCode": "lab", "RegionName": "Lab", "Avoid": false,
            "Nodes": [{
                "Name": "900a", "RegionID": 900, "HostName": "derp.lab.example",
                "IPv4": "203.0.113.10", "IPv6": "2001:db8::10", "STUNPort": 3478,
                "STUNOnly": false, "DERPPort": 443, "CanPort80": true
            }]
        }},
        "OmitDefaultRegions": true
    })
}

const DERP_OPTIONAL: &[&[&str]] = &[
    &["OmitDefaultRegions"],
    &["Regions", "900", "RegionCode"],
    &["Regions", "900", "RegionName"],
    &["Regions", "900", "Avoid"],
    &["Regions", "900", "Nodes", "0", "Name"],
    &["Regions", "900", "Nodes", "0", "RegionID"],
    &["Regions", "900", "Nodes", "0", "IPv4"],
    &["Regions", "900", "Nodes", "0", "IPv6"],
    &["Regions", "900", "Nodes", "0", "STUNPort"],
    &["Regions", "900", "Nodes", "0", "STUNOnly"],
    &["Regions", "900", "Nodes", "0", "DERPPort"],
    &["Regions", "900", "Nodes", "0", "CanPort80"],
];

#[test]
fn derp_map_treats_null_and_empty_optionals_as_absent() {
    use edgereach::netcheck::derpmap::decode;
    let ok = |b: &[u8]| decode(b).map(|_| ()).map_err(|e| e.to_string());
    check_decoder(
        "derp map",
        derp_map_doc(),
        DERP_OPTIONAL,
        &[
            &["Regions", "900", "RegionID"],
            &["Regions", "900", "Nodes", "0", "HostName"],
        ],
        ok,
    );
    // Go's nil map, nil slice and nil pointers: none, not an error.
    for doc in [
        json!({"Regions": null}),
        json!({"Regions": {"900": null}}),
        json!({"Regions": {"900": {"RegionID": 900, "Nodes": null}}}),
        json!({"Regions": {"900": {"RegionID": 900, "Nodes": [null]}}}),
    ] {
        let m = decode(&serde_json::to_vec(&doc).unwrap()).unwrap_or_else(|e| panic!("{doc}: {e}"));
        assert!(
            edgereach::netcheck::derpmap::stun_targets(&m).is_empty(),
            "{doc}"
        );
    }
    // `Regions` and `Nodes` themselves stay required.
    assert!(decode(br#"{"OmitDefaultRegions": true}"#).is_err());
    assert!(decode(br#"{"Regions": {"900": {"RegionID": 900}}}"#).is_err());
}

#[test]
fn admission_answer_treats_null_and_empty_optionals_as_absent() {
    use edgereach::admission::codec::{decode_request, decode_response, DerpMapRef};
    let answer = json!({
        "cluster_id": "eu-1", "headscale_url": "https://hs.example", "auth_mode": "authkey",
        "auth_key": "tskey-auth-abc123", "derp_map": "https://hs.example/derp.json", "note": "hi"
    });
    let ok = |b: &[u8]| decode_response(b).map(|_| ()).map_err(|e| e.to_string());
    check_decoder(
        "bootstrap answer",
        answer.clone(),
        &[&["auth_key"], &["derp_map"], &["note"]],
        &[&["cluster_id"], &["headscale_url"], &["auth_mode"]],
        ok,
    );
    for key in ["cluster_id", "headscale_url", "auth_mode"] {
        let mut v = answer.clone();
        v[key] = json!("");
        assert!(
            ok(&serde_json::to_vec(&v).unwrap()).is_err(),
            "{key} = \"\" accepted"
        );
    }
    let mut blank = answer.clone();
    blank["auth_key"] = json!("");
    blank["derp_map"] = json!("");
    let r = decode_response(&serde_json::to_vec(&blank).unwrap()).unwrap();
    assert!(r.auth_key.is_none() && r.derp_map.is_none() && r.note.is_some());
    // An inline DERP map as Go writes it, every optional field absent in turn.
    let mut inline = answer.clone();
    inline["derp_map"] = derp_map_doc();
    let opt: Vec<Vec<&str>> = DERP_OPTIONAL
        .iter()
        .map(|p| {
            std::iter::once("derp_map")
                .chain(p.iter().copied())
                .collect()
        })
        .collect();
    let opt: Vec<&[&str]> = opt.iter().map(Vec::as_slice).collect();
    check_decoder(
        "bootstrap answer, inline DERP map",
        inline.clone(),
        &opt,
        &[],
        ok,
    );
    inline["derp_map"] = json!({"Regions": null});
    let r = decode_response(&serde_json::to_vec(&inline).unwrap()).unwrap();
    assert!(matches!(r.derp_map, Some(DerpMapRef::Inline(_))));

    let request = json!({
        "account": "acme", "plan": "std", "want_region": "eu", "gateway_id": "gw-1",
        "agent_version": "0.1.0", "arch": "aarch64", "current_cluster_id": "eu-1",
        "needs_auth_key": true,
        "netcheck": {"time": "2026-01-01T00:00:00Z", "udp": true, "ipv4": "203.0.113.9:41641",
            "mapping_varies_by_dest_ip": false, "port_mapping": ["upnp"],
            "preferred_region": "eu", "preferred_latency_ms": 12.5}
    });
    let ok = |b: &[u8]| decode_request(b).map(|_| ()).map_err(|e| e.to_string());
    check_decoder(
        "bootstrap request",
        request,
        &[
            &["plan"],
            &["want_region"],
            &["gateway_id"],
            &["agent_version"],
            &["arch"],
            &["current_cluster_id"],
            &["needs_auth_key"],
            &["netcheck"],
            &["netcheck", "time"],
            &["netcheck", "udp"],
            &["netcheck", "ipv4"],
            &["netcheck", "mapping_varies_by_dest_ip"],
            &["netcheck", "port_mapping"],
            &["netcheck", "preferred_region"],
            &["netcheck", "preferred_latency_ms"],
        ],
        &[&["account"]],
        ok,
    );
}

#[test]
fn localapi_answers_treat_null_and_empty_optionals_as_absent() {
    use edgereach::tailscale::api::{decode_notify, decode_ping, decode_prefs, decode_status};
    let peer = json!({
        "PublicKey": "nodekey:ab", "HostName": "gw", "DNSName": "gw.ts.net.",
        "TailscaleIPs": ["100.64.0.1"], "Tags": ["tag:gw"], "Addrs": ["192.0.2.2:41641"],
        "CurAddr": "192.0.2.2:41641", "Relay": "lab", "Online": true, "Active": false
    });
    let status = json!({
        "Version": "1.98.0", "BackendState": "Running", "Self": peer.clone(),
        "Health": ["x"], "Peer": {"nodekey:ab": peer}
    });
    let peer_optional = [
        "DNSName",
        "TailscaleIPs",
        "Tags",
        "Addrs",
        "CurAddr",
        "Relay",
        "Online",
        "Active",
    ];
    let mut optional: Vec<Vec<&str>> = vec![vec!["Self"], vec!["Health"], vec!["Peer"]];
    for f in peer_optional {
        optional.push(vec!["Self", f]);
        optional.push(vec!["Peer", "nodekey:ab", f]);
    }
    let optional: Vec<&[&str]> = optional.iter().map(Vec::as_slice).collect();
    check_decoder(
        "LocalAPI status",
        status,
        &optional,
        &[
            &["Version"],
            &["BackendState"],
            &["Self", "PublicKey"],
            &["Peer", "nodekey:ab", "HostName"],
        ],
        |b| decode_status(b).map(|_| ()).map_err(|e| e.to_string()),
    );
    check_decoder(
        "LocalAPI ping",
        json!({"IP": "100.64.0.2", "Err": "", "LatencySeconds": 0.01, "Endpoint": "192.0.2.3:41641",
            "DERPRegionID": 0, "DERPRegionCode": "", "PeerRelay": ""}),
        &[
            &["Err"],
            &["LatencySeconds"],
            &["Endpoint"],
            &["DERPRegionID"],
            &["DERPRegionCode"],
            &["PeerRelay"],
        ],
        &[&["IP"]],
        |b| decode_ping(b).map(|_| ()).map_err(|e| e.to_string()),
    );
    check_decoder(
        "LocalAPI prefs",
        json!({"ControlURL": "https://hs.example", "WantRunning": true, "LoggedOut": false, "Hostname": "gw"}),
        &[&["LoggedOut"], &["Hostname"]],
        &[&["ControlURL"], &["WantRunning"]],
        |b| decode_prefs(b).map(|_| ()).map_err(|e| e.to_string()),
    );
    check_decoder(
        "LocalAPI notify",
        json!({"Version": "1.98.0", "State": 6, "ErrMessage": "x"}),
        &[&["Version"], &["State"], &["ErrMessage"]],
        &[],
        |b| decode_notify(b).map(|_| ()).map_err(|e| e.to_string()),
    );
    let n = decode_notify(br#"{"Version": "", "ErrMessage": ""}"#).unwrap();
    assert!(n.version.is_none() && n.err_message.is_none());
}
