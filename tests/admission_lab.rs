//! Admission against the reference service (edgereach-acs) and real
//! headscale v0.29 / tailscaled v1.98 in the lab (tests/lab/mesh.sh):
//!
//! 1. a brand-new gateway (tailscaled running, never logged in; edgereach
//!    configured with only the service URL, account and token) registers,
//!    gets a pre-auth key minted through headscale's CLI and ends up an
//!    online node in headscale A, with no human step;
//! 2. the service re-assigns the account to cluster B (a second headscale):
//!    tailscaled moves to B's login server with the same node key, online
//!    there, and a migration event says so;
//! 3. the service refuses (403 with a reason), answers 500, hangs, sends
//!    garbage JSON, sends 10 MB: the daemon stays up and small, the status
//!    names each failure, the service sees a bounded number of attempts, a
//!    refusal is one event, and tailscaled is untouched; a daemon restarted
//!    meanwhile uses the stored assignment and leaves tailscaled alone;
//! 4. the service is healthy again: the daemon recovers.
//!
//! Test knobs: `admission.interval` 10 s, `admission.timeout` 3 s,
//! `admission.startup_spread` 3 s and `admission.retry_max` 20 s keep the
//! scenario short; the defaults are 10 min, 15 s, 90 s and 5 min.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::acs::{rss_kib, srv_addr, Acs};
use common::lab::{Lab, LabDaemon};
use common::mesh::{mesh, missing_tools};
use common::set_key;

const ACS_IP: &str = "203.0.113.60";
const HS_A: &str = "http://203.0.113.30:8080";
const HS_B: &str = "https://203.0.113.31";
const TOKEN: &str = "lab-token-7f3a9c";

fn acs_config(lab: &Lab, cluster: &str, fault: &str) -> String {
    let tools = common::mesh::TOOLS;
    let d = lab.path();
    let user = |inst: &str| {
        std::fs::read_to_string(d.join(inst).join("userid"))
            .expect("headscale user id")
            .trim()
            .to_string()
    };
    let cli = |inst: &str| {
        format!(
            "[\"env\", \"HOME={dir}\", \"{tools}/headscale\", \"-c\", \"{dir}/config.yaml\", \"--force\"]",
            dir = d.join(inst).display()
        )
    };
    format!(
        r#"listen = "{ACS_IP}:8080"
tokens_file = "{tokens}"
fault = "{fault}"

[overrides]
acme = "{cluster}"

[[cluster]]
id = "A"
headscale_url = "{HS_A}"
derp_map = "{derp}"
[cluster.headscale_cli]
command = {cli_a}
user = "{user_a}"

[[cluster]]
id = "B"
headscale_url = "{HS_B}"
derp_map = "{derp}"
[cluster.headscale_cli]
command = {cli_b}
user = "{user_b}"
"#,
        tokens = d.join("acs-tokens").display(),
        derp = d.join("derp.json").display(),
        cli_a = cli("headscale"),
        cli_b = cli("headscale-b"),
        user_a = user("headscale"),
        user_b = user("headscale-b"),
    )
}

/// headscale's node list of instance `inst` (a or b) as JSON.
fn nodes(lab: &Lab, inst: &str) -> serde_json::Value {
    let out = mesh(
        lab,
        "hs",
        &[inst, "nodes", "list", "-o", "json"],
        "headscale",
    );
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

/// How many pre-auth keys headscale `inst` holds.
fn minted_keys(lab: &Lab, inst: &str) -> usize {
    let out = mesh(
        lab,
        "hs",
        &[inst, "preauthkeys", "list", "-o", "json"],
        "headscale",
    );
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| v.as_array().map(Vec::len))
        .unwrap_or(0)
}

fn online_node(lab: &Lab, inst: &str, name: &str) -> Option<serde_json::Value> {
    nodes(lab, inst)
        .as_array()?
        .iter()
        .find(|n| n["name"] == name && n["online"] == true)
        .cloned()
}

fn wait_online(lab: &Lab, inst: &str, name: &str) -> (serde_json::Value, Duration) {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(30) {
        if let Some(n) = online_node(lab, inst, name) {
            return (n, t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let hs_log = if inst == "a" {
        "headscale"
    } else {
        "headscale-b"
    };
    panic!(
        "{name} not online in headscale {inst}: {}\n{hs_log} log:\n{}\ntailscaled log:\n{}",
        nodes(lab, inst),
        common::mesh::log_tail(lab, hs_log),
        common::mesh::log_tail(lab, "tailscaled-gw")
    );
}

/// tailscaled's own view: (BackendState, Self.PublicKey).
fn ts_self(lab: &Lab) -> (String, String) {
    let out = mesh(lab, "cli", &["gw", "status", "--json"], "tailscaled-gw");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    (
        v["BackendState"].as_str().unwrap_or_default().to_string(),
        v["Self"]["PublicKey"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

fn event_texts(s: &serde_json::Value, kind: &str) -> Vec<String> {
    s["events"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e["kind"] == kind)
                .filter_map(|e| e["message"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn service_requests(lab: &Lab, acs: &Acs) -> u64 {
    acs.get(lab, &format!("{ACS_IP}:8080"), "/stats")
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["requests"].as_u64())
        .unwrap_or(0)
}

#[test]
fn new_gateway_joins_migrates_and_survives_a_broken_service() {
    need_root!("new_gateway_joins_migrates_and_survives_a_broken_service");
    if let Some(why) = missing_tools() {
        skip!(
            "new_gateway_joins_migrates_and_survives_a_broken_service",
            "{why}"
        );
    }
    if let Err(why) = common::acs::acs_binary() {
        skip!(
            "new_gateway_joins_migrates_and_survives_a_broken_service",
            "{why}"
        );
    }
    let t_all = Instant::now();
    let lab = Lab::up(&[]);
    mesh(&lab, "headscale", &[], "headscale");
    mesh(&lab, "headscale", &["b"], "headscale-b");
    std::fs::write(lab.path().join("acs-tokens"), format!("{TOKEN}\n")).unwrap();
    srv_addr(&lab, ACS_IP);
    let acs = Acs::start(&lab, "acs", &acs_config(&lab, "A", ""));
    // A brand-new node: tailscaled runs, nobody ran `tailscale up`.
    mesh(&lab, "tailscaled", &["gwhard", "gw"], "tailscaled-gw");
    assert_eq!(ts_self(&lab).0, "NeedsLogin");

    let token = lab.path().join("gw-token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let sock = lab.path().join("ts-gw/tailscaled.sock");
    let config = |c: String| {
        let c = set_key(&c, "admission", "url", &format!("\"http://{ACS_IP}:8080\""));
        let c = set_key(&c, "admission", "account", "\"acme\"");
        let tf = format!("\"{}\"", token.display());
        let c = set_key(&c, "admission", "token_file", &tf);
        // The lab's service speaks plain HTTP.
        let c = set_key(&c, "admission", "allow_insecure_http", "true");
        // Test knobs (defaults 10m, 15s, 90s and 5m).
        let c = set_key(&c, "admission", "interval", "\"10s\"");
        let c = set_key(&c, "admission", "timeout", "\"3s\"");
        let c = set_key(&c, "admission", "startup_spread", "\"3s\"");
        let c = set_key(&c, "admission", "retry_max", "\"20s\"");
        set_key(
            &c,
            "tailscale",
            "socket",
            &format!("\"{}\"", sock.display()),
        )
    };
    let d: LabDaemon = lab.daemon("gwhard", config);

    // 1. Brand-new gateway: registered, provisioned, online in A.
    let t = d.wait_for(
        "registration and tailscaled Running on cluster A",
        Duration::from_secs(60),
        |s| {
            s["admission"]["cluster_id"] == "A"
                && s["tailscale"]["backend_state"] == "Running"
                && s["tailscale"]["control_url"] == HS_A
        },
    );
    let s = d.status().unwrap();
    let gw = s["gateway"]["id"].as_str().unwrap().to_string();
    let (node, t_online) = wait_online(&lab, "a", &gw);
    eprintln!(
        "1. new gateway {gw}: Running on cluster A after {t:?}, online in headscale A {t_online:?} later: node id {} ips {}",
        node["id"], node["ip_addresses"]
    );
    eprintln!("   admission: {}", s["admission"]);
    eprintln!("   events: {:?}", event_texts(&s, "tailscale.provisioned"));
    let (_, key_a) = ts_self(&lab);
    assert!(key_a.starts_with("nodekey:"), "{key_a}");
    let stored =
        std::fs::read_to_string(d.config.with_file_name("state").join("admission.json")).unwrap();
    assert!(stored.contains("\"cluster_id\": \"A\""), "{stored}");
    assert!(
        !stored.contains("hskey") && !stored.contains("auth_key\""),
        "{stored}"
    );
    let log = d.log();
    assert!(!log.contains(TOKEN), "the token never reaches the log");
    assert!(
        d.config
            .with_file_name("state")
            .join("admission-derp.json")
            .is_file(),
        "the cluster's DERP map is stored for netcheck"
    );

    // 2. Re-assignment to cluster B: same node key, online in B.
    acs.reconfigure(&lab, &acs_config(&lab, "B", ""));
    let t = d.wait_for(
        "tailscaled moved to cluster B",
        Duration::from_secs(60),
        |s| {
            s["admission"]["cluster_id"] == "B"
                && s["tailscale"]["control_url"] == HS_B
                && s["tailscale"]["backend_state"] == "Running"
        },
    );
    let (node_b, t_online) = wait_online(&lab, "b", &gw);
    let (state, key_b) = ts_self(&lab);
    let s = d.status().unwrap();
    let migrated = event_texts(&s, "tailscale.migrated");
    eprintln!(
        "2. re-assigned: on cluster B after {t:?}, online in headscale B {t_online:?} later (node id {}); node key before {key_a} after {key_b}",
        node_b["id"]
    );
    eprintln!(
        "   events: {migrated:?} {:?}",
        event_texts(&s, "assignment.changed")
    );
    assert_eq!(state, "Running");
    assert_eq!(key_a, key_b, "the node key is kept across the move");
    assert!(
        migrated.iter().any(|m| m.contains("node key kept")),
        "{migrated:?}"
    );
    assert_eq!(node_b["node_key"].as_str(), Some(key_b.as_str()));

    // Periodic registrations do not mint keys: only the login and the move did.
    let keys_b = minted_keys(&lab, "b");
    let regs = s["admission"]["registrations"].as_u64().unwrap();
    d.wait_for("two more registrations", Duration::from_secs(40), |s| {
        s["admission"]["registrations"].as_u64().unwrap_or(0) >= regs + 2
    });
    eprintln!(
        "   pre-auth keys: A {}, B {} (each includes mesh.sh's own); B after two more registrations {}",
        minted_keys(&lab, "a"),
        keys_b,
        minted_keys(&lab, "b")
    );
    assert_eq!(minted_keys(&lab, "a"), 2, "mesh.sh's key + the login's");
    assert_eq!(
        minted_keys(&lab, "b"),
        keys_b,
        "no key per periodic registration"
    );

    // 3. A broken service: bounded, clear, tailscaled untouched.
    let ts_pid_before = std::fs::read_to_string(lab.path().join("run/tailscaled-gw.proc")).unwrap();
    let daemon_pid = d.child.id();
    for (fault, expect) in [
        (
            "reject",
            "service refused the registration (403): account_suspended",
        ),
        ("500", "service error (500)"),
        ("hang", "no complete answer within 3s"),
        ("garbage", "answer is not the bootstrap JSON"),
        ("huge", "answer body larger than 65536 bytes"),
    ] {
        let before = service_requests(&lab, &acs);
        let t0 = Instant::now();
        acs.reconfigure(&lab, &acs_config(&lab, "B", fault));
        let took = d.wait_for(&format!("fault {fault}"), Duration::from_secs(45), |s| {
            s["admission"]["last_error"]
                .as_str()
                .is_some_and(|e| e.contains(expect))
        });
        // Let the backoff run a little to see that it stays bounded.
        std::thread::sleep(Duration::from_secs(6));
        let s = d.status().unwrap();
        let attempts = service_requests(&lab, &acs) - before;
        let rss = rss_kib(daemon_pid).unwrap_or(0);
        let (ts_state, ts_key) = ts_self(&lab);
        eprintln!(
            "3. fault {fault}: seen after {took:?}; {attempts} attempts in {:.0?}; daemon RSS {rss} KiB; status {} / {:?}; tailscaled {ts_state}",
            t0.elapsed(),
            s["admission"]["state"],
            s["admission"]["reason"]
        );
        assert!(d.status().is_some(), "the daemon still answers");
        assert_eq!(s["admission"]["state"], "degraded");
        assert_eq!(s["admission"]["cluster_id"], "B", "the assignment is kept");
        assert!(
            attempts <= 10,
            "{fault}: {attempts} attempts is not backing off"
        );
        assert!(rss < 64 * 1024, "{fault}: daemon RSS {rss} KiB");
        assert_eq!(
            (ts_state.as_str(), ts_key.as_str()),
            ("Running", key_b.as_str())
        );
        assert_eq!(s["tailscale"]["control_url"], HS_B);
    }
    let s = d.status().unwrap();
    let failed = event_texts(&s, "registration.failed");
    let rejected = event_texts(&s, "registration.rejected");
    eprintln!(
        "   failure events ({}): {failed:?} {rejected:?}",
        failed.len()
    );
    assert_eq!(rejected.len(), 1, "a refusal is one event: {rejected:?}");
    assert!(
        failed.len() <= 4,
        "one event per kind of failure: {failed:?}"
    );
    assert_eq!(
        std::fs::read_to_string(lab.path().join("run/tailscaled-gw.proc")).unwrap(),
        ts_pid_before,
        "tailscaled was not restarted"
    );

    // A reboot while the service is broken: the stored assignment is used,
    // tailscaled is left as it is.
    let mut d = d;
    let (stopped, _) = d.stop();
    assert!(stopped, "clean stop");
    drop(d);
    let d = lab.daemon("gwhard", config);
    let t = d.wait_for(
        "restart on the stored assignment, service still broken",
        Duration::from_secs(30),
        |s| {
            s["admission"]["from_storage"] == true
                && s["admission"]["cluster_id"] == "B"
                && s["admission"]["last_error"].is_string()
                && s["tailscale"]["backend_state"] == "Running"
        },
    );
    let s = d.status().unwrap();
    eprintln!(
        "3b. restarted with the service broken: after {t:?} {} / {}; tailscaled {} on {}",
        s["admission"]["state"],
        s["admission"]["reason"],
        s["tailscale"]["backend_state"],
        s["tailscale"]["control_url"]
    );
    assert_eq!(s["tailscale"]["control_url"], HS_B);
    assert_eq!(ts_self(&lab), ("Running".to_string(), key_b.clone()));
    assert!(event_texts(&s, "tailscale.provisioned").is_empty());
    assert!(event_texts(&s, "tailscale.migrated").is_empty());

    // 4. Healthy again.
    acs.reconfigure(&lab, &acs_config(&lab, "B", ""));
    let t = d.wait_for("recovery", Duration::from_secs(90), |s| {
        s["admission"]["state"] == "ok" && s["admission"]["last_error"].is_null()
    });
    eprintln!("4. recovered {t:?} after the service was fixed");
    assert_eq!(ts_self(&lab).1, key_b);

    drop(d);
    let (clean, report) = lab.down_and_check();
    assert!(clean, "lab left over:\n{report}");
    eprintln!("total {:?}", t_all.elapsed());
}
