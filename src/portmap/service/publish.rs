//! Rendering the session into the `portmap` section of the status, and what
//! it holds into the `Mapped` watch for the other actors.

use std::net::SocketAddrV4;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{overall, Held, Router, Session};
use crate::config::MappingConfig;
use crate::portmap::model::{HeldMapping, ProofMethod, ProofState};
use crate::portmap::router::Method;
use crate::status::{MappingStatus, State, Timestamp};

impl Session {
    pub(super) fn publish(&mut self) {
        let lan = |m: &MappingConfig| SocketAddrV4::new(self.local, m.internal_port).to_string();
        let canary = self.held.iter().find(|h| h.canary);
        let canary_method = self.canary_method();
        let proof_bad = self.proof_bad();
        let proven = (self.proof.state == ProofState::Proven)
            .then_some(self.proof.proven_at)
            .flatten();
        let mappings: Vec<MappingStatus> = self
            .held
            .iter()
            .filter(|h| !h.canary)
            .map(|h| {
                // The canary vouches for mappings made the same way.
                let same_way = h.grant.is_some_and(|g| Some(g.method) == canary_method);
                let mut m = mapping_status(h, lan(&h.cfg));
                if same_way {
                    m.proven_at = proven.map(Timestamp::at);
                    m.proof = m.proven_at.map(|_| ProofMethod::StunRfc5780);
                    if let (Some(why), State::Ok) = (&proof_bad, m.state) {
                        m.state = State::Degraded;
                        m.reason = Some(why.clone());
                    }
                }
                m
            })
            .collect();
        let external_ip = self
            .held
            .iter()
            .find_map(|h| h.grant)
            .map(|g| g.external.ip().to_string());
        let (state, reason) = overall(&mappings);
        let ignored = self.ignored.0.load(Ordering::Relaxed);
        let canary_words = canary.map(|h| {
            let via = h.grant.map_or("not held".to_string(), |g| {
                format!("{} via {}", g.external, g.method.name())
            });
            format!("{} -> {via}", lan(&h.cfg))
        });
        let proof = self.proof.status(canary_words);
        let double_nat = self.proof.double_nat.clone();
        self.hub.update(|s| {
            let p = &mut s.portmap;
            p.health.set(state, reason);
            p.router = Some(self.gw.to_string());
            p.mappings = mappings;
            p.ignored_packets = ignored;
            p.proof = proof;
            p.double_nat = double_nat;
            if external_ip.is_some() {
                p.external_ip = external_ip;
            }
        });
        self.publish_mapped();
    }

    /// How the canary mapping was made, when it is held.
    fn canary_method(&self) -> Option<Method> {
        let canary = self.held.iter().find(|h| h.canary);
        canary.and_then(|h| h.grant).map(|g| g.method)
    }

    /// Why the proof says the router's word does not hold, if it does.
    fn proof_bad(&self) -> Option<String> {
        match self.proof.state {
            ProofState::Failed | ProofState::DoubleNat => self.proof.reason.clone(),
            _ => None,
        }
    }

    /// The protocols the router answered, into the status and the `Mapped`
    /// watch (netcheck reports them, tailscale's checks look at them).
    pub(super) fn publish_protocols(&self, router: &Router) {
        let seen: Vec<Method> = router.methods().to_vec();
        if let Some(links) = &self.links {
            links.mapped.send_if_modified(|m| {
                let changed = m.protocols_seen != seen;
                if changed {
                    m.protocols_seen.clone_from(&seen);
                }
                changed
            });
        }
        self.hub.update(|s| {
            s.portmap.router = Some(self.gw.to_string());
            s.portmap.protocols_seen = seen;
        });
    }

    /// What the router holds, for tailscale; wakes it only on a change.
    fn publish_mapped(&mut self) {
        let Some(links) = &self.links else { return };
        // As publish() shows them: the canary vouches against mappings made
        // the same way when the proof failed.
        let canary_method = self.canary_method();
        let proof_bad = self.proof_bad().is_some();
        let held: Vec<HeldMapping> = self
            .held
            .iter()
            .filter(|h| !h.canary && h.reason.is_none())
            .filter_map(|h| {
                let grant = h.grant?;
                Some(HeldMapping {
                    name: h.cfg.name.clone(),
                    external: grant.external,
                    internal_port: h.cfg.internal_port,
                    doubted: proof_bad && Some(grant.method) == canary_method,
                })
            })
            .collect();
        let moved = std::mem::take(&mut self.moved);
        links.mapped.send_if_modified(|m| {
            let changed = m.mappings != held;
            if moved && !held.is_empty() {
                m.generation += 1;
            }
            m.mappings = held;
            changed || moved
        });
    }
}

fn mapping_status(h: &Held, internal: String) -> MappingStatus {
    MappingStatus {
        name: h.cfg.name.clone(),
        protocol: h.cfg.protocol,
        method: h.grant.map(|g| g.method),
        internal,
        external: h.grant.map(|g| g.external.to_string()),
        same_port: h
            .grant
            .is_some_and(|g| g.external.port() == h.cfg.external_port),
        lease_s: h.grant.map(|g| u64::from(g.lease_s)),
        expires: h.grant.filter(|g| g.lease_s > 0).map(|g| {
            let left = Duration::from_secs(u64::from(g.lease_s)).saturating_sub(g.at.elapsed());
            Timestamp::in_(left)
        }),
        last_verified: h.last_verified.map(Timestamp::at),
        proven_at: None,
        proof: None,
        failures: h.failures,
        state: match (&h.grant, &h.reason) {
            (Some(_), None) => State::Ok,
            (Some(_), Some(_)) => State::Degraded,
            (None, _) => State::Unavailable,
        },
        reason: h.reason.clone(),
    }
}
