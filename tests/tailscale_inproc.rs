//! The tailscale actor in-process, without root or tailscaled: the daemon's
//! own `tailscale::service::run` against a fake LocalAPI on a unix socket
//! (tests/fakes/localapi.rs), on tokio's paused clock: disco keepalive pings at
//! the configured period, the path they show in the status, and a re-STUN
//! when portmap makes a new mapping. The lab (tests/tailscale_lab.rs) does
//! the same against a real tailscaled.

mod fakes;

use std::sync::Arc;
use std::time::Duration;

use edgereach::config::{Config, HumanDuration};
use edgereach::netwatch::NetState;
use edgereach::portmap::model::{HeldMapping, Mapped};
use edgereach::status::StatusHub;
use edgereach::tailscale::api::PingPath;
use edgereach::tailscale::model::Backend;
use edgereach::tailscale::service::{self, Links};
use fakes::localapi::FakeLocalApi;
use tokio::sync::watch;
use tokio::time::Instant;

const KEEPALIVE_S: u64 = 25;

struct Actor {
    hub: StatusHub,
    mapped: watch::Sender<Mapped>,
    stop: edgereach::shutdown::ShutdownTrigger,
    task: tokio::task::JoinHandle<()>,
    /// tailscaled's backend as the actor hands it to admission.
    backend: watch::Receiver<Backend>,
    _inputs: (watch::Sender<Arc<Config>>, watch::Sender<NetState>),
    _port: watch::Receiver<Option<u16>>,
}

fn start(socket: &std::path::Path) -> Actor {
    let mut cfg = Config::default();
    cfg.tailscale.enabled = true;
    cfg.tailscale.socket = socket.to_path_buf();
    cfg.tailscale.keepalive_interval = HumanDuration::from_secs(KEEPALIVE_S);
    let hub = fakes::hub();
    let (cfg_tx, cfg_rx) = watch::channel(Arc::new(cfg));
    let (net_tx, net_rx) = watch::channel(NetState::default());
    let (mapped_tx, mapped_rx) = watch::channel(Mapped::default());
    let (port_tx, port_rx) = watch::channel(None);
    let (_report_tx, report_rx) = watch::channel(None);
    let (backend_tx, backend_rx) = watch::channel(Backend::default());
    let (stop, shutdown) = edgereach::shutdown::channel();
    let ctx = edgereach::actor::Context {
        hub: hub.clone(),
        config: cfg_rx,
        net: net_rx,
        stop: shutdown,
    };
    let task = tokio::spawn(service::run(
        ctx,
        Links {
            mapped: mapped_rx,
            report: report_rx,
            port: port_tx,
            backend: backend_tx,
        },
    ));
    Actor {
        hub,
        mapped: mapped_tx,
        stop,
        task,
        backend: backend_rx,
        _inputs: (cfg_tx, net_tx),
        _port: port_rx,
    }
}

impl Actor {
    async fn stop(self) {
        self.stop.trigger();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

fn pings(api: &FakeLocalApi) -> Vec<Instant> {
    api.seen()
        .iter()
        .filter(|r| r.path.starts_with("/localapi/v0/ping?ip=100.64.0.2"))
        .map(|r| r.at)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn peers_are_pinged_every_keepalive_interval_and_the_path_shows() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("tailscaled.sock");
    let api = FakeLocalApi::start(&socket);
    let actor = start(&socket);
    tokio::time::sleep(Duration::from_secs(10 * KEEPALIVE_S + 5)).await;
    let at = pings(&api);
    let gaps: Vec<f64> = at.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect();
    eprintln!(
        "{} pings of peer a in {} s, gaps {gaps:?}",
        at.len(),
        10 * KEEPALIVE_S + 5
    );
    assert!(at.len() >= 10, "pinged: {gaps:?}");
    // Every period with its ±10 % jitter, far below tailscaled's 45 s idle cut-off.
    let period = KEEPALIVE_S as f64;
    assert!(
        gaps.iter()
            .all(|g| *g >= period * 0.88 && *g <= period * 1.12),
        "the period, jittered: {gaps:?}"
    );
    assert!(at.len() <= 13, "not more often than asked: {gaps:?}");
    let s = actor.hub.snapshot();
    let peer = s.tailscale.peers.first().expect("peer a");
    let last = peer.last_ping.as_ref().expect("pinged");
    assert_eq!(last.path, PingPath::Direct, "{peer:?}");
    assert_eq!(last.endpoint.as_deref(), Some("203.0.113.50:41641"));
    // The backend admission sees is the one the status shows.
    let backend = actor.backend.borrow().clone();
    assert_eq!(backend.state.as_deref(), Some("Running"), "{backend:?}");
    assert_eq!(backend.state, s.tailscale.backend_state);
    assert_eq!(backend.control_url, s.tailscale.control_url);
    // Relayed now: the status says so at the next ping.
    api.set_relayed(true);
    tokio::time::sleep(Duration::from_secs(KEEPALIVE_S + 2)).await;
    let s = actor.hub.snapshot();
    let peer = s.tailscale.peers.first().expect("peer a");
    let last = peer.last_ping.as_ref().expect("pinged");
    assert_eq!(last.path, PingPath::Derp, "{peer:?}");
    actor.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_new_mapping_asks_tailscaled_to_restun_once() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("tailscaled.sock");
    let api = FakeLocalApi::start(&socket);
    let actor = start(&socket);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let restuns = |api: &FakeLocalApi| {
        api.seen()
            .iter()
            .filter(|r| r.path == "/localapi/v0/debug?action=restun")
            .count()
    };
    assert_eq!(restuns(&api), 0);
    actor.mapped.send_modify(|m| {
        m.generation += 1;
        m.mappings = vec![HeldMapping {
            name: "tailscale".into(),
            external: "203.0.113.2:41641".parse().unwrap(),
            internal_port: 41641,
            doubted: false,
        }];
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(restuns(&api), 1, "{:?}", api.seen());
    assert_eq!(actor.hub.snapshot().tailscale.restuns, 1);
    actor.stop().await;
}
