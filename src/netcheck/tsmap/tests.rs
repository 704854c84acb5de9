//! tailscaled's DERP map end to end in one process: a fake LocalAPI on a
//! unix socket serves a map whose STUN nodes are fake STUN servers on
//! loopback, and netcheck with an empty configuration probes exactly them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UdpSocket, UnixListener};

use super::*;
use crate::netcheck::run::{self, History, Kind, RunError};
use crate::resolve::NameResolver;

/// Request heads the fake LocalAPI received.
type Seen = Arc<Mutex<Vec<String>>>;

/// A LocalAPI answering every request with `status` and `body`; `None`
/// accepts and never answers (a hung tailscaled).
fn fake_localapi(
    socket: &Path,
    answer: Option<(u16, Vec<u8>)>,
) -> (Seen, tokio::task::JoinHandle<()>) {
    let listener = UnixListener::bind(socket).unwrap();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            log.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&head).into_owned());
            let Some((status, body)) = &answer else {
                // Hold the connection open without a word.
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    drop(conn);
                });
                continue;
            };
            let reply = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(reply.as_bytes()).await;
            let _ = conn.write_all(body).await;
        }
    });
    (seen, task)
}

/// A STUN server on loopback answering Binding requests with the sender's
/// address in XOR-MAPPED-ADDRESS (no FINGERPRINT, like tailscale's derper).
async fn fake_stun() -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            if n < 20 {
                continue;
            }
            let SocketAddr::V4(v4) = from else { continue };
            let mut r = vec![0x01, 0x01, 0x00, 0x0c, 0x21, 0x12, 0xa4, 0x42];
            r.extend_from_slice(&buf[8..20]);
            r.extend_from_slice(&[0x00, 0x20, 0x00, 0x08, 0x00, 0x01]);
            r.extend_from_slice(&(v4.port() ^ 0x2112).to_be_bytes());
            let ip = u32::from(*v4.ip()) ^ 0x2112_a442;
            r.extend_from_slice(&ip.to_be_bytes());
            let _ = sock.send_to(&r, from).await;
        }
    });
    addr
}

/// A map as tailscaled encodes it (tabs, Go's nulls) with two STUN-only
/// regions on `a` and `b`.
fn derp_map_json(a: SocketAddr, b: SocketAddr) -> Vec<u8> {
    let region = |id: u16, code: &str, s: SocketAddr| {
        serde_json::json!({
            "RegionID": id, "RegionCode": code, "RegionName": code,
            "Nodes": [{"Name": format!("{id}a"), "RegionID": id, "HostName": s.ip().to_string(),
                       "IPv4": s.ip().to_string(), "STUNPort": s.port(), "STUNOnly": true}]
        })
    };
    let map = serde_json::json!({
        "HomeParams": null,
        "Regions": {"901": region(901, "fake-a", a), "902": region(902, "fake-b", b)},
    });
    serde_json::to_vec_pretty(&map).unwrap()
}

/// The default configuration (no STUN server, no DERP map), state and the
/// LocalAPI socket in `dir`.
fn empty_config(dir: &Path) -> (Config, PathBuf) {
    let mut cfg = Config::default();
    cfg.gateway.state_dir = Some(dir.join("state"));
    let socket = dir.join("tailscaled.sock");
    cfg.tailscale.socket = socket.clone();
    cfg.tailscale.call_timeout = Duration::from_millis(500).into();
    (cfg, socket)
}

#[tokio::test]
async fn empty_config_probes_the_stun_nodes_of_tailscaleds_map() {
    let tmp = tempfile::tempdir().unwrap();
    let (cfg, socket) = empty_config(tmp.path());
    assert!(cfg.netcheck.stun_servers.is_empty() && cfg.netcheck.derp_map.is_empty());
    assert!(run::wants_tailscaled_map(&cfg));
    let (a, b) = (fake_stun().await, fake_stun().await);
    let (seen, _api) = fake_localapi(&socket, Some((200, derp_map_json(a, b))));

    let mut ts = TailscaledMap::default();
    assert!(matches!(ts.refresh(&cfg).await, Some(Refreshed::Fetched)));
    let plan = run::plan(
        &run::effective(&cfg),
        ts.map(),
        &NameResolver::from_system(),
    )
    .await
    .unwrap();
    let mut addrs: Vec<SocketAddr> = plan.stun.iter().map(|t| t.addr).collect();
    addrs.sort();
    let mut want = vec![a, b];
    want.sort();
    assert_eq!(addrs, want, "the map's STUN nodes, nothing else");

    let mut history = History::default();
    let pm = std::future::ready(Vec::new());
    let report = run::run(&plan, Kind::Full, &mut history, pm, None)
        .await
        .unwrap();
    assert!(report.udp, "{report:?}");
    assert!(report
        .ipv4
        .as_deref()
        .is_some_and(|v| v.starts_with("127.0.0.1:")));
    let mut regions: Vec<&String> = report.region_latency_ms.keys().collect();
    regions.sort();
    assert_eq!(regions, ["fake-a", "fake-b"]);

    let head = seen.lock().unwrap()[0].clone();
    assert!(
        head.starts_with("GET /localapi/v0/derpmap HTTP/1.1\r\n"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("host: local-tailscaled.sock"),
        "{head}"
    );
    assert!(cached(&cfg.gateway.state_dir()).is_some(), "a copy is kept");
    // Not asked again before REFRESH.
    assert!(ts.refresh(&cfg).await.is_none());
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_restarting_tailscaled_leaves_the_kept_copy_in_use() {
    let tmp = tempfile::tempdir().unwrap();
    let (cfg, socket) = empty_config(tmp.path());
    let (a, b) = (fake_stun().await, fake_stun().await);
    let (_, api) = fake_localapi(&socket, Some((200, derp_map_json(a, b))));
    let mut ts = TailscaledMap::default();
    assert!(matches!(ts.refresh(&cfg).await, Some(Refreshed::Fetched)));
    api.abort();
    std::fs::remove_file(&socket).unwrap();

    // The daemon (or the CLI) starting while tailscaled is away.
    let mut fresh = TailscaledMap::default();
    assert!(matches!(fresh.refresh(&cfg).await, Some(Refreshed::Failed)));
    assert!(matches!(fresh.error(), TsMapError::LocalApi(e) if e.is_absent()));
    let map = fresh.map().expect("the copy from the state directory");
    assert_eq!(map.regions.len(), 2);
    let plan = run::plan(
        &run::effective(&cfg),
        fresh.map(),
        &NameResolver::from_system(),
    )
    .await
    .unwrap();
    assert_eq!(plan.stun.len(), 2);
}

#[tokio::test]
async fn no_tailscaled_and_no_copy_names_every_source() {
    let tmp = tempfile::tempdir().unwrap();
    let (cfg, socket) = empty_config(tmp.path());
    let mut ts = TailscaledMap::default();
    assert!(matches!(ts.refresh(&cfg).await, Some(Refreshed::Failed)));
    let e = run::plan(
        &run::effective(&cfg),
        ts.map(),
        &NameResolver::from_system(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, RunError::NoServers { .. }));
    let text = e.to_string();
    for part in [
        "no STUN servers",
        "netcheck.stun_servers",
        "netcheck.derp_map",
        "admission service",
        "tailscaled",
        &socket.display().to_string(),
    ] {
        assert!(text.contains(part), "{part:?} missing from: {text}");
    }
}

#[tokio::test]
async fn null_map_disabled_and_hung_tailscaled() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut cfg, socket) = empty_config(tmp.path());
    let (seen, api) = fake_localapi(&socket, Some((200, b"null\n".to_vec())));
    let mut ts = TailscaledMap::default();
    assert!(matches!(ts.refresh(&cfg).await, Some(Refreshed::Failed)));
    assert!(matches!(ts.map(), Err(TsMapError::NoMap)));

    cfg.tailscale.enabled = false;
    let mut off = TailscaledMap::default();
    assert!(off.refresh(&cfg).await.is_none());
    assert!(matches!(off.map(), Err(TsMapError::Disabled)));
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "disabled: tailscaled never asked"
    );
    api.abort();
    std::fs::remove_file(&socket).unwrap();

    cfg.tailscale.enabled = true;
    let _hung = fake_localapi(&socket, None);
    let started = std::time::Instant::now();
    let mut hung = TailscaledMap::default();
    assert!(matches!(hung.refresh(&cfg).await, Some(Refreshed::Failed)));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "bounded by call_timeout"
    );
    let e = hung.error().to_string();
    assert!(e.contains("no answer within"), "{e}");
}

#[tokio::test]
async fn oversized_or_broken_maps_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (cfg, socket) = empty_config(tmp.path());
    let mut big = br#"{"Regions": {}, "Pad": ""#.to_vec();
    big.resize(derpmap::MAX_DERP_MAP + 10, b'x');
    big.extend_from_slice(b"\"}");
    let (_, api) = fake_localapi(&socket, Some((200, big)));
    let mut ts = TailscaledMap::default();
    assert!(matches!(ts.refresh(&cfg).await, Some(Refreshed::Failed)));
    assert!(ts.error().to_string().contains("limit"), "{}", ts.error());
    api.abort();
    std::fs::remove_file(&socket).unwrap();

    let broken = br#"{"Regions": {"1": {"RegionID": 2, "Nodes": []}}}"#.to_vec();
    let _api = fake_localapi(&socket, Some((200, broken)));
    let mut ts = TailscaledMap::default();
    assert!(matches!(ts.refresh(&cfg).await, Some(Refreshed::Failed)));
    assert!(
        ts.error().to_string().contains("RegionID"),
        "{}",
        ts.error()
    );
    assert!(
        cached(&cfg.gateway.state_dir()).is_none(),
        "nothing bad is kept"
    );
}

#[test]
fn configured_servers_and_admission_map_come_first() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut cfg, _) = empty_config(tmp.path());
    assert!(run::wants_tailscaled_map(&cfg));
    cfg.netcheck.stun_servers = vec!["192.0.2.1:3478".into()];
    assert!(!run::wants_tailscaled_map(&cfg));
    cfg.netcheck.stun_servers.clear();
    cfg.netcheck.derp_map = "/etc/edgereach/derp.json".into();
    assert!(!run::wants_tailscaled_map(&cfg));
    cfg.netcheck.derp_map.clear();
    let dir = crate::state::StateDir::open(&cfg.gateway.state_dir()).unwrap();
    crate::admission::assignment::store_derp_map(&dir, &serde_json::json!({"Regions": {}}))
        .unwrap();
    assert!(
        !run::wants_tailscaled_map(&cfg),
        "the admission service's map wins"
    );
}
