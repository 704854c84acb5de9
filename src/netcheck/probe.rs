//! STUN probing over UDP: the probe plan, RFC 5780 filtering tests and the
//! idle mapping-lifetime estimate. Wire format lives in [`super::stun`].

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::report::{Filtering, RegionRef};
use super::stun::{self, ChangeRequest, TransactionId};
use crate::deadline::Later;

/// Largest datagram read; STUN answers are far smaller.
const MAX_DATAGRAM: usize = 1500;
/// Gap between the tries of one target (tailscale: 0/100/200 ms).
const TRY_GAP: Duration = Duration::from_millis(100);
/// Longest one RFC 5780 test may take (three sends, then wait).
const FILTER_TEST_MAX: Duration = Duration::from_millis(900);
/// Shortest wait for an RFC 5780 answer that may never come.
const FILTER_TEST_MIN: Duration = Duration::from_millis(400);

/// A STUN server to probe and the region it stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Region it belongs to.
    pub region: RegionRef,
    /// Server address.
    pub addr: SocketAddr,
}

/// What one target answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// Index into the targets given.
    pub target: usize,
    /// Round trip of the first answer.
    pub latency: Duration,
    /// Our address as the server saw it.
    pub mapped: SocketAddr,
    /// RFC 5780 OTHER-ADDRESS, when the server offers one.
    pub other: Option<SocketAddr>,
}

/// Everything a probe run saw.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Answers, in order of arrival.
    pub answers: Vec<Answer>,
    /// UDP payload bytes sent.
    pub bytes_sent: u64,
    /// Datagrams ignored.
    pub ignored: u64,
    /// Whether an IPv6 socket could be opened.
    pub ipv6_socket: bool,
}

pub(crate) fn new_tid() -> TransactionId {
    let mut b = [0u8; 12];
    crate::entropy::fill(&mut b);
    TransactionId::new(b)
}

/// The transaction id of a datagram that looks like STUN.
fn tid_of(d: &[u8]) -> Option<[u8; 12]> {
    if !stun::looks_like_stun(d) {
        return None;
    }
    d.get(8..20)?.try_into().ok()
}

async fn bind(v6: bool) -> std::io::Result<UdpSocket> {
    let any: IpAddr = if v6 {
        Ipv6Addr::UNSPECIFIED.into()
    } else {
        Ipv4Addr::UNSPECIFIED.into()
    };
    UdpSocket::bind(SocketAddr::new(any, 0)).await
}

/// Send `tries` binding requests to every target, `TRY_GAP` apart, and
/// collect the first answer of each; stop when all answered or at `budget`.
pub async fn probe(targets: &[Target], tries: u32, budget: Duration) -> std::io::Result<Outcome> {
    let mut out = Outcome::default();
    let v4 = bind(false).await?;
    let v6 = if targets.iter().any(|t| t.addr.is_ipv6()) {
        bind(true).await.ok()
    } else {
        None
    };
    out.ipv6_socket = v6.is_some();
    let start = Instant::now();
    let deadline = start.later(budget);
    // (send time, target) in order; each try is its own transaction.
    let mut schedule: Vec<(Instant, usize)> = (0..tries)
        .flat_map(|k| (0..targets.len()).map(move |i| (start.later(TRY_GAP * k), i)))
        .collect();
    schedule.sort_by_key(|(t, i)| (*t, *i));
    let mut schedule = schedule.into_iter().peekable();
    let mut pending: HashMap<[u8; 12], (usize, Instant)> = HashMap::new();
    let mut answered = vec![false; targets.len()];
    let (mut b4, mut b6) = ([0u8; MAX_DATAGRAM], [0u8; MAX_DATAGRAM]);
    while answered.iter().any(|a| !a) {
        let next_send = schedule.peek().map(|(t, _)| *t);
        let wake = next_send.unwrap_or(deadline).min(deadline);
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {
                if Instant::now() >= deadline { break; }
                let Some((_, i)) = schedule.next() else { continue };
                if answered[i] { continue; }
                let Some(t) = targets.get(i) else { continue };
                let sock = if t.addr.is_ipv6() { v6.as_ref() } else { Some(&v4) };
                let Some(sock) = sock else { continue };
                let tid = new_tid();
                let Ok(req) = stun::binding_request(&tid, None) else { continue };
                if sock.send_to(&req, t.addr).await.is_ok() {
                    out.bytes_sent += req.len() as u64;
                    pending.insert(*tid.as_bytes(), (i, Instant::now()));
                }
            }
            r = v4.recv_from(&mut b4) => {
                if let Ok((n, from)) = r { take(&b4[..n.min(MAX_DATAGRAM)], from, targets, &pending, &mut answered, &mut out); }
            }
            r = recv_opt(v6.as_ref(), &mut b6) => {
                if let Ok((n, from)) = r { take(&b6[..n.min(MAX_DATAGRAM)], from, targets, &pending, &mut answered, &mut out); }
            }
        }
    }
    Ok(out)
}

async fn recv_opt(s: Option<&UdpSocket>, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    match s {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

fn take(
    d: &[u8],
    from: SocketAddr,
    targets: &[Target],
    pending: &HashMap<[u8; 12], (usize, Instant)>,
    answered: &mut [bool],
    out: &mut Outcome,
) {
    let Some((i, sent)) = tid_of(d).and_then(|t| pending.get(&t)).copied() else {
        out.ignored += 1;
        return;
    };
    let from_target = targets.get(i).is_some_and(|t| t.addr == from);
    let decoded =
        stun::decode_binding_response(d, &TransactionId::new(tid_of(d).unwrap_or_default()));
    match decoded {
        Ok(resp) if from_target => {
            if let Some(slot) = answered.get_mut(i) {
                if !*slot {
                    *slot = true;
                    out.answers.push(Answer {
                        target: i,
                        latency: sent.elapsed(),
                        mapped: resp.mapped,
                        other: resp.other_address,
                    });
                }
            }
        }
        _ => out.ignored += 1,
    }
}

/// One request/answer exchange from `sock`, accepting the answer from any of
/// `sources` (RFC 5780 answers come from the alternate address).
async fn exchange(
    sock: &UdpSocket,
    server: SocketAddr,
    change: Option<ChangeRequest>,
    sources: &[SocketAddr],
    budget: Duration,
    bytes_sent: &mut u64,
) -> Option<SocketAddr> {
    let tid = new_tid();
    let req = stun::binding_request(&tid, change).ok()?;
    let deadline = Instant::now().later(budget);
    let gap = budget / 3;
    let mut buf = [0u8; MAX_DATAGRAM];
    for k in 0..3u32 {
        if sock.send_to(&req, server).await.is_ok() {
            *bytes_sent += req.len() as u64;
        }
        let resend = Instant::now().later(gap).min(deadline);
        let until = if k == 2 { deadline } else { resend };
        while let Ok(Ok((n, from))) = tokio::time::timeout_at(until, sock.recv_from(&mut buf)).await
        {
            if !sources.contains(&from) {
                continue;
            }
            if let Ok(r) = stun::decode_binding_response(buf.get(..n).unwrap_or_default(), &tid) {
                return Some(r.mapped);
            }
        }
    }
    None
}

/// RFC 5780 filtering tests against a server that gave an OTHER-ADDRESS.
/// `rtt` is the round trip seen to it: the tests that may never be answered
/// wait a few round trips, not a fixed second. Both run at once on the same
/// socket (their answers come from different addresses). None when even the
/// plain request goes unanswered.
pub async fn filtering(
    server: SocketAddr,
    other: SocketAddr,
    rtt: Duration,
    bytes_sent: &mut u64,
) -> Option<Filtering> {
    let sock = bind(server.is_ipv6()).await.ok()?;
    // Test I: plain request, creates the mapping.
    exchange(&sock, server, None, &[server], FILTER_TEST_MAX, bytes_sent).await?;
    let budget = (rtt * 4).clamp(FILTER_TEST_MIN, FILTER_TEST_MAX);
    let same_ip_alt_port = SocketAddr::new(server.ip(), other.port());
    let both = ChangeRequest {
        change_ip: true,
        change_port: true,
    };
    let port_only = ChangeRequest {
        change_ip: false,
        change_port: true,
    };
    // One receive loop for both tests: two concurrent receivers on one
    // socket would steal each other's answers.
    let answered = change_tests(
        &sock,
        server,
        [(both, other), (port_only, same_ip_alt_port)],
        budget,
        bytes_sent,
    )
    .await;
    Some(match answered {
        [true, _] => Filtering::EndpointIndependent,
        [false, true] => Filtering::AddressDependent,
        [false, false] => Filtering::AddressAndPortDependent,
    })
}

/// Send each CHANGE-REQUEST (three times within `budget`) and report which
/// got an answer from the address it asks the server to answer from.
async fn change_tests(
    sock: &UdpSocket,
    server: SocketAddr,
    tests: [(ChangeRequest, SocketAddr); 2],
    budget: Duration,
    bytes_sent: &mut u64,
) -> [bool; 2] {
    let tids = [new_tid(), new_tid()];
    let mut reqs: Vec<Vec<u8>> = Vec::new();
    for (tid, (change, _)) in tids.iter().zip(tests.iter()) {
        match stun::binding_request(tid, Some(*change)) {
            Ok(r) => reqs.push(r),
            Err(_) => return [false, false],
        }
    }
    let mut answered = [false, false];
    let deadline = Instant::now().later(budget);
    let gap = budget / 3;
    let mut buf = [0u8; MAX_DATAGRAM];
    for round in 0..3u32 {
        for (i, req) in reqs.iter().enumerate() {
            if !answered[i] && sock.send_to(req, server).await.is_ok() {
                *bytes_sent += req.len() as u64;
            }
        }
        let until = if round == 2 {
            deadline
        } else {
            Instant::now().later(gap).min(deadline)
        };
        while let Ok(Ok((n, from))) = tokio::time::timeout_at(until, sock.recv_from(&mut buf)).await
        {
            let d = buf.get(..n).unwrap_or_default();
            for i in 0..2 {
                let expected_source = tests[i].1;
                if from == expected_source && stun::decode_binding_response(d, &tids[i]).is_ok() {
                    answered[i] = true;
                }
            }
            if answered == [true, true] {
                return answered;
            }
        }
    }
    answered
}

/// Estimate how long the NAT keeps an idle mapping: ask, stay idle for each
/// cliff in turn, ask again; a new public port means the mapping had expired.
/// Returns the longest idle time that survived (0 if even the first did not),
/// or None when it can't be told (no answer, or the NAT keeps our local port,
/// so a fresh mapping would look the same).
pub async fn mapping_lifetime(
    server: SocketAddr,
    cliffs: &[Duration],
    bytes_sent: &mut u64,
) -> Option<u64> {
    let sock = bind(server.is_ipv6()).await.ok()?;
    let local_port = sock.local_addr().ok()?.port();
    let first = exchange(&sock, server, None, &[server], FILTER_TEST_MAX, bytes_sent).await?;
    if first.port() == local_port {
        return None;
    }
    let mut survived = 0;
    for cliff in cliffs {
        tokio::time::sleep(*cliff).await;
        let now = exchange(&sock, server, None, &[server], FILTER_TEST_MAX, bytes_sent).await?;
        if now != first {
            return Some(survived);
        }
        survived = cliff.as_secs();
    }
    Some(survived)
}
