//! The configuration's sections and their defaults: plain data that serde
//! reads. The checks live in `validate`, reading and locating in `mod`.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::duration::HumanDuration;
use super::pinhole;
use super::sparkplug::{SparkplugConfig, TelemetryFormat};

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

pub use crate::primitives::Protocol;

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
    /// JSON topics, the Sparkplug B edge node, or both.
    pub format: TelemetryFormat,
    /// The Sparkplug B edge node's ids.
    pub sparkplug: SparkplugConfig,
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
            format: TelemetryFormat::default(),
            sparkplug: SparkplugConfig::default(),
        }
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
