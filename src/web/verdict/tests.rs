use super::*;
use crate::netcheck::report::Report;
use crate::portmap::model::{ProofState, ProofStatus};
use crate::status::{DefaultRoute, Health, MappingStatus, State};
use crate::tailscale::api::PingPath;
use crate::web::sections::test_peer;

fn online() -> Status {
    let mut s = crate::web::test_status();
    s.network.default_route = Some(DefaultRoute {
        interface: "eth0".into(),
        gateway: Some("192.0.2.1".into()),
        source: Some("192.0.2.10".into()),
    });
    s.tailscale.health = Health::new(State::Ok, Some("Running".into()));
    s.tailscale.backend_state = Some("Running".into());
    s
}

fn report(hard: Option<bool>) -> Report {
    Report {
        udp: true,
        ipv4: Some("203.0.113.2:40001".into()),
        mapping_varies_by_dest_ip: hard,
        ..Report::default()
    }
}

fn mapped(s: &mut Status) {
    s.portmap.health = Health::new(State::Ok, None);
    s.portmap.mappings = vec![MappingStatus {
        name: "tailscale".into(),
        protocol: crate::primitives::Protocol::Udp,
        method: Some(crate::portmap::model::Method::Pcp),
        internal: "192.0.2.10:41641".into(),
        external: Some("203.0.113.2:41641".into()),
        same_port: true,
        lease_s: Some(3600),
        expires: None,
        last_verified: None,
        proven_at: None,
        proof: None,
        failures: 0,
        state: State::Ok,
        reason: None,
    }];
    proven(s, 0);
}

/// The proof succeeded `age_s` seconds ago (the period is 30 s).
fn proven(s: &mut Status, age_s: u64) {
    let at = std::time::SystemTime::now() - std::time::Duration::from_secs(age_s);
    s.portmap.proof = ProofStatus {
        state: ProofState::Proven,
        proven_at: Some(crate::status::Timestamp::at(at)),
        interval_s: 30,
        ..ProofStatus::default()
    };
}

#[test]
fn no_route_is_not_reachable() {
    let s = crate::web::test_status();
    let v = decide(&s);
    assert_eq!(v.reach, Reach::NotReachable);
    assert!(v.reason.contains("no network route"), "{}", v.reason);
}

#[test]
fn before_the_first_report_it_is_not_known() {
    let mut s = online();
    s.netcheck.health.reason = Some("no STUN servers configured".into());
    let v = decide(&s);
    assert_eq!(v.reach, Reach::Unknown);
    assert!(
        v.reason.contains("no STUN servers configured"),
        "{}",
        v.reason
    );
}

#[test]
fn blocked_udp_is_not_reachable() {
    let mut s = online();
    s.netcheck.report = Some(Report {
        udp: false,
        ..Report::default()
    });
    mapped(&mut s);
    let v = decide(&s);
    assert_eq!(v.reach, Reach::NotReachable);
    assert!(v.reason.contains("blocks outgoing UDP"), "{}", v.reason);
}

#[test]
fn a_held_mapping_is_direct_even_behind_a_hard_nat() {
    let mut s = online();
    s.netcheck.report = Some(report(Some(true)));
    mapped(&mut s);
    let v = decide(&s);
    assert_eq!(v.reach, Reach::Direct);
    assert!(v.reason.contains("udp 203.0.113.2:41641"), "{}", v.reason);
    assert!(v.reason.contains("pcp"), "{}", v.reason);
}

#[test]
fn a_mapping_seen_dead_from_outside_is_not_trusted() {
    let mut s = online();
    let mut r = report(Some(true));
    r.mesh_port_reachable = Some(false);
    s.netcheck.report = Some(r);
    mapped(&mut s);
    let v = decide(&s);
    assert_eq!(v.reach, Reach::RelayOnly);
    assert!(v.reason.contains("did not get through it"), "{}", v.reason);
}

#[test]
fn hard_nat_without_mapping_is_relay_only_with_the_router_reason() {
    let mut s = online();
    s.netcheck.report = Some(report(Some(true)));
    s.portmap.health = Health::new(
        State::Unavailable,
        Some("tailscale: router 192.0.2.1 answered none of PCP, NAT-PMP or UPnP IGD".into()),
    );
    let v = decide(&s);
    assert_eq!(v.reach, Reach::RelayOnly);
    assert!(v.reason.contains("hard"), "{}", v.reason);
    assert!(v.reason.contains("answered none of PCP"), "{}", v.reason);
}

#[test]
fn hard_nat_with_portmap_off_says_so() {
    let mut s = online();
    s.netcheck.report = Some(report(Some(true)));
    s.portmap.health = Health::new(State::Disabled, Some("portmap.enabled is false".into()));
    let v = decide(&s);
    assert_eq!(v.reach, Reach::RelayOnly);
    assert!(v.reason.contains("switched off"), "{}", v.reason);
}

#[test]
fn easy_nat_is_direct_by_hole_punching() {
    let mut s = online();
    s.netcheck.report = Some(report(Some(false)));
    let v = decide(&s);
    assert_eq!(v.reach, Reach::Direct);
    assert!(v.reason.contains("hole punching"), "{}", v.reason);
}

#[test]
fn unknown_nat_type_without_mapping_is_not_known() {
    let mut s = online();
    s.netcheck.report = Some(report(None));
    assert_eq!(decide(&s).reach, Reach::Unknown);
}

#[test]
fn a_direct_pong_is_proof() {
    let mut s = online();
    s.netcheck.report = Some(report(Some(true)));
    s.tailscale.peers = vec![
        test_peer(
            "gw-a",
            Some((PingPath::Derp, None, Some("lab"), Some(40.0), None)),
        ),
        test_peer(
            "gw-b",
            Some((
                PingPath::Direct,
                Some("203.0.113.50:41641"),
                None,
                Some(2.4),
                None,
            )),
        ),
        test_peer("gw-not-pinged-yet", None),
    ];
    let v = decide(&s);
    assert_eq!(v.reach, Reach::Direct);
    assert!(
        v.reason.starts_with(
            "1 of 2 pinged peers answer directly (e.g. gw-b via 203.0.113.50:41641, 2 ms)"
        ),
        "{}",
        v.reason
    );
}

#[test]
fn relayed_pongs_only_are_relay_only_with_the_nat_reason() {
    let mut s = online();
    s.netcheck.report = Some(report(Some(true)));
    mapped(&mut s);
    s.portmap.mappings.clear();
    s.portmap.health = Health::new(State::Unavailable, Some("no router".into()));
    s.tailscale.peers = vec![test_peer(
        "gw-a",
        Some((PingPath::Derp, None, Some("lab"), Some(40.0), None)),
    )];
    let v = decide(&s);
    assert_eq!(v.reach, Reach::RelayOnly);
    assert!(v.reason.contains("only through a relay"), "{}", v.reason);
    assert!(v.reason.contains("hard"), "{}", v.reason);
}

#[test]
fn no_pong_at_all_is_not_reachable() {
    let mut s = online();
    s.netcheck.report = Some(report(Some(false)));
    s.tailscale.peers = vec![test_peer(
        "gw-a",
        Some((PingPath::Failed, None, None, None, Some("timeout"))),
    )];
    let v = decide(&s);
    assert_eq!(v.reach, Reach::NotReachable);
    assert!(
        v.reason.contains("None of the 1 pinged peers"),
        "{}",
        v.reason
    );
}

#[test]
fn tailscaled_missing_or_down_is_not_reachable_and_unwatched_says_nothing() {
    let mut s = online();
    s.netcheck.report = Some(report(Some(false)));
    assert_eq!(
        decide(&s).reach,
        Reach::Direct,
        "no pings yet: the NAT decides"
    );
    s.tailscale.backend_state = Some("NeedsLogin".into());
    s.tailscale.health = Health::new(
        State::Degraded,
        Some(
            "tailscaled is NeedsLogin (not Running): no tailnet until it is logged in and up"
                .into(),
        ),
    );
    let v = decide(&s);
    assert_eq!(v.reach, Reach::NotReachable);
    assert!(v.reason.contains("NeedsLogin"), "{}", v.reason);
    s.tailscale.backend_state = None;
    s.tailscale.health = Health::new(
        State::Unavailable,
        Some("tailscaled's LocalAPI socket /run/tailscale/tailscaled.sock does not exist".into()),
    );
    let v = decide(&s);
    assert_eq!(v.reach, Reach::NotReachable);
    assert!(v.reason.contains("does not exist"), "{}", v.reason);
    s.tailscale.health = Health::new(State::Disabled, Some("tailscale.enabled is false".into()));
    assert_eq!(decide(&s).reach, Reach::Direct);
    s.tailscale.health = Health::new(State::Unavailable, Some("starting".into()));
    assert_eq!(decide(&s).reach, Reach::Direct, "starting says nothing yet");
}

#[test]
fn a_mapping_is_direct_only_while_its_proof_is_recent() {
    let mut s = online();
    s.netcheck.report = Some(report(Some(true)));
    mapped(&mut s);
    let v = decide(&s);
    assert_eq!(v.reach, Reach::Direct);
    assert!(
        v.reason.contains("a packet from outside got through"),
        "{}",
        v.reason
    );
    proven(&mut s, 600);
    let v = decide(&s);
    assert_eq!(v.reach, Reach::RelayOnly, "{}", v.reason);
    assert!(v.reason.contains("too old"), "{}", v.reason);
}

#[test]
fn a_failed_proof_is_not_direct_and_says_it_is_being_repaired() {
    let mut s = online();
    s.netcheck.report = Some(report(Some(true)));
    mapped(&mut s);
    s.portmap.proof.state = ProofState::Failed;
    let v = decide(&s);
    assert_eq!(v.reach, Reach::RelayOnly);
    assert!(v.reason.contains("did not get through"), "{}", v.reason);
    assert!(v.reason.contains("repairing"), "{}", v.reason);
}

#[test]
fn without_a_proof_server_the_router_side_check_stands_and_says_so() {
    let mut s = online();
    s.netcheck.report = Some(report(Some(true)));
    mapped(&mut s);
    s.portmap.proof.state = ProofState::Undecided;
    s.portmap.proof.reason = Some("no RFC 5780 STUN server known".into());
    let v = decide(&s);
    assert_eq!(v.reach, Reach::Direct);
    assert!(v.reason.contains("router-side check only"), "{}", v.reason);
    assert!(v.reason.contains("no RFC 5780"), "{}", v.reason);
}

#[test]
fn double_nat_is_never_direct_and_names_both_addresses() {
    let mut s = online();
    s.netcheck.report = Some(report(Some(true)));
    mapped(&mut s);
    s.portmap.double_nat = Some(
        "double NAT: router 10.0.0.1 maps 41641 on 100.64.0.2, a carrier-grade NAT address, \
         but the internet sees 203.0.113.9; the upstream NAT is not ours"
            .into(),
    );
    let v = decide(&s);
    assert_eq!(v.reach, Reach::RelayOnly);
    assert!(
        v.reason.starts_with("Double NAT: router 10.0.0.1"),
        "{}",
        v.reason
    );
    assert!(v.reason.contains("203.0.113.9"), "{}", v.reason);
}
