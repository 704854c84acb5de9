//! The portmap actor under test: `portmap::service::run` with its input
//! channels, pointed at a fake router on a loopback address.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use edgereach::config::{Config, HumanDuration};
use edgereach::netwatch::NetState;
use edgereach::poke::Poke;
use edgereach::portmap::model::Mapped;
use edgereach::portmap::service::{self, Links};
use edgereach::status::{State, Status, StatusHub};
use tokio::sync::watch;
use tokio::time::Instant;

use super::router::Seen;

pub const LEASE_S: u64 = 120;

pub struct Actor {
    /// The status the actor publishes into.
    pub hub: StatusHub,
    /// What the actor hands the other actors (tailscale, netcheck).
    pub mapped: watch::Receiver<Mapped>,
    stop: Option<edgereach::shutdown::ShutdownTrigger>,
    task: tokio::task::JoinHandle<()>,
    inputs: Inputs,
}

/// The actor's input channels, kept open for its lifetime (a closed
/// channel reads as shutdown).
#[allow(dead_code)]
struct Inputs {
    config: watch::Sender<Arc<Config>>,
    net: watch::Sender<NetState>,
    servers: watch::Sender<edgereach::netcheck::servers::Rfc5780Servers>,
    tailscaled_port: watch::Sender<Option<u16>>,
}

/// The portmap actor with `router` as default gateway, leases of LEASE_S,
/// no proof (no STUN server here) and checks only by renewal.
pub fn start(router: Ipv4Addr) -> Actor {
    start_with(router, |_| {})
}

/// [`start`] with the configuration changed by `tweak` first.
pub fn start_with(router: Ipv4Addr, tweak: impl FnOnce(&mut Config)) -> Actor {
    let mut cfg = Config::default();
    cfg.portmap.lease = HumanDuration::from_secs(LEASE_S);
    cfg.portmap.verify_interval = HumanDuration::from_secs(3600);
    cfg.portmap.refresh_interval = HumanDuration::from_secs(24 * 3600);
    cfg.portmap.prove = false;
    cfg.portmap.ipv6_pinholes = false;
    tweak(&mut cfg);
    let hub = super::hub();
    let (cfg_tx, cfg_rx) = watch::channel(Arc::new(cfg));
    let (net_tx, net_rx) = watch::channel(super::network(&router.to_string()));
    let (servers_tx, servers_rx) = watch::channel(Vec::new());
    let (port_tx, port_rx) = watch::channel(None);
    let (mapped_tx, mapped_rx) = watch::channel(Mapped::default());
    let (stop, shutdown) = edgereach::shutdown::channel();
    let links = Links {
        servers: servers_rx,
        mapped: mapped_tx,
        tailscaled_port: port_rx,
        poke: Poke::new(),
    };
    let ctx = edgereach::actor::Context {
        hub: hub.clone(),
        config: cfg_rx,
        net: net_rx,
        stop: shutdown,
    };
    let task = tokio::spawn(service::run(ctx, links));
    Actor {
        hub,
        mapped: mapped_rx,
        stop: Some(stop),
        task,
        inputs: Inputs {
            config: cfg_tx,
            net: net_tx,
            servers: servers_tx,
            tailscaled_port: port_tx,
        },
    }
}

impl Actor {
    /// What netcheck would hand over: the RFC 5780 servers for the proof.
    pub fn set_servers(&self, servers: edgereach::netcheck::servers::Rfc5780Servers) {
        self.inputs.servers.send_replace(servers);
    }

    /// Wait (virtual time) until `pred` holds on the status; panics after `limit`.
    pub async fn wait(&self, what: &str, limit: Duration, pred: impl Fn(&Status) -> bool) {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if pred(&self.hub.snapshot()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{what} not within {limit:?}: {:?}",
            self.hub.snapshot().portmap
        );
    }

    pub async fn stop(mut self) {
        if let Some(t) = self.stop.take() {
            t.trigger();
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.task).await;
    }
}

pub fn mapped(s: &Status) -> bool {
    s.portmap
        .mappings
        .first()
        .is_some_and(|m| m.state == State::Ok && m.external.is_some())
}

/// Seconds between successive map requests of `kind` asking a lease.
pub fn gaps(seen: &[Seen], kind: &str) -> Vec<f64> {
    let at: Vec<Instant> = seen
        .iter()
        .filter(|s| s.kind == kind && s.lifetime > 0 && s.answered)
        .map(|s| s.at)
        .collect();
    at.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect()
}
