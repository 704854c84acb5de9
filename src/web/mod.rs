//! The local web status page for field technicians: `/` (one glance: can
//! peers reach this gateway, and why not), `/api/status`, `/metrics`,
//! `/healthz`, and two token-protected actions.
//!
//! hyper's HTTP/1 server behind an accept loop of our own, so that every
//! connection gets the header-read timer (slowloris), the idle timeout, the
//! per-client and total connection caps, and the per-client request rate.

pub mod actions;
mod handler;
pub mod host;
pub mod limits;
pub mod metrics;
pub mod page;
pub mod request;
pub mod sections;
mod server;
pub mod trim;
pub mod verdict;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::actor::Context;
use crate::config::WebConfig;
use crate::poke::Pokes;
use crate::shutdown;
use crate::status::{Health, Level, State, StatusHub, WebStatus};

use crate::deadline::Later;
use actions::Token;
use limits::{ConnectionLimits, RateLimiter, MAX_TRACKED_CLIENTS};
use request::Action;

/// How often the counters are published into the status while connections
/// come and go. Idle, nothing is published and nothing wakes: the counters
/// can't change without a connection.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);
/// How long after the last connection came or went the publishing goes on
/// (the heap trim waits for 2 s without a new connection after a burst).
const ACTIVE_LINGER: Duration = Duration::from_secs(4);
/// How often an address that could not be bound is tried again (a LAN
/// address may appear only after DHCP).
const REBIND_EVERY: Duration = Duration::from_secs(10);
/// Refused actions are logged as events at most this often, so a flood of
/// bad tokens cannot push real events out of the recent list.
const REFUSAL_EVENT_SPACING: Duration = Duration::from_secs(10);
/// Events about turned-away clients come at most this often.
const REFUSED_EVENT_SPACING: Duration = Duration::from_secs(60);
/// File descriptors kept for everything but web connections.
const SPARE_FDS: u64 = 128;

/// Counters kept across configuration reloads.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    requests: AtomicU64,
    rate_limited: AtomicU64,
    rejected_per_client: AtomicU64,
    rejected_total: AtomicU64,
    header_timeouts: AtomicU64,
    idle_closed: AtomicU64,
    actions_run: AtomicU64,
    actions_refused: AtomicU64,
    heap_trims: AtomicU64,
}

/// What every connection of one configuration generation shares.
pub(crate) struct Shared {
    hub: StatusHub,
    pokes: Pokes,
    config: WebConfig,
    token: Option<Token>,
    token_problem: Option<String>,
    rate: RateLimiter,
    hosts: host::HostPolicy,
    limits: Arc<ConnectionLimits>,
    counters: Arc<Counters>,
    last_refusal_event: Mutex<Option<Instant>>,
    /// A connection came or went: publish for a while.
    activity: tokio::sync::Notify,
}

impl Shared {
    fn note_refusal(&self, peer: SocketAddr, action: Action, why: &str) {
        let mut last = self
            .last_refusal_event
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|t| t.elapsed() < REFUSAL_EVENT_SPACING) {
            return;
        }
        *last = Some(Instant::now());
        self.hub.emit(
            "web",
            "action.refused",
            Level::Warn,
            format!("{} from {} refused: {why}", action.name(), peer.ip()),
        );
    }
}

/// The web actor's links to the others.
pub struct Links {
    /// The actions' only way to the actors ("run netcheck now", "re-map now").
    pub pokes: Pokes,
}

/// Run the web page until shutdown.
pub async fn run(ctx: Context, links: Links) {
    let Context {
        hub,
        mut config,
        mut net,
        stop: mut shutdown,
    } = ctx;
    let pokes = links.pokes;
    let counters = Arc::new(Counters::default());
    let mut after_burst = trim::QuietAfterBurst::default();
    loop {
        let cfg = config.borrow_and_update().web.clone();
        if cfg.listen.is_empty() {
            hub.update(|s| {
                s.web
                    .health
                    .set(State::Disabled, Some("web.listen is empty".into()));
                s.web.listening.clear();
            });
            tokio::select! {
                _ = shutdown.wait() => return,
                r = config.changed() => if r.is_err() { return },
            }
            continue;
        }
        let mut generation = Generation::start(&hub, &pokes, cfg, counters.clone());
        // Publish at once, then only while connections come and go.
        let mut next_publish = Some(Instant::now());
        let mut active_until = Instant::now();
        let mut rebind = tokio::time::interval(REBIND_EVERY);
        loop {
            let rebinding = !generation.failed.is_empty();
            tokio::select! {
                _ = shutdown.wait() => {
                    generation.stop().await;
                    return;
                }
                r = config.changed() => {
                    if r.is_err() {
                        generation.stop().await;
                        return;
                    }
                    if config.borrow().web != generation.shared.config {
                        generation.stop().await;
                        hub.emit("web", "config.changed", Level::Info, "web settings changed; listening anew");
                        break;
                    }
                }
                r = net.changed() => {
                    if r.is_err() { return; }
                    generation.bind_missing(&hub);
                }
                _ = rebind.tick(), if rebinding => generation.bind_missing(&hub),
                _ = generation.shared.activity.notified() => {
                    active_until = Instant::now().later(ACTIVE_LINGER);
                    next_publish.get_or_insert_with(|| Instant::now().later(PUBLISH_EVERY));
                }
                _ = sleep_until_opt(next_publish) => {
                    generation.trim_after_burst(&mut after_burst);
                    generation.publish(&hub);
                    let busy = generation.shared.limits.open() > 0 || Instant::now() < active_until;
                    next_publish = busy.then(|| Instant::now().later(PUBLISH_EVERY));
                }
            }
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Listeners and connections serving one configuration.
struct Generation {
    shared: Arc<Shared>,
    stop: shutdown::ShutdownTrigger,
    serving: JoinSet<()>,
    bound: Vec<SocketAddr>,
    failed: BTreeMap<SocketAddr, String>,
    fd_problem: Option<String>,
    /// The page's health as last published (its `since` moves only when
    /// the state does).
    health: Option<Health>,
    /// Turned-away totals at the last "refused" event, and when it was.
    refused_reported: (u64, Option<Instant>),
}

impl Generation {
    fn start(hub: &StatusHub, pokes: &Pokes, cfg: WebConfig, counters: Arc<Counters>) -> Self {
        let (token, token_problem) = if cfg.actions_enabled {
            match Token::load(Path::new(&cfg.action_token_file)) {
                Ok(t) => (Some(t), None),
                Err(e) => (None, Some(e.to_string())),
            }
        } else {
            (None, None)
        };
        let fd_problem = raise_fd_limit(u64::from(cfg.max_connections) + SPARE_FDS);
        let (stop, _) = shutdown::channel();
        let failed = cfg
            .listen
            .iter()
            .map(|a| (*a, "not bound yet".to_string()))
            .collect();
        let shared = Arc::new(Shared {
            hub: hub.clone(),
            pokes: pokes.clone(),
            rate: RateLimiter::new(cfg.requests_per_minute, MAX_TRACKED_CLIENTS),
            hosts: host::HostPolicy::new(&cfg.listen, &host::own_hostnames(), &cfg.allowed_hosts),
            limits: ConnectionLimits::new(cfg.max_connections_per_ip, cfg.max_connections),
            config: cfg,
            token,
            token_problem,
            counters,
            last_refusal_event: Mutex::new(None),
            activity: tokio::sync::Notify::new(),
        });
        let mut g = Self {
            shared,
            stop,
            serving: JoinSet::new(),
            bound: Vec::new(),
            failed,
            fd_problem,
            health: None,
            refused_reported: (0, None),
        };
        g.bind_missing(hub);
        g
    }

    /// Bind every address not bound yet.
    fn bind_missing(&mut self, hub: &StatusHub) {
        if self.failed.is_empty() {
            return;
        }
        let todo: Vec<SocketAddr> = self.failed.keys().copied().collect();
        for addr in todo {
            match bind(addr) {
                Ok(listener) => {
                    let shown = listener.local_addr().unwrap_or(addr);
                    self.failed.remove(&addr);
                    self.bound.push(shown);
                    self.serving.spawn(server::serve(
                        listener,
                        self.shared.clone(),
                        self.stop.subscribe(),
                    ));
                    hub.emit(
                        "web",
                        "listening",
                        Level::Info,
                        format!("status page on http://{shown}/"),
                    );
                }
                Err(e) => {
                    let why = format!("cannot listen on {addr}: {e}");
                    if self.failed.get(&addr) != Some(&why) {
                        hub.emit("web", "listen.failed", Level::Warn, why.clone());
                    }
                    self.failed.insert(addr, why);
                }
            }
        }
        self.publish(hub);
    }

    /// Put the counters and health into the status when they changed.
    fn publish(&mut self, hub: &StatusHub) {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut problems: Vec<String> = self.failed.values().cloned().collect();
        problems.extend(
            self.shared
                .token_problem
                .iter()
                .map(|p| format!("actions unavailable: {p}")),
        );
        problems.extend(self.fd_problem.iter().cloned());
        let state = if self.bound.is_empty() {
            State::Unavailable
        } else if problems.is_empty() {
            State::Ok
        } else {
            State::Degraded
        };
        let reason = (!problems.is_empty()).then(|| problems.join("; "));
        let mut next = WebStatus {
            health: match &self.health {
                Some(h) => h.clone(),
                // Our own section, from before a restart of the listeners.
                None => hub.snapshot().web.health,
            },
            listening: self.bound.iter().map(ToString::to_string).collect(),
            actions_enabled: self.shared.config.actions_enabled && self.shared.token.is_some(),
            connections_open: u64::from(self.shared.limits.open()),
            requests: get(&c.requests),
            rejected_per_client: get(&c.rejected_per_client),
            rejected_total: get(&c.rejected_total),
            rate_limited: get(&c.rate_limited),
            header_timeouts: get(&c.header_timeouts),
            idle_closed: get(&c.idle_closed),
            actions_run: get(&c.actions_run),
            actions_refused: get(&c.actions_refused),
            heap_trims: get(&c.heap_trims),
        };
        next.health.set(state, reason);
        self.report_refusals(hub, &next);
        self.health = Some(next.health.clone());
        // The hub wakes the views only if this really changed the section.
        hub.update(|s| s.web = next);
    }

    /// Give the freed buffers of a burst of connections back to the system
    /// once the burst is over (see [`trim`]). On a blocking thread: it locks
    /// the allocator's arenas while it walks them.
    fn trim_after_burst(&self, after_burst: &mut trim::QuietAfterBurst) {
        let limits = &self.shared.limits;
        let (peak, accepted) = limits.take_peak();
        if !after_burst.observe(Instant::now(), limits.open(), peak, accepted) {
            return;
        }
        let counters = self.shared.counters.clone();
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let released = crate::heap::trim();
            counters.heap_trims.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                "web: a burst of connections is over; heap trimmed in {:?} (released: {released})",
                started.elapsed()
            );
        });
    }

    /// One event at most every [`REFUSED_EVENT_SPACING`] when clients were
    /// turned away, so a technician sees an attack in the recent events
    /// without it flooding them.
    fn report_refusals(&mut self, hub: &StatusHub, w: &WebStatus) {
        let total = w.rejected_per_client + w.rejected_total + w.rate_limited + w.header_timeouts;
        let (reported, at) = self.refused_reported;
        if total <= reported || at.is_some_and(|t| t.elapsed() < REFUSED_EVENT_SPACING) {
            return;
        }
        self.refused_reported = (total, Some(Instant::now()));
        hub.emit(
            "web",
            "clients.refused",
            Level::Warn,
            format!(
                "turned away so far: {} connections over the per-client cap, {} over the total cap, \
                 {} requests answered 429, {} slow request heads cut",
                w.rejected_per_client, w.rejected_total, w.rate_limited, w.header_timeouts
            ),
        );
    }

    async fn stop(&mut self) {
        self.stop.trigger();
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while self.serving.join_next().await.is_some() {}
        })
        .await;
        self.serving.abort_all();
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr.ip() {
        IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Make room for `want` open files; says why not when it cannot.
// `rlim_t` is u64 on 64-bit targets and u32 on armv7: the conversions are
// no-ops on one and needed on the other.
#[allow(clippy::useless_conversion)]
fn raise_fd_limit(want: u64) -> Option<String> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    let (soft, hard) = (u64::from(soft), u64::from(hard));
    if soft >= want {
        return None;
    }
    let target = want.min(hard);
    let set = match (target.try_into(), hard.try_into()) {
        (Ok(t), Ok(h)) => setrlimit(Resource::RLIMIT_NOFILE, t, h).is_ok(),
        _ => false,
    };
    if !set || target < want {
        return Some(format!(
            "the open-file limit ({target}) is below web.max_connections + {SPARE_FDS}; raise LimitNOFILE"
        ));
    }
    None
}

/// A snapshot for unit tests of the views.
#[cfg(test)]
pub(crate) fn test_status() -> crate::status::Status {
    crate::status::Status::starting(crate::status::GatewayStatus {
        id: "gw-test".into(),
        site: "lab".into(),
        version: "0.0.0".into(),
        started_at: "2026-01-01T00:00:00Z".parse().unwrap(),
        config_path: "/etc/edgereach/edgereach.toml".into(),
        state_dir: "/var/lib/edgereach".into(),
        last_reload: None,
    })
}
