//! The TOML configuration: every section optional, unknown keys rejected, and
//! every error naming the file, the line and the key.

mod duration;
mod locate;
mod pinhole;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use duration::{HumanDuration, MAX_DURATION};

/// Where the daemon and the CLI look for the configuration by default.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/edgereach/edgereach.toml";

/// Largest configuration file accepted; anything bigger is a mistake.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// A configuration problem, located in its file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read, is no regular file or is too large
    /// (the message names the path).
    #[error("cannot read configuration: {0}")]
    Read(#[from] crate::fsread::ReadError),
    /// The file is not UTF-8 text.
    #[error("{path}: cannot read configuration: not UTF-8 text")]
    NotText {
        /// File that failed.
        path: String,
    },
    /// A key is unknown, has the wrong type or an invalid value.
    #[error("{path}:{line}: {key}: {message}")]
    Invalid {
        /// File that failed.
        path: String,
        /// 1-based line, or 0 when the problem has no single line.
        line: usize,
        /// Dotted key, e.g. `portmap.lease`.
        key: String,
        /// What was wrong and what was expected.
        message: String,
    },
}

/// The whole configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Identity and local paths.
    pub gateway: GatewayConfig,
    /// Router port mappings.
    pub portmap: PortmapConfig,
    /// STUN NAT report.
    pub netcheck: NetcheckConfig,
    /// tailscaled driver.
    pub tailscale: TailscaleConfig,
    /// Admission service.
    pub admission: AdmissionConfig,
    /// MQTT telemetry.
    pub telemetry: TelemetryConfig,
    /// Local web page.
    pub web: WebConfig,
}

/// `[gateway]`
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Gateway identity; derived from /etc/machine-id when absent.
    pub id: Option<String>,
    /// Site name, used in telemetry topics.
    pub site: String,
    /// Machine-level state directory.
    pub state_dir: Option<PathBuf>,
    /// Unix socket the CLI talks to.
    pub control_socket: Option<PathBuf>,
    /// Group whose members may use the control socket besides root.
    pub control_group: Option<String>,
}

impl GatewayConfig {
    /// The state directory: configured, else systemd's `$STATE_DIRECTORY`,
    /// else `/var/lib/edgereach`. Always machine-level, never a user's home.
    pub fn state_dir(&self) -> PathBuf {
        if let Some(p) = &self.state_dir {
            return p.clone();
        }
        std::env::var("STATE_DIRECTORY")
            .ok()
            .and_then(|v| v.split(':').next().map(PathBuf::from))
            .filter(|p| p.is_absolute())
            .unwrap_or_else(|| PathBuf::from("/var/lib/edgereach"))
    }

    /// The control socket: configured, else under systemd's
    /// `$RUNTIME_DIRECTORY`, else `/run/edgereach/control.sock` for root and
    /// `<state_dir>/control.sock` for anyone else.
    pub fn control_socket(&self) -> PathBuf {
        if let Some(p) = &self.control_socket {
            return p.clone();
        }
        if let Some(dir) = std::env::var("RUNTIME_DIRECTORY")
            .ok()
            .and_then(|v| v.split(':').next().map(PathBuf::from))
            .filter(|p| p.is_absolute())
        {
            return dir.join("control.sock");
        }
        if nix::unistd::geteuid().is_root() {
            PathBuf::from("/run/edgereach/control.sock")
        } else {
            self.state_dir().join("control.sock")
        }
    }
}

/// `[portmap]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PortmapConfig {
    /// Whether edgereach maps ports at all.
    pub enabled: bool,
    /// Lease requested from the router.
    pub lease: HumanDuration,
    /// How often the mapping is checked on the router.
    pub verify_interval: HumanDuration,
    /// Full delete + re-add period, for routers whose mappings die silently.
    pub refresh_interval: HumanDuration,
    /// Prove every `verify_interval` that a packet from outside really gets
    /// through the router (a canary mapping and an RFC 5780 STUN server), and
    /// repair the mappings when it does not.
    pub prove: bool,
    /// The mappings to hold.
    pub mapping: Vec<MappingConfig>,
    /// Open an IPv6 pinhole for tailscaled's port on each stable global
    /// IPv6 address (see `pinhole`).
    pub ipv6_pinholes: bool,
    /// Lease asked for each pinhole; renewed at half of what is granted.
    pub pinhole_lease: HumanDuration,
}

impl Default for PortmapConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            lease: HumanDuration::from_secs(3600),
            verify_interval: HumanDuration::from_secs(30),
            refresh_interval: HumanDuration::from_secs(6 * 3600),
            prove: true,
            mapping: vec![MappingConfig::tailscale()],
            ipv6_pinholes: pinhole::DEFAULT_ON,
            pinhole_lease: pinhole::DEFAULT_LEASE,
        }
    }
}

/// Transport protocol of a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
}

/// `[[portmap.mapping]]`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingConfig {
    /// Name shown in status and events.
    pub name: String,
    /// udp or tcp.
    pub protocol: Protocol,
    /// Port on the gateway.
    pub internal_port: u16,
    /// Port wanted on the router's public side.
    pub external_port: u16,
    /// Map tailscaled's real UDP port instead (both sides, the same port
    /// outside when free), as the LocalAPI shows it, and follow it when
    /// tailscaled restarts on another one.
    #[serde(default)]
    pub follow_tailscaled: bool,
}

impl MappingConfig {
    /// The default: tailscaled's mesh port, same port outside.
    pub fn tailscale() -> Self {
        Self {
            name: "tailscale".into(),
            protocol: Protocol::Udp,
            internal_port: 41641,
            external_port: 41641,
            follow_tailscaled: true,
        }
    }
}

/// `[netcheck]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetcheckConfig {
    /// Period of the full report.
    pub interval: HumanDuration,
    /// STUN servers as `host:port`.
    pub stun_servers: Vec<String>,
    /// Optional path or URL of a Tailscale-format DERP map.
    pub derp_map: String,
}

impl Default for NetcheckConfig {
    fn default() -> Self {
        Self {
            interval: HumanDuration::from_secs(300),
            stun_servers: Vec::new(),
            derp_map: String::new(),
        }
    }
}

/// `[tailscale]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TailscaleConfig {
    /// Whether edgereach drives tailscaled.
    pub enabled: bool,
    /// tailscaled's LocalAPI socket.
    pub socket: PathBuf,
    /// Disco ping period per peer (below tailscaled's 45 s idle cut-off).
    pub keepalive_interval: HumanDuration,
    /// Which peers get keepalive pings: "all", "tag:NAME", a hostname or a
    /// tailnet IP; a peer matching any entry is pinged. Empty: none.
    pub keepalive_peers: Vec<String>,
    /// At most this many pings in flight at once.
    pub keepalive_concurrency: u16,
    /// Bound on each LocalAPI call other than pings.
    pub call_timeout: HumanDuration,
    /// Bound on one disco ping (tailscaled gives up after about 5 s itself).
    pub ping_timeout: HumanDuration,
    /// Ask tailscaled to re-STUN when the router mapping changes.
    pub restun_on_mapping_change: bool,
    /// The `[[portmap.mapping]]` (by name) that carries tailscaled's UDP port.
    pub mapping: String,
}

impl Default for TailscaleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            socket: PathBuf::from("/run/tailscale/tailscaled.sock"),
            keepalive_interval: HumanDuration::from_secs(25),
            keepalive_peers: vec!["all".into()],
            keepalive_concurrency: 4,
            call_timeout: HumanDuration::from_secs(5),
            ping_timeout: HumanDuration::from_secs(7),
            restun_on_mapping_change: true,
            mapping: "tailscale".into(),
        }
    }
}

/// `[admission]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdmissionConfig {
    /// Service base URL; empty switches registration off.
    pub url: String,
    /// Tenant account.
    pub account: String,
    /// Plan name.
    pub plan: String,
    /// Wanted region.
    pub region: String,
    /// File holding the bearer token (never the token itself).
    pub token_file: String,
    /// Re-registration period.
    pub interval: HumanDuration,
    /// The first registration after boot waits a random time up to this, so
    /// a fleet powered on at once does not hit the service all at once.
    pub startup_spread: HumanDuration,
    /// Bound on one registration (connect, TLS, answer).
    pub timeout: HumanDuration,
    /// Longest wait between failed attempts (backoff cap).
    pub retry_max: HumanDuration,
    /// PEM file of CA certificates to trust instead of the public web roots.
    pub ca_file: String,
    /// PEM client certificate chain for mutual TLS (with `client_key`).
    pub client_cert: String,
    /// PEM private key of `client_cert`.
    pub client_key: String,
    /// Allow an `http://` URL although a token file is set: the bearer token
    /// then travels in cleartext. For labs only; the status says so.
    pub allow_insecure_http: bool,
}

impl AdmissionConfig {
    /// Whether the bearer token would travel in cleartext (allowed or not).
    pub fn token_in_cleartext(&self) -> bool {
        self.url.starts_with("http://") && !self.token_file.is_empty()
    }
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            account: String::new(),
            plan: String::new(),
            region: String::new(),
            token_file: String::new(),
            interval: HumanDuration::from_secs(600),
            startup_spread: HumanDuration::from_secs(90),
            timeout: HumanDuration::from_secs(15),
            retry_max: HumanDuration::from_secs(300),
            ca_file: String::new(),
            client_cert: String::new(),
            client_key: String::new(),
            allow_insecure_http: false,
        }
    }
}

/// `[telemetry]`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// Broker URL; empty switches telemetry off.
    pub mqtt_url: String,
    /// Topic prefix; `{site}` and `{gateway}` are replaced.
    pub topic_prefix: String,
    /// PEM file of the CA(s) the broker's certificate must chain to (mqtts);
    /// empty = the system trust store.
    pub ca_file: String,
    /// PEM client certificate for brokers that want one; empty = none.
    pub client_cert: String,
    /// PEM private key of `client_cert`.
    pub client_key: String,
    /// File with the username on the first line and the password on the
    /// second; empty = anonymous. Its content is never logged.
    pub credentials_file: String,
    /// MQTT keepalive: idle time before a ping; the broker declares us gone
    /// (and publishes the Last Will) after 1.5 times this.
    pub keepalive: HumanDuration,
    /// Period of the full status snapshot, besides publishing on change.
    pub status_interval: HumanDuration,
    /// Quiet time gathering status changes into one publish.
    pub debounce: HumanDuration,
    /// Bound of the on-disk outbox; the oldest records go when it is full.
    pub outbox_max_bytes: u64,
    /// Longest wait between reconnection attempts (jittered, doubling from 1 s).
    pub reconnect_max: HumanDuration,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            mqtt_url: String::new(),
            topic_prefix: "edgereach/{site}/{gateway}".into(),
            ca_file: String::new(),
            client_cert: String::new(),
            client_key: String::new(),
            credentials_file: String::new(),
            keepalive: HumanDuration::from_secs(120),
            status_interval: HumanDuration::from_secs(15 * 60),
            debounce: HumanDuration::from_secs(10),
            outbox_max_bytes: 8 * 1024 * 1024,
            reconnect_max: HumanDuration::from_secs(60),
        }
    }
}

impl TelemetryConfig {
    /// Semantic checks. Returns (dotted key, message).
    fn validate(&self) -> Result<(), (String, String)> {
        let bad = |key: &str, msg: String| Err((format!("telemetry.{key}"), msg));
        let url = &self.mqtt_url;
        if !url.is_empty() && !has_scheme(url, &["mqtt://", "mqtts://"]) {
            return bad(
                "mqtt_url",
                format!(
                    "{:?}: expected mqtt://host:port or mqtts://host:port",
                    crate::redact::url(url)
                ),
            );
        }
        let p = &self.topic_prefix;
        if p.is_empty()
            || p.len() > 128
            || p.starts_with('/')
            || p.ends_with('/')
            || p.contains(['+', '#', '\0'])
        {
            return bad(
                "topic_prefix",
                format!(
                    "{p:?}: expected 1-128 characters without '+', '#' or a leading/trailing '/'"
                ),
            );
        }
        if self.client_cert.is_empty() != self.client_key.is_empty() {
            // Name the one that is written, so the line number points at it.
            let present = if self.client_cert.is_empty() {
                "client_key"
            } else {
                "client_cert"
            };
            return bad(
                present,
                "client_cert and client_key go together: set both or neither".into(),
            );
        }
        let tls_keys = [
            ("ca_file", &self.ca_file),
            ("client_cert", &self.client_cert),
        ];
        for (key, v) in tls_keys {
            if !v.is_empty() && url.starts_with("mqtt://") {
                return bad(
                    key,
                    format!(
                        "{key} is set but mqtt_url {:?} is not mqtts://, so it would be ignored",
                        crate::redact::url(url)
                    ),
                );
            }
        }
        let ka = self.keepalive.get();
        if ka < Duration::from_secs(5) || ka > Duration::from_secs(65535) {
            return bad(
                "keepalive",
                format!("{} is out of range: expected 5s to 65535s", self.keepalive),
            );
        }
        at_least(
            &self.status_interval,
            Duration::from_secs(10),
            "telemetry.status_interval",
        )?;
        if self.debounce.get() > self.status_interval.get() {
            return bad(
                "debounce",
                format!(
                    "{} is longer than status_interval {}",
                    self.debounce, self.status_interval
                ),
            );
        }
        at_least(
            &self.reconnect_max,
            Duration::from_secs(1),
            "telemetry.reconnect_max",
        )?;
        let (min, max) = (1024 * 1024, 1024 * 1024 * 1024);
        if !(min..=max).contains(&self.outbox_max_bytes) {
            return bad(
                "outbox_max_bytes",
                format!(
                    "{} is out of range: expected {min} (1 MiB) to {max} (1 GiB)",
                    self.outbox_max_bytes
                ),
            );
        }
        Ok(())
    }
}

/// `[web]`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// Addresses the status page listens on; empty switches it off.
    pub listen: Vec<SocketAddr>,
    /// Time a client gets to send a complete request head (slowloris guard).
    pub header_timeout: HumanDuration,
    /// A kept-alive connection with no traffic for this long is closed.
    pub idle_timeout: HumanDuration,
    /// Connections open at once from one client address (IPv6: one /64).
    pub max_connections_per_ip: u32,
    /// Connections open at once in total.
    pub max_connections: u32,
    /// Requests per minute from one client address; more are answered 429.
    pub requests_per_minute: u32,
    /// Whether "run netcheck now" and "re-map now" can be asked for (POST,
    /// with the token).
    pub actions_enabled: bool,
    /// File holding the token the actions need (never the token itself).
    pub action_token_file: String,
    /// Host names the page answers to besides its listen addresses,
    /// `localhost` and the gateway's hostname (DNS-rebinding guard).
    pub allowed_hosts: Vec<String>,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 8088))],
            header_timeout: HumanDuration::from_secs(10),
            idle_timeout: HumanDuration::from_secs(5),
            max_connections_per_ip: 16,
            max_connections: 256,
            requests_per_minute: 600,
            actions_enabled: false,
            action_token_file: String::new(),
            allowed_hosts: Vec::new(),
        }
    }
}

impl Config {
    /// Read, parse and validate `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let bytes = crate::fsread::read_capped(path, MAX_CONFIG_BYTES)?;
        let text = String::from_utf8(bytes).map_err(|_| ConfigError::NotText {
            path: shown.clone(),
        })?;
        Self::parse(&text, &shown)
    }

    /// Parse and validate configuration text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let (line, key) = match e.span() {
                Some(span) => locate::key_at(text, span.start),
                None => (0, String::from("(file)")),
            };
            ConfigError::Invalid {
                path: origin.to_string(),
                line,
                key,
                message: one_line(e.message()),
            }
        })?;
        config
            .validate()
            .map_err(|(key, message)| ConfigError::Invalid {
                path: origin.to_string(),
                line: locate::line_of_key(text, &key),
                key,
                message,
            })?;
        Ok(config)
    }

    /// Semantic checks serde cannot express. Returns (dotted key, message).
    fn validate(&self) -> Result<(), (String, String)> {
        let bad = |key: &str, msg: String| Err((key.to_string(), msg));
        if let Some(id) = &self.gateway.id {
            if let Err(m) = check_name(id) {
                return bad("gateway.id", m);
            }
        }
        if !self.gateway.site.is_empty() {
            if let Err(m) = check_name(&self.gateway.site) {
                return bad("gateway.site", m);
            }
        }
        let pm = &self.portmap;
        at_least(&pm.lease, Duration::from_secs(10), "portmap.lease")?;
        at_least(
            &pm.verify_interval,
            Duration::from_secs(1),
            "portmap.verify_interval",
        )?;
        at_least(
            &pm.refresh_interval,
            Duration::from_secs(60),
            "portmap.refresh_interval",
        )?;
        pinhole::validate(pm)?;
        let mut names = std::collections::HashSet::new();
        for m in &pm.mapping {
            if m.internal_port == 0 || m.external_port == 0 {
                return bad(
                    "portmap.mapping",
                    format!("mapping {:?}: ports must be 1-65535, got 0", m.name),
                );
            }
            if m.name.is_empty() || !names.insert(m.name.as_str()) {
                return bad(
                    "portmap.mapping",
                    format!(
                        "mapping names must be unique and non-empty, got {:?}",
                        m.name
                    ),
                );
            }
        }
        at_least(
            &self.netcheck.interval,
            Duration::from_secs(10),
            "netcheck.interval",
        )?;
        for s in &self.netcheck.stun_servers {
            if let Err(m) = check_host_port(s) {
                return bad("netcheck.stun_servers", m);
            }
        }
        let ka = self.tailscale.keepalive_interval.get();
        if ka < Duration::from_secs(1) || ka >= Duration::from_secs(45) {
            return bad(
                "tailscale.keepalive_interval",
                format!(
                    "{} is out of range: expected 1s to 44s (tailscaled stops heartbeats after 45s idle)",
                    self.tailscale.keepalive_interval
                ),
            );
        }
        if self.tailscale.keepalive_concurrency == 0 {
            return bad(
                "tailscale.keepalive_concurrency",
                "must be at least 1".to_string(),
            );
        }
        for (d, key) in [
            (&self.tailscale.call_timeout, "tailscale.call_timeout"),
            (&self.tailscale.ping_timeout, "tailscale.ping_timeout"),
        ] {
            at_least(d, Duration::from_secs(1), key)?;
        }
        for sel in &self.tailscale.keepalive_peers {
            if let Err(m) = crate::tailscale::select::PeerSelector::parse(sel) {
                return bad("tailscale.keepalive_peers", m);
            }
        }
        at_least(
            &self.admission.interval,
            Duration::from_secs(10),
            "admission.interval",
        )?;
        self.telemetry.validate()?;
        let adm = &self.admission;
        at_least(&adm.timeout, Duration::from_secs(1), "admission.timeout")?;
        at_least(
            &adm.retry_max,
            Duration::from_secs(1),
            "admission.retry_max",
        )?;
        if adm.client_cert.is_empty() != adm.client_key.is_empty() {
            return bad(
                "admission.client_cert",
                "client_cert and client_key go together: set both or neither".to_string(),
            );
        }
        if !adm.url.is_empty() && adm.account.is_empty() {
            return bad(
                "admission.account",
                "must be set when admission.url is".to_string(),
            );
        }
        let url = &self.admission.url;
        if !url.is_empty() && !has_scheme(url, &["http://", "https://"]) {
            return bad(
                "admission.url",
                format!(
                    "{:?}: expected an http:// or https:// URL",
                    crate::redact::url(url)
                ),
            );
        }
        if adm.token_in_cleartext() && !adm.allow_insecure_http {
            return bad(
                "admission.url",
                format!(
                    "{:?} is plain HTTP but admission.token_file is set: the bearer token would \
                     travel in cleartext; use https://, or set admission.allow_insecure_http = true \
                     (labs only)",
                    crate::redact::url(url)
                ),
            );
        }
        self.web.validate()
    }
}

impl WebConfig {
    /// Largest value accepted for either connection cap.
    pub const MAX_CONNECTIONS_LIMIT: u32 = 65_536;

    fn validate(&self) -> Result<(), (String, String)> {
        let bad = |key: &str, msg: String| Err((key.to_string(), msg));
        within(
            &self.header_timeout,
            Duration::from_secs(1),
            Duration::from_secs(120),
            "web.header_timeout",
        )?;
        within(
            &self.idle_timeout,
            Duration::from_secs(1),
            Duration::from_secs(600),
            "web.idle_timeout",
        )?;
        for (key, v) in [
            ("web.max_connections_per_ip", self.max_connections_per_ip),
            ("web.max_connections", self.max_connections),
        ] {
            if v == 0 || v > Self::MAX_CONNECTIONS_LIMIT {
                return bad(
                    key,
                    format!(
                        "{v} is out of range: expected 1 to {}",
                        Self::MAX_CONNECTIONS_LIMIT
                    ),
                );
            }
        }
        if self.requests_per_minute == 0 {
            return bad(
                "web.requests_per_minute",
                "0 is out of range: expected at least 1".into(),
            );
        }
        for h in &self.allowed_hosts {
            let plain = !h.is_empty()
                && h.len() <= 253
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
            if !plain {
                return bad(
                    "web.allowed_hosts",
                    format!("{h:?}: expected a host name without port, like \"gw7.plant.example\""),
                );
            }
        }
        if self.actions_enabled && self.action_token_file.is_empty() {
            return bad(
                "web.action_token_file",
                "actions_enabled is true but no token file is named: the actions need a token"
                    .into(),
            );
        }
        Ok(())
    }
}

fn at_least(d: &HumanDuration, min: Duration, key: &str) -> Result<(), (String, String)> {
    if d.get() < min {
        return Err((
            key.to_string(),
            format!(
                "{d} is too short: expected at least {}",
                HumanDuration::from(min)
            ),
        ));
    }
    Ok(())
}

fn within(
    d: &HumanDuration,
    min: Duration,
    max: Duration,
    key: &str,
) -> Result<(), (String, String)> {
    at_least(d, min, key)?;
    if d.get() > max {
        return Err((
            key.to_string(),
            format!(
                "{d} is too long: expected at most {}",
                HumanDuration::from(max)
            ),
        ));
    }
    Ok(())
}

/// Gateway ids and site names end up in MQTT topics and file names.
fn check_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?}: expected 1-64 characters of letters, digits, '-', '_' or '.'"
        ))
    }
}

fn check_host_port(s: &str) -> Result<(), String> {
    let port_ok = s
        .rsplit_once(':')
        .filter(|(host, _)| !host.is_empty())
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .is_some_and(|p| p != 0);
    if port_ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?}: expected host:port, e.g. \"stun.example.net:3478\" or \"[2001:db8::1]:3478\""
        ))
    }
}

fn has_scheme(url: &str, schemes: &[&str]) -> bool {
    schemes.iter().any(|s| url.starts_with(s))
}

fn one_line(msg: &str) -> String {
    msg.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Udp => "udp",
            Protocol::Tcp => "tcp",
        })
    }
}

#[cfg(test)]
mod tests;
