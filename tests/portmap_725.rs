//! A router that only accepts permanent UPnP leases: AddPortMapping with a
//! lease fails with 725 OnlyPermanentLeasesSupported. edgereach must fall back
//! to lease 0 and, because such a mapping never expires, delete it on SIGTERM.
//! miniupnpd never answers 725, so the router is tests/lab/fake725igd.py,
//! started in the hard router's namespace of a lab with miniupnpd off.

#[macro_use]
mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::lab::{Lab, LabDaemon};

/// Upper bound on the fake's life, whatever happens to the test.
const FAKE_SECONDS: &str = "90";

/// The fake IGD, killed by its PID when dropped (`ip netns exec` execs the
/// interpreter, so the child's PID is the fake's).
struct FakeIgd {
    child: Child,
    log: PathBuf,
}

impl FakeIgd {
    fn start(lab: &Lab, extra: &[&str]) -> Self {
        let log = lab.path().join("fake725igd.log");
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/fake725igd.py");
        let child = Command::new("ip")
            .args(["netns", "exec", lab.get("NS_RHARD"), "/usr/bin/python3"])
            .arg(&script)
            .arg(FAKE_SECONDS)
            .args([
                "--lan",
                lab.get("HARD_LAN_GW"),
                "--wan",
                lab.get("HARD_WAN_IP"),
            ])
            .args(extra)
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn fake725igd.py");
        let mut fake = Self { child, log };
        let start = Instant::now();
        while !fake.log().starts_with("ready ") {
            if let Ok(Some(st)) = fake.child.try_wait() {
                panic!("fake725igd.py exited ({st}) before ready:\n{}", fake.log());
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "fake725igd.py not ready in 5 s:\n{}",
                fake.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        fake
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The SOAP action lines (ADD, DELETE, ...), without SSDP/HTTP/table noise.
    fn actions(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains(" -> ") && !l.starts_with("SSDP ") && !l.starts_with("HTTP "))
            .map(str::to_string)
            .collect()
    }
}

/// The external port of the daemon's first mapping, as the status shows it.
fn external_port(d: &LabDaemon) -> String {
    d.status().unwrap()["portmap"]["mappings"][0]["external"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string()
}

impl Drop for FakeIgd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn permanent_lease_only_router_gets_lease_0_and_no_leak() {
    need_root!("permanent_lease_only_router_gets_lease_0_and_no_leak");
    let t0 = Instant::now();
    // Declared in this order so they drop in reverse: daemon, fake, lab.
    let lab = Lab::up(&[("LAB_UPNP", "no"), ("LAB_NATPMP", "no"), ("LAB_PCP", "no")]);
    let fake = FakeIgd::start(&lab, &[]);
    // The fake IGD forwards nothing: the proof would rightly find its
    // mapping dead. These tests are about the SOAP exchange, so it is off.
    let mut d = lab.daemon("gwhard", |c| {
        common::set_key(
            &c.replace("verify_interval = \"30s\"", "verify_interval = \"2s\""),
            "portmap",
            "prove",
            "false",
        )
    });
    let client = format!("{}:41641", lab.get("GWHARD_IP"));
    let external = format!("{}:41641", lab.get("HARD_WAN_IP"));

    let took = d.wait_for("permanent UPnP mapping", Duration::from_secs(15), |s| {
        let m = &s["portmap"]["mappings"][0];
        m["state"] == "ok"
            && m["method"] == "upnp"
            && m["lease_s"] == 0
            && m["external"] == external
    });
    eprintln!("mapped with lease 0 {took:?} after start");
    let s = d.status().unwrap();
    assert!(
        s["portmap"]["mappings"][0]["expires"].is_null(),
        "a permanent mapping has no expiry: {}",
        s["portmap"]["mappings"][0]
    );

    // It asked for a lease first, got 725, then added the same port with 0.
    let adds: Vec<String> = fake
        .actions()
        .into_iter()
        .filter(|l| l.starts_with("ADD"))
        .collect();
    let asked = format!("ADD 41641 UDP {client} lease=");
    assert!(
        adds.len() >= 2
            && adds[0].starts_with(&asked)
            && !adds[0].starts_with(&format!("{asked}0 "))
            && adds[0].ends_with(" -> 725")
            && adds[1] == format!("{asked}0 -> ok"),
        "expected a leased ADD refused with 725, then a lease=0 ADD; fake's log:\n{}",
        fake.log()
    );

    // Verification (every 2 s here) finds the permanent entry and keeps it.
    let first = s["portmap"]["mappings"][0]["last_verified"].clone();
    let took = d.wait_for("verification", Duration::from_secs(10), |s| {
        let m = &s["portmap"]["mappings"][0];
        m["last_verified"] != first && m["state"] == "ok" && m["lease_s"] == 0
    });
    assert!(
        fake.actions()
            .contains(&"GETSPECIFIC 41641 UDP -> ok".to_string()),
        "verified without asking the router:\n{}",
        fake.log()
    );
    let adds = fake
        .actions()
        .iter()
        .filter(|l| l.starts_with("ADD"))
        .count();
    assert_eq!(adds, 2, "re-added after verification:\n{}", fake.log());
    eprintln!("verified as held {took:?} after mapping");

    let (ok, stop_took) = d.stop();
    eprintln!("SIGTERM -> exit in {stop_took:?}");
    assert!(ok, "unclean exit:\n{}", d.log());
    assert!(
        stop_took < Duration::from_secs(2),
        "exit took {stop_took:?}:\n{}",
        d.log()
    );

    // The permanent mapping was deleted, and nothing was added after that.
    let actions = fake.actions();
    let deleted = actions
        .iter()
        .rposition(|l| l == "DELETE 41641 UDP -> ok")
        .unwrap_or_else(|| {
            panic!(
                "no DELETE on shutdown: permanent mapping leaked; fake's log:\n{}",
                fake.log()
            )
        });
    assert!(
        !actions[deleted..].iter().any(|l| l.starts_with("ADD")),
        "mapping re-added after the DELETE:\n{}",
        fake.log()
    );
    let log = fake.log();
    let table = log.lines().rfind(|l| l.starts_with("table: "));
    assert_eq!(
        table,
        Some("table: (empty)"),
        "router table not empty:\n{log}"
    );
    eprintln!("fake IGD actions:\n  {}", actions.join("\n  "));

    drop(d);
    drop(fake);
    let (clean, report) = lab.down_and_check();
    assert!(clean, "{report}");
    eprintln!("test took {:?}", t0.elapsed());
}

/// A router that checks conflicts before leases: AddPortMapping answers 718
/// (another host holds 41641), then AddAnyPortMapping answers 725 for a
/// lease; edgereach must retry AddAny with lease 0, and delete it on exit.
#[test]
fn taken_port_and_permanent_only_lease_via_add_any() {
    need_root!("taken_port_and_permanent_only_lease_via_add_any");
    let lab = Lab::up(&[("LAB_UPNP", "no"), ("LAB_NATPMP", "no"), ("LAB_PCP", "no")]);
    let other = format!("41641:{}", lab.get("GWHARD2_IP"));
    let fake = FakeIgd::start(&lab, &["--preload", &other, "--conflict-first"]);
    // The fake IGD forwards nothing (see above): no proof.
    let mut d = lab.daemon("gwhard", |c| {
        common::set_key(&c, "portmap", "prove", "false")
    });
    d.wait_for(
        "permanent mapping on another port",
        Duration::from_secs(15),
        |s| {
            let m = &s["portmap"]["mappings"][0];
            m["method"] == "upnp"
                && m["lease_s"] == 0
                && m["same_port"] == false
                && m["external"].is_string()
        },
    );
    let actions = fake.actions();
    assert!(
        actions
            .iter()
            .any(|l| l.starts_with("ADDANY ") && l.contains("lease=0 -> ok")),
        "no lease=0 AddAnyPortMapping:\n{}",
        fake.log()
    );
    let port = external_port(&d);
    let (ok, took) = d.stop();
    assert!(
        ok && took < Duration::from_secs(2),
        "exit {ok} in {took:?}:\n{}",
        d.log()
    );
    assert!(
        fake.actions().contains(&format!("DELETE {port} UDP -> ok")),
        "permanent mapping on {port} leaked:\n{}",
        fake.log()
    );
    eprintln!("fake IGD actions:\n  {}", fake.actions().join("\n  "));
}

/// A strict IGDv1: another host holds 41641 and AddAnyPortMapping is unknown
/// (401). edgereach must walk other ports with AddPortMapping (lease 0 here,
/// the fake takes no other), say that it got another port, and delete it.
#[test]
fn igd_v1_without_add_any_gets_another_port() {
    need_root!("igd_v1_without_add_any_gets_another_port");
    let lab = Lab::up(&[("LAB_UPNP", "no"), ("LAB_NATPMP", "no"), ("LAB_PCP", "no")]);
    let other = format!("41641:{}", lab.get("GWHARD2_IP"));
    let fake = FakeIgd::start(&lab, &["--preload", &other, "--no-add-any"]);
    // The fake IGD forwards nothing (see above): no proof.
    let mut d = lab.daemon("gwhard", |c| {
        common::set_key(&c, "portmap", "prove", "false")
    });
    d.wait_for("mapping on another port", Duration::from_secs(15), |s| {
        let m = &s["portmap"]["mappings"][0];
        m["method"] == "upnp" && m["same_port"] == false && m["external"].is_string()
    });
    let actions = fake.actions();
    assert!(
        actions
            .iter()
            .any(|l| l.starts_with("UNKNOWN AddAnyPortMapping -> 401")),
        "AddAnyPortMapping was not tried first:\n{}",
        fake.log()
    );
    let port = external_port(&d);
    assert_ne!(port, "41641");
    assert!(
        actions
            .iter()
            .any(|l| l.starts_with(&format!("ADD {port} UDP ")) && l.ends_with("-> ok")),
        "no AddPortMapping granted {port}:\n{}",
        fake.log()
    );
    let (ok, _) = d.stop();
    assert!(ok, "{}", d.log());
    assert!(
        fake.actions().contains(&format!("DELETE {port} UDP -> ok")),
        "mapping on {port} leaked:\n{}",
        fake.log()
    );
    eprintln!("fake IGD actions:\n  {}", fake.actions().join("\n  "));
}
