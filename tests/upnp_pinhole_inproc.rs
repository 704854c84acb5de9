//! IGDv2 IPv6 pinholes (WANIPv6FirewallControl:1) through igd-next and our
//! transport, against the in-process fake IGD on a loopback address
//! (tests/fakes/igd.rs, written by hand from UPnP IGD 2.0, independent of
//! igd-next): the service found in the description we parse, a pinhole
//! opened, renewed and deleted by the router's UniqueID, and the firewall's
//! refusals typed with their UPnP codes. No root; the pinhole actor's own
//! use of them is not wired yet (see README, "Dependencies").

mod fakes;

use std::net::{Ipv4Addr, Ipv6Addr};

use edgereach::config::Protocol;
use edgereach::portmap::pmp::Ignored;
use edgereach::portmap::upnp::UpnpRouter;
use fakes::igd::{FakeIgd, IgdOptions};

/// A global address of the documentation prefix: the fake does not route,
/// it only records what it was asked to open.
const CLIENT: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x20);

async fn discover(addr: Ipv4Addr) -> UpnpRouter {
    UpnpRouter::discover(addr, Ipv4Addr::LOCALHOST, &Ignored::default())
        .await
        .expect("the fake IGD is found on its loopback address")
}

fn kinds(igd: &FakeIgd) -> Vec<(&'static str, u32, bool)> {
    igd.seen()
        .iter()
        .map(|s| (s.kind, s.lifetime, s.answered))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_pinhole_is_opened_renewed_and_deleted_by_its_unique_id() {
    let addr = Ipv4Addr::new(127, 0, 0, 25);
    let igd = FakeIgd::start(addr, IgdOptions::default()).await;
    let router = discover(addr).await;
    assert!(router.has_firewall(), "WANIPv6FirewallControl is listed");
    let status = router.firewall_status().await.expect("GetFirewallStatus");
    assert!(status.firewall_enabled && status.inbound_pinhole_allowed);

    let id = router
        .add_pinhole(Protocol::Udp, CLIENT, 41641, 120)
        .await
        .expect("AddPinhole");
    assert_eq!(igd.pinholes().get(&id), Some(&(CLIENT, 41641, 17, 120)));
    router.update_pinhole(id, 600).await.expect("UpdatePinhole");
    assert_eq!(igd.pinholes().get(&id).map(|h| h.3), Some(600));
    router.remove_pinhole(id).await.expect("DeletePinhole");
    assert!(igd.pinholes().is_empty());

    // Gone: the router says so with its code, which a renewal reads as
    // "open it again".
    let e = router
        .update_pinhole(id, 600)
        .await
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some("UPnP UpdatePinhole: router returned error 704 (NoSuchEntry)")
    );
    assert_eq!(
        kinds(&igd),
        [
            ("upnp-firewall-status", 0, true),
            ("upnp-pinhole-add", 120, true),
            ("upnp-pinhole-update", 600, true),
            ("upnp-pinhole-delete", 0, true),
            ("upnp-pinhole-update", 600, false),
        ]
    );
    // The IPv4 mapping service of the same IGD is untouched by all this.
    assert!(igd.table().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_firewall_that_allows_no_inbound_pinholes_is_told_apart() {
    let addr = Ipv4Addr::new(127, 0, 0, 26);
    let options = IgdOptions {
        pinholes_refused: true,
        ..IgdOptions::default()
    };
    let igd = FakeIgd::start(addr, options).await;
    let router = discover(addr).await;
    let status = router.firewall_status().await.expect("GetFirewallStatus");
    assert!(status.firewall_enabled && !status.inbound_pinhole_allowed);
    let e = router.add_pinhole(Protocol::Udp, CLIENT, 41641, 120).await;
    let e = e.err().map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some("UPnP AddPinhole: router returned error 703 (InboundPinholeNotAllowed)")
    );
    assert!(igd.pinholes().is_empty());
    // A lease igd-next refuses before asking (0 is no lease for a pinhole).
    let e = router.add_pinhole(Protocol::Udp, CLIENT, 41641, 0).await;
    assert!(e.is_err_and(|e| e.to_string().contains("between 1 and 86400")));
    assert_eq!(kinds(&igd).len(), 2, "{:?}", kinds(&igd));
}
