//! Setup checks: is tailscaled configured so that edgereach's router mapping
//! actually helps? Pure functions over facts gathered by the service.

use std::net::{IpAddr, SocketAddr};

use super::model::SanityCheck;

/// What tailscaled's command line and environment say (from /proc; absent
/// when unreadable).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcFacts {
    /// `--port` (or the `PORT` environment variable tailscaled also reads);
    /// `Some(0)` or `None` means "picks a port at random".
    pub port: Option<u16>,
    /// `TS_DISABLE_PORTMAPPER` is set to a true value; `None` when the
    /// environment could not be read (another user's process under
    /// `ProtectProc=invisible` or without the right to ptrace-read it).
    pub portmapper_disabled: Option<bool>,
}

/// Parse `/proc/PID/cmdline` and `/proc/PID/environ` (NUL-separated;
/// `environ` is `None` when it could not be read).
pub fn parse_proc(cmdline: &[u8], environ: Option<&[u8]>) -> ProcFacts {
    let args: Vec<&str> = cmdline
        .split(|&b| b == 0)
        .filter_map(|a| std::str::from_utf8(a).ok())
        .collect();
    let mut port = None;
    for (i, a) in args.iter().enumerate() {
        let flag = a.trim_start_matches('-');
        if !a.starts_with('-') {
            continue;
        }
        if let Some(v) = flag.strip_prefix("port=") {
            port = v.parse().ok();
        } else if flag == "port" {
            port = args.get(i + 1).and_then(|v| v.parse().ok());
        }
    }
    let mut env_port = None;
    let mut portmapper_disabled = environ.map(|_| false);
    for kv in environ.unwrap_or_default().split(|&b| b == 0) {
        let Ok(kv) = std::str::from_utf8(kv) else {
            continue;
        };
        match kv.split_once('=') {
            Some(("PORT", v)) => env_port = v.parse().ok(),
            Some(("TS_DISABLE_PORTMAPPER", v)) => portmapper_disabled = Some(truthy(v)),
            _ => {}
        }
    }
    ProcFacts {
        port: port.or(env_port),
        portmapper_disabled,
    }
}

/// Go's strconv.ParseBool truths (what tailscale's envknob accepts).
fn truthy(v: &str) -> bool {
    matches!(v, "1" | "t" | "T" | "TRUE" | "true" | "True")
}

/// tailscaled's UDP port as seen in its advertised endpoints: the port of an
/// endpoint on one of this machine's own addresses.
pub fn port_from_endpoints(endpoints: &[String], local_ips: &[IpAddr]) -> Option<u16> {
    endpoints
        .iter()
        .filter_map(|e| e.parse::<SocketAddr>().ok())
        .find(|sa| local_ips.contains(&sa.ip()))
        .map(|sa| sa.port())
}

/// Everything the checks look at.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// From /proc, when readable.
    pub proc: Option<ProcFacts>,
    /// tailscaled's UDP port as seen in its endpoints.
    pub listen_port: Option<u16>,
    /// The configured mapping's internal port, if a mapping is configured.
    pub mapping_internal_port: Option<u16>,
    /// The mapping's external address now ("ip:port"), when held.
    pub mapping_external: Option<String>,
    /// The router answers a port-mapping protocol.
    pub router_maps: bool,
    /// netcheck found the NAT hard (mapping varies by destination).
    pub nat_is_hard: Option<bool>,
    /// The endpoints tailscaled advertises.
    pub endpoints: Vec<String>,
}

/// Run every check; an empty list means all is well.
pub fn check(f: &Facts) -> Vec<SanityCheck> {
    let mut out = Vec::new();
    let Some(internal) = f.mapping_internal_port else {
        return out;
    };
    let port = f.listen_port.or(f.proc.as_ref().and_then(|p| p.port));
    if let Some(port) = port.filter(|&p| p != 0 && p != internal) {
        out.push(SanityCheck {
            check: "port-mismatch".into(),
            message: format!(
                "tailscaled listens on UDP {port}, but the router mapping forwards to {internal}"
            ),
            fix: format!(
                "start tailscaled with --port={internal} (Debian: PORT=\"{internal}\" in /etc/default/tailscaled), or set the mapping's internal_port to {port}"
            ),
        });
    }
    if let Some(p) = &f.proc {
        if p.port.unwrap_or(0) == 0 {
            out.push(SanityCheck {
                check: "no-fixed-port".into(),
                message: "tailscaled has no fixed UDP port (--port missing or 0): it picks a new one each start and never advertises the same-port router mapping".into(),
                fix: format!("start tailscaled with --port={internal}"),
            });
        }
        if p.portmapper_disabled == Some(false) && f.router_maps {
            out.push(SanityCheck {
                check: "own-portmapper".into(),
                message: "tailscaled's own port mapper is on and the router offers mapping: it adds mappings of its own (random external ports, renewed only while busy) beside edgereach's".into(),
                fix: "set TS_DISABLE_PORTMAPPER=1 in tailscaled's environment (Debian: /etc/default/tailscaled) and leave the router mapping to edgereach".into(),
            });
        }
    }
    if let (Some(ext), Some(true)) = (&f.mapping_external, f.nat_is_hard) {
        if !f.endpoints.is_empty() && !f.endpoints.iter().any(|e| e == ext) {
            out.push(SanityCheck {
                check: "mapping-not-advertised".into(),
                message: format!(
                    "the router maps {ext} to this gateway, but tailscaled does not advertise it to peers"
                ),
                fix: "tailscaled advertises it only with a fixed --port equal to the external port; otherwise add it as a static endpoint".into(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_parsing() {
        let f = parse_proc(
            b"/usr/sbin/tailscaled\0--state=/var/lib/tailscale/tailscaled.state\0--port=41641\0",
            Some(b"PATH=/bin\0TS_DISABLE_PORTMAPPER=1\0"),
        );
        assert_eq!(
            f,
            ProcFacts {
                port: Some(41641),
                portmapper_disabled: Some(true)
            }
        );
        let f = parse_proc(b"tailscaled\0-port\x0041642\0", Some(b"PORT=1\0"));
        assert_eq!(f.port, Some(41642), "the flag wins over PORT");
        let f = parse_proc(
            b"tailscaled\0",
            Some(b"PORT=41641\0TS_DISABLE_PORTMAPPER=no\0"),
        );
        assert_eq!(f.port, Some(41641));
        assert_eq!(f.portmapper_disabled, Some(false));
        assert_eq!(parse_proc(b"\xff\0--port\0", Some(b"\xff")).port, None);
        assert_eq!(
            parse_proc(b"tailscaled\0", None).portmapper_disabled,
            None,
            "unreadable environment: unknown, not 'on'"
        );
    }

    #[test]
    fn port_from_local_endpoint() {
        let eps = vec![
            "203.0.113.2:37013".to_string(),
            "192.0.2.10:41641".to_string(),
        ];
        let local = ["192.0.2.10".parse().unwrap()];
        assert_eq!(port_from_endpoints(&eps, &local), Some(41641));
        assert_eq!(port_from_endpoints(&eps, &[]), None);
    }

    fn ids(v: &[SanityCheck]) -> Vec<&str> {
        v.iter().map(|c| c.check.as_str()).collect()
    }

    #[test]
    fn checks() {
        let good = Facts {
            proc: Some(ProcFacts {
                port: Some(41641),
                portmapper_disabled: Some(true),
            }),
            listen_port: Some(41641),
            mapping_internal_port: Some(41641),
            mapping_external: Some("203.0.113.2:41641".into()),
            router_maps: true,
            nat_is_hard: Some(true),
            endpoints: vec!["203.0.113.2:41641".into()],
        };
        assert!(check(&good).is_empty());
        let bad = Facts {
            proc: Some(ProcFacts {
                port: None,
                portmapper_disabled: Some(false),
            }),
            listen_port: Some(39999),
            endpoints: vec!["203.0.113.2:5000".into()],
            ..good.clone()
        };
        let found = check(&bad);
        assert_eq!(
            ids(&found),
            [
                "port-mismatch",
                "no-fixed-port",
                "own-portmapper",
                "mapping-not-advertised"
            ]
        );
        assert!(found[0].fix.contains("--port=41641"), "{:?}", found[0]);
        let unmapped = Facts {
            mapping_internal_port: None,
            ..bad
        };
        assert!(check(&unmapped).is_empty(), "no mapping, nothing to check");
    }
}
