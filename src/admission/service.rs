//! The admission actor: registers after a random start delay, then every
//! `interval` with a fresh NAT summary; stores the assignment; brings
//! tailscaled onto the assigned cluster; and on failure keeps the stored
//! assignment, leaves tailscaled alone and retries with capped, fully
//! jittered backoff. A refusal with a reason waits a whole interval: it
//! needs a person, and hammering the service would not change its mind.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::assignment::{self, Assignment};
use super::client::{AcsClient, AcsError, Registered};
use super::codec::{BootstrapRequest, DerpMapRef, NetcheckSummary};
use super::model::AdmissionStatus;
use super::provision::{self, Plan};
use super::schedule;
use crate::actor::Context;
use crate::config::Config;
use crate::deadline::Later;
use crate::netcheck::report::{LatestReport, Report};
use crate::resolve::NameResolver;
use crate::shutdown::Shutdown;
use crate::state::StateDir;
use crate::status::{Level, State, StatusHub, Timestamp};
use crate::tailscale::client::LocalApi;
use crate::tailscale::model::Backend;

const SOURCE: &str = "admission";

/// What admission is handed beside the common channels: who it is (fixed at
/// start) and what it hears from netcheck and tailscale.
#[derive(Clone)]
pub struct Links {
    /// This gateway's id.
    pub gateway_id: String,
    /// netcheck's latest report (the NAT summary in each registration).
    pub report: watch::Receiver<LatestReport>,
    /// tailscaled's backend, from tailscale (whether a key may be needed).
    pub backend: watch::Receiver<Backend>,
}

/// Run until shutdown.
pub async fn run(ctx: Context, links: Links) {
    let Context {
        hub,
        mut config,
        stop: mut shutdown,
        ..
    } = ctx;
    let resolver = Arc::new(NameResolver::from_system());
    hub.update(|s| s.admission = AdmissionStatus::starting());
    loop {
        let cfg = config.borrow_and_update().clone();
        let agent = if cfg.admission.url.is_empty() {
            hub.update(|s| {
                s.admission = AdmissionStatus::starting();
                s.admission
                    .health
                    .set(State::Disabled, Some("admission.url is empty".into()));
            });
            None
        } else {
            match Agent::new(hub.clone(), cfg.clone(), resolver.clone(), links.clone()) {
                Ok(a) => Some(a),
                Err(e) => {
                    hub.update(|s| {
                        s.admission
                            .health
                            .set(State::Unavailable, Some(e.to_string()));
                    });
                    None
                }
            }
        };
        let stop = match agent {
            Some(mut a) => a.run(&mut config, &mut shutdown).await,
            None => tokio::select! {
                _ = shutdown.wait() => true,
                r = config.changed() => r.is_err(),
            },
        };
        if stop {
            return;
        }
    }
}

/// The registration request for this gateway now, from its id, netcheck's
/// latest report, tailscaled's backend and the current assignment.
pub fn request(
    cfg: &Config,
    gateway_id: &str,
    report: Option<&Report>,
    backend: &Backend,
    current: Option<&Assignment>,
) -> BootstrapRequest {
    BootstrapRequest {
        current_cluster_id: current.map(|a| a.cluster_id.clone()),
        needs_auth_key: needs_auth_key(cfg, backend, current),
        ..request_for(cfg, gateway_id, report)
    }
}

/// Whether a login or a move may need a pre-auth key: tailscaled is new,
/// logged out or not known yet, or it is not on the assigned cluster.
pub fn needs_auth_key(cfg: &Config, t: &Backend, current: Option<&Assignment>) -> bool {
    if !cfg.tailscale.enabled {
        return false;
    }
    let logged_out = matches!(
        t.state.as_deref(),
        None | Some("NeedsLogin") | Some("NoState")
    );
    let elsewhere = match (current, &t.control_url) {
        (Some(a), Some(u)) => !assignment::same_url(u, &a.headscale_url),
        _ => true,
    };
    logged_out || elsewhere
}

/// The request's fixed part: who asks, from where, with which NAT.
pub fn request_for(cfg: &Config, gateway_id: &str, report: Option<&Report>) -> BootstrapRequest {
    BootstrapRequest {
        account: cfg.admission.account.clone(),
        plan: cfg.admission.plan.clone(),
        want_region: cfg.admission.region.clone(),
        gateway_id: gateway_id.to_string(),
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        arch: std::env::consts::ARCH.to_string(),
        netcheck: report.map(NetcheckSummary::of),
        current_cluster_id: None,
        needs_auth_key: false,
    }
}

struct Agent {
    hub: StatusHub,
    cfg: Arc<Config>,
    client: AcsClient,
    links: Links,
    state: Option<StateDir>,
    current: Option<Assignment>,
    failures: u32,
    /// The last failure an event was emitted for, so a repeated failure is
    /// one event, not one per retry.
    last_failure_kind: Option<String>,
}

impl Agent {
    fn new(
        hub: StatusHub,
        cfg: Arc<Config>,
        resolver: Arc<NameResolver>,
        links: Links,
    ) -> Result<Self, AcsError> {
        let client = AcsClient::new(&cfg.admission, resolver)?;
        let state = StateDir::open(&cfg.gateway.state_dir()).ok();
        Ok(Self {
            hub,
            client,
            links,
            state,
            current: None,
            failures: 0,
            last_failure_kind: None,
            cfg,
        })
    }

    /// Returns true on shutdown, false when the configuration changed.
    async fn run(
        &mut self,
        config: &mut watch::Receiver<Arc<Config>>,
        shutdown: &mut Shutdown,
    ) -> bool {
        self.current = self
            .state
            .as_ref()
            .and_then(|d| Assignment::load(d).ok().flatten());
        let delay = schedule::first_delay(
            self.cfg.admission.startup_spread.get(),
            self.current.is_some(),
        );
        let url = crate::redact::url(&self.cfg.admission.url);
        let insecure = self.cfg.admission.token_in_cleartext().then(|| {
            "plain HTTP: the bearer token travels in cleartext \
             (admission.allow_insecure_http = true, for labs only)"
                .to_string()
        });
        let stored = self.current.clone();
        self.hub.update(|s| {
            let a = &mut s.admission;
            *a = AdmissionStatus::starting();
            a.service = Some(url);
            a.insecure = insecure;
            a.next_attempt = Some(at(delay));
            let reason = match &stored {
                Some(st) => {
                    a.show(st, true);
                    format!(
                        "using the stored assignment (cluster {}, {}); registering in {:.0?}",
                        st.cluster_id, st.headscale_url, delay
                    )
                }
                None => format!("not registered yet; first registration in {delay:.0?}"),
            };
            let state = if stored.is_some() {
                State::Ok
            } else {
                State::Unavailable
            };
            a.health.set(state, Some(reason));
        });
        let mut next = Instant::now().later(delay);
        loop {
            tokio::select! {
                _ = shutdown.wait() => return true,
                r = config.changed() => {
                    if r.is_err() { return true }
                    let new = config.borrow_and_update().clone();
                    if new.admission != self.cfg.admission
                        || new.gateway.state_dir != self.cfg.gateway.state_dir
                        || new.tailscale != self.cfg.tailscale
                    {
                        return false;
                    }
                    self.cfg = new;
                }
                _ = tokio::time::sleep_until(next) => {
                    let wait = self.attempt().await;
                    next = Instant::now().later(wait);
                    self.hub.update(|s| s.admission.next_attempt = Some(at(wait)));
                }
            }
        }
    }

    /// One registration and what follows; returns the wait until the next.
    async fn attempt(&mut self) -> Duration {
        let report = self.links.report.borrow().clone();
        let backend = self.links.backend.borrow().clone();
        let gateway_id = self.links.gateway_id.clone();
        let req = request(
            &self.cfg,
            &gateway_id,
            report.as_deref(),
            &backend,
            self.current.as_ref(),
        );
        let now = Timestamp::now();
        self.hub.update(|s| s.admission.last_attempt = Some(now));
        match self.client.bootstrap(&req).await {
            Ok(reg) => {
                self.on_success(reg, &gateway_id).await;
                schedule::periodic(self.cfg.admission.interval.get())
            }
            Err(e) => self.on_failure(e),
        }
    }

    async fn on_success(&mut self, mut reg: Registered, gateway_id: &str) {
        let fresh = Assignment::from_response(&reg.response, &self.cfg.admission.url);
        let derp_note = self.keep_derp_map(&reg.response.derp_map).await;
        if let Some(dir) = &self.state {
            if let Err(e) = fresh.store(dir) {
                self.hub.emit(
                    SOURCE,
                    "assignment.store_failed",
                    Level::Error,
                    format!("cannot store the assignment: {e}"),
                );
            }
        }
        let previous = self.current.replace(fresh.clone());
        let moved = previous.as_ref().filter(|p| !p.same_place(&fresh));
        if let Some(p) = moved {
            self.hub.emit(
                SOURCE,
                "assignment.changed",
                Level::Warn,
                format!(
                    "the service re-assigned this gateway from cluster {} ({}) to cluster {} ({})",
                    p.cluster_id, p.headscale_url, fresh.cluster_id, fresh.headscale_url
                ),
            );
        } else if previous.is_none() {
            self.hub.emit(
                SOURCE,
                "assignment.new",
                Level::Info,
                format!(
                    "assigned to cluster {} ({})",
                    fresh.cluster_id, fresh.headscale_url
                ),
            );
        }
        // The key lives in this scope only: taken out of the answer now,
        // moved into the start call or dropped (and wiped) at the end.
        let key = reg.response.auth_key.take();
        let (provisioning, ts_ok) = self.provision(&fresh, gateway_id, key).await;
        if self.failures > 0 {
            self.hub.emit(
                SOURCE,
                "registration.recovered",
                Level::Info,
                format!("registered again after {} failed attempts", self.failures),
            );
        }
        self.failures = 0;
        self.last_failure_kind = None;
        let peer = reg.peer.to_string();
        let now = Timestamp::now();
        self.hub.update(|s| {
            let a = &mut s.admission;
            a.show(&fresh, false);
            a.service_addr = Some(peer);
            a.last_registration = Some(now);
            a.last_error = None;
            a.failures = 0;
            a.registrations += 1;
            a.provisioning = Some(crate::redact::text(&provisioning));
            let mut reason = format!(
                "registered: cluster {} at {}; {provisioning}",
                fresh.cluster_id, fresh.headscale_url
            );
            if let Some(n) = &derp_note {
                reason.push_str("; ");
                reason.push_str(n);
            }
            let state = if ts_ok && derp_note.is_none() {
                State::Ok
            } else {
                State::Degraded
            };
            a.health.set(state, Some(reason));
        });
    }

    /// Bring tailscaled onto `a`; returns what was done and whether all is well.
    async fn provision(
        &self,
        a: &Assignment,
        gateway_id: &str,
        key: Option<super::secret::Secret>,
    ) -> (String, bool) {
        if !self.cfg.tailscale.enabled {
            return (
                "tailscale.enabled is false: tailscaled not managed".into(),
                true,
            );
        }
        let api = LocalApi::new(
            self.cfg.tailscale.socket.clone(),
            self.cfg.tailscale.call_timeout.get(),
        );
        let st = match api.status().await {
            Ok(st) => st,
            Err(e) => {
                return (
                    format!("tailscaled not reachable, nothing provisioned: {e}"),
                    false,
                )
            }
        };
        let control_url = api.prefs().await.map(|p| p.control_url).unwrap_or_default();
        let plan = provision::plan(&st.backend_state, &control_url, a, key.is_some());
        let (verb, from) = match plan {
            Plan::Leave(why) => return (why, true),
            Plan::NeedKey(why) => return (why, false),
            Plan::Login => ("logged in", None),
            Plan::Migrate { from } => ("moved", Some(from)),
        };
        match provision::start(&api, a, gateway_id, key).await {
            Err(e) => {
                let msg = format!("starting tailscaled on {} failed: {e}", a.headscale_url);
                self.hub
                    .emit(SOURCE, "provision.failed", Level::Error, msg.clone());
                (msg, false)
            }
            Ok(out) => self.started(a, gateway_id, verb, from.as_deref(), &out),
        }
    }

    /// What `provision::start` did, said in an event; returns the words and
    /// whether tailscaled runs.
    fn started(
        &self,
        a: &Assignment,
        gateway_id: &str,
        verb: &str,
        from: Option<&str>,
        out: &provision::Outcome,
    ) -> (String, bool) {
        let running = out.backend_state == "Running";
        let keys = match (&out.node_key_before, &out.node_key_after) {
            (Some(b), Some(k)) if b == k => {
                format!("node key kept ({})", provision::short_key(k))
            }
            (Some(b), Some(k)) => format!(
                "node key CHANGED ({} -> {})",
                provision::short_key(b),
                provision::short_key(k)
            ),
            (None, Some(k)) => format!("node key {}", provision::short_key(k)),
            _ => "node key not known yet".into(),
        };
        let msg = match &from {
            Some(f) => format!(
                "{verb} tailscaled from {f} to cluster {} at {} as {gateway_id}: {}; {keys}",
                a.cluster_id, a.headscale_url, out.backend_state
            ),
            None => format!(
                "{verb} tailscaled to cluster {} at {} as {gateway_id}: {}; {keys}",
                a.cluster_id, a.headscale_url, out.backend_state
            ),
        };
        let mut msg = msg;
        if from.is_some() && !running && a.headscale_url.starts_with("http://") {
            // tailscaled (controlhttp) re-dials within 2 minutes of
            // its last dial over HTTPS on port 443 only.
            msg.push_str(
                "; note: tailscaled reconnects only over HTTPS on port 443 right after a move, so a plain-HTTP control server is not reachable this way",
            );
        }
        let (kind, level) = match (&from, running) {
            (Some(_), true) => ("tailscale.migrated", Level::Info),
            (None, true) => ("tailscale.provisioned", Level::Info),
            (_, false) => ("provision.incomplete", Level::Warn),
        };
        self.hub.emit(SOURCE, kind, level, msg.clone());
        (msg, running)
    }

    /// Store the cluster's DERP map for netcheck; a note when it failed.
    async fn keep_derp_map(&self, map: &Option<DerpMapRef>) -> Option<String> {
        let dir = self.state.as_ref()?;
        let value = match map {
            None => return None,
            Some(DerpMapRef::Inline(v)) => v.clone(),
            Some(DerpMapRef::Url(u)) => {
                let fetched = async {
                    let c = self.client.for_url(u, &self.cfg.admission)?;
                    let body = c.get(crate::netcheck::derpmap::MAX_DERP_MAP).await?;
                    crate::netcheck::derpmap::decode(&body)
                        .map_err(|e| AcsError::Setup(e.to_string()))?;
                    serde_json::from_slice::<serde_json::Value>(&body)
                        .map_err(|e| AcsError::Setup(e.to_string()))
                };
                match fetched.await {
                    Ok(v) => v,
                    Err(e) => return Some(format!("DERP map {u} not fetched: {e}")),
                }
            }
        };
        assignment::store_derp_map(dir, &value)
            .err()
            .map(|e| format!("DERP map not stored: {e}"))
    }

    fn on_failure(&mut self, e: AcsError) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let wait = schedule::after_failure(
            &e,
            self.failures,
            self.cfg.admission.interval.get(),
            self.cfg.admission.retry_max.get(),
        );
        let (kind, level) = match &e {
            AcsError::Rejected { .. } => ("registration.rejected", Level::Error),
            AcsError::Busy { .. } => ("registration.busy", Level::Warn),
            AcsError::Setup(_) | AcsError::Token { .. } => {
                ("registration.misconfigured", Level::Error)
            }
            _ => ("registration.failed", Level::Warn),
        };
        let text = e.to_string();
        let signature = format!("{kind}|{}", failure_class(&e));
        if self.last_failure_kind.as_deref() != Some(&signature) {
            let tail = match &self.current {
                Some(a) => format!(
                    "; keeping the stored assignment (cluster {}) and tailscaled as they are",
                    a.cluster_id
                ),
                None => "; tailscaled left as it is".into(),
            };
            self.hub.emit(
                SOURCE,
                kind,
                level,
                format!("registration failed: {text}{tail}"),
            );
            self.last_failure_kind = Some(signature);
        }
        let current = self.current.clone();
        let failures = self.failures;
        self.hub.update(|s| {
            let a = &mut s.admission;
            a.last_error = Some(crate::redact::text(&text));
            a.failures = failures;
            let (state, reason) = match &current {
                Some(c) => (
                    State::Degraded,
                    format!(
                        "registration failed ({text}); using the assignment from {} (cluster {}); retry in {wait:.0?}",
                        c.registered_at, c.cluster_id
                    ),
                ),
                None => (
                    State::Unavailable,
                    format!("not registered: {text}; retry in {wait:.0?}"),
                ),
            };
            a.health.set(state, Some(reason));
        });
        wait
    }
}

/// Failures of the same class count as one for events (the text may carry
/// changing details such as addresses or a timeout's exact value).
fn failure_class(e: &AcsError) -> String {
    match e {
        AcsError::Rejected { status, reason } => format!("{status} {reason}"),
        AcsError::Busy { status, .. } | AcsError::Server { status, .. } => status.to_string(),
        AcsError::Decode(_) => "decode".into(),
        AcsError::TooLarge(_) => "too-large".into(),
        AcsError::Timeout(_) => "timeout".into(),
        AcsError::Connect { .. } => "connect".into(),
        AcsError::Resolve(_) => "resolve".into(),
        AcsError::Tls { .. } => "tls".into(),
        AcsError::Http(_) => "http".into(),
        AcsError::Setup(s) => s.clone(),
        AcsError::Token { why, .. } => why.clone(),
    }
}

/// The time `d` from now.
fn at(d: Duration) -> Timestamp {
    Timestamp::in_(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(state: Option<&str>, url: Option<&str>) -> Backend {
        Backend {
            state: state.map(String::from),
            control_url: url.map(String::from),
        }
    }

    fn on(url: &str) -> Assignment {
        Assignment::for_test(url, "authkey")
    }

    #[test]
    fn a_key_is_asked_for_only_when_a_login_or_move_may_follow() {
        let cfg = Config::default();
        let a = on("https://hs-a.example");
        let running = backend(Some("Running"), Some("https://hs-a.example/"));
        assert!(!needs_auth_key(&cfg, &running, Some(&a)));
        assert!(needs_auth_key(&cfg, &running, None), "no assignment yet");
        let elsewhere = backend(Some("Running"), Some("https://hs-b.example"));
        assert!(
            needs_auth_key(&cfg, &elsewhere, Some(&a)),
            "a move left undone"
        );
        for st in [None, Some("NeedsLogin"), Some("NoState")] {
            let s = backend(st, Some("https://hs-a.example"));
            assert!(needs_auth_key(&cfg, &s, Some(&a)), "{st:?}");
        }
        let mut off = Config::default();
        off.tailscale.enabled = false;
        assert!(!needs_auth_key(&off, &backend(None, None), None));
        let req = request(&cfg, "gw-1", None, &running, Some(&a));
        assert_eq!(req.current_cluster_id.as_deref(), Some("A"));
        assert!(!req.needs_auth_key);
        assert_eq!(req.gateway_id, "gw-1");
    }
}
