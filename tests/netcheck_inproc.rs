//! The netcheck actor in-process, without root: the daemon's own
//! `netcheck::service::run` against fake STUN servers on loopback
//! (tests/fakes/stun.rs: RFC 5389 Binding and RFC 5780 CHANGE-REQUEST written
//! by hand, with the NAT in front of the gateway simulated by the server),
//! configured through `netcheck.stun_servers` in a TOML text, on tokio's
//! paused clock (tests/fakes/mod.rs says why sockets need no real time).
//! The namespace lab (tests/netcheck_lab.rs) does the same against a real
//! NAT and a real STUN server.

mod fakes;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use edgereach::netcheck::report::{Filtering, Report};
use edgereach::netcheck::servers::Rfc5780Server;
use edgereach::portmap::model::Method;
use edgereach::status::{State, Status};
use fakes::netcheck_actor::{network, start};
use fakes::stun::{FakeNat, FakeStun, Filter, Mapping, StunSeen};
use tokio::time::Instant;

const PUBLIC: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
/// Longer than any test: only the start, a poke or a network change runs one.
const INTERVAL: &str = "1h";

/// `127.0.5.N:port`: each test takes its own N (all of 127/8 is loopback),
/// apart from the router fakes' 127.0.0.N.
fn at(n: u8, port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(127, 0, 5, n), port))
}

fn report(s: &Status) -> Report {
    s.netcheck.report.clone().expect("a report")
}

/// The IP of an `ip:port` text.
fn ip_of(addr: &str) -> Ipv4Addr {
    addr.parse::<SocketAddr>()
        .map(|a| match a.ip() {
            std::net::IpAddr::V4(ip) => ip,
            std::net::IpAddr::V6(_) => panic!("IPv6: {addr}"),
        })
        .unwrap_or_else(|e| panic!("{addr}: {e}"))
}

/// The requests with a CHANGE-REQUEST (the RFC 5780 filtering test).
fn changes(seen: Vec<StunSeen>) -> Vec<StunSeen> {
    seen.into_iter().filter(|s| s.change.is_some()).collect()
}

fn events(s: &Status, kind: &str) -> usize {
    s.events.iter().filter(|e| e.kind == kind).count()
}

#[tokio::test(start_paused = true)]
async fn an_easy_nat_is_reported_and_the_rfc5780_server_is_handed_to_portmap() {
    let nat = FakeNat::new(
        PUBLIC,
        Mapping::EndpointIndependent,
        Filter::EndpointIndependent,
    );
    let a = FakeStun::rfc5780(at(1, 3478), at(2, 3479), &nat).await;
    let b = FakeStun::plain(at(3, 3478), &nat).await;
    let mut actor = start(&[a.addr, b.addr], INTERVAL);
    // What portmap tells netcheck of the router goes into the report.
    actor
        .mapped
        .send_modify(|m| m.protocols_seen = vec![Method::Pcp]);
    let took = actor.runs(1, Duration::from_secs(10)).await;
    let s = actor.hub.snapshot();
    let r = report(&s);
    eprintln!("first report after {took:?}: {r:?}");
    // The report netcheck hands to admission through its own watch is the
    // one the views show.
    let handed = actor
        .report
        .borrow()
        .clone()
        .expect("a report in the watch");
    assert_eq!(*handed, r);
    assert_eq!(r.port_mapping, ["pcp"]);
    assert_eq!(
        s.netcheck.health.state,
        State::Ok,
        "{:?}",
        s.netcheck.health
    );
    assert!(r.udp);
    // The public address is the one the servers reported (the NAT keeps the
    // local port, so both saw the same one).
    let ipv4 = r.ipv4.clone().expect("a public IPv4");
    let reported: Vec<String> = a
        .seen()
        .iter()
        .chain(b.seen().iter())
        .filter(|x| x.change.is_none())
        .filter_map(|x| x.mapped.map(|m| m.to_string()))
        .collect();
    assert!(reported.contains(&ipv4), "{ipv4} not among {reported:?}");
    assert_eq!(ip_of(&ipv4), PUBLIC);
    assert_eq!(
        r.mapping_varies_by_dest_ip,
        Some(false),
        "two destination IPs, one public port"
    );
    assert_eq!(r.filtering, Some(Filtering::EndpointIndependent));
    assert_eq!(r.region_latency_ms.len(), 2, "{:?}", r.region_latency_ms);
    assert!(
        r.region_latency_ms.values().all(|ms| *ms < 20.0),
        "loopback: {:?}",
        r.region_latency_ms
    );
    // The filtering test asked for answers from the other port and from
    // the other address and port, and got them from there.
    let asked = changes(a.seen())
        .into_iter()
        .map(|x| (x.change, x.answered_from))
        .collect::<Vec<_>>();
    assert!(
        asked.contains(&(Some((true, true)), Some(at(2, 3479)))),
        "{asked:?}"
    );
    assert!(
        asked.contains(&(Some((false, true)), Some(at(1, 3479)))),
        "{asked:?}"
    );
    assert!(
        changes(b.seen()).is_empty(),
        "no OTHER-ADDRESS, no filtering test"
    );
    // Only the server with an OTHER-ADDRESS goes to portmap's proof.
    assert!(actor.rfc5780.has_changed().unwrap_or(false), "handed out");
    let handed = actor.rfc5780.borrow_and_update().clone();
    assert_eq!(
        handed,
        vec![Rfc5780Server {
            addr: a.addr,
            other: at(2, 3479)
        }]
    );
    assert_eq!(events(&s, "netcheck.first"), 1, "{:?}", s.events);
    // The same servers at the next full report: nothing new handed out.
    actor.poke.poke();
    actor.runs(2, Duration::from_secs(10)).await;
    assert!(
        !actor.rfc5780.has_changed().unwrap_or(true),
        "unchanged, not sent again"
    );
    actor.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_hard_nat_shows_as_mapping_varies_by_destination_and_its_filtering_is_told() {
    let nat = FakeNat::new(
        PUBLIC,
        Mapping::AddressDependent,
        Filter::AddressAndPortDependent,
    );
    let a = FakeStun::rfc5780(at(11, 3478), at(12, 3479), &nat).await;
    let b = FakeStun::plain(at(13, 3478), &nat).await;
    let actor = start(&[a.addr, b.addr], INTERVAL);
    actor.runs(1, Duration::from_secs(10)).await;
    let s = actor.hub.snapshot();
    let r = report(&s);
    eprintln!("hard NAT: {r:?}");
    assert_eq!(s.netcheck.health.state, State::Ok);
    assert_eq!(r.mapping_varies_by_dest_ip, Some(true), "{r:?}");
    assert_eq!(
        r.filtering,
        Some(Filtering::AddressAndPortDependent),
        "{r:?}"
    );
    assert_eq!(ip_of(r.ipv4.as_deref().expect("public IPv4")), PUBLIC);
    // The NAT dropped every answer from elsewhere: asked, never answered.
    let asked = changes(a.seen());
    assert!(
        !asked.is_empty() && asked.iter().all(|x| x.answered_from.is_none()),
        "{asked:?}"
    );
    actor.stop().await;
}

#[tokio::test(start_paused = true)]
async fn address_dependent_filtering_lets_only_the_other_port_through() {
    let nat = FakeNat::new(
        PUBLIC,
        Mapping::EndpointIndependent,
        Filter::AddressDependent,
    );
    let a = FakeStun::rfc5780(at(21, 3478), at(22, 3479), &nat).await;
    let actor = start(&[a.addr], INTERVAL);
    actor.runs(1, Duration::from_secs(10)).await;
    let r = report(&actor.hub.snapshot());
    assert_eq!(r.filtering, Some(Filtering::AddressDependent), "{r:?}");
    assert_eq!(
        r.mapping_varies_by_dest_ip, None,
        "one destination IP: can't tell"
    );
    actor.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_silent_server_is_reported_degraded_within_the_budget_and_withdrawn_from_portmap() {
    let nat = FakeNat::new(
        PUBLIC,
        Mapping::EndpointIndependent,
        Filter::EndpointIndependent,
    );
    let a = FakeStun::rfc5780(at(31, 3478), at(32, 3479), &nat).await;
    a.set_silent(true);
    let t0 = Instant::now();
    let mut actor = start(&[a.addr], INTERVAL);
    // Bounded: the report's own 5 s budget, not a hang.
    let took = actor.runs(1, Duration::from_secs(30)).await;
    let s = actor.hub.snapshot();
    eprintln!(
        "silent server: report after {took:?}, {:?}",
        s.netcheck.health
    );
    assert!(took <= edgereach::netcheck::run::REPORT_BUDGET, "{took:?}");
    assert_eq!(s.netcheck.health.state, State::Degraded);
    let reason = s.netcheck.health.reason.clone().unwrap_or_default();
    assert!(reason.contains("no STUN answer over UDP"), "{reason}");
    let r = report(&s);
    assert!(!r.udp && r.ipv4.is_none(), "{r:?}");
    // The probe's tries, not the lifetime estimate that starts after it.
    let stun_phase_end = t0 + edgereach::netcheck::run::STUN_BUDGET;
    let tries = a
        .seen()
        .iter()
        .filter(|x| x.change.is_none() && x.at < stun_phase_end)
        .count();
    assert_eq!(
        tries,
        3,
        "three tries (tailscale's), then given up: {:?}",
        a.seen()
    );
    assert!(actor.rfc5780.borrow().is_empty());

    // It answers again: ok at the next report, and handed to portmap.
    a.set_silent(false);
    actor.poke.poke();
    actor
        .wait("ok again", Duration::from_secs(10), |s| {
            s.netcheck.health.state == State::Ok
        })
        .await;
    assert_eq!(actor.rfc5780.borrow_and_update().len(), 1);
    assert_eq!(events(&actor.hub.snapshot(), "udp.changed"), 1);

    // Silent again: portmap is told there is no RFC 5780 server any more.
    a.set_silent(true);
    actor.poke.poke();
    let before = actor.hub.snapshot().netcheck.runs;
    actor.runs(before + 1, Duration::from_secs(10)).await;
    assert_eq!(actor.hub.snapshot().netcheck.health.state, State::Degraded);
    assert!(actor.rfc5780.has_changed().unwrap_or(false), "sent");
    assert!(actor.rfc5780.borrow_and_update().is_empty(), "withdrawn");
    actor.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_network_change_triggers_a_small_run_that_sees_the_new_public_address() {
    let nat = FakeNat::new(
        PUBLIC,
        Mapping::EndpointIndependent,
        Filter::EndpointIndependent,
    );
    let a = FakeStun::rfc5780(at(41, 3478), at(42, 3479), &nat).await;
    let b = FakeStun::plain(at(43, 3478), &nat).await;
    let c = FakeStun::plain(at(44, 3478), &nat).await;
    let far = FakeStun::plain(at(45, 3478), &nat).await;
    far.set_delay(Duration::from_millis(80));
    let actor = start(&[a.addr, b.addr, c.addr, far.addr], INTERVAL);
    actor.runs(1, Duration::from_secs(10)).await;
    let first = report(&actor.hub.snapshot());
    assert_eq!(first.region_latency_ms.len(), 4, "{first:?}");
    assert_eq!(first.filtering, Some(Filtering::EndpointIndependent));

    // The uplink moves: a new public address, and its NAT filters harder.
    // By now the idle-mapping lifetime estimate has come back (at once: this
    // NAT keeps the local port, so it can't tell); the actor must still hear
    // the change, not wait for the next full report an interval later.
    tokio::time::sleep(Duration::from_secs(30)).await;
    nat.set_public_ip(Ipv4Addr::new(198, 51, 100, 99));
    nat.set_filter(Filter::AddressAndPortDependent);
    let changed = Instant::now();
    actor.net.send_replace(network("127.0.0.2"));
    let took = actor.runs(2, Duration::from_secs(10)).await;
    let s = actor.hub.snapshot();
    let r = report(&s);
    eprintln!("after the network change: report after {took:?}: {r:?}");
    assert_eq!(
        ip_of(r.ipv4.as_deref().expect("public IPv4")),
        Ipv4Addr::new(198, 51, 100, 99)
    );
    assert_eq!(events(&s, "public_ip.changed"), 1, "{:?}", s.events);
    // Small: after the settle time, the three fastest regions once each, no
    // filtering test (the last one's result is kept).
    let after = |f: &FakeStun| -> Vec<StunSeen> {
        f.seen().into_iter().filter(|x| x.at >= changed).collect()
    };
    assert!(
        after(&far).is_empty(),
        "the slowest region is left out: {:?}",
        after(&far)
    );
    for f in [&a, &b, &c] {
        let seen = after(f);
        assert_eq!(seen.len(), 1, "one try to {}: {seen:?}", f.addr);
        assert!(
            seen[0].at - changed >= Duration::from_secs(1),
            "after the settle time"
        );
    }
    assert!(
        changes(after(&a)).is_empty(),
        "no filtering test in a small run"
    );
    assert_eq!(
        r.filtering,
        Some(Filtering::EndpointIndependent),
        "kept from the full run"
    );
    assert_eq!(r.region_latency_ms.len(), 3, "{r:?}");
    actor.stop().await;
}

#[tokio::test(start_paused = true)]
async fn the_nat_idle_mapping_lifetime_is_measured_between_the_cliffs_it_survives() {
    let nat = FakeNat::new(
        PUBLIC,
        Mapping::EndpointIndependentRewritten,
        Filter::EndpointIndependent,
    );
    // Idle for more than 30 s, a mapping is gone: the 20 s cliff survives,
    // the 40 s one does not (service::LIFETIME_CLIFFS: 5, 10, 20, 40, 80).
    nat.set_idle_timeout(Duration::from_secs(30));
    let a = FakeStun::plain(at(51, 3478), &nat).await;
    let actor = start(&[a.addr], INTERVAL);
    let took = actor
        .wait("lifetime measured", Duration::from_secs(300), |s| {
            s.netcheck
                .report
                .as_ref()
                .is_some_and(|r| r.mapping_lifetime_s.is_some())
        })
        .await;
    let s = actor.hub.snapshot();
    eprintln!(
        "idle mapping lifetime after {took:?}: {:?}",
        report(&s).mapping_lifetime_s
    );
    assert_eq!(report(&s).mapping_lifetime_s, Some(20));
    let measured: Vec<&str> = s
        .events
        .iter()
        .filter(|e| e.kind == "mapping_lifetime.measured")
        .map(|e| e.message.as_str())
        .collect();
    assert_eq!(measured, ["the NAT keeps an idle UDP mapping at least 20s"]);
    // Kept by the next report.
    actor.poke.poke();
    actor.runs(2, Duration::from_secs(10)).await;
    assert_eq!(report(&actor.hub.snapshot()).mapping_lifetime_s, Some(20));
    actor.stop().await;
}
