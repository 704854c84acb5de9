//! docs/monitoring/: `promtool check` on the rules and the scrape example, and
//! `promtool test rules` on series the daemon really exports, captured from
//! `/metrics` of two gateways in the namespace lab while their site goes
//! through a healthy hour, a router reboot storm, a router that stops
//! forwarding, one that stops answering, with tailscaled killed, and one
//! gateway switched off:
//!
//! - gwhard: real tailscaled ("c", --port 41641) in a headscale tailnet with
//!   peer "a", the router mapping and its end-to-end proof (`verify_interval`
//!   5 s);
//! - gwhard2: port mapping off, no tailscaled, MQTT telemetry to the lab's
//!   broker, its clock 10 minutes fast (libfaketime), and its outbox
//!   overflowing between two runs (the outbox's own code fills it while the
//!   daemon is stopped: hours of broker outage, without the hours).
//!
//! Each capture stands for some minutes of the test's timeline (one sample a
//! minute, see tests/common/promtest.rs); which alerts must fire at which
//! minute is in `expectations`. The generated test file and the captures
//! stay in `target/tmp/monitoring-rules/` for reading.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::lab::{Lab, LabDaemon};
use common::mesh::{headscale, join_as_edgereach_asks, mesh, missing_tools};
use common::promtest::{self, Capture, Expect, ExprTest, Firing, Target};
use common::set_key;

fn docs(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/monitoring")
        .join(name)
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn promtool(args: &[&str]) -> Output {
    Command::new("promtool")
        .args(args)
        .output()
        .expect("run promtool")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const NO_PROMTOOL: &str =
    "promtool is not installed (Debian package prometheus; tests/lab/install-deps.sh installs it)";

#[test]
fn rules_and_scrape_example_pass_promtool_check() {
    if find_in_path("promtool").is_none() {
        skip!(
            "rules_and_scrape_example_pass_promtool_check",
            "{NO_PROMTOOL}"
        );
    }
    for (what, file) in [("rules", "rules.yml"), ("config", "prometheus.yml")] {
        let path = docs(file);
        let out = promtool(&["check", what, path.to_str().unwrap()]);
        eprintln!("promtool check {what} {file}:\n{}", text(&out));
        assert!(
            out.status.success(),
            "promtool check {what}: {}",
            text(&out)
        );
    }
}

#[test]
fn captures_become_series_with_scrape_labels_and_staleness() {
    let t = Target {
        instance: "gw1:8088".into(),
        site: "s".into(),
    };
    let cap = Capture {
        wall: 1000.0,
        text: "# TYPE a gauge\na{x=\"1 2\"} 1\nb 2.5\nedgereach_time_seconds 1400.5\n".into(),
    };
    let later = Capture {
        wall: 2000.0,
        text: "b 3\n".into(),
    };
    let s = promtest::input_series(&[(t, vec![Some(cap.clone()), Some(cap), Some(later), None])]);
    let l = "job=\"edgereach\",instance=\"gw1:8088\",site=\"s\"";
    let get = |k: &str| s.get(k).unwrap_or_else(|| panic!("{k} in {s:?}")).join(" ");
    assert_eq!(get(&format!("a{{{l},x=\"1 2\"}}")), "1 1 stale _");
    assert_eq!(get(&format!("b{{{l}}}")), "2.5 2.5 3 stale");
    assert_eq!(get(&format!("up{{{l}}}")), "1 1 1 0");
    assert_eq!(
        get(&format!("edgereach_time_seconds{{{l}}}")),
        "400.5 460.5 stale _",
        "moved onto the test's clock, 400.5 s fast"
    );
    let rules = promtest::alert_rules(&std::fs::read_to_string(docs("rules.yml")).unwrap());
    let nd = &rules["EdgereachNotDirect"];
    assert_eq!(nd.labels, [("severity".to_string(), "warning".to_string())]);
    assert!(nd.annotations[0].1.starts_with("{{ $labels.instance }} ("));
    assert_eq!(rules.len(), 11, "{:?}", rules.keys());
}

fn verdict(c: &Capture) -> String {
    c.text
        .lines()
        .find_map(|l| {
            l.strip_prefix("edgereach_reachability{verdict=\"")?
                .strip_suffix("\"} 1")
                .map(str::to_string)
        })
        .unwrap_or_default()
}

/// libfaketime's multi-threaded preload library, wherever the distribution
/// put it.
fn libfaketime() -> Option<PathBuf> {
    let lib = Path::new("faketime/libfaketimeMT.so.1");
    for base in ["/usr/lib", "/usr/lib64", "/usr/local/lib"] {
        let base = Path::new(base);
        if base.join(lib).is_file() {
            return Some(base.join(lib));
        }
        for e in std::fs::read_dir(base).into_iter().flatten().flatten() {
            if e.path().join(lib).is_file() {
                return Some(e.path().join(lib));
            }
        }
    }
    None
}

/// The two gateways and their timelines.
struct Site<'a> {
    lab: &'a Lab,
    hard: Target,
    soft: Target,
    hard_slots: Vec<Option<Capture>>,
    soft_slots: Vec<Option<Capture>>,
}

impl Site<'_> {
    /// Capture both gateways; the captures hold `minutes` of the timeline.
    fn round(&mut self, minutes: usize) {
        let h = self.lab.metrics("gwhard");
        let s = self.lab.metrics("gwhard2");
        self.hard_slots.extend(std::iter::repeat_n(h, minutes));
        self.soft_slots.extend(std::iter::repeat_n(s, minutes));
        std::thread::sleep(Duration::from_secs(1));
    }

    fn minute(&self) -> usize {
        self.hard_slots.len()
    }
}

fn start_soft(lab: &Lab, faketime: &Path) -> LabDaemon {
    let mqtt = format!("\"mqtt://{}:1883\"", lab.get("MQTT_IP"));
    lab.daemon_env(
        "gwhard2",
        &[
            ("LD_PRELOAD", faketime.to_str().unwrap()),
            ("FAKETIME", "+10m"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
        |c| {
            let c = set_key(&c, "portmap", "enabled", "false");
            let c = set_key(&c, "telemetry", "mqtt_url", &mqtt);
            set_key(&c, "telemetry", "outbox_max_bytes", "1048576")
        },
    )
}

/// What the outbox of a broker outage of hours leaves: more records than its
/// bound, the oldest dropped and counted (written by the outbox's own code).
fn overflow_outbox(lab: &Lab) -> u64 {
    let dir = lab
        .path()
        .join("edgereach-gwhard2/state")
        .join(edgereach::telemetry::service::OUTBOX_DIR);
    let (mut o, _) = edgereach::telemetry::outbox::Outbox::open(&dir, 1 << 20).expect("outbox");
    let filler = format!("{{\"v\":1,\"filler\":\"{}\"}}", "x".repeat(16 * 1024));
    for _ in 0..96 {
        o.append("edgereach/lab/filler/events", filler.as_bytes())
            .expect("append");
    }
    o.dropped()
}

/// `nft` in the hard router with `args` (nft joins its arguments).
fn nft(lab: &Lab, args: &str) {
    let mut cmd = vec!["nft"];
    cmd.extend(args.split_whitespace());
    let out = lab.exec("rhard", &cmd);
    assert!(out.status.success(), "nft {args}: {}", text(&out));
}

#[test]
fn alerts_fire_on_series_captured_from_the_lab() {
    const NAME: &str = "alerts_fire_on_series_captured_from_the_lab";
    need_root!("alerts_fire_on_series_captured_from_the_lab");
    if let Some(why) = missing_tools() {
        skip!(NAME, "{why}");
    }
    if find_in_path("promtool").is_none() {
        skip!(NAME, "{NO_PROMTOOL}");
    }
    let Some(faketime) = libfaketime() else {
        skip!(
            NAME,
            "libfaketime is not installed (tests/lab/install-deps.sh installs faketime)"
        );
    };
    let lab = Lab::up(&[("LAB_LAN", "private")]);
    let key = headscale(&lab);
    mesh(&lab, "join", &["peer", "a", &key], "tailscaled-a");
    let sock = lab.path().join("ts-c/tailscaled.sock");
    let hard = lab.daemon("gwhard", |c| {
        let c = set_key(
            &c,
            "tailscale",
            "socket",
            &format!("\"{}\"", sock.display()),
        );
        let c = set_key(&c, "tailscale", "keepalive_interval", "\"5s\"");
        set_key(&c, "portmap", "verify_interval", "\"5s\"")
    });
    let mut soft = start_soft(&lab, &faketime);
    join_as_edgereach_asks(&lab, "gwhard", "c", &key);
    let direct = |t: &str| {
        t.contains("edgereach_reachability{verdict=\"direct\"} 1")
            && t.contains("\nedgereach_portmap_proven 1\n")
    };
    lab.wait_metrics(
        "gwhard",
        "direct and proven",
        Duration::from_secs(60),
        direct,
    );
    lab.wait_metrics("gwhard2", "telemetry ok", Duration::from_secs(20), |t| {
        t.contains("edgereach_section_ok{section=\"telemetry\",state=\"ok\"} 1")
    });
    let mut site = Site {
        lab: &lab,
        hard: Target {
            instance: "gwhard:8088".into(),
            site: "plant-lab".into(),
        },
        soft: Target {
            instance: "gwhard2:8088".into(),
            site: "plant-lab".into(),
        },
        hard_slots: Vec::new(),
        soft_slots: Vec::new(),
    };

    // Minutes 0-20: healthy (gwhard2 as it always is).
    for _ in 0..3 {
        site.round(7);
    }
    // gwhard2's outbox overflows while it is off; back on, it says so.
    assert!(soft.stop().0, "gwhard2 stops cleanly");
    let dropped = overflow_outbox(&lab);
    assert!(dropped > 0);
    drop(soft);
    let soft = start_soft(&lab, &faketime);
    lab.wait_metrics("gwhard2", "dropped records", Duration::from_secs(20), |t| {
        t.lines()
            .any(|l| l.starts_with("edgereach_telemetry_dropped_total ") && !l.ends_with(" 0"))
    });

    // Minutes 21-32: the router reboots three times; repaired each time.
    for n in 1..=3u64 {
        // Farther apart than the daemon's window for one reboot's signals.
        let next = Instant::now() + Duration::from_secs(12);
        let out = lab.cmd("reboot-router", &[]);
        assert!(out.status.success(), "reboot-router: {}", text(&out));
        hard.wait_for("the reboot noticed", Duration::from_secs(30), |s| {
            s["portmap"]["router_reboots"] == n
        });
        lab.wait_metrics("gwhard", "direct again", Duration::from_secs(60), direct);
        site.round(4);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }

    // Minutes 33-47: the router keeps claiming the mappings but stops
    // forwarding through them.
    nft(&lab, "add table inet lab_break");
    let chain = |name: &str, hook: &str| {
        format!("add chain inet lab_break {name} {{ type filter hook {hook} priority -10; policy accept; }}")
    };
    nft(&lab, &chain("forward_drop", "forward"));
    nft(
        &lab,
        "add rule inet lab_break forward_drop iifname wan0 ct status dnat drop",
    );
    hard.wait_for(
        "the proof failing and a repair",
        Duration::from_secs(60),
        |s| {
            s["portmap"]["proof"]["state"] == "failed"
                && s["portmap"]["proof"]["dead_repairs"].as_u64() >= Some(1)
        },
    );
    for _ in 0..3 {
        site.round(5);
    }

    // Minutes 48-68: the router stops answering port mapping requests too,
    // and tailscaled on gwhard dies.
    nft(&lab, &chain("input_drop", "input"));
    for (proto, port) in [("udp", "5351"), ("tcp", "5000"), ("udp", "1900")] {
        nft(
            &lab,
            &format!("add rule inet lab_break input_drop iifname br-lan {proto} dport {port} drop"),
        );
    }
    mesh(&lab, "kill", &["c"], "tailscaled-c");
    lab.wait_metrics(
        "gwhard",
        "tailscaled gone, not direct",
        Duration::from_secs(60),
        |t| {
            t.contains("edgereach_section_ok{section=\"tailscale\",state=\"unavailable\"} 0")
                && !t.contains("edgereach_reachability{verdict=\"direct\"} 1")
                && t.lines().any(|l| {
                    l.starts_with("edgereach_portmap_mapping_up{mapping=\"tailscale\"")
                        && l.ends_with("} 0")
                })
        },
    );
    for _ in 0..3 {
        site.round(7);
    }

    // Minutes 69-80: gwhard2 is switched off.
    let mut soft = soft;
    assert!(soft.stop().0, "gwhard2 stops cleanly");
    site.round(12);
    assert_eq!(site.minute(), 81);

    let mut exprs = fleet_counts(&site, 20);
    exprs.extend(fleet_counts(&site, 80));
    let timelines = [
        (site.hard.clone(), site.hard_slots.clone()),
        (site.soft.clone(), site.soft_slots.clone()),
    ];
    promtool_test("site", &timelines, &expectations(&site), &exprs);
    drop(hard);
    drop(soft);
    let (clean, left) = lab.down_and_check();
    assert!(clean, "lab left behind: {left}");
}

fn firing(t: &Target, labels: &[(&str, &str)]) -> Firing {
    Firing {
        target: t.clone(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// Which alerts fire at which minute of the timeline.
fn expectations(site: &Site) -> Vec<Expect> {
    let (h, s) = (&site.hard, &site.soft);
    let mapping = [("mapping", "tailscale")];
    let failed = [("state", "failed")];
    let ts_down = [("section", "tailscale"), ("state", "unavailable")];
    // (minute, alert, firing); an alert not listed at a checked minute must
    // not fire then, except those in `open` (not decided by the scenario).
    let fire: Vec<(usize, &str, Vec<Firing>)> = vec![
        // healthy: only gwhard2's own trouble (no tailscaled, clock fast).
        (20, "EdgereachNotDirect", vec![firing(s, &[])]),
        (20, "EdgereachTailscaledDown", vec![firing(s, &ts_down)]),
        (20, "EdgereachClockSkew", vec![firing(s, &[])]),
        // reboot storm; gwhard2's overflowed outbox.
        (32, "EdgereachRouterRebootStorm", vec![firing(h, &[])]),
        (32, "EdgereachTelemetryDropping", vec![firing(s, &[])]),
        (32, "EdgereachNotDirect", vec![firing(s, &[])]),
        (32, "EdgereachTailscaledDown", vec![firing(s, &ts_down)]),
        (32, "EdgereachClockSkew", vec![firing(s, &[])]),
        // forwarding dead: proof failing, the mapping does not check out.
        (47, "EdgereachProofFailing", vec![firing(h, &failed)]),
        (47, "EdgereachDeadMappings", vec![firing(h, &[])]),
        (47, "EdgereachMappingDown", vec![firing(h, &mapping)]),
        (47, "EdgereachRouterRebootStorm", vec![firing(h, &[])]),
        (47, "EdgereachTelemetryDropping", vec![firing(s, &[])]),
        (47, "EdgereachNotDirect", vec![firing(s, &[])]),
        (47, "EdgereachTailscaledDown", vec![firing(s, &ts_down)]),
        (47, "EdgereachClockSkew", vec![firing(s, &[])]),
        // router silent and tailscaled dead; the storm is over.
        (68, "EdgereachMappingDown", vec![firing(h, &mapping)]),
        (68, "EdgereachDeadMappings", vec![firing(h, &[])]),
        (68, "EdgereachTelemetryDropping", vec![firing(s, &[])]),
        (
            68,
            "EdgereachNotDirect",
            vec![firing(h, &[]), firing(s, &[])],
        ),
        (
            68,
            "EdgereachTailscaledDown",
            vec![firing(h, &ts_down), firing(s, &ts_down)],
        ),
        (68, "EdgereachClockSkew", vec![firing(s, &[])]),
        // gwhard2 off: unscraped; its gauges are stale, its counters' last
        // hour still counts.
        (80, "EdgereachGatewayUnscraped", vec![firing(s, &[])]),
        (80, "EdgereachMappingDown", vec![firing(h, &mapping)]),
        (80, "EdgereachDeadMappings", vec![firing(h, &[])]),
        (80, "EdgereachTelemetryDropping", vec![firing(s, &[])]),
        (80, "EdgereachNotDirect", vec![firing(h, &[])]),
        (80, "EdgereachTailscaledDown", vec![firing(h, &ts_down)]),
    ];
    // With the router silent the proof's state depends on what it can still
    // tell; not asserted there.
    let open = [(68, "EdgereachProofFailing"), (80, "EdgereachProofFailing")];
    complete(&[20, 32, 47, 68, 80], fire, &open)
}

/// Every alert of rules.yml at each minute of `at`: the `fire` listed for it
/// there, else none, except the (minute, alert) pairs in `open`.
fn complete(
    at: &[usize],
    fire: Vec<(usize, &str, Vec<Firing>)>,
    open: &[(usize, &str)],
) -> Vec<Expect> {
    let rules = promtest::alert_rules(&std::fs::read_to_string(docs("rules.yml")).unwrap());
    for (m, a, _) in &fire {
        assert!(rules.contains_key(*a) && at.contains(m), "{a} at {m}");
    }
    let mut out = Vec::new();
    for &m in at {
        for alert in rules.keys() {
            if open.contains(&(m, alert.as_str())) {
                continue;
            }
            let firing = fire
                .iter()
                .find(|(fm, a, _)| *fm == m && a == alert)
                .map(|(_, _, f)| f.clone())
                .unwrap_or_default();
            out.push(Expect {
                at: m,
                alert: alert.clone(),
                firing,
            });
        }
    }
    out
}

/// The fleet counts at `minute`, from the captures in force then.
fn fleet_counts(site: &Site, at: usize) -> Vec<ExprTest> {
    let caps = [&site.hard_slots[at], &site.soft_slots[at]];
    let one = |rule: &str, n: usize| {
        let expr = format!("site:edgereach_gateways{rule}:count");
        let samples = vec![(format!("{expr}{{site=\"plant-lab\"}}"), n as f64)];
        ExprTest { at, expr, samples }
    };
    let mut out = vec![one("", caps.len())];
    for v in ["direct", "relay", "unreachable"] {
        let n = caps
            .iter()
            .filter_map(|c| c.as_ref())
            .filter(|c| verdict(c) == v)
            .count();
        out.push(one(&format!("_{v}"), n));
    }
    out.push(one(
        "_unscraped",
        caps.iter().filter(|c| c.is_none()).count(),
    ));
    out
}

/// Write the captures and a `promtool test rules` file for `timelines` to
/// target/tmp/monitoring-rules/NAME/, run it, and fail with its verdict.
fn promtool_test(
    name: &str,
    timelines: &[(Target, Vec<Option<Capture>>)],
    expects: &[Expect],
    exprs: &[ExprTest],
) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("monitoring-rules")
        .join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (t, slots) in timelines {
        let mut all = String::new();
        for (m, c) in slots.iter().enumerate() {
            let body = c.as_ref().map_or("(no answer)\n", |c| c.text.as_str());
            all.push_str(&format!("# minute {m}\n{body}"));
        }
        std::fs::write(dir.join(format!("{}.metrics.txt", t.instance)), all).unwrap();
    }
    for e in exprs {
        eprintln!("fleet at minute {}: {} = {}", e.at, e.expr, e.samples[0].1);
    }
    let rules_path = docs("rules.yml");
    let rules = promtest::alert_rules(&std::fs::read_to_string(&rules_path).unwrap());
    let series = promtest::input_series(timelines);
    let file = dir.join("test.yml");
    let yaml = promtest::test_file(
        rules_path.to_str().unwrap(),
        &series,
        &rules,
        expects,
        exprs,
    );
    std::fs::write(&file, yaml).unwrap();
    let out = promtool(&["test", "rules", file.to_str().unwrap()]);
    eprintln!("promtool test rules {}:\n{}", file.display(), text(&out));
    assert!(
        out.status.success(),
        "promtool test rules failed (see {})",
        file.display()
    );
}

#[test]
fn double_nat_alert_on_series_captured_behind_a_carrier_nat() {
    const NAME: &str = "double_nat_alert_on_series_captured_behind_a_carrier_nat";
    need_root!("double_nat_alert_on_series_captured_behind_a_carrier_nat");
    if find_in_path("promtool").is_none() {
        skip!(NAME, "{NO_PROMTOOL}");
    }
    let lab = Lab::up(&[("LAB_CGNAT", "yes")]);
    // No tailscaled: the verdict comes from the mapping and the NAT, and a
    // tailscale section switched off is no alert.
    let d = lab.daemon("gwhard", |c| {
        let c = set_key(&c, "tailscale", "enabled", "false");
        set_key(&c, "portmap", "verify_interval", "\"3s\"")
    });
    lab.wait_metrics("gwhard", "double NAT", Duration::from_secs(30), |t| {
        t.contains("\nedgereach_portmap_double_nat 1\n")
            && t.contains("edgereach_portmap_proof_state{state=\"double_nat\"} 1")
    });
    let gw = Target {
        instance: "gwhard:8088".into(),
        site: "plant-cgnat".into(),
    };
    let mut slots = Vec::new();
    for _ in 0..5 {
        let c = lab.metrics("gwhard");
        assert!(c.is_some(), "gwhard answers");
        slots.extend(std::iter::repeat_n(c, 8));
        std::thread::sleep(Duration::from_secs(1));
    }
    // Minute 20: not yet 30 minutes; 39: told. The mapping is held and
    // useless, which is the double NAT alert's to say, not MappingDown's.
    let fire = vec![
        (20, "EdgereachNotDirect", vec![firing(&gw, &[])]),
        (39, "EdgereachNotDirect", vec![firing(&gw, &[])]),
        (39, "EdgereachDoubleNat", vec![firing(&gw, &[])]),
    ];
    let expects = complete(&[20, 39], fire, &[]);
    promtool_test("double-nat", &[(gw, slots)], &expects, &[]);
    drop(d);
    let (clean, left) = lab.down_and_check();
    assert!(clean, "lab left behind: {left}");
}
