//! The portmap actor in-process against a fake UPnP IGD on a loopback
//! address (tests/fakes/igd.rs: SSDP, the device description and the
//! SOAP actions written by hand), no root, on tokio's paused clock: a
//! router that takes only permanent leases (725), a port another client
//! holds (718), and a reboot told by BOOTID. The lab test
//! tests/portmap_725.rs does the same with the Python fake in namespaces.

mod fakes;

use std::net::Ipv4Addr;
use std::time::Duration;

use edgereach::config::HumanDuration;
use fakes::igd::{FakeIgd, IgdOptions};
use fakes::portmap_actor::{mapped, start_with};

fn adds(igd: &FakeIgd) -> Vec<(u32, bool)> {
    igd.seen()
        .iter()
        .filter(|s| s.kind == "upnp-add")
        .map(|s| (s.lifetime, s.answered))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn permanent_only_router_725_is_asked_again_with_lease_0_and_released() {
    let addr = Ipv4Addr::new(127, 0, 0, 21);
    let options = IgdOptions {
        permanent_only: true,
        ..IgdOptions::default()
    };
    let igd = FakeIgd::start(addr, options).await;
    let actor = start_with(addr, |_| {});
    actor.wait("mapped", Duration::from_secs(30), mapped).await;
    let s = actor.hub.snapshot();
    let m = &s.portmap.mappings[0];
    assert_eq!(m.method.map(|m| m.name()), Some("upnp"), "{m:?}");
    assert_eq!(m.lease_s, Some(0), "permanent: {m:?}");
    assert_eq!(m.external.as_deref(), Some("203.0.113.2:41641"));
    let a = adds(&igd);
    assert_eq!(
        a.first(),
        Some(&(120, false)),
        "a lease first, refused: {a:?}"
    );
    assert_eq!(a.get(1), Some(&(0, true)), "then permanent: {a:?}");
    assert_eq!(
        igd.table().get(&41641),
        Some(&(Ipv4Addr::LOCALHOST, 41641, 0))
    );
    // An hour on: a permanent mapping is checked, never re-added.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(adds(&igd).len(), 2, "{:?}", adds(&igd));
    actor.stop().await;
    assert!(igd.table().is_empty(), "released on shutdown");
}

#[tokio::test(start_paused = true)]
async fn a_port_held_by_another_client_718_gets_another_port_and_says_so() {
    let addr = Ipv4Addr::new(127, 0, 0, 22);
    let other = Ipv4Addr::new(127, 0, 0, 99);
    let options = IgdOptions {
        taken: Some((41641, other)),
        ..IgdOptions::default()
    };
    let igd = FakeIgd::start(addr, options).await;
    let actor = start_with(addr, |_| {});
    // Held on another port: degraded, since tailscaled will not advertise it.
    actor
        .wait("mapped elsewhere", Duration::from_secs(30), |s| {
            s.portmap
                .mappings
                .first()
                .is_some_and(|m| m.external.is_some())
        })
        .await;
    let s = actor.hub.snapshot();
    let m = &s.portmap.mappings[0];
    assert_eq!(m.state, edgereach::status::State::Degraded, "{m:?}");
    assert!(
        m.reason
            .as_deref()
            .is_some_and(|r| r.contains("instead of 41641")),
        "{m:?}"
    );
    let port: u16 = m
        .external
        .as_deref()
        .and_then(|e| e.rsplit_once(':'))
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(0);
    assert!(port != 41641 && port != 0, "{m:?}");
    assert!(!m.same_port);
    let a = adds(&igd);
    assert_eq!(
        a.first(),
        Some(&(120, false)),
        "41641 refused (718) first: {a:?}"
    );
    assert_eq!(
        igd.table().get(&41641).map(|e| e.0),
        Some(other),
        "untouched"
    );
    assert_eq!(
        igd.table().get(&port).map(|e| e.0),
        Some(Ipv4Addr::LOCALHOST)
    );
    assert!(
        s.events.iter().any(|e| e.kind == "mapping.port_differs"),
        "{:?}",
        s.events
    );
    actor.stop().await;
    assert_eq!(igd.table().len(), 1, "only the other client's entry left");
}

#[tokio::test(start_paused = true)]
async fn a_new_boot_id_is_a_reboot_and_the_mapping_is_made_again() {
    let addr = Ipv4Addr::new(127, 0, 0, 23);
    let igd = FakeIgd::start(addr, IgdOptions::default()).await;
    let actor = start_with(addr, |c| {
        c.portmap.verify_interval = HumanDuration::from_secs(30);
    });
    actor.wait("mapped", Duration::from_secs(30), mapped).await;
    igd.reboot();
    assert!(igd.table().is_empty());
    // The next check (every 30 s) asks the BOOTID and finds it new.
    actor
        .wait("re-mapped after the reboot", Duration::from_secs(40), |s| {
            s.portmap.router_reboots == 1 && mapped(s)
        })
        .await;
    assert!(igd.table().contains_key(&41641), "{:?}", igd.table());
    actor.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_mapping_gone_from_the_table_is_found_at_the_next_check_and_restored() {
    let addr = Ipv4Addr::new(127, 0, 0, 24);
    let igd = FakeIgd::start(addr, IgdOptions::default()).await;
    let actor = start_with(addr, |c| {
        c.portmap.verify_interval = HumanDuration::from_secs(30);
    });
    actor.wait("mapped", Duration::from_secs(30), mapped).await;
    igd.forget();
    actor
        .wait("restored", Duration::from_secs(40), |s| {
            s.events.iter().any(|e| e.kind == "mapping.lost")
                && s.events.iter().any(|e| e.kind == "mapping.recovered")
                && mapped(s)
        })
        .await;
    let s = actor.hub.snapshot();
    assert_eq!(s.portmap.router_reboots, 0, "a loss, not a reboot");
    assert!(igd.table().contains_key(&41641));
    actor.stop().await;
}
