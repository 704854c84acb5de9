//! The portmap actor in-process against a NAT-PMP or PCP router that keeps
//! a table of what it maps (tests/fakes/router.rs), on tokio's paused clock:
//! renewal at half the lease the router granted, a reboot told only by
//! NAT-PMP's seconds-since-epoch going backwards, and a mapping the router
//! forgot without rebooting, made again by the next renewal (on another
//! port when its own was taken meanwhile).

mod fakes;

use std::net::Ipv4Addr;
use std::time::Duration;

use edgereach::status::{State, Status};
use fakes::portmap_actor::{gaps, mapped, start, LEASE_S};
use fakes::router::{FakeRouter, Speaks};
use tokio::time::Instant;

/// The mesh mapping's port (the default `[[portmap.mapping]]`).
const MESH: u16 = 41641;

fn external(s: &Status) -> Option<String> {
    s.portmap.mappings.first().and_then(|m| m.external.clone())
}

fn events(s: &Status, kind: &str) -> usize {
    s.events.iter().filter(|e| e.kind == kind).count()
}

/// Wait (virtual time) until the router holds the mesh port again; how long it took.
async fn until_held(router: &FakeRouter, limit: Duration) -> Duration {
    let start = Instant::now();
    while router.holds_udp(MESH).is_none() {
        assert!(start.elapsed() < limit, "not mapped again within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    start.elapsed()
}

#[tokio::test(start_paused = true)]
async fn nat_pmp_renews_at_half_the_granted_lease_and_a_reboot_told_by_its_epoch_is_repaired() {
    let router = FakeRouter::start(Ipv4Addr::new(127, 0, 0, 31), Speaks::NatPmpOnly).await;
    // The actor asks for LEASE_S (120 s); this router grants 60 at most.
    router.set_max_lease(60);
    let actor = start(router.addr);
    actor.wait("mapped", Duration::from_secs(10), mapped).await;
    let s = actor.hub.snapshot();
    assert_eq!(
        s.portmap.mappings[0].method.map(|m| m.name()),
        Some("nat-pmp")
    );
    assert_eq!(router.holds_udp(MESH), Some(MESH));

    tokio::time::sleep(Duration::from_secs(8 * 30 + 1)).await;
    let g = gaps(&router.seen(), "natpmp-map");
    assert!(g.len() >= 8, "renewals: {g:?}");
    assert!(
        g.iter().all(|d| (d - 30.0).abs() < 1.5),
        "every 30 s, half the granted 60 (not of the {LEASE_S} asked): {g:?}"
    );
    assert_eq!(actor.hub.snapshot().portmap.router_reboots, 0);

    // The router reboots: its table is empty and its epoch starts again,
    // which only the next renewal's answer tells.
    router.reboot();
    assert_eq!(router.holds_udp(MESH), None);
    let took = until_held(&router, Duration::from_secs(31)).await;
    eprintln!("NAT-PMP reboot: mapped again after {took:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let s = actor.hub.snapshot();
    assert_eq!(s.portmap.router_reboots, 1, "{:?}", s.portmap);
    assert_eq!(events(&s, "router.rebooted"), 1, "{:?}", s.events);
    assert!(mapped(&s), "{:?}", s.portmap);
    assert_eq!(router.holds_udp(MESH), Some(MESH));
    actor.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_mapping_the_nat_pmp_router_forgot_is_made_again_at_the_next_renewal_and_is_no_reboot() {
    let router = FakeRouter::start(Ipv4Addr::new(127, 0, 0, 32), Speaks::NatPmpOnly).await;
    let actor = start(router.addr);
    actor.wait("mapped", Duration::from_secs(10), mapped).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    // Gone from the router's table (flushed, evicted), its epoch going on.
    router.forget();
    assert_eq!(router.holds_udp(MESH), None);
    let forgot = Instant::now();
    let took = until_held(&router, Duration::from_secs(LEASE_S / 2)).await;
    eprintln!("NAT-PMP silent loss: mapped again after {took:?}");
    let renewal = router
        .seen()
        .into_iter()
        .find(|x| x.kind == "natpmp-map" && x.at >= forgot)
        .expect("a renewal after the loss");
    assert_eq!(renewal.lifetime as u64, LEASE_S, "a renewal, not a release");
    assert_eq!(router.holds_udp(MESH), Some(MESH), "the same port");
    let s = actor.hub.snapshot();
    assert!(mapped(&s));
    assert_eq!(s.portmap.router_reboots, 0, "{:?}", s.portmap);
    assert_eq!(events(&s, "router.rebooted"), 0, "{:?}", s.events);
    actor.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_mapping_the_pcp_router_forgot_is_made_again_and_on_another_port_when_its_own_was_taken()
{
    let router = FakeRouter::start(Ipv4Addr::new(127, 0, 0, 33), Speaks::Pcp).await;
    let actor = start(router.addr);
    actor.wait("mapped", Duration::from_secs(10), mapped).await;
    assert_eq!(
        external(&actor.hub.snapshot()).as_deref(),
        Some("203.0.113.2:41641")
    );

    // Forgotten: the next renewal makes it again, on the same port.
    tokio::time::sleep(Duration::from_secs(10)).await;
    router.forget();
    until_held(&router, Duration::from_secs(LEASE_S / 2)).await;
    assert_eq!(router.holds_udp(MESH), Some(MESH));
    let s = actor.hub.snapshot();
    assert_eq!(external(&s).as_deref(), Some("203.0.113.2:41641"));
    assert_eq!(events(&s, "mapping.changed"), 0, "{:?}", s.events);

    // Forgotten again, and another host took the port meanwhile: the
    // renewal gets the next one, and the status (hence tailscale) says so.
    router.forget();
    router.take_port(MESH);
    until_held(&router, Duration::from_secs(LEASE_S / 2)).await;
    assert_eq!(router.holds_udp(MESH), Some(MESH + 1));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let s = actor.hub.snapshot();
    assert_eq!(
        external(&s).as_deref(),
        Some("203.0.113.2:41642"),
        "{:?}",
        s.portmap
    );
    assert_eq!(events(&s, "mapping.changed"), 1, "{:?}", s.events);
    // Held, but not where tailscaled advertises it: degraded, and why.
    let m = &s.portmap.mappings[0];
    assert_eq!(m.state, State::Degraded, "{m:?}");
    let reason = m.reason.as_deref().unwrap_or_default();
    assert!(reason.contains("41642 instead of 41641"), "{reason}");
    // And stays there at the later renewals.
    tokio::time::sleep(Duration::from_secs(2 * LEASE_S / 2)).await;
    assert_eq!(router.holds_udp(MESH), Some(MESH + 1));
    assert_eq!(
        external(&actor.hub.snapshot()).as_deref(),
        Some("203.0.113.2:41642")
    );
    assert_eq!(actor.hub.snapshot().portmap.router_reboots, 0);
    actor.stop().await;
}
