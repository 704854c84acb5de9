//! Name resolution that follows DNS TTLs and keeps the last good answer.
//!
//! The seed's nginx lesson: a name resolved once and cached forever breaks
//! when the address behind it moves. Every lookup here goes through
//! hickory-resolver, whose cache expires records by their TTL; when a lookup
//! fails (resolver down, uplink flapping), the last good answer is used and
//! marked stale instead of failing the whole operation (Tengine's
//! `fallback=stale`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::Resolver;

/// Longest a stale answer is still used after its TTL ran out.
pub const MAX_STALE: Duration = Duration::from_secs(24 * 3600);
/// Time one lookup may take.
const LOOKUP_BUDGET: Duration = Duration::from_secs(3);

/// Why a name could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// No resolver could be set up from the system configuration.
    #[error("no DNS resolver: {0}")]
    NoResolver(String),
    /// The lookup failed and there is no earlier answer to fall back to.
    #[error("cannot resolve {name}: {why}")]
    Lookup {
        /// Name asked for.
        name: String,
        /// What went wrong.
        why: String,
    },
}

/// Addresses for a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The addresses, in the resolver's order.
    pub addrs: Vec<IpAddr>,
    /// True when this is the last good answer reused after a failed lookup.
    pub stale: bool,
}

/// A resolver with a last-good fallback per name. Cheap to share by reference.
pub struct NameResolver {
    resolver: Option<Resolver<TokioRuntimeProvider>>,
    setup_error: Option<String>,
    last_good: Mutex<HashMap<String, (Vec<IpAddr>, Instant)>>,
}

impl NameResolver {
    /// A resolver configured from /etc/resolv.conf.
    pub fn from_system() -> Self {
        let built = Resolver::builder_tokio().and_then(|b| b.build());
        let (resolver, setup_error) = match built {
            Ok(r) => (Some(r), None),
            Err(e) => (None, Some(e.to_string())),
        };
        Self {
            resolver,
            setup_error,
            last_good: Mutex::new(HashMap::new()),
        }
    }

    /// A resolver that never asks DNS (tests; hosts without resolv.conf).
    pub fn offline(why: &str) -> Self {
        Self {
            resolver: None,
            setup_error: Some(why.to_string()),
            last_good: Mutex::new(HashMap::new()),
        }
    }

    /// Resolve `name` (an IP literal is returned as is).
    pub async fn resolve(&self, name: &str) -> Result<Resolved, ResolveError> {
        let literal = name.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = literal.parse::<IpAddr>() {
            return Ok(Resolved {
                addrs: vec![ip],
                stale: false,
            });
        }
        let fresh = match &self.resolver {
            None => Err(self.setup_error.clone().unwrap_or_default()),
            Some(r) => match tokio::time::timeout(LOOKUP_BUDGET, r.lookup_ip(name)).await {
                Err(_) => Err(format!("no answer within {LOOKUP_BUDGET:?}")),
                Ok(Err(e)) => Err(e.to_string()),
                Ok(Ok(found)) => Ok(found.iter().collect::<Vec<IpAddr>>()),
            },
        };
        let mut last = self.last_good.lock().unwrap_or_else(|p| p.into_inner());
        match fresh {
            Ok(addrs) if !addrs.is_empty() => {
                last.insert(name.to_string(), (addrs.clone(), Instant::now()));
                Ok(Resolved {
                    addrs,
                    stale: false,
                })
            }
            outcome => {
                let why = outcome.err().unwrap_or_else(|| "no addresses".into());
                match last.get(name) {
                    Some((addrs, at)) if at.elapsed() < MAX_STALE => {
                        tracing::warn!(
                            name,
                            "DNS lookup failed ({why}); using the last good answer"
                        );
                        Ok(Resolved {
                            addrs: addrs.clone(),
                            stale: true,
                        })
                    }
                    _ if self.resolver.is_none() => Err(ResolveError::NoResolver(why)),
                    _ => Err(ResolveError::Lookup {
                        name: name.to_string(),
                        why,
                    }),
                }
            }
        }
    }
}

/// Split `host:port` (IPv6 in brackets) into host and port.
pub fn split_host_port(s: &str) -> Option<(&str, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let port = port.parse::<u16>().ok().filter(|p| *p != 0)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then_some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn literals_skip_dns() {
        let r = NameResolver::offline("test");
        let got = r.resolve("203.0.113.10").await.unwrap();
        assert_eq!(got.addrs, vec!["203.0.113.10".parse::<IpAddr>().unwrap()]);
        let got = r.resolve("[2001:db8::1]").await.unwrap();
        assert_eq!(got.addrs, vec!["2001:db8::1".parse::<IpAddr>().unwrap()]);
    }

    #[tokio::test]
    async fn last_good_answer_is_reused_when_lookup_fails() {
        // Offline: no query leaves the machine; every lookup fails.
        let r = NameResolver::offline("no DNS in unit tests");
        let ip: IpAddr = "198.51.100.7".parse().unwrap();
        r.last_good
            .lock()
            .unwrap()
            .insert("gone.invalid".into(), (vec![ip], Instant::now()));
        let got = r.resolve("gone.invalid").await.unwrap();
        assert_eq!(
            got,
            Resolved {
                addrs: vec![ip],
                stale: true
            }
        );
        assert!(r.resolve("never-seen.invalid").await.is_err());
    }

    #[test]
    fn host_port() {
        assert_eq!(
            split_host_port("stun.example:3478"),
            Some(("stun.example", 3478))
        );
        assert_eq!(
            split_host_port("[2001:db8::1]:3478"),
            Some(("2001:db8::1", 3478))
        );
        assert_eq!(split_host_port("x:0"), None);
        assert_eq!(split_host_port(":1"), None);
    }
}
