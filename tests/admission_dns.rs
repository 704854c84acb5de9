//! The admission service moves to another address in DNS (the seed's
//! nginx/Tengine lesson): a lab resolver (dnsmasq in ns srv, answers with a
//! 2 s TTL from a hosts file) is the gateway namespace's only nameserver
//! (/etc/netns/NS/resolv.conf, which `ip netns exec` mounts over
//! /etc/resolv.conf). The name first points at service 1, then at service 2.
//!
//! Shown: once the TTL has run out, no registration reaches the old address
//! (service 1's own request counter stays put) and the next one goes to the
//! new address; with the resolver stopped, registrations keep working with
//! the last good address.

#[macro_use]
mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::acs::{srv_addr, Acs};
use common::lab::Lab;
use common::mesh::mesh;
use common::set_key;

const DNS_IP: &str = "203.0.113.53";
const ACS1: &str = "203.0.113.61";
const ACS2: &str = "203.0.113.62";
const NAME: &str = "acs.lab.test";
const TTL_S: u64 = 2;

fn acs_config(listen: &str, cluster: &str) -> String {
    format!(
        "listen = \"{listen}:8080\"\n\n[[cluster]]\nid = \"{cluster}\"\nheadscale_url = \"http://203.0.113.30:8080\"\nauth_key = \"lab-key\"\n"
    )
}

/// /etc/netns/NS/resolv.conf for one lab namespace, removed on drop.
struct NetnsResolvConf(PathBuf);

impl NetnsResolvConf {
    fn new(ns: &str, nameserver: &str) -> Self {
        let dir = PathBuf::from("/etc/netns").join(ns);
        std::fs::create_dir_all(&dir).expect("create /etc/netns/NS");
        std::fs::write(
            dir.join("resolv.conf"),
            format!("nameserver {nameserver}\noptions timeout:1 attempts:1\n"),
        )
        .unwrap();
        Self(dir)
    }
}

impl Drop for NetnsResolvConf {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn requests(lab: &Lab, acs: &Acs, listen: &str) -> u64 {
    acs.get(lab, &format!("{listen}:8080"), "/stats")
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["requests"].as_u64())
        .unwrap_or(0)
}

fn signal_proc(lab: &Lab, name: &str, sig: nix::sys::signal::Signal) {
    let pid: i32 = std::fs::read_to_string(lab.path().join("run").join(format!("{name}.proc")))
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .expect("pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).expect("signal");
}

#[test]
fn agent_follows_the_service_address_in_dns() {
    need_root!("agent_follows_the_service_address_in_dns");
    if !std::path::Path::new("/usr/sbin/dnsmasq").is_file() {
        skip!(
            "agent_follows_the_service_address_in_dns",
            "/usr/sbin/dnsmasq missing (tests/lab/install-deps.sh installs dnsmasq-base)"
        );
    }
    if let Err(why) = common::acs::acs_binary() {
        skip!("agent_follows_the_service_address_in_dns", "{why}");
    }
    let lab = Lab::up(&[]);
    for ip in [DNS_IP, ACS1, ACS2] {
        srv_addr(&lab, ip);
    }
    let hosts = lab.path().join("dns-hosts");
    std::fs::write(&hosts, format!("{ACS1} {NAME}\n")).unwrap();
    let dns_log = lab.path().join("logs/dnsmasq-queries.log");
    mesh(
        &lab,
        "run",
        &[
            "dnsmasq",
            "srv",
            "/usr/sbin/dnsmasq",
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--user=root",
            "--pid-file=",
            "--no-resolv",
            "--no-hosts",
            "--no-negcache",
            &format!("--addn-hosts={}", hosts.display()),
            &format!("--listen-address={DNS_IP}"),
            "--bind-interfaces",
            &format!("--local-ttl={TTL_S}"),
            "--log-queries",
            &format!("--log-facility={}", dns_log.display()),
        ],
        "dnsmasq",
    );
    let _resolv = NetnsResolvConf::new(lab.get("NS_GWHARD"), DNS_IP);
    let acs1 = Acs::start(&lab, "acs1", &acs_config(ACS1, "OLD"));
    let acs2 = Acs::start(&lab, "acs2", &acs_config(ACS2, "NEW"));

    let d = lab.daemon("gwhard", |c| {
        let c = set_key(&c, "admission", "url", &format!("\"http://{NAME}:8080\""));
        let c = set_key(&c, "admission", "account", "\"acme\"");
        let c = set_key(&c, "admission", "interval", "\"10s\"");
        set_key(&c, "tailscale", "enabled", "false")
    });
    d.wait_for(
        "registration at the first address",
        Duration::from_secs(30),
        |s| {
            s["admission"]["service_addr"] == format!("{ACS1}:8080")
                && s["admission"]["cluster_id"] == "OLD"
        },
    );

    // The name moves.
    std::fs::write(&hosts, format!("{ACS2} {NAME}\n")).unwrap();
    signal_proc(&lab, "dnsmasq", nix::sys::signal::Signal::SIGHUP);
    let moved = Instant::now();
    let before = d.status().unwrap()["admission"]["registrations"]
        .as_u64()
        .unwrap();
    std::thread::sleep(Duration::from_secs(TTL_S + 1));
    let old_after_ttl = requests(&lab, &acs1, ACS1);
    let t = d.wait_for(
        "registration at the new address",
        Duration::from_secs(30),
        |s| {
            s["admission"]["service_addr"] == format!("{ACS2}:8080")
                && s["admission"]["cluster_id"] == "NEW"
        },
    );
    let follow = moved.elapsed();
    let old_end = requests(&lab, &acs1, ACS1);
    let s = d.status().unwrap();
    let regs = s["admission"]["registrations"].as_u64().unwrap();
    eprintln!(
        "DNS moved {NAME} {ACS1} -> {ACS2} (TTL {TTL_S}s, registration interval 10s): first registration at the new address {follow:?} after the change (seen {t:?} after TTL+1s); {} registration(s) in between; requests at the old address after the TTL ran out: {}",
        regs.saturating_sub(before + 1),
        old_end - old_after_ttl
    );
    assert_eq!(
        old_end, old_after_ttl,
        "no registration may reach the old address once the TTL ran out"
    );

    // The resolver goes away: the last good address keeps working.
    signal_proc(&lab, "dnsmasq", nix::sys::signal::Signal::SIGTERM);
    let new_before = requests(&lab, &acs2, ACS2);
    let t = d.wait_for("a registration without DNS", Duration::from_secs(30), |s| {
        s["admission"]["registrations"].as_u64().unwrap_or(0) > regs
    });
    let s = d.status().unwrap();
    eprintln!(
        "resolver stopped: registered again after {t:?} at {} (last good address), last_error {}",
        s["admission"]["service_addr"], s["admission"]["last_error"]
    );
    assert!(requests(&lab, &acs2, ACS2) > new_before);
    assert_eq!(s["admission"]["service_addr"], format!("{ACS2}:8080"));
    assert!(s["admission"]["last_error"].is_null());
    let queries = std::fs::read_to_string(&dns_log).unwrap_or_default();
    eprintln!(
        "dnsmasq answered {} queries for {NAME}",
        queries.matches(&format!("query[A] {NAME}")).count()
    );

    drop(d);
    let (clean, report) = lab.down_and_check();
    assert!(clean, "lab left over:\n{report}");
}
