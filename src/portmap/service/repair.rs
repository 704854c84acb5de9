//! Keeping each mapping held: create, renew, check, repair, refresh, release.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::{backoff, run_in_turn, Session, RELEASE_BUDGET};
use crate::deadline::Later;
use crate::portmap::pmp::epoch_says_rebooted;
use crate::portmap::router::{Grant, Method, UpnpCheck};
use crate::status::Level;

/// One router reboot shows in several signals within moments: its SSDP
/// BOOTID, and the epoch of each PCP or NAT-PMP mapping renewed after it
/// (the mesh mapping and the proof's canary). They are one reboot while
/// this close to the one counted; no router boots twice this fast.
pub(super) const ONE_REBOOT: Duration = Duration::from_secs(10);

impl Session {
    /// Make sure mapping `i` is held: create it, renew it (PCP/NAT-PMP renew
    /// is also their check), or look it up on the router (UPnP).
    pub(super) async fn ensure(&mut self, i: usize, renew: bool) {
        let Some(router) = &self.router else { return };
        let lease = self.cfg.portmap.lease.get();
        let h = &self.held[i];
        let (cfg, nonce) = (h.cfg.clone(), h.nonce);
        if let Some(g) = h.grant {
            if g.method == Method::Upnp && !renew {
                match router.upnp_check(&cfg, &g).await {
                    Ok(UpnpCheck::Holds) => {
                        self.verified(i, g);
                        return self.upnp_preferred_port(i).await;
                    }
                    Ok(UpnpCheck::Gone) => {
                        self.hub.emit(
                            "portmap",
                            "mapping.lost",
                            Level::Warn,
                            format!(
                                "{}: mapping {} is gone from the router; re-creating",
                                cfg.name, g.external
                            ),
                        );
                        self.held[i].grant = None;
                        self.held[i].lost = true;
                    }
                    Ok(UpnpCheck::ExternalIpChanged(ip)) => {
                        self.hub.emit(
                            "portmap",
                            "external_ip.changed",
                            Level::Warn,
                            format!(
                                "router's public address changed from {} to {ip}; re-creating {}",
                                g.external.ip(),
                                cfg.name
                            ),
                        );
                        self.held[i].grant = None;
                        self.held[i].lost = true;
                    }
                    Err(e) => return self.failed(i, format!("check failed: {e}")),
                }
            }
        }
        let had = self.held[i].grant;
        let methods = match had {
            Some(g) => vec![g.method],
            None => router.methods(),
        };
        let want_port = had.map_or(cfg.external_port, |g| g.external.port());
        let mut last_err = String::from("no protocol available");
        for method in methods {
            match router.map(method, &cfg, want_port, lease, nonce).await {
                Ok(grant) => return self.granted(i, had, grant),
                Err(e) => last_err = format!("{}: {e}", method.name()),
            }
        }
        if had.is_some() {
            self.hub.emit(
                "portmap",
                "mapping.lost",
                Level::Warn,
                format!("{}: renewal failed ({last_err})", cfg.name),
            );
            self.held[i].grant = None;
            self.held[i].lost = true;
        }
        self.failed(i, last_err);
    }

    pub(super) fn granted(&mut self, i: usize, had: Option<Grant>, grant: Grant) {
        let name = self.held[i].cfg.name.clone();
        let wanted = self.held[i].cfg.external_port;
        let was_lost = had.is_none() && self.held[i].lost;
        // The grant before, or the last one with an epoch to compare when
        // the mapping was lost meanwhile (the router may have rebooted while
        // it did not answer).
        let last = self.held[i].last_grant;
        let before = had.or(last.filter(|g| epochs_comparable(g.method, grant.method)));
        if let (Some(old), Some(epoch)) = (before, grant.epoch) {
            if old
                .epoch
                .is_some_and(|e| epoch_says_rebooted(e, old.at.elapsed(), epoch))
            {
                self.router_rebooted(format!(
                    "{} epoch went from {:?} to {epoch}",
                    grant.method.name(),
                    old.epoch
                ));
            }
        }
        if let Some(old) = had {
            if old.external != grant.external {
                self.hub.emit(
                    "portmap",
                    "mapping.changed",
                    Level::Warn,
                    format!(
                        "{name}: router now maps {} instead of {}",
                        grant.external, old.external
                    ),
                );
            }
        }
        let moved = had.is_none_or(|old| old.external != grant.external);
        if moved && !self.held[i].canary {
            // Tell tailscaled at the next publish, and prove the new mapping.
            self.moved = true;
            self.proof.next_at = Instant::now();
        }
        if had.is_none() && !self.held[i].canary {
            let how = format!(
                "{name}: {} {}:{} -> {} by {}, lease {}s",
                self.held[i].cfg.protocol,
                self.local,
                self.held[i].cfg.internal_port,
                grant.external,
                grant.method.name(),
                grant.lease_s
            );
            let kind = if was_lost {
                "mapping.recovered"
            } else {
                "mapping.created"
            };
            self.hub.emit("portmap", kind, Level::Info, how);
            if grant.external.port() != wanted {
                self.hub.emit(
                    "portmap",
                    "mapping.port_differs",
                    Level::Warn,
                    format!(
                        "{name}: external port {wanted} is taken on the router; got {} instead",
                        grant.external.port()
                    ),
                );
            }
        }
        self.held[i].grant = Some(grant);
        self.held[i].last_grant = Some(grant);
        self.held[i].lost = false;
        self.verified(i, grant);
    }

    pub(super) fn verified(&mut self, i: usize, grant: Grant) {
        let h = &mut self.held[i];
        h.failures = 0;
        h.last_verified = Some(SystemTime::now());
        h.reason = (!h.canary && grant.external.port() != h.cfg.external_port).then(|| {
            format!(
                "external port {} instead of {}: tailscaled will not advertise it on its own",
                grant.external.port(),
                h.cfg.external_port
            )
        });
    }

    pub(super) fn failed(&mut self, i: usize, why: String) {
        let h = &mut self.held[i];
        h.failures += 1;
        h.next_retry = Instant::now().later(backoff(h.failures));
        if h.failures == 1 {
            self.hub.emit(
                "portmap",
                "mapping.failed",
                Level::Error,
                format!("{}: {why}", h.cfg.name),
            );
        }
        h.reason = Some(why);
        if h.failures >= 3 {
            // Maybe the router changed what it speaks: probe again.
            self.router = None;
        }
    }

    pub(super) fn router_rebooted(&mut self, why: String) {
        if self.last_reboot.is_some_and(|t| t.elapsed() < ONE_REBOOT) {
            tracing::debug!("router {}: {why}; the same reboot, counted", self.gw);
            return;
        }
        self.last_reboot = Some(Instant::now());
        self.hub.update(|s| s.portmap.router_reboots += 1);
        self.hub.emit(
            "portmap",
            "router.rebooted",
            Level::Warn,
            format!("router {} restarted ({why})", self.gw),
        );
    }

    /// UPnP routers change BOOTID on every start.
    pub(super) async fn check_boot_id(&mut self, attempts: u32) {
        let Some(igd) = self.router.as_ref().and_then(|r| r.upnp.as_ref()) else {
            return;
        };
        let mut answer = igd.boot_id(&self.ignored).await;
        for _ in 1..attempts {
            if answer.is_ok() {
                break;
            }
            // A router that just announced itself may not answer searches yet.
            tokio::time::sleep(Duration::from_millis(300)).await;
            answer = igd.boot_id(&self.ignored).await;
        }
        if let Ok(now) = answer {
            self.boot_id_seen(now);
        }
    }

    /// A BOOTID the router gave: a new one means it rebooted, and its UPnP
    /// mappings are gone.
    pub(super) fn boot_id_seen(&mut self, now: Option<u32>) {
        if now.is_some() && self.boot_id.is_some() && now != self.boot_id {
            self.router_rebooted(format!("SSDP BOOTID {:?} -> {:?}", self.boot_id, now));
            for h in &mut self.held {
                if h.grant.is_some_and(|g| g.method == Method::Upnp) {
                    h.grant = None;
                    h.lost = true;
                    h.next_retry = Instant::now();
                }
            }
        }
        if now.is_some() {
            self.boot_id = now;
        }
    }

    /// A router announcement: check now rather than at the next interval.
    pub(super) async fn on_announcement(&mut self) {
        if self.router.is_none() {
            return self.step().await;
        }
        self.check_boot_id(4).await;
        for i in 0..self.held.len() {
            self.ensure(i, false).await;
        }
        self.publish();
    }

    /// Delete and re-add, for routers whose mappings die silently.
    /// Delete and re-add, for routers whose mappings die silently (and, for
    /// PCP and NAT-PMP, the moment to win back the wanted port).
    pub(super) async fn refresh(&mut self, i: usize) {
        let Some(router) = &self.router else { return };
        let h = &self.held[i];
        if let Some(g) = h.grant {
            let _ = router.unmap(&h.cfg, &g, h.nonce).await;
            self.held[i].grant = None;
            self.ensure(i, false).await;
            if let Some(now) = self.held[i].grant {
                self.hub.emit(
                    "portmap",
                    "mapping.refreshed",
                    Level::Info,
                    format!(
                        "{}: deleted and re-added {} -> {}",
                        self.held[i].cfg.name, g.external, now.external
                    ),
                );
            }
        }
    }

    /// Holding another port than wanted by UPnP: try for the wanted one
    /// again (it may have been freed); UPnP allows both at once, so nothing
    /// is lost while trying.
    pub(super) async fn upnp_preferred_port(&mut self, i: usize) {
        let Some(router) = &self.router else { return };
        let (cfg, nonce) = (self.held[i].cfg.clone(), self.held[i].nonce);
        let Some(old) = self.held[i].grant else {
            return;
        };
        if old.method != Method::Upnp || old.external.port() == cfg.external_port {
            return;
        }
        let lease = self.cfg.portmap.lease.get();
        let Ok(new) = router
            .map(Method::Upnp, &cfg, cfg.external_port, lease, nonce)
            .await
        else {
            return;
        };
        if new.external.port() != cfg.external_port {
            // The router handed out yet another port: give that one back.
            let _ = router.unmap(&cfg, &new, nonce).await;
            return;
        }
        let _ = router.unmap(&cfg, &old, nonce).await;
        self.hub.emit(
            "portmap",
            "mapping.port_recovered",
            Level::Info,
            format!(
                "{}: got the wanted port {} back (was {})",
                cfg.name, new.external, old.external
            ),
        );
        self.held[i].grant = Some(new);
        self.verified(i, new);
    }

    pub(super) async fn release_all(&mut self) {
        let Some(router) = &self.router else { return };
        let jobs = self
            .held
            .iter()
            .filter_map(|h| h.grant.map(|g| (h.cfg.clone(), g, h.nonce)));
        let unrecorded: Vec<_> = self
            .held
            .iter()
            .filter(|h| h.grant.is_none())
            .map(|h| (h.cfg.clone(), h.nonce))
            .collect();
        let released = tokio::time::timeout(RELEASE_BUDGET, async {
            let done = run_in_turn(jobs.map(|(cfg, g, nonce)| async move {
                let r = router.unmap(&cfg, &g, nonce).await;
                (cfg.name, g, r)
            }))
            .await;
            for (cfg, nonce) in &unrecorded {
                router.release_unrecorded(cfg, *nonce).await;
            }
            done
        })
        .await;
        match released {
            Ok(results) => {
                for (name, g, r) in results {
                    match r {
                        Ok(()) => self.hub.emit(
                            "portmap",
                            "mapping.released",
                            Level::Info,
                            format!("{name}: released {}", g.external),
                        ),
                        Err(e) => self.hub.emit(
                            "portmap",
                            "mapping.release_failed",
                            Level::Warn,
                            format!("{name}: could not release {}: {e}", g.external),
                        ),
                    };
                }
            }
            Err(_) => {
                self.hub.emit(
                    "portmap",
                    "mapping.release_failed",
                    Level::Warn,
                    "release did not finish in time",
                );
            }
        }
        for h in &mut self.held {
            h.grant = None;
            h.reason = Some("released".into());
        }
    }
}

/// Whether grants by `a` and `b` carry epochs of one clock. PCP's epoch
/// and NAT-PMP's seconds since start count from the same router start (RFC
/// 6887 8.5 took it from NAT-PMP; miniupnpd keeps one clock), so a mapping
/// lost by PCP and back by NAT-PMP, whichever answered first, still tells a
/// reboot.
fn epochs_comparable(a: Method, b: Method) -> bool {
    a == b
        || matches!(
            (a, b),
            (Method::Pcp, Method::NatPmp) | (Method::NatPmp, Method::Pcp)
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::StatusHub;

    #[tokio::test]
    async fn one_reboot_seen_three_ways_counts_once() {
        let (hub, mut s) = crate::portmap::service::tests::test_session();
        s.router_rebooted("SSDP BOOTID 1 -> 2".into());
        s.router_rebooted("pcp epoch went from 9 to 1".into());
        s.router_rebooted("pcp epoch went from 9 to 2".into());
        assert_eq!(hub.snapshot().portmap.router_reboots, 1);
        let kinds = |h: &StatusHub| {
            h.snapshot()
                .events
                .iter()
                .filter(|e| e.kind == "router.rebooted")
                .count()
        };
        assert_eq!(kinds(&hub), 1, "one event too");
        // Another reboot later is counted.
        s.last_reboot = Instant::now().checked_sub(ONE_REBOOT);
        s.router_rebooted("SSDP BOOTID 2 -> 3".into());
        assert_eq!(hub.snapshot().portmap.router_reboots, 2);
        assert_eq!(kinds(&hub), 2);
    }

    fn pcp_grant(epoch: u32, ago: Duration) -> Grant {
        Grant {
            method: Method::Pcp,
            external: "203.0.113.2:41641".parse().unwrap(),
            lease_s: 3600,
            epoch: Some(epoch),
            at: Instant::now().checked_sub(ago).unwrap_or_else(Instant::now),
        }
    }

    #[tokio::test]
    async fn a_reboot_while_the_mapping_was_lost_is_still_counted() {
        let (hub, mut s) = crate::portmap::service::tests::test_session();
        s.granted(0, None, pcp_grant(500, Duration::from_secs(20)));
        // The router stops answering: the mapping is lost, then it comes
        // back with an epoch younger than the 20 s since.
        s.held[0].grant = None;
        s.held[0].lost = true;
        s.granted(0, None, pcp_grant(3, Duration::ZERO));
        assert_eq!(hub.snapshot().portmap.router_reboots, 1);
        // A re-grant whose epoch went on counting is no reboot.
        s.last_reboot = None;
        s.held[0].grant = None;
        let g = pcp_grant(3, Duration::from_secs(30));
        s.held[0].last_grant = Some(g);
        s.granted(0, None, pcp_grant(33, Duration::ZERO));
        assert_eq!(hub.snapshot().portmap.router_reboots, 1);
    }

    #[tokio::test]
    async fn lost_by_pcp_and_back_by_nat_pmp_a_reboot_is_still_counted() {
        let (hub, mut s) = crate::portmap::service::tests::test_session();
        s.granted(0, None, pcp_grant(500, Duration::from_secs(20)));
        s.held[0].grant = None;
        s.held[0].lost = true;
        // The rebooted router's NAT-PMP answers first, its clock restarted.
        let nat_pmp = Grant {
            method: Method::NatPmp,
            ..pcp_grant(2, Duration::ZERO)
        };
        s.granted(0, None, nat_pmp);
        assert_eq!(hub.snapshot().portmap.router_reboots, 1);
    }

    #[tokio::test]
    async fn a_new_boot_id_after_the_router_was_lost_is_a_reboot() {
        let (hub, mut s) = crate::portmap::service::tests::test_session();
        s.boot_id_seen(Some(7));
        s.boot_id_seen(Some(7));
        assert_eq!(hub.snapshot().portmap.router_reboots, 0);
        s.boot_id_seen(None);
        s.boot_id_seen(Some(8));
        assert_eq!(hub.snapshot().portmap.router_reboots, 1);
    }
}
