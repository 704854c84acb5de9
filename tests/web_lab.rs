//! The status page in the lab, as a technician meets it: Debian's headless
//! Chromium on a LAN neighbour loads the gateway's page (real mapping on the
//! lab's miniupnpd, real netcheck against coturn), the verdict is checked,
//! screenshots are kept under target/web/, and the actions reach the actors.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::lab::{Lab, LabDaemon};
use common::set_key;

const TOKEN: &str = "lab-action-token-7f3e9c21";

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/lab")
        .join(name)
}

/// Where screenshots are kept: `<target>/web/`.
fn shots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("web");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn ns(lab: &Lab, host: &str) -> String {
    lab.get(&format!("NS_{}", host.to_uppercase())).to_string()
}

/// Headless Chromium in `host`'s namespace; `what` is `--dump-dom` or
/// `--screenshot=PATH`. Bounded by `timeout`.
fn chromium(lab: &Lab, host: &str, url: &str, what: &str) -> Output {
    let profile = lab.path().join(format!("chromium-{host}"));
    let out = Command::new("timeout")
        .args(["60", "ip", "netns", "exec", &ns(lab, host), "chromium"])
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--window-size=412,1600",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(what)
        .arg(url)
        .output()
        .expect("run chromium (tests/lab/install-deps.sh installs it)");
    assert!(
        out.status.success(),
        "chromium {what} {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The page's DOM as Chromium built it, and a screenshot saved as `name`.
fn load_page(lab: &Lab, host: &str, url: &str, name: &str) -> String {
    let dom = String::from_utf8_lossy(&chromium(lab, host, url, "--dump-dom").stdout).into_owned();
    let png = shots().join(name);
    let _ = std::fs::remove_file(&png);
    chromium(lab, host, url, &format!("--screenshot={}", png.display()));
    let bytes = std::fs::read(&png).expect("screenshot written");
    assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
    eprintln!(
        "screenshot of {url} from {host}: {} ({} bytes)",
        png.display(),
        bytes.len()
    );
    dom
}

/// (status, body) of one request from `host` (tests/lab/webclient.py).
fn http(
    lab: &Lab,
    host: &str,
    method: &str,
    url: &str,
    headers: &[&str],
    body: &str,
) -> (u16, String) {
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns(lab, host), "/usr/bin/python3"])
        .arg(script("webclient.py"))
        .args(["req", method, url])
        .args(headers)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (status, rest) = text.split_once('\n').unwrap_or((&text, ""));
    let status = status.trim().parse().unwrap_or_else(|_| {
        panic!(
            "{method} {url}: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (status, rest.to_string())
}

/// Between `id="NAME">` and the next `<`.
fn element(dom: &str, id: &str) -> String {
    let start = dom
        .find(&format!("id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no #{id} in {dom}"))
        + id.len()
        + 6;
    dom[start..]
        .split('<')
        .next()
        .unwrap_or_default()
        .to_string()
}

fn lab_daemon(lab: &Lab, host: &str, listen: &str, edit: impl Fn(String) -> String) -> LabDaemon {
    let token = lab.path().join("web-token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    lab.daemon(host, |c| {
        // No tailscaled in this lab: the verdict comes from the mapping and
        // the NAT report.
        let c = set_key(&c, "tailscale", "enabled", "false");
        let c = set_key(
            &c,
            "web",
            "listen",
            &format!("[\"127.0.0.1:8088\", \"{listen}\"]"),
        );
        let c = set_key(&c, "web", "actions_enabled", "true");
        let c = set_key(
            &c,
            "web",
            "action_token_file",
            &format!("\"{}\"", token.display()),
        );
        edit(c)
    })
}

#[test]
fn chromium_sees_the_verdict_and_actions_reach_the_actors() {
    need_root!("chromium_sees_the_verdict_and_actions_reach_the_actors");
    let lab = Lab::up(&[]);
    let mapped = lab_daemon(&lab, "gwhard", "192.0.2.10:8088", |c| c);
    let unmapped = lab_daemon(&lab, "gwhard2", "192.0.2.11:8088", |c| {
        set_key(&c, "portmap", "enabled", "false")
    });
    mapped.wait_for("mapping and NAT report", Duration::from_secs(20), |s| {
        s["portmap"]["mappings"][0]["external"] == "203.0.113.2:41641"
            && s["portmap"]["mappings"][0]["state"] == "ok"
            && s["netcheck"]["report"]["mapping_varies_by_dest_ip"] == true
            && s["web"]["state"] == "ok"
    });
    unmapped.wait_for("NAT report", Duration::from_secs(20), |s| {
        s["netcheck"]["report"]["mapping_varies_by_dest_ip"] == true
    });

    // A technician's phone on the LAN (gwhard2's namespace) opens gwhard.
    let dom = load_page(&lab, "gwhard2", "http://192.0.2.10:8088/", "page.png");
    let (verdict, reason) = (element(&dom, "verdict"), element(&dom, "reason"));
    eprintln!("gwhard: {verdict}: {reason}");
    assert_eq!(verdict, "Reachable direct");
    assert!(reason.contains("203.0.113.2:41641"), "{reason}");
    // PCP normally; NAT-PMP can win on a loaded machine.
    assert!(reason.contains("port mapping by "), "{reason}");
    assert!(
        dom.contains("hard (the public port changes per destination)"),
        "{dom}"
    );
    // The daemon never runs the mesh port test itself (it would bind the
    // mesh port; `edgereach netcheck --mesh-port` does, on demand).
    assert!(
        dom.contains("<dt>Mapped port from outside</dt><dd>\u{2014}</dd>"),
        "{dom}"
    );
    assert_eq!(dom.matches("<form").count(), 2, "actions are on here");

    // The same NAT without a mapping: relay only, and the page says why.
    let dom = load_page(
        &lab,
        "gwhard",
        "http://192.0.2.11:8088/",
        "page-relay-only.png",
    );
    let (verdict, reason) = (element(&dom, "verdict"), element(&dom, "reason"));
    eprintln!("gwhard2: {verdict}: {reason}");
    assert_eq!(verdict, "Relay only");
    assert!(reason.contains("The NAT is hard"), "{reason}");
    assert!(reason.contains("port mapping is switched off"), "{reason}");

    // Actions: POST with the token from the LAN; refused without.
    let page = "http://192.0.2.10:8088";
    let form = "Content-Type: application/x-www-form-urlencoded";
    let (st, _) = http(
        &lab,
        "gwhard2",
        "POST",
        &format!("{page}/action/netcheck"),
        &[form],
        "token=nope-nope-nope-nope",
    );
    assert_eq!(st, 403);
    let runs = mapped.status().unwrap()["netcheck"]["runs"]
        .as_u64()
        .unwrap();
    let (st, body) = http(
        &lab,
        "gwhard2",
        "POST",
        &format!("{page}/action/netcheck"),
        &[form],
        &format!("token={TOKEN}"),
    );
    assert_eq!(st, 303, "{body}");
    let took = mapped.wait_for(
        "a netcheck run asked from the page",
        Duration::from_secs(10),
        |s| s["netcheck"]["runs"].as_u64().unwrap_or(0) > runs,
    );
    eprintln!("netcheck run {} done {took:?} after the POST", runs + 1);
    let (st, _) = http(
        &lab,
        "gwhard2",
        "POST",
        &format!("{page}/action/remap"),
        &[form],
        &format!("token={TOKEN}"),
    );
    assert_eq!(st, 303);
    let took = mapped.wait_for(
        "a re-map asked from the page",
        Duration::from_secs(10),
        |s| {
            s["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["kind"] == "mapping.refreshed")
                && s["portmap"]["mappings"][0]["state"] == "ok"
        },
    );
    eprintln!("mapping deleted and re-added {took:?} after the POST");

    // Metrics from the LAN, through the reference parser.
    let (st, metrics) = http(&lab, "gwhard2", "GET", &format!("{page}/metrics"), &[], "");
    assert_eq!(st, 200);
    let mut parse = Command::new("/usr/bin/python3")
        .arg(script("promparse.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    parse
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let parsed = parse.wait_with_output().unwrap();
    assert!(parsed.status.success(), "{metrics}");
    let parsed = String::from_utf8_lossy(&parsed.stdout);
    assert!(
        parsed.contains(
            "sample edgereach_portmap_mapping_up {mapping=tailscale,method=pcp,protocol=udp} 1.0"
        ),
        "{parsed}"
    );
    let lease: f64 = parsed
        .lines()
        .find_map(|l| {
            l.strip_prefix("sample edgereach_portmap_lease_remaining_seconds {mapping=tailscale} ")
        })
        .expect("lease metric")
        .parse()
        .unwrap();
    assert!(lease > 3000.0 && lease <= 3600.0, "{lease}");
    assert!(
        parsed.contains("sample edgereach_netcheck_latency_seconds {region=203.0.113.10:3478}"),
        "{parsed}"
    );

    drop((mapped, unmapped));
    let (clean, report) = lab.down_and_check();
    assert!(clean, "{report}");
}

/// With real tailscaled and headscale (tests/lab/mesh.sh): the page shows
/// the peer's path and latency from edgereach's keepalive, and the verdict
/// comes from that pong.
#[test]
fn chromium_sees_mesh_peers_with_their_path() {
    need_root!("chromium_sees_mesh_peers_with_their_path");
    if let Some(why) = common::mesh::missing_tools() {
        skip!("chromium_sees_mesh_peers_with_their_path", "{why}");
    }
    use common::mesh::{join_as_edgereach_asks, peer_a_and_daemon_for_c};
    let lab = Lab::up(&[("LAB_LAN", "private")]);
    let (key, d) = peer_a_and_daemon_for_c(&lab);
    d.wait_for("the mapping", Duration::from_secs(15), |s| {
        s["portmap"]["mappings"][0]["state"] == "ok"
    });
    join_as_edgereach_asks(&lab, "gwhard", "c", &key);
    d.wait_for("a direct keepalive pong", Duration::from_secs(30), |s| {
        s["tailscale"]["peers"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["last_ping"]["path"] == "direct"))
    });
    let dom = load_page(&lab, "gwhard", "http://127.0.0.1:8088/", "page-mesh.png");
    let (verdict, reason) = (element(&dom, "verdict"), element(&dom, "reason"));
    eprintln!("mesh: {verdict}: {reason}");
    assert_eq!(verdict, "Reachable direct");
    assert!(
        reason.contains("pinged peers answer directly (e.g. a via "),
        "{reason}"
    );
    let peers = dom.split("id=\"peers\"").nth(1).expect("peer table");
    assert!(peers.contains("<td>a<br>"), "{peers}");
    assert!(peers.contains("direct 203.0.113.50:"), "{peers}");
    assert!(peers.contains(" ms</td>"), "latency shown: {peers}");
    assert!(
        dom.contains("tailscaled 1."),
        "tailscaled's version and state: {dom}"
    );
}
