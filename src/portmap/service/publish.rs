//! Rendering the session into the `portmap` section of the status.

use std::net::SocketAddrV4;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use super::{overall, Session};
use crate::config::MappingConfig;
use crate::status::{MappingStatus, State};

impl Session {
    pub(super) fn publish(&self) {
        let lan = |m: &MappingConfig| SocketAddrV4::new(self.local, m.internal_port).to_string();
        let mappings: Vec<MappingStatus> = self
            .held
            .iter()
            .map(|h| MappingStatus {
                name: h.cfg.name.clone(),
                protocol: h.cfg.protocol.to_string(),
                method: h.grant.map(|g| g.method.name().to_string()),
                internal: lan(&h.cfg),
                external: h.grant.map(|g| g.external.to_string()),
                same_port: h
                    .grant
                    .is_some_and(|g| g.external.port() == h.cfg.external_port),
                lease_s: h.grant.map(|g| u64::from(g.lease_s)),
                expires: h.grant.filter(|g| g.lease_s > 0).map(|g| {
                    let left =
                        Duration::from_secs(u64::from(g.lease_s)).saturating_sub(g.at.elapsed());
                    humantime::format_rfc3339_seconds(SystemTime::now() + left).to_string()
                }),
                last_verified: h
                    .last_verified
                    .map(|t| humantime::format_rfc3339_seconds(t).to_string()),
                failures: h.failures,
                state: match (&h.grant, &h.reason) {
                    (Some(_), None) => State::Ok,
                    (Some(_), Some(_)) => State::Degraded,
                    (None, _) => State::Unavailable,
                },
                reason: h.reason.clone(),
            })
            .collect();
        let external_ip = self
            .held
            .iter()
            .find_map(|h| h.grant)
            .map(|g| g.external.ip().to_string());
        let (state, reason) = overall(&mappings);
        let ignored = self.ignored.0.load(Ordering::Relaxed);
        self.hub.update(|s| {
            let p = &mut s.portmap;
            p.health.set(state, reason);
            p.router = Some(self.gw.to_string());
            p.mappings = mappings;
            p.ignored_packets = ignored;
            if external_ip.is_some() {
                p.external_ip = external_ip;
            }
        });
    }
}
