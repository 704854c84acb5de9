//! The netcheck actor under test: `netcheck::service::run` with its input
//! channels and the RFC 5780 `watch` it owns, configured by a TOML text as
//! the daemon reads it, probing fake STUN servers on loopback.

use std::sync::Arc;
use std::time::Duration;

use edgereach::config::Config;
use edgereach::netcheck::report::LatestReport;
use edgereach::netcheck::servers::Rfc5780Servers;
use edgereach::netcheck::service;
use edgereach::netwatch::NetState;
use edgereach::poke::Poke;
use edgereach::portmap::model::Mapped;
use edgereach::status::{Status, StatusHub};
use tokio::sync::watch;
use tokio::time::Instant;

pub struct Actor {
    /// The status the actor publishes into.
    pub hub: StatusHub,
    /// What it hands to portmap's proof.
    pub rfc5780: watch::Receiver<Rfc5780Servers>,
    /// Its latest report, as admission reads it.
    pub report: watch::Receiver<LatestReport>,
    /// What portmap would tell it (the router's protocols).
    pub mapped: watch::Sender<Mapped>,
    /// The network state it follows.
    pub net: watch::Sender<NetState>,
    /// "A full report now" (the CLI's and the web page's button).
    pub poke: Poke,
    stop: Option<edgereach::shutdown::ShutdownTrigger>,
    task: tokio::task::JoinHandle<()>,
    _config: watch::Sender<Arc<Config>>,
    _state_dir: tempfile::TempDir,
}

pub use super::network;

/// The netcheck actor with `servers` as `netcheck.stun_servers`, a full
/// report every `interval` and its own state directory.
pub fn start(servers: &[std::net::SocketAddr], interval: &str) -> Actor {
    let state_dir = tempfile::tempdir().expect("a state directory");
    let list: Vec<String> = servers.iter().map(|s| format!("\"{s}\"")).collect();
    let toml = format!(
        "[gateway]\nstate_dir = \"{}\"\n\n[netcheck]\ninterval = \"{interval}\"\nstun_servers = [{}]\n",
        state_dir.path().display(),
        list.join(", ")
    );
    let cfg = Config::parse(&toml, "netcheck_inproc.toml").expect("the test's configuration");
    let hub = super::hub();
    let (cfg_tx, cfg_rx) = watch::channel(Arc::new(cfg));
    let (net_tx, net_rx) = watch::channel(network("127.0.0.1"));
    let (rfc5780_tx, rfc5780_rx) = watch::channel(Vec::new());
    let (report_tx, report_rx) = watch::channel(None);
    let (mapped_tx, mapped_rx) = watch::channel(Mapped::default());
    let (stop, shutdown) = edgereach::shutdown::channel();
    let poke = Poke::new();
    let ctx = edgereach::actor::Context {
        hub: hub.clone(),
        config: cfg_rx,
        net: net_rx,
        stop: shutdown,
    };
    let links = service::Links {
        rfc5780: rfc5780_tx,
        report: report_tx,
        mapped: mapped_rx,
        poke: poke.clone(),
    };
    let task = tokio::spawn(service::run(ctx, links));
    Actor {
        hub,
        rfc5780: rfc5780_rx,
        report: report_rx,
        mapped: mapped_tx,
        net: net_tx,
        poke,
        stop: Some(stop),
        task,
        _config: cfg_tx,
        _state_dir: state_dir,
    }
}

impl Actor {
    /// Wait (virtual time) until `pred` holds on the status; panics after
    /// `limit`. Returns how long it took.
    pub async fn wait(
        &self,
        what: &str,
        limit: Duration,
        pred: impl Fn(&Status) -> bool,
    ) -> Duration {
        let start = Instant::now();
        while start.elapsed() < limit {
            if pred(&self.hub.snapshot()) {
                return start.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "{what} not within {limit:?}: {:?}",
            self.hub.snapshot().netcheck
        );
    }

    /// Wait for report number `n` since start.
    pub async fn runs(&self, n: u64, limit: Duration) -> Duration {
        self.wait(&format!("report {n}"), limit, |s| s.netcheck.runs >= n)
            .await
    }

    pub async fn stop(mut self) {
        if let Some(t) = self.stop.take() {
            t.trigger();
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.task).await;
    }
}
