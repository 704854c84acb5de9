//! Everything needed to open an MQTT connection from the configuration: the
//! broker address, TLS (rustls with the ring provider, so it builds for ARM),
//! credentials from a file, the Last Will, and the reconnection backoff.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{ConnectionError, LastWill, MqttOptions, QoS, TlsConfiguration, Transport};

use super::payload;
use crate::config::TelemetryConfig;

/// Largest credentials, CA or key file read.
const MAX_PEM_FILE: u64 = 1024 * 1024;
/// Largest MQTT packet sent or accepted (a record plus its topic).
pub const MAX_PACKET: usize = super::frame::MAX_BODY + 1024;

/// Why a connection cannot even be attempted; shown in the status as is.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// `mqtt_url` is not `mqtt[s]://host[:port]`.
    #[error("telemetry.mqtt_url {:?}: expected mqtt://host[:port] or mqtts://host[:port]", crate::redact::url(.0))]
    Url(String),
    /// A file named in the configuration cannot be read.
    #[error("telemetry.{key} {path}: {message}")]
    File {
        /// Configuration key.
        key: &'static str,
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The TLS configuration is unusable.
    #[error("TLS setup: {0}")]
    Tls(String),
}

/// Where the broker is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broker {
    /// Host name or IP address (without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// `mqtts://`.
    pub tls: bool,
}

impl std::fmt::Display for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// Parse `mqtt://host[:port]` or `mqtts://host[:port]` (IPv6 in brackets).
pub fn parse_url(url: &str) -> Result<Broker, SetupError> {
    let bad = || SetupError::Url(url.to_string());
    let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("mqtt://") {
        (false, r)
    } else {
        return Err(bad());
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() || rest.contains(['/', '@', '?', '#', ' ']) {
        return Err(bad());
    }
    let default_port = if tls { 8883 } else { 1883 };
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(bad)?;
        match after.strip_prefix(':') {
            Some(p) => (h, p.parse().map_err(|_| bad())?),
            None if after.is_empty() => (h, default_port),
            None => return Err(bad()),
        }
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().map_err(|_| bad())?),
            None => (rest, default_port),
        }
    };
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok(Broker {
        host: host.to_string(),
        port,
        tls,
    })
}

/// Username and password, kept out of every log and view.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Username.
    pub username: String,
    password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({:?}, <password hidden>)", self.username)
    }
}

/// Parse a credentials file: username on the first line, password on the
/// second (a missing second line means an empty password).
pub fn parse_credentials(text: &str) -> Option<Credentials> {
    let mut lines = text.lines();
    let username = lines.next()?.trim_end_matches('\r').to_string();
    let password = lines
        .next()
        .unwrap_or("")
        .trim_end_matches('\r')
        .to_string();
    if username.is_empty() || username.len() > 256 || password.len() > 1024 {
        return None;
    }
    Some(Credentials { username, password })
}

fn read_file(key: &'static str, path: &str) -> Result<Vec<u8>, SetupError> {
    use std::io::Read;
    let err = |message: String| SetupError::File {
        key,
        path: path.to_string(),
        message,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(Path::new(path))
        .and_then(|f| f.take(MAX_PEM_FILE + 1).read_to_end(&mut bytes))
        .map_err(|e| err(e.to_string()))?;
    if bytes.len() as u64 > MAX_PEM_FILE {
        return Err(err(format!("larger than {MAX_PEM_FILE} bytes")));
    }
    Ok(bytes)
}

/// The rustls client configuration: ring provider, the configured CA (or the
/// system store), and the client certificate when configured.
pub fn tls_config(cfg: &TelemetryConfig) -> Result<rustls::ClientConfig, SetupError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    if cfg.ca_file.is_empty() {
        let found = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(found.certs);
    } else {
        let pem = read_file("ca_file", &cfg.ca_file)?;
        let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .map_err(|e| file_err("ca_file", &cfg.ca_file, e))?;
        roots.add_parsable_certificates(certs);
    }
    if roots.is_empty() {
        return Err(SetupError::Tls(if cfg.ca_file.is_empty() {
            "no CA certificates in the system trust store; set telemetry.ca_file".into()
        } else {
            format!(
                "telemetry.ca_file {}: no usable CA certificate",
                cfg.ca_file
            )
        }));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SetupError::Tls(e.to_string()))?
        .with_root_certificates(roots);
    if cfg.client_cert.is_empty() {
        return Ok(builder.with_no_client_auth());
    }
    let pem = read_file("client_cert", &cfg.client_cert)?;
    let chain: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| file_err("client_cert", &cfg.client_cert, e))?;
    if chain.is_empty() {
        return Err(file_err("client_cert", &cfg.client_cert, "no certificate"));
    }
    let pem = read_file("client_key", &cfg.client_key)?;
    // The key's parse error could quote key material: say only that it failed.
    let key = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|_| file_err("client_key", &cfg.client_key, "no usable PEM private key"))?;
    builder
        .with_client_auth_cert(chain, key)
        .map_err(|e| SetupError::Tls(format!("client certificate and key: {e}")))
}

fn file_err(key: &'static str, path: &str, e: impl std::fmt::Display) -> SetupError {
    SetupError::File {
        key,
        path: path.to_string(),
        message: e.to_string(),
    }
}

/// The JSON connection's Last Will: the retained `offline` state.
pub fn state_will(state_topic: &str) -> LastWill {
    LastWill::new(state_topic, payload::state_will(), QoS::AtLeastOnce, true)
}

/// MQTT 3.1.1 options for one connection: clean session (the outbox, not the
/// broker, keeps what is unacknowledged) and the Last Will given.
pub fn options(
    cfg: &TelemetryConfig,
    broker: &Broker,
    client_id: &str,
    will: LastWill,
) -> Result<MqttOptions, SetupError> {
    let mut o = MqttOptions::new(client_id, broker.host.clone(), broker.port);
    o.set_keep_alive(cfg.keepalive.get());
    o.set_clean_session(true);
    o.set_max_packet_size(MAX_PACKET, MAX_PACKET);
    o.set_last_will(will);
    if !cfg.credentials_file.is_empty() {
        let bytes = read_file("credentials_file", &cfg.credentials_file)?;
        let text = String::from_utf8(bytes).ok();
        let c = text.as_deref().and_then(parse_credentials).ok_or_else(|| {
            file_err(
                "credentials_file",
                &cfg.credentials_file,
                "expected the username on the first line and the password on the second",
            )
        })?;
        o.set_credentials(c.username, c.password);
    }
    if broker.tls {
        let tls = tls_config(cfg)?;
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(tls),
        )));
    }
    Ok(o)
}

/// Wait before reconnection attempt `attempt` (0 = the first retry): doubling
/// from 1 s up to `max`, then a random point in its upper half, so a fleet
/// that lost its broker together does not return in lockstep.
pub fn backoff(attempt: u32, max: Duration, random: u32) -> Duration {
    let base = Duration::from_secs(1)
        .saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX))
        .min(max);
    let half = base / 2;
    let jitter = half.mul_f64(f64::from(random) / f64::from(u32::MAX));
    half + jitter
}

/// When to try again after failed attempt number `attempt` (counted here):
/// [`backoff`] from now, jittered.
pub fn retry_at(attempt: &mut u32, max: Duration) -> tokio::time::Instant {
    use crate::deadline::Later;
    let wait = backoff(*attempt, max, random_u32());
    *attempt = attempt.saturating_add(1);
    tokio::time::Instant::now().later(wait)
}

/// A random number for [`backoff`].
pub fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    crate::entropy::fill(&mut b);
    u32::from_le_bytes(b)
}

/// A connection error in words a technician can act on.
pub fn describe(e: &ConnectionError) -> String {
    match e {
        ConnectionError::ConnectionRefused(code) => {
            format!("the broker refused the connection ({code:?}): check telemetry.credentials_file and the broker's ACL")
        }
        ConnectionError::Tls(t) => {
            let inner = match t {
                rumqttc::TlsError::TLS(r) => Some(r),
                rumqttc::TlsError::Io(io) => io.get_ref().and_then(|e| e.downcast_ref()),
                _ => None,
            };
            match inner {
                Some(r) => format!("TLS: {}", tls_words(r)),
                None => format!("TLS: {t}"),
            }
        }
        ConnectionError::NetworkTimeout => "no answer from the broker (timeout)".into(),
        other => other.to_string(),
    }
}

/// What a rustls error means for the person fixing it; the variant name stays
/// in, so it can be searched for.
pub fn tls_words(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    let cert = match e {
        rustls::Error::InvalidCertificate(c) => c,
        rustls::Error::AlertReceived(a) => {
            return format!(
                "the broker rejected us ({a:?}): check telemetry.client_cert and client_key"
            )
        }
        other => return other.to_string(),
    };
    let why = match cert {
        C::UnknownIssuer => {
            "the broker's certificate is not signed by a CA we trust (telemetry.ca_file)"
        }
        C::Expired | C::ExpiredContext { .. } => "the broker's certificate has expired",
        C::NotValidYet | C::NotValidYetContext { .. } => {
            "the broker's certificate is not valid yet (or this gateway's clock is wrong)"
        }
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            "the broker's certificate does not name the host in telemetry.mqtt_url"
        }
        C::Revoked => "the broker's certificate is revoked",
        _ => "the broker's certificate is not acceptable",
    };
    let variant = format!("{cert:?}");
    let variant = variant.split([' ', '{', '(']).next().unwrap_or("");
    format!("{why} ({variant})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let b = parse_url("mqtt://203.0.113.20").unwrap();
        assert_eq!(
            (b.host.as_str(), b.port, b.tls),
            ("203.0.113.20", 1883, false)
        );
        let b = parse_url("mqtts://broker.example.net:9883/").unwrap();
        assert_eq!(
            (b.host.as_str(), b.port, b.tls),
            ("broker.example.net", 9883, true)
        );
        assert_eq!(b.to_string(), "mqtts://broker.example.net:9883");
        let b = parse_url("mqtts://[2001:db8::1]").unwrap();
        assert_eq!((b.host.as_str(), b.port), ("2001:db8::1", 8883));
        assert_eq!(b.to_string(), "mqtts://[2001:db8::1]:8883");
        for bad in [
            "http://x",
            "mqtt://",
            "mqtt://h:0",
            "mqtt://h:99999",
            "mqtt://u:p@h",
            "mqtt://h/x",
            "mqtt://[::1",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn credentials_are_read_and_never_shown() {
        let c = parse_credentials("gw-user\ns3cret pass\n").unwrap();
        assert_eq!(c.username, "gw-user");
        assert_eq!(c.password, "s3cret pass");
        assert!(!format!("{c:?}").contains("s3cret"));
        assert!(parse_credentials("").is_none());
        assert!(parse_credentials("\npw").is_none());
        assert_eq!(parse_credentials("only-user").unwrap().password, "");
    }

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        let max = Duration::from_secs(60);
        assert_eq!(backoff(0, max, 0), Duration::from_millis(500));
        assert_eq!(backoff(0, max, u32::MAX), Duration::from_secs(1));
        assert_eq!(backoff(3, max, u32::MAX), Duration::from_secs(8));
        assert_eq!(backoff(40, max, u32::MAX), max);
        assert!(backoff(40, max, 0) >= max / 2);
        let a = backoff(5, max, 1_000_000);
        let b = backoff(5, max, 3_000_000_000);
        assert_ne!(a, b);
    }

    #[test]
    fn tls_errors_name_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let mut cfg = TelemetryConfig {
            ca_file: tmp.path().join("missing.pem").display().to_string(),
            ..TelemetryConfig::default()
        };
        let e = tls_config(&cfg).unwrap_err().to_string();
        assert!(
            e.starts_with("telemetry.ca_file ") && e.contains("missing.pem"),
            "{e}"
        );
        let junk = tmp.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        cfg.ca_file = junk.display().to_string();
        let e = tls_config(&cfg).unwrap_err().to_string();
        assert!(e.contains("no usable CA certificate"), "{e}");
    }
}
