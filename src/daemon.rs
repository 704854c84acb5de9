//! `edgereach run`: start one task per capability, serve the control socket,
//! reload on SIGHUP and stop cleanly on SIGTERM/SIGINT.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::signal;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::actor::Context;
use crate::config::Config;
use crate::control::{self, AccessPolicy};
use crate::netwatch::{self, NetState};
use crate::shutdown;
use crate::state::{EventSeqStore, Identity, StateDir};
use crate::status::{GatewayStatus, Level, Status, StatusHub, Timestamp};

/// Time the tasks get to finish after SIGTERM before they are cut off; the
/// whole shutdown must stay well inside systemd's and the spec's 2 s.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);
/// The part of it telemetry gets after every other task has stopped, to
/// record their last events and send what it can.
const TELEMETRY_GRACE: Duration = Duration::from_millis(500);

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The state directory is unusable.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// The control socket could not be set up.
    #[error(transparent)]
    Control(#[from] control::ControlError),
    /// The control group in the configuration is unusable.
    #[error("gateway.control_group: {0}")]
    Group(#[from] crate::control::GroupError),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}

/// Run the daemon until SIGTERM or SIGINT.
pub async fn run(config: Config, config_path: PathBuf) -> Result<(), DaemonError> {
    let (hub, gateway_id) = open_hub(&config, &config_path)?;
    let policy = AccessPolicy::for_current_process(config.gateway.control_group.as_deref())?;
    let socket_path = config.gateway.control_socket();
    let listener = control::bind(&socket_path)?;

    let mut signals = Signals::install().map_err(DaemonError::Signals)?;
    let (stop, stop_signal) = shutdown::channel();
    let (config_tx, config_rx) = watch::channel(Arc::new(config));
    let (net_tx, net_rx) = watch::channel(NetState::default());

    hub.emit(
        "daemon",
        "started",
        Level::Info,
        format!(
            "edgereach {} started as {gateway_id}; control socket {}",
            env!("CARGO_PKG_VERSION"),
            socket_path.display()
        ),
    );

    let ctx = Context {
        hub: hub.clone(),
        config: config_rx,
        net: net_rx,
        stop: stop_signal,
    };
    let mut tasks = JoinSet::new();
    tasks.spawn(netwatch::run(ctx.clone(), netwatch::Links { net: net_tx }));
    let control_links = control::Links {
        listener,
        path: socket_path.clone(),
        policy,
    };
    tasks.spawn(control::run(ctx.clone(), control_links));
    spawn_actors(&mut tasks, &ctx, gateway_id);
    // Telemetry stops last: the events of the others' shutdown (mappings
    // released) must still reach its outbox.
    let (telemetry_stop, telemetry_signal) = shutdown::channel();
    let telemetry = tokio::spawn(crate::telemetry::service::run(Context {
        stop: telemetry_signal,
        ..ctx
    }));

    serve(
        &hub,
        &mut signals,
        &mut tasks,
        &telemetry,
        &config_path,
        &config_tx,
    )
    .await;

    shut_down(stop, &mut tasks, telemetry_stop, telemetry).await;
    hub.close_event_seq();
    let _ = std::fs::remove_file(&socket_path);
    Ok(())
}

/// Stop the actors within the grace period, telemetry last.
async fn shut_down(
    stop: shutdown::ShutdownTrigger,
    tasks: &mut JoinSet<()>,
    telemetry_stop: shutdown::ShutdownTrigger,
    mut telemetry: tokio::task::JoinHandle<()>,
) {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    stop.trigger();
    let drained = tokio::time::timeout(SHUTDOWN_GRACE - TELEMETRY_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("some tasks did not stop within {SHUTDOWN_GRACE:?}; cutting them off");
        tasks.abort_all();
    }
    telemetry_stop.trigger();
    if tokio::time::timeout(TELEMETRY_GRACE, &mut telemetry)
        .await
        .is_err()
    {
        tracing::warn!(
            "telemetry did not stop within {TELEMETRY_GRACE:?}; what it holds stays in its outbox"
        );
        telemetry.abort();
    }
}

/// The state directory, the gateway's identity and the hub that starts
/// the status with them; returns the hub and the gateway id.
fn open_hub(config: &Config, config_path: &Path) -> Result<(StatusHub, String), DaemonError> {
    let state = StateDir::open(&config.gateway.state_dir())?;
    let machine_id = std::fs::read_to_string("/etc/machine-id").ok();
    let identity = Identity::load_or_create(&state, machine_id.as_deref())?;
    let gateway_id = config
        .gateway
        .id
        .clone()
        .unwrap_or_else(|| identity.gateway_id.clone());
    let (seq_store, last_seq) = EventSeqStore::open(&state)?;
    let hub = StatusHub::with_event_seq(
        Status::starting(GatewayStatus {
            id: gateway_id.clone(),
            site: config.gateway.site.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: Timestamp::now(),
            config_path: config_path.display().to_string(),
            state_dir: state.path().display().to_string(),
            last_reload: None,
        }),
        seq_store,
        last_seq,
    );
    Ok((hub, gateway_id))
}

/// Start the capability actors with one `Context` each, wired by the
/// channels they own.
fn spawn_actors(tasks: &mut JoinSet<()>, ctx: &Context, gateway_id: String) {
    // The page's actions reach the actors only through these pokes.
    let pokes = crate::poke::Pokes::default();
    // The actors' own channels: netcheck's RFC 5780 servers (for portmap's
    // proof) and latest report (for admission and tailscale's checks), what
    // portmap holds and has seen of the router (for tailscale's re-STUN and
    // netcheck's report), tailscaled's real UDP port (for the mappings and
    // pinholes that follow it) and its backend (for admission).
    let (servers_tx, servers_rx) = watch::channel(Vec::new());
    let (report_tx, report_rx) = watch::channel(None);
    let (mapped_tx, mapped_rx) = watch::channel(crate::portmap::model::Mapped::default());
    let (ts_port_tx, ts_port_rx) = watch::channel(None);
    let (backend_tx, backend_rx) = watch::channel(crate::tailscale::model::Backend::default());
    use crate::{admission, netcheck, portmap, tailscale, web};
    let portmap_links = portmap::service::Links {
        servers: servers_rx,
        mapped: mapped_tx,
        tailscaled_port: ts_port_rx.clone(),
        poke: pokes.portmap.clone(),
    };
    tasks.spawn(portmap::service::run(ctx.clone(), portmap_links));
    let pinhole_links = portmap::pinhole::Links {
        tailscaled_port: ts_port_rx,
    };
    tasks.spawn(portmap::pinhole::run(ctx.clone(), pinhole_links));
    let netcheck_links = netcheck::service::Links {
        rfc5780: servers_tx,
        report: report_tx,
        mapped: mapped_rx.clone(),
        poke: pokes.netcheck.clone(),
    };
    tasks.spawn(netcheck::service::run(ctx.clone(), netcheck_links));
    tasks.spawn(web::run(ctx.clone(), web::Links { pokes }));
    let tailscale_links = tailscale::service::Links {
        mapped: mapped_rx,
        report: report_rx.clone(),
        port: ts_port_tx,
        backend: backend_tx,
    };
    tasks.spawn(tailscale::service::run(ctx.clone(), tailscale_links));
    let admission_links = admission::service::Links {
        gateway_id,
        report: report_rx,
        backend: backend_rx,
    };
    tasks.spawn(admission::service::run(ctx.clone(), admission_links));
}

/// Serve until SIGTERM/SIGINT: reload on SIGHUP, report a task that ends,
/// and ping systemd's watchdog only while every task still runs.
async fn serve(
    hub: &StatusHub,
    signals: &mut Signals,
    tasks: &mut JoinSet<()>,
    telemetry: &tokio::task::JoinHandle<()>,
    config_path: &Path,
    config_tx: &watch::Sender<Arc<Config>>,
) {
    let expected_tasks = tasks.len();
    // systemd: READY once the first status exists and the socket is served.
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    let watchdog = sd_notify::watchdog_enabled().map(|t| t / 2);
    loop {
        let ping = async {
            match watchdog {
                Some(every) => tokio::time::sleep(every).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = ping => {
                if tasks.len() == expected_tasks && !telemetry.is_finished() {
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                } else {
                    tracing::error!("a task has ended: withholding the watchdog ping so systemd restarts us");
                }
            }
            sig = signals.next() => match sig {
                DaemonSignal::Reload => reload(hub, config_path, config_tx),
                DaemonSignal::Stop(name) => {
                    hub.emit("daemon", "stopping", Level::Info, format!("{name} received; shutting down"));
                    return;
                }
            },
            Some(done) = tasks.join_next() => {
                // A task ending early is a bug; say so loudly and keep serving.
                let what = match done { Ok(()) => "returned".to_string(), Err(e) => e.to_string() };
                hub.emit("daemon", "task.ended", Level::Error, format!("a capability task ended unexpectedly: {what}"));
            }
        }
    }
}

fn reload(hub: &StatusHub, path: &Path, tx: &watch::Sender<Arc<Config>>) {
    match Config::load(path) {
        Ok(new) => {
            let outcome = format!("{}: reloaded {}", Timestamp::now(), path.display());
            hub.update(|s| {
                s.gateway.site = new.gateway.site.clone();
                s.gateway.last_reload = Some(outcome);
            });
            tx.send_replace(Arc::new(new));
            hub.emit(
                "daemon",
                "config.reloaded",
                Level::Info,
                format!("configuration reloaded from {}", path.display()),
            );
        }
        Err(e) => {
            let outcome = format!("{}: kept the old configuration: {e}", Timestamp::now());
            hub.update(|s| s.gateway.last_reload = Some(outcome));
            hub.emit(
                "daemon",
                "config.reload_failed",
                Level::Error,
                format!("SIGHUP: new configuration rejected, keeping the old one: {e}"),
            );
        }
    }
}

enum DaemonSignal {
    Reload,
    Stop(&'static str),
}

struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::SignalKind as K;
        Ok(Self {
            term: signal(K::terminate())?,
            int: signal(K::interrupt())?,
            hup: signal(K::hangup())?,
        })
    }

    async fn next(&mut self) -> DaemonSignal {
        tokio::select! {
            _ = self.term.recv() => DaemonSignal::Stop("SIGTERM"),
            _ = self.int.recv() => DaemonSignal::Stop("SIGINT"),
            _ = self.hup.recv() => DaemonSignal::Reload,
        }
    }
}
