//! MQTT telemetry against real mosquitto in the namespace lab: what a
//! subscriber sees, the Last Will after `kill -9`, and a broker outage with
//! a daemon restart in between that loses no event.
//!
//! `EDGEREACH_MQTT_OUTAGE_SECS` sets the outage (default 20; the issue's
//! 10 minutes is `EDGEREACH_MQTT_OUTAGE_SECS=600`, run by hand).

#[macro_use]
mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::lab::{Lab, LabDaemon};
use serde_json::Value;

/// Topic prefix of the messages that check a subscriber is subscribed.
const PROBE: &str = "edgereach/probe/";

/// A `mosquitto_sub` in a lab host, writing `RETAINED TOPIC PAYLOAD` lines.
struct Sub {
    child: Child,
    out: PathBuf,
}

#[derive(Debug, Clone)]
struct Msg {
    retained: bool,
    topic: String,
    payload: Value,
}

impl Sub {
    /// Start `mosquitto_sub` as client `edgereach-test-NAME`; returns once
    /// the broker has logged its connection.
    fn start(lab: &Lab, name: &str, extra: &[&str]) -> Self {
        let id = format!("edgereach-test-{name}");
        let out = lab.path().join(format!("sub-{name}.txt"));
        let ns = lab.get("NS_PEER").to_string();
        let broker = lab.get("MQTT_IP").to_string();
        let child = Command::new("ip")
            .args(["netns", "exec", &ns, "mosquitto_sub", "-h", &broker])
            .args(["-q", "1", "-F", "%r %t %p", "-i", &id])
            .args(extra)
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub");
        // Subscribed before anything is published: a probe on a topic both
        // filters match comes back (mosquitto's own log is block-buffered).
        let sub = Sub { child, out };
        let probe = format!("{PROBE}{name}/events");
        let start = Instant::now();
        while !std::fs::read_to_string(&sub.out)
            .unwrap_or_default()
            .contains(&probe)
        {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{id} did not subscribe"
            );
            lab.exec(
                "peer",
                &["mosquitto_pub", "-h", &broker, "-t", &probe, "-m", "{}"],
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        sub
    }

    fn messages(&self) -> Vec<Msg> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.contains(PROBE))
            .filter_map(|l| {
                let (r, rest) = l.split_once(' ')?;
                let (topic, payload) = rest.split_once(' ')?;
                Some(Msg {
                    retained: r == "1",
                    topic: topic.to_string(),
                    payload: serde_json::from_str(payload).ok()?,
                })
            })
            .collect()
    }

    fn on(&self, suffix: &str) -> Vec<Msg> {
        self.messages()
            .into_iter()
            .filter(|m| m.topic.ends_with(&format!("/{suffix}")))
            .collect()
    }

    fn wait(&self, what: &str, limit: Duration, pred: impl Fn(&[Msg]) -> bool) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if pred(&self.messages()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "subscriber: {what} not seen within {limit:?}; got:\n{}",
            std::fs::read_to_string(&self.out).unwrap_or_default()
        );
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The retained message on `topic` as a fresh subscriber gets it.
fn retained(lab: &Lab, topic: &str) -> Option<Msg> {
    lab.mqtt_retained(topic).map(|r| Msg {
        retained: r.retained,
        topic: r.topic,
        payload: r.payload,
    })
}

/// The lab config with telemetry on, gathering status changes for 1 s and
/// reconnecting at most 5 s apart.
fn with_telemetry(lab: &Lab) -> impl Fn(String) -> String {
    let url = format!("mqtt://{}:{}", lab.get("MQTT_IP"), lab.get("MQTT_PORT"));
    move |c: String| {
        c.replace("mqtt_url = \"\"", &format!("mqtt_url = \"{url}\""))
            .replace("debounce = \"10s\"", "debounce = \"1s\"")
            .replace("reconnect_max = \"60s\"", "reconnect_max = \"5s\"")
    }
}

fn kill9(d: &mut LabDaemon) {
    let pid = nix::unistd::Pid::from_raw(d.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    let _ = d.child.wait();
}

#[test]
fn subscriber_sees_every_topic_and_the_will_after_kill9() {
    need_root!("subscriber_sees_every_topic_and_the_will_after_kill9");
    let lab = Lab::up(&[]);
    let sub = Sub::start(&lab, "all", &["-t", "edgereach/#"]);
    let mut d = lab.daemon("gwhard", with_telemetry(&lab));
    d.wait_for("telemetry connected", Duration::from_secs(20), |s| {
        s["telemetry"]["connected"] == true && s["telemetry"]["state"] == "ok"
    });
    let prefix = "edgereach/plant-7/gw-plant7-01";
    sub.wait(
        "state, status, netcheck and events",
        Duration::from_secs(30),
        |m| {
            let has = |t: &str| m.iter().any(|x| x.topic == format!("{prefix}/{t}"));
            has("state") && has("status") && has("netcheck") && has("events")
        },
    );
    let state = &sub.on("state")[0];
    assert_eq!(state.payload["state"], "online", "{state:?}");
    assert_eq!(state.payload["v"], 1);
    let status = &sub.on("status")[0];
    assert_eq!(status.payload["v"], 1);
    assert_eq!(status.payload["status"]["gateway"]["id"], "gw-plant7-01");
    assert!(status.payload["status"].get("events").is_none());
    assert!(status.payload["time"].as_str().unwrap().ends_with('Z'));
    let nc = &sub.on("netcheck")[0];
    assert_eq!(nc.payload["report"]["udp"], true, "{nc:?}");
    assert!(nc.payload["report"]["ipv4"]
        .as_str()
        .unwrap()
        .starts_with("203.0.113.2:"));
    let events = sub.on("events");
    let started = events
        .iter()
        .find(|e| e.payload["kind"] == "started")
        .expect("the daemon's start event");
    assert_eq!(started.payload["seq"], 1);
    assert_eq!(started.payload["source"], "daemon");
    let seqs: Vec<u64> = events
        .iter()
        .map(|e| e.payload["seq"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    eprintln!(
        "subscriber saw: state {}, status {}, netcheck {}, events {} (seq {:?})",
        sub.on("state").len(),
        sub.on("status").len(),
        sub.on("netcheck").len(),
        events.len(),
        seqs
    );
    d.wait_for("outbox drained", Duration::from_secs(10), |s| {
        s["telemetry"]["outbox_depth"] == 0 && s["telemetry"]["sent"].as_u64() > Some(3)
    });
    let r = retained(&lab, &format!("{prefix}/state")).expect("retained state");
    assert!(r.retained);
    assert_eq!(r.payload["state"], "online");
    let r = retained(&lab, &format!("{prefix}/status")).expect("retained status");
    assert!(r.retained);

    kill9(&mut d);
    let start = Instant::now();
    loop {
        let r = retained(&lab, &format!("{prefix}/state"));
        if let Some(r) = r.filter(|r| r.payload["state"] == "offline") {
            assert!(r.retained);
            assert_eq!(r.payload["cause"], "connection-lost", "the Last Will");
            eprintln!(
                "after kill -9: retained state {} within {:?}",
                r.payload,
                start.elapsed()
            );
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no Will seen");
        std::thread::sleep(Duration::from_millis(200));
    }

    // A clean stop says offline itself.
    let mut d = lab.daemon("gwhard", with_telemetry(&lab));
    d.wait_for("reconnected", Duration::from_secs(20), |s| {
        s["telemetry"]["connected"] == true
    });
    let (ok, took) = d.stop();
    assert!(ok, "clean stop");
    assert!(took < Duration::from_secs(2), "{took:?}");
    let r = retained(&lab, &format!("{prefix}/state")).expect("retained state");
    assert_eq!(r.payload["cause"], "shutdown", "{r:?}");
    let restarted: Vec<u64> = sub
        .on("events")
        .iter()
        .map(|e| e.payload["seq"].as_u64().unwrap())
        .collect();
    assert!(
        restarted.iter().max() > seqs.iter().max(),
        "seq keeps growing across restarts: {restarted:?}"
    );
}

#[test]
fn broker_outage_and_daemon_restart_lose_no_event() {
    need_root!("broker_outage_and_daemon_restart_lose_no_event");
    let outage = Duration::from_secs(
        std::env::var("EDGEREACH_MQTT_OUTAGE_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20),
    );
    let lab = Lab::up(&[]);
    // A persistent session: the broker keeps what arrives for it while it
    // reconnects after the outage.
    let sub = Sub::start(&lab, "events", &["-t", "edgereach/+/+/events", "-c"]);
    let mut d = lab.daemon("gwhard", with_telemetry(&lab));
    d.wait_for(
        "telemetry connected, mapping made",
        Duration::from_secs(30),
        |s| s["telemetry"]["connected"] == true && s["portmap"]["state"] == "ok",
    );
    sub.wait("first events", Duration::from_secs(10), |m| !m.is_empty());

    let out = lab.cmd("broker", &["stop"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t0 = Instant::now();
    let mut reboots = 0;
    let mut restarted = false;
    let mut first_log = String::new();
    while t0.elapsed() < outage {
        let out = lab.cmd("reboot-router", &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        reboots += 1;
        if !restarted && t0.elapsed() >= outage / 2 {
            let (ok, took) = d.stop();
            assert!(ok, "clean stop during the outage ({took:?})");
            first_log = d.log();
            d = lab.daemon("gwhard", with_telemetry(&lab));
            restarted = true;
        }
        std::thread::sleep(Duration::from_secs(4).min(outage / 4));
    }
    assert!(restarted);
    let s = d.status().expect("status during the outage");
    assert_eq!(s["telemetry"]["connected"], false);
    let backlog = s["telemetry"]["outbox_depth"].as_u64().unwrap();
    eprintln!(
        "outage {outage:?}: {reboots} router reboots, daemon restarted once, outbox holds {backlog} records ({} bytes); telemetry: {}",
        s["telemetry"]["outbox_bytes"], s["telemetry"]["reason"]
    );
    assert!(backlog > 0);

    let out = lab.cmd("broker", &["start"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let back = Instant::now();
    d.wait_for("outbox drained", Duration::from_secs(30), |s| {
        s["telemetry"]["connected"] == true && s["telemetry"]["outbox_depth"] == 0
    });
    let last_seq = d.status().unwrap()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .max()
        .unwrap();
    sub.wait("the newest event", Duration::from_secs(20), |m| {
        m.iter()
            .any(|x| x.payload["seq"].as_u64() >= Some(last_seq))
    });
    let drained = back.elapsed();

    let msgs = sub.messages();
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    for m in &msgs {
        let seq = m.payload["seq"].as_u64().expect("every event has a seq");
        if seen.insert(seq) {
            order.push(seq);
        }
    }
    let (first, last) = (*order.first().unwrap(), *order.last().unwrap());
    let missing: Vec<u64> = (first..=last).filter(|s| !seen.contains(s)).collect();
    eprintln!(
        "events: {} messages, {} distinct seq {first}..={last}, {} duplicates, missing {:?}; backlog delivered {:?} after the broker came back",
        msgs.len(),
        seen.len(),
        msgs.len() - seen.len(),
        missing,
        drained
    );
    assert_eq!(first, 1, "from the daemon's first event");
    assert!(
        missing.is_empty(),
        "lost events: {missing:?}\nfirst daemon's log:\n{first_log}\nsecond daemon's log:\n{}",
        d.log()
    );
    assert!(order.windows(2).all(|w| w[0] < w[1]), "in order: {order:?}");
    let kinds: BTreeSet<String> = msgs
        .iter()
        .filter_map(|m| m.payload["kind"].as_str().map(String::from))
        .collect();
    eprintln!("event kinds: {kinds:?}");
    assert!(kinds.contains("stopping") && kinds.contains("started"));
}
