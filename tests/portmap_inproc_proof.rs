//! portmap's end-to-end proof in-process, without root: the daemon's own
//! portmap actor holds its canary mapping beside the mesh mapping on a fake
//! PCP router (tests/fakes/router.rs), and asks a fake RFC 5780 STUN server
//! (tests/fakes/stun.rs) to answer from its other address to the canary's
//! external port (CHANGE-REQUEST with RESPONSE-PORT). The answer reaches the
//! canary socket only where the fake router really forwards that port, so a
//! router that claims a mapping but does not forward it (its rules flushed,
//! as miniupnpd after a firewall reload) fails the proof, and the actor
//! deletes and re-adds every mapping. On tokio's paused clock.

mod fakes;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use edgereach::config::HumanDuration;
use edgereach::netcheck::servers::Rfc5780Server;
use edgereach::portmap::model::ProofState;
use edgereach::status::{Level, Status};
use fakes::portmap_actor::{start_with, Actor};
use fakes::router::{FakeRouter, Speaks};
use fakes::stun::{FakeNat, FakeStun, Filter, Mapping, StunSeen};
use tokio::time::Instant;

const VERIFY_S: u64 = 300;
/// The fake router's public address (tests/fakes/router.rs): the NAT in
/// front of the STUN server reports the same, so this is no double NAT.
const ROUTER_PUBLIC: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);

/// A PCP router on 127.0.0.`n`, an RFC 5780 server on 127.0.6.`n` (and
/// .`n+1` as its alternate address) that answers RESPONSE-PORT requests
/// where the router forwards, and the actor proving every VERIFY_S.
async fn lab(n: u8) -> (FakeRouter, FakeStun, Actor) {
    let router = FakeRouter::start(Ipv4Addr::new(127, 0, 0, n), Speaks::Pcp).await;
    let nat = FakeNat::new(
        ROUTER_PUBLIC,
        Mapping::EndpointIndependent,
        Filter::EndpointIndependent,
    );
    let at = |host: u8, port: u16| SocketAddr::from((Ipv4Addr::new(127, 0, 6, host), port));
    let stun = FakeStun::rfc5780(at(n, 3478), at(n + 1, 3479), &nat).await;
    stun.set_forwarder(router.forwarder());
    let actor = start_with(router.addr, |c| {
        c.portmap.prove = true;
        c.portmap.verify_interval = HumanDuration::from_secs(VERIFY_S);
    });
    actor.set_servers(vec![Rfc5780Server {
        addr: stun.addr,
        other: at(n + 1, 3479),
    }]);
    (router, stun, actor)
}

fn proof_is(state: ProofState) -> impl Fn(&Status) -> bool {
    move |s| s.portmap.proof.state == state
}

fn events(s: &Status, kind: &str) -> Vec<(Level, String)> {
    s.events
        .iter()
        .filter(|e| e.kind == kind)
        .map(|e| (e.level, e.message.clone()))
        .collect()
}

/// The proof's requests (RESPONSE-PORT) since `t`, and how many were answered.
fn proofs_since(stun: &FakeStun, t: Instant) -> (Vec<StunSeen>, usize) {
    let asked: Vec<StunSeen> = stun
        .seen()
        .into_iter()
        .filter(|x| x.at >= t && x.response_port.is_some())
        .collect();
    let answered = asked.iter().filter(|x| x.answered_from.is_some()).count();
    (asked, answered)
}

#[tokio::test(start_paused = true)]
async fn a_mapping_the_router_claims_but_no_longer_forwards_is_deleted_re_added_and_proven_again() {
    let (router, stun, actor) = lab(41).await;
    let limit = Duration::from_secs(30);
    actor
        .wait("proven", limit, proof_is(ProofState::Proven))
        .await;
    let s = actor.hub.snapshot();
    assert_eq!(events(&s, "mapping.proven").len(), 1, "{:?}", s.events);
    // Proven through the canary's external port, the answer from the
    // server's other address.
    let (asked, answered) = proofs_since(&stun, Instant::now() - limit);
    assert!(answered >= 1, "{asked:?}");
    let canary = s.portmap.proof.canary.clone().unwrap_or_default();
    let port = asked[0].response_port.unwrap_or(0);
    let external = format!("-> {ROUTER_PUBLIC}:{port} via pcp");
    assert!(canary.ends_with(&external), "canary {canary}, asked {port}");
    assert_eq!(asked[0].answered_from, stun.other);

    // The router's rules are flushed: it still claims both mappings and
    // renews them with success, but forwards nothing.
    router.flush_forwarding();
    let flushed = Instant::now();
    actor
        .wait(
            "dead and repaired",
            Duration::from_secs(VERIFY_S + 30),
            |s| s.portmap.proof.dead_repairs >= 1,
        )
        .await;
    let took = flushed.elapsed();
    actor
        .wait("proven again", limit, proof_is(ProofState::Proven))
        .await;
    let s = actor.hub.snapshot();
    eprintln!(
        "dead mapping repaired {took:?} after the flush: {:?}",
        s.portmap.proof
    );
    assert!(
        took <= Duration::from_secs(VERIFY_S + 5),
        "at the next proof: {took:?}"
    );
    assert_eq!(s.portmap.proof.dead_repairs, 1);
    // Two failed proofs (one lost datagram costs no repair), then one after.
    let (asked, answered) = proofs_since(&stun, flushed);
    let failed = asked.len() - answered;
    assert!(failed >= 2 * 3, "two proofs of three tries each: {asked:?}");
    assert_eq!(answered, 1, "proven once, after the repair: {asked:?}");
    // Deleted (lifetime 0) and made again: the mesh mapping and the canary.
    let seen = router.seen();
    let after: Vec<_> = seen
        .iter()
        .filter(|x| x.at >= flushed && x.kind == "pcp-map")
        .collect();
    assert!(
        after.iter().filter(|x| x.lifetime == 0).count() >= 2,
        "{after:?}"
    );
    assert!(router.forwarder()(41641).is_some(), "forwards again");
    let repaired = events(&s, "mapping.dead_repaired");
    assert_eq!(repaired.len(), 1, "{:?}", s.events);
    assert_eq!(repaired[0].0, Level::Warn);
    assert!(
        repaired[0].1.contains("re-added and proven again"),
        "{repaired:?}"
    );
    assert!(
        repaired[0].1.starts_with("tailscale: 203.0.113.2:41641"),
        "{repaired:?}"
    );
    actor.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_router_that_never_forwards_is_repaired_once_then_left_alone_and_the_status_says_why() {
    let (router, stun, actor) = lab(51).await;
    router.set_never_forwards(true);
    actor
        .wait(
            "failed",
            Duration::from_secs(30),
            proof_is(ProofState::Failed),
        )
        .await;
    actor
        .wait("one repair", Duration::from_secs(30), |s| {
            s.portmap.proof.dead_repairs == 1
        })
        .await;
    let s = actor.hub.snapshot();
    let reason = s.portmap.proof.reason.clone().unwrap_or_default();
    assert!(reason.contains("still nothing gets through"), "{reason}");
    // Plain words for the page: no run of spaces from a broken literal.
    assert!(
        reason.contains("did not get through them") && !reason.contains("  "),
        "{reason}"
    );
    let repaired = events(&s, "mapping.dead_repaired");
    assert_eq!(repaired.len(), 1, "{:?}", s.events);
    assert_eq!(repaired[0].0, Level::Error);
    assert!(
        proofs_since(&stun, Instant::now() - Duration::from_secs(60)).1 == 0,
        "nothing got through"
    );

    // The next proof fails too, but the repair backs off: no table rewrite.
    let before = router.seen().len();
    tokio::time::sleep(Duration::from_secs(VERIFY_S + 5)).await;
    let s = actor.hub.snapshot();
    assert_eq!(s.portmap.proof.dead_repairs, 1, "{:?}", s.portmap.proof);
    assert_eq!(s.portmap.proof.state, ProofState::Failed);
    let reason = s.portmap.proof.reason.clone().unwrap_or_default();
    assert!(reason.contains("repairs did not help"), "{reason}");
    let deletes = router.seen()[before..]
        .iter()
        .filter(|x| x.kind == "pcp-map" && x.lifetime == 0)
        .count();
    assert_eq!(deletes, 0, "left alone until the backoff ends");
    actor.stop().await;
}
