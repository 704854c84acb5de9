//! Which `Host` a request may name. A DNS-rebinding page in a technician's
//! browser reaches the page under the attacker's own name; refusing every
//! name but ours (421) keeps the snapshot from being read that way.

use std::net::{IpAddr, SocketAddr};

/// The names and addresses the page answers to.
#[derive(Debug, Clone, Default)]
pub struct HostPolicy {
    ips: Vec<IpAddr>,
    names: Vec<String>,
}

impl HostPolicy {
    /// The listen addresses, `localhost`, the gateway's `hostnames` and the
    /// configured `allowed` names. The address a connection came in on is
    /// allowed too (see [`HostPolicy::allows`]), which covers `0.0.0.0`.
    pub fn new(listen: &[SocketAddr], hostnames: &[String], allowed: &[String]) -> Self {
        let mut names = vec!["localhost".to_string()];
        names.extend(hostnames.iter().chain(allowed).map(|n| normalise(n)));
        names.retain(|n| !n.is_empty());
        let ips = listen
            .iter()
            .map(SocketAddr::ip)
            .filter(|ip| !ip.is_unspecified())
            .collect();
        Self { ips, names }
    }

    /// Whether `host` (the `Host` header, port optional) names us, for a
    /// connection that came in on `local`. No header (HTTP/1.0) is allowed:
    /// a browser always sends one.
    pub fn allows(&self, host: Option<&str>, local: SocketAddr) -> bool {
        let Some(host) = host else { return true };
        let Some(part) = host_part(host) else {
            return false;
        };
        match part.parse::<IpAddr>() {
            Ok(ip) => ip == local.ip() || self.ips.contains(&ip),
            Err(_) => self.names.contains(&normalise(part)),
        }
    }
}

/// The host of a `Host` value without its port and brackets, or None when
/// it is malformed.
pub fn host_part(host: &str) -> Option<&str> {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        return (after.is_empty() || port_ok(after.strip_prefix(':')?)).then_some(inside);
    }
    match host.split_once(':') {
        Some((h, port)) if port_ok(port) && !h.is_empty() => Some(h),
        Some(_) => None,
        None => (!host.is_empty()).then_some(host),
    }
}

fn port_ok(p: &str) -> bool {
    !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
}

fn normalise(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// The kernel's hostname, its first label and its mDNS name.
pub fn own_hostnames() -> Vec<String> {
    let raw = crate::fsread::read_capped(std::path::Path::new("/proc/sys/kernel/hostname"), 256)
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    if raw.is_empty() {
        return Vec::new();
    }
    let short = raw.split('.').next().unwrap_or_default().to_string();
    vec![raw, format!("{short}.local"), short]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> HostPolicy {
        HostPolicy::new(
            &[
                "127.0.0.1:8088".parse().unwrap(),
                "[fd00::2]:8088".parse().unwrap(),
            ],
            &["gw7".into()],
            &["Gw7.Plant.Example.".into()],
        )
    }

    #[test]
    fn ours_with_and_without_port() {
        let local: SocketAddr = "192.0.2.2:8088".parse().unwrap();
        for ok in [
            "127.0.0.1",
            "127.0.0.1:8088",
            "[fd00::2]",
            "[fd00::2]:8088",
            "localhost",
            "LOCALHOST:8088",
            "gw7",
            "gw7.plant.example:80",
            "192.0.2.2:8088",
            "gw7.",
        ] {
            assert!(policy().allows(Some(ok), local), "{ok}");
        }
        assert!(policy().allows(None, local));
    }

    #[test]
    fn anything_else_is_refused() {
        let local: SocketAddr = "127.0.0.1:8088".parse().unwrap();
        for bad in [
            "attacker.example",
            "attacker.example:8088",
            "127.0.0.1.attacker.example",
            "localhost.attacker.example",
            "",
            ":8088",
            "[fd00::2",
            "[fd00::2]x",
            "127.0.0.1:80:80",
            "127.0.0.2",
            "gw7:port",
            "10.0.0.1",
        ] {
            assert!(!policy().allows(Some(bad), local), "{bad}");
        }
    }
}
