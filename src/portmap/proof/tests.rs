//! The proof against an in-process RFC 5780 STUN server on two loopback
//! addresses: it answers plain requests from its primary address and
//! CHANGE-REQUEST from the other one, to RESPONSE-PORT when asked. Whether
//! "the router forwards" is played by where that answer lands: the canary's
//! own port (forwarded) or a port nobody listens on (dead).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use stun_rs::attributes::discovery::{ChangeRequest as ChangeAttr, OtherAddress, ResponsePort};
use stun_rs::attributes::stun::{ErrorCode, Fingerprint, XorMappedAddress};
use stun_rs::{
    methods::BINDING, MessageClass, MessageDecoderBuilder, MessageEncoderBuilder,
    StunMessageBuilder,
};

use super::*;

/// How the fake server behaves.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// A full RFC 5780 server.
    Rfc5780,
    /// Answers every request from its primary address, never says OTHER-ADDRESS.
    Plain,
    /// Refuses CHANGE-REQUEST with 420.
    Refuses,
}

struct FakeStun {
    primary: SocketAddr,
    other: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeStun {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn fake_stun(mode: Mode) -> FakeStun {
    let a = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    // A second loopback address stands for the server's other IP.
    let b = Arc::new(UdpSocket::bind("127.0.0.2:0").await.unwrap());
    let (primary, other) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        loop {
            let Ok((n, from)) = a.recv_from(&mut buf).await else {
                return;
            };
            let Ok((req, _)) = MessageDecoderBuilder::default().build().decode(&buf[..n]) else {
                continue;
            };
            let change = req
                .get::<ChangeAttr>()
                .and_then(|a| a.as_change_request().ok())
                .is_some_and(|c| !c.flags().is_empty());
            let port = req
                .get::<ResponsePort>()
                .and_then(|a| a.as_response_port().ok())
                .map(|p| p.as_u16());
            let mut m = StunMessageBuilder::new(BINDING, MessageClass::SuccessResponse)
                .with_transaction_id(*req.transaction_id());
            if change && mode == Mode::Refuses {
                let code = stun_rs::ErrorCode::new(420, "Unknown Attribute").unwrap();
                m = StunMessageBuilder::new(BINDING, MessageClass::ErrorResponse)
                    .with_transaction_id(*req.transaction_id())
                    .with_attribute(ErrorCode::from(code));
            } else {
                m = m.with_attribute(XorMappedAddress::from(from));
                if mode == Mode::Rfc5780 {
                    m = m.with_attribute(OtherAddress::from(other));
                }
            }
            let msg = m.with_attribute(Fingerprint::default()).build();
            let mut out = vec![0u8; 256];
            let Ok(len) = MessageEncoderBuilder::default()
                .build()
                .encode(&mut out, &msg)
            else {
                continue;
            };
            let to = SocketAddr::new(from.ip(), port.unwrap_or(from.port()));
            let via = if change && mode == Mode::Rfc5780 {
                &b
            } else {
                &a
            };
            let _ = via.send_to(&out[..len], to).await;
        }
    });
    FakeStun {
        primary,
        other,
        task,
    }
}

fn server(f: &FakeStun) -> ProofServer {
    ProofServer {
        addr: f.primary,
        other: f.other,
    }
}

const BUDGET: Duration = Duration::from_millis(300);

#[tokio::test]
async fn an_answer_through_the_external_port_proves_forwarding() {
    let f = fake_stun(Mode::Rfc5780).await;
    let canary = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = canary.local_addr().unwrap().port();
    let mut sent = Traffic::default();
    let got = prove(&canary, server(&f), port, BUDGET, &mut sent).await;
    assert_eq!(
        got,
        Outcome::Forwarded {
            reflexive: canary.local_addr().unwrap()
        }
    );
    assert!(
        sent.sent > 0 && sent.sent < 200,
        "one request is enough: {sent:?}"
    );
    assert!(
        sent.received > 0 && sent.received < 200,
        "one answer: {sent:?}"
    );
}

#[tokio::test]
async fn an_answer_lost_at_the_external_port_is_a_dead_mapping() {
    let f = fake_stun(Mode::Rfc5780).await;
    let canary = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // The "router" forwards nothing: the external port leads nowhere.
    let nowhere = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let dead_port = nowhere.local_addr().unwrap().port();
    drop(nowhere);
    let mut sent = Traffic::default();
    let got = prove(&canary, server(&f), dead_port, BUDGET, &mut sent).await;
    assert_eq!(
        got,
        Outcome::NotForwarded {
            reflexive: canary.local_addr().unwrap()
        }
    );
}

#[tokio::test]
async fn a_server_without_rfc5780_tells_nothing() {
    let canary = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = canary.local_addr().unwrap().port();
    let mut sent = Traffic::default();
    let plain = fake_stun(Mode::Plain).await;
    // Its answer comes from the primary address although we asked for the
    // other: CHANGE-REQUEST ignored.
    assert_eq!(
        prove(&canary, server(&plain), port, BUDGET, &mut sent).await,
        Outcome::Unsupported
    );
    let refuses = fake_stun(Mode::Refuses).await;
    assert_eq!(
        prove(&canary, server(&refuses), port, BUDGET, &mut sent).await,
        Outcome::Unsupported
    );
}

#[tokio::test]
async fn a_silent_server_tells_nothing_and_the_wait_is_bounded() {
    let canary = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = canary.local_addr().unwrap().port();
    let quiet = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let s = ProofServer {
        addr: quiet.local_addr().unwrap(),
        other: quiet.local_addr().unwrap(),
    };
    let started = Instant::now();
    let mut sent = Traffic::default();
    assert_eq!(
        prove(&canary, s, port, BUDGET, &mut sent).await,
        Outcome::Silent
    );
    assert!(started.elapsed() < BUDGET * 3, "two exchanges at most");
    // Three tries of each request were sent.
    let mut buf = [0u8; 1500];
    let mut got = 0;
    while let Ok(Ok(_)) =
        tokio::time::timeout(Duration::from_millis(50), quiet.recv_from(&mut buf)).await
    {
        got += 1;
    }
    assert_eq!(got, 6);
}

#[test]
fn upstream_nat_is_told_from_the_routers_own_address() {
    let hint = |s: &str| upstream_nat_hint(s.parse().unwrap());
    assert_eq!(hint("10.0.0.1"), Some("a private address"));
    assert_eq!(hint("192.168.1.1"), Some("a private address"));
    assert!(hint("100.64.0.2").unwrap().contains("carrier-grade"));
    assert!(hint("100.127.255.1").unwrap().contains("carrier-grade"));
    assert_eq!(hint("100.128.0.1"), None);
    assert_eq!(hint("203.0.113.2"), None);
    assert_eq!(hint("0.0.0.0"), None, "unknown is not a verdict");
    assert_eq!(
        v4_of("[::ffff:203.0.113.9]:1".parse().unwrap()),
        Some(Ipv4Addr::new(203, 0, 113, 9))
    );
}
