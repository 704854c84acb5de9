//! The checks serde cannot express: ranges, names, pairs of keys that go
//! together. Each returns the dotted key and a typed problem; `Config::parse`
//! adds the file and the line.

use std::time::Duration;

use super::pinhole;
use super::{
    AdmissionConfig, Config, GatewayConfig, HumanDuration, NetcheckConfig, PortmapConfig,
    SparkplugConfig, TailscaleConfig, TelemetryConfig, WebConfig,
};
use crate::tailscale::select::{PeerSelector, SelectorError};

/// A key whose value breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct KeyError {
    /// Dotted key, e.g. `portmap.lease`.
    pub key: String,
    /// What is wrong with its value.
    pub problem: Problem,
}

/// What is wrong with a value, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A duration below the key's minimum.
    #[error("{value} is too short: expected at least {min}")]
    TooShort {
        /// The value written.
        value: HumanDuration,
        /// The smallest accepted.
        min: HumanDuration,
    },
    /// A duration above the key's maximum.
    #[error("{value} is too long: expected at most {max}")]
    TooLong {
        /// The value written.
        value: HumanDuration,
        /// The largest accepted.
        max: HumanDuration,
    },
    /// A number or duration outside the accepted range.
    #[error("{value} is out of range: expected {expected}")]
    OutOfRange {
        /// The value written.
        value: String,
        /// The range, in words.
        expected: &'static str,
    },
    /// A gateway id or site name unfit for topics and file names.
    #[error("{0:?}: expected 1-64 characters of letters, digits, '-', '_' or '.'")]
    Name(String),
    /// Not `host:port`.
    #[error("{0:?}: expected host:port, e.g. \"stun.example.net:3478\" or \"[2001:db8::1]:3478\"")]
    HostPort(String),
    /// A URL without an accepted scheme (credentials already stripped).
    #[error("{url:?}: expected {expected}")]
    Scheme {
        /// The URL, without userinfo.
        url: String,
        /// The accepted forms.
        expected: &'static str,
    },
    /// A bad `tailscale.keepalive_peers` entry.
    #[error(transparent)]
    Selector(#[from] SelectorError),
    /// Two keys that go together, one without the other.
    #[error("{0}")]
    Pairing(&'static str),
    /// Any other rule, in words (values quoted, URLs without credentials).
    #[error("{0}")]
    Rule(String),
}

type Checked = Result<(), KeyError>;

fn bad(key: &str, problem: Problem) -> Checked {
    Err(KeyError {
        key: key.to_owned(),
        problem,
    })
}

fn at_least(d: &HumanDuration, min: Duration, key: &str) -> Checked {
    if d.get() < min {
        return bad(
            key,
            Problem::TooShort {
                value: *d,
                min: min.into(),
            },
        );
    }
    Ok(())
}

fn within(d: &HumanDuration, min: Duration, max: Duration, key: &str) -> Checked {
    at_least(d, min, key)?;
    if d.get() > max {
        return bad(
            key,
            Problem::TooLong {
                value: *d,
                max: max.into(),
            },
        );
    }
    Ok(())
}

/// Gateway ids and site names end up in MQTT topics and file names.
fn check_name(s: &str, key: &str) -> Checked {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        bad(key, Problem::Name(s.to_owned()))
    }
}

fn check_host_port(s: &str, key: &str) -> Checked {
    let port_ok = s
        .rsplit_once(':')
        .filter(|(host, _)| !host.is_empty())
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .is_some_and(|p| p != 0);
    if port_ok {
        Ok(())
    } else {
        bad(key, Problem::HostPort(s.to_owned()))
    }
}

fn check_scheme(url: &str, schemes: &[&str], expected: &'static str, key: &str) -> Checked {
    if url.is_empty() || schemes.iter().any(|s| url.starts_with(s)) {
        return Ok(());
    }
    let url = crate::redact::url(url);
    bad(key, Problem::Scheme { url, expected })
}

impl Config {
    /// Semantic checks serde cannot express, section by section.
    pub(super) fn validate(&self) -> Checked {
        self.gateway.validate()?;
        self.portmap.validate()?;
        self.netcheck.validate()?;
        self.tailscale.validate()?;
        self.admission.validate()?;
        self.telemetry.validate()?;
        self.web.validate()
    }
}

impl GatewayConfig {
    fn validate(&self) -> Checked {
        if let Some(id) = &self.id {
            check_name(id, "gateway.id")?;
        }
        if !self.site.is_empty() {
            check_name(&self.site, "gateway.site")?;
        }
        Ok(())
    }
}

impl PortmapConfig {
    fn validate(&self) -> Checked {
        at_least(&self.lease, Duration::from_secs(10), "portmap.lease")?;
        at_least(
            &self.verify_interval,
            Duration::from_secs(1),
            "portmap.verify_interval",
        )?;
        at_least(
            &self.refresh_interval,
            Duration::from_secs(60),
            "portmap.refresh_interval",
        )?;
        within(
            &self.pinhole_lease,
            pinhole::MIN_LEASE,
            pinhole::MAX_LEASE,
            "portmap.pinhole_lease",
        )?;
        let mut names = std::collections::HashSet::new();
        for m in &self.mapping {
            if m.internal_port == 0 || m.external_port == 0 {
                let rule = format!("mapping {:?}: ports must be 1-65535, got 0", m.name);
                return bad("portmap.mapping", Problem::Rule(rule));
            }
            if m.name.is_empty() || !names.insert(m.name.as_str()) {
                let rule = format!(
                    "mapping names must be unique and non-empty, got {:?}",
                    m.name
                );
                return bad("portmap.mapping", Problem::Rule(rule));
            }
        }
        Ok(())
    }
}

impl NetcheckConfig {
    fn validate(&self) -> Checked {
        at_least(&self.interval, Duration::from_secs(10), "netcheck.interval")?;
        for s in &self.stun_servers {
            check_host_port(s, "netcheck.stun_servers")?;
        }
        Ok(())
    }
}

impl TailscaleConfig {
    fn validate(&self) -> Checked {
        let ka = self.keepalive_interval.get();
        if ka < Duration::from_secs(1) || ka >= Duration::from_secs(45) {
            return bad(
                "tailscale.keepalive_interval",
                Problem::OutOfRange {
                    value: self.keepalive_interval.to_string(),
                    expected: "1s to 44s (tailscaled stops heartbeats after 45s idle)",
                },
            );
        }
        if self.keepalive_concurrency == 0 {
            return bad(
                "tailscale.keepalive_concurrency",
                Problem::OutOfRange {
                    value: "0".into(),
                    expected: "at least 1",
                },
            );
        }
        for (d, key) in [
            (&self.call_timeout, "tailscale.call_timeout"),
            (&self.ping_timeout, "tailscale.ping_timeout"),
        ] {
            at_least(d, Duration::from_secs(1), key)?;
        }
        for sel in &self.keepalive_peers {
            if let Err(e) = PeerSelector::parse(sel) {
                return bad("tailscale.keepalive_peers", e.into());
            }
        }
        Ok(())
    }
}

impl AdmissionConfig {
    fn validate(&self) -> Checked {
        at_least(
            &self.interval,
            Duration::from_secs(10),
            "admission.interval",
        )?;
        at_least(&self.timeout, Duration::from_secs(1), "admission.timeout")?;
        at_least(
            &self.retry_max,
            Duration::from_secs(1),
            "admission.retry_max",
        )?;
        if self.client_cert.is_empty() != self.client_key.is_empty() {
            return bad(
                "admission.client_cert",
                Problem::Pairing("client_cert and client_key go together: set both or neither"),
            );
        }
        if !self.url.is_empty() && self.account.is_empty() {
            return bad(
                "admission.account",
                Problem::Pairing("must be set when admission.url is"),
            );
        }
        let url = &self.url;
        check_scheme(
            url,
            &["http://", "https://"],
            "an http:// or https:// URL",
            "admission.url",
        )?;
        if self.token_in_cleartext() && !self.allow_insecure_http {
            let rule = format!(
                "{:?} is plain HTTP but admission.token_file is set: the bearer token would \
                 travel in cleartext; use https://, or set admission.allow_insecure_http = true \
                 (labs only)",
                crate::redact::url(url)
            );
            return bad("admission.url", Problem::Rule(rule));
        }
        Ok(())
    }
}

impl TelemetryConfig {
    fn validate(&self) -> Checked {
        let key = |k: &str| format!("telemetry.{k}");
        let url = &self.mqtt_url;
        check_scheme(
            url,
            &["mqtt://", "mqtts://"],
            "mqtt://host:port or mqtts://host:port",
            "telemetry.mqtt_url",
        )?;
        let p = &self.topic_prefix;
        if p.is_empty()
            || p.len() > 128
            || p.starts_with('/')
            || p.ends_with('/')
            || p.contains(['+', '#', '\0'])
        {
            let rule = format!(
                "{p:?}: expected 1-128 characters without '+', '#' or a leading/trailing '/'"
            );
            return bad(&key("topic_prefix"), Problem::Rule(rule));
        }
        if self.client_cert.is_empty() != self.client_key.is_empty() {
            // Name the one that is written, so the line number points at it.
            let present = if self.client_cert.is_empty() {
                "client_key"
            } else {
                "client_cert"
            };
            return bad(
                &key(present),
                Problem::Pairing("client_cert and client_key go together: set both or neither"),
            );
        }
        for (k, v) in [
            ("ca_file", &self.ca_file),
            ("client_cert", &self.client_cert),
        ] {
            if !v.is_empty() && url.starts_with("mqtt://") {
                let rule = format!(
                    "{k} is set but mqtt_url {:?} is not mqtts://, so it would be ignored",
                    crate::redact::url(url)
                );
                return bad(&key(k), Problem::Rule(rule));
            }
        }
        self.validate_timing()?;
        let (min, max) = (1024 * 1024, 1024 * 1024 * 1024);
        if !(min..=max).contains(&self.outbox_max_bytes) {
            return bad(
                &key("outbox_max_bytes"),
                Problem::OutOfRange {
                    value: self.outbox_max_bytes.to_string(),
                    expected: "1048576 (1 MiB) to 1073741824 (1 GiB)",
                },
            );
        }
        self.sparkplug.validate()
    }

    fn validate_timing(&self) -> Checked {
        let ka = self.keepalive.get();
        if ka < Duration::from_secs(5) || ka > Duration::from_secs(65535) {
            return bad(
                "telemetry.keepalive",
                Problem::OutOfRange {
                    value: self.keepalive.to_string(),
                    expected: "5s to 65535s",
                },
            );
        }
        at_least(
            &self.status_interval,
            Duration::from_secs(10),
            "telemetry.status_interval",
        )?;
        if self.debounce.get() > self.status_interval.get() {
            let rule = format!(
                "{} is longer than status_interval {}",
                self.debounce, self.status_interval
            );
            return bad("telemetry.debounce", Problem::Rule(rule));
        }
        at_least(
            &self.reconnect_max,
            Duration::from_secs(1),
            "telemetry.reconnect_max",
        )
    }
}

impl SparkplugConfig {
    fn validate(&self) -> Checked {
        for (key, v) in [
            ("group_id", &self.group_id),
            ("edge_node_id", &self.edge_node_id),
            ("primary_host_id", &self.primary_host_id),
        ] {
            // Sparkplug ids are topic levels: no '/', '+' or '#'.
            if !v.is_empty() {
                check_name(v, &format!("telemetry.sparkplug.{key}"))?;
            }
        }
        Ok(())
    }
}

impl WebConfig {
    /// Largest value accepted for either connection cap.
    pub const MAX_CONNECTIONS_LIMIT: u32 = 65_536;

    fn validate(&self) -> Checked {
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
                let value = v.to_string();
                let expected = "1 to 65536";
                return bad(key, Problem::OutOfRange { value, expected });
            }
        }
        if self.requests_per_minute == 0 {
            return bad(
                "web.requests_per_minute",
                Problem::OutOfRange {
                    value: "0".into(),
                    expected: "at least 1",
                },
            );
        }
        for h in &self.allowed_hosts {
            let plain = !h.is_empty()
                && h.len() <= 253
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
            if !plain {
                let rule =
                    format!("{h:?}: expected a host name without port, like \"gw7.plant.example\"");
                return bad("web.allowed_hosts", Problem::Rule(rule));
            }
        }
        if self.actions_enabled && self.action_token_file.is_empty() {
            return bad(
                "web.action_token_file",
                Problem::Pairing(
                    "actions_enabled is true but no token file is named: the actions need a token",
                ),
            );
        }
        Ok(())
    }
}
