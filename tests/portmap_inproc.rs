//! The portmap actor in-process, without root: the daemon's own
//! `portmap::service::run` against a fake router on a loopback address
//! (tests/fakes/router.rs: NAT-PMP and PCP written by hand from the RFCs), on
//! tokio's paused clock, so hours of leases pass in milliseconds. The
//! namespace lab keeps proving the same against the real miniupnpd.

mod fakes;

use std::net::Ipv4Addr;
use std::time::Duration;

use edgereach::portmap::model::Method;
use fakes::portmap_actor::{gaps, mapped, start, LEASE_S};
use fakes::router::{FakeRouter, Speaks};
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn pcp_lease_is_renewed_at_half_life_a_reboot_is_counted_and_release_is_sent() {
    let router = FakeRouter::start(Ipv4Addr::new(127, 0, 0, 11), Speaks::Pcp).await;
    let actor = start(router.addr);
    actor.wait("mapped", Duration::from_secs(10), mapped).await;
    let s = actor.hub.snapshot();
    let m = &s.portmap.mappings[0];
    assert_eq!(m.method.map(|m| m.name()), Some("pcp"), "{m:?}");
    assert_eq!(m.external.as_deref(), Some("203.0.113.2:41641"));

    // Ten lease halves.
    tokio::time::sleep(Duration::from_secs(10 * LEASE_S / 2 + 1)).await;
    let g = gaps(&router.seen(), "pcp-map");
    assert!(g.len() >= 10, "renewals: {g:?}");
    let half = (LEASE_S / 2) as f64;
    assert!(
        g.iter().all(|d| (d - half).abs() < 1.5),
        "renewed every {half} s: {g:?}"
    );
    assert_eq!(actor.hub.snapshot().portmap.router_reboots, 0);

    // The router reboots silently: the next renewal's epoch tells it.
    router.reboot();
    tokio::time::sleep(Duration::from_secs(LEASE_S / 2 + 1)).await;
    let s = actor.hub.snapshot();
    assert_eq!(s.portmap.router_reboots, 1, "{:?}", s.portmap);
    assert!(mapped(&s));

    // Shutdown deletes the mapping: a MAP with lifetime 0.
    actor.stop().await;
    let last = router
        .seen()
        .into_iter()
        .rev()
        .find(|s| s.kind == "pcp-map");
    assert_eq!(last.map(|s| s.lifetime), Some(0), "release sent");
}

#[tokio::test(start_paused = true)]
async fn a_nat_pmp_only_router_is_mapped_by_nat_pmp() {
    let router = FakeRouter::start(Ipv4Addr::new(127, 0, 0, 12), Speaks::NatPmpOnly).await;
    let actor = start(router.addr);
    actor.wait("mapped", Duration::from_secs(10), mapped).await;
    let s = actor.hub.snapshot();
    let m = &s.portmap.mappings[0];
    assert_eq!(m.method.map(|m| m.name()), Some("nat-pmp"), "{m:?}");
    assert_eq!(m.external.as_deref(), Some("203.0.113.2:41641"));
    // The other actors hear the same from portmap's own watch.
    let handed = actor.mapped.borrow().clone();
    assert_eq!(handed.protocols_seen, [Method::NatPmp], "{handed:?}");
    assert_eq!(handed.protocols_seen, s.portmap.protocols_seen);
    let held = &handed.mappings[..];
    assert!(
        held.len() == 1 && held[0].external.to_string() == "203.0.113.2:41641" && !held[0].doubted,
        "{handed:?}"
    );
    tokio::time::sleep(Duration::from_secs(3 * LEASE_S / 2 + 1)).await;
    let g = gaps(&router.seen(), "natpmp-map");
    assert!(
        g.len() >= 3 && g.iter().all(|d| (d - 60.0).abs() < 1.5),
        "{g:?}"
    );
    actor.stop().await;
    let last = router
        .seen()
        .into_iter()
        .rev()
        .find(|s| s.kind == "natpmp-map");
    assert_eq!(last.map(|s| s.lifetime), Some(0), "release sent");
}

#[tokio::test(start_paused = true)]
async fn a_silent_router_is_retried_with_growing_bounded_backoff() {
    let router = FakeRouter::start(Ipv4Addr::new(127, 0, 0, 13), Speaks::Pcp).await;
    router.set_silent(true);
    let actor = start(router.addr);
    // An hour of a router that never answers.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    let announces: Vec<Instant> = router
        .seen()
        .iter()
        .filter(|s| s.kind == "pcp-announce")
        .map(|s| s.at)
        .collect();
    let starts: Vec<Instant> = announces
        .iter()
        .enumerate()
        .filter(|(i, t)| *i == 0 || (**t - announces[i - 1]) > Duration::from_secs(5))
        .map(|(_, t)| *t)
        .collect();
    let g: Vec<u64> = starts.windows(2).map(|w| (w[1] - w[0]).as_secs()).collect();
    let s = actor.hub.snapshot();
    assert!(!mapped(&s));
    eprintln!(
        "silent router, 1 h: {} PCP announces in {} probe rounds, gaps {g:?} s",
        announces.len(),
        starts.len()
    );
    assert!(starts.len() >= 3, "retried: {g:?}");
    assert!(announces.len() < 400, "no hot loop: {}", announces.len());
    // Growing from the second round on (the first also waits out the
    // first probe's UPnP search), and capped near a minute (MAX_BACKOFF 60 s
    // plus one probe round), never beyond.
    let later = &g[1.min(g.len())..];
    assert!(later.windows(2).all(|w| w[1] + 1 >= w[0]), "growing: {g:?}");
    assert!(g.iter().all(|&d| d <= 70), "bounded: {g:?}");
    assert!(g.last().is_some_and(|&d| d >= 60), "reaches the cap: {g:?}");
    // It answers again: mapped at the next retry.
    router.set_silent(false);
    actor
        .wait(
            "mapped after the router answers",
            Duration::from_secs(3600),
            mapped,
        )
        .await;
    actor.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_router_that_comes_back_rebooted_after_the_mapping_was_lost_counts_a_reboot() {
    let router = FakeRouter::start(Ipv4Addr::new(127, 0, 0, 14), Speaks::Pcp).await;
    let actor = start(router.addr);
    actor.wait("mapped", Duration::from_secs(10), mapped).await;
    // Off past the lease: renewals fail and the mapping is lost.
    router.set_silent(true);
    tokio::time::sleep(Duration::from_secs(LEASE_S + 30)).await;
    assert!(
        !mapped(&actor.hub.snapshot()),
        "lost while the router is off"
    );
    // Back, rebooted: its epoch is younger than the time since the last grant.
    router.reboot();
    router.set_silent(false);
    actor
        .wait("mapped again", Duration::from_secs(300), mapped)
        .await;
    let s = actor.hub.snapshot();
    assert_eq!(s.portmap.router_reboots, 1, "{:?}", s.portmap);
    assert!(
        s.events.iter().any(|e| e.kind == "router.rebooted"),
        "{:?}",
        s.events
    );
    actor.stop().await;
}
