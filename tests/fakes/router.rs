//! An in-process fake router on a loopback address: NAT-PMP (RFC 6886) and
//! PCP MAP/ANNOUNCE (RFC 6887) on UDP 5351, answering as a router would,
//! with every byte written here by hand from the RFCs (not with the
//! crate's codecs, so a codec bug shows up as a failed exchange). Each test
//! takes its own 127.0.0.N (all of 127/8 is loopback on Linux), so no root
//! and no port clash between tests. It keeps a table of what it maps, as a
//! router does. Scriptable: which protocols it speaks, the longest lease it
//! grants, a reboot (epoch back to 0, mappings forgotten), a silent loss
//! (mappings forgotten, epoch going on), a port taken by another host,
//! flushed forwarding (the table still claims the mappings, renewals still
//! succeed, but nothing is forwarded until a mapping is deleted and made
//! anew, as miniupnpd after a firewall reload) and silence. [`forwarder`]
//! tells the fake STUN server where a packet to an external port goes.
//!
//! [`forwarder`]: FakeRouter::forwarder

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;
use tokio::time::Instant;

/// What the fake speaks on 5351.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Speaks {
    /// PCP (and NAT-PMP, as miniupnpd does).
    Pcp,
    /// NAT-PMP only: PCP requests get UNSUPP_VERSION in NAT-PMP form.
    NatPmpOnly,
}

/// One request the fake answered.
#[derive(Clone, Debug)]
pub struct Seen {
    /// When (tokio's clock: virtual under a paused runtime).
    pub at: Instant,
    /// `natpmp-ext`, `natpmp-map`, `pcp-map`, `pcp-announce`.
    pub kind: &'static str,
    /// The lifetime asked (map requests).
    pub lifetime: u32,
    /// Whether the fake answered (not while silent).
    pub answered: bool,
}

/// One mapping the router holds.
#[derive(Clone, Copy, Debug)]
struct Rule {
    external: u16,
    /// The host that asked for it.
    host: IpAddr,
    /// Whether the router really forwards it (false after a flush).
    forwards: bool,
}

/// What the router holds, by (protocol number, internal port).
type Table = BTreeMap<(u8, u16), Rule>;

#[derive(Debug)]
struct State {
    speaks: Speaks,
    silent: bool,
    booted: Instant,
    seen: Vec<Seen>,
    table: Table,
    /// External ports other hosts hold.
    taken: BTreeSet<u16>,
    /// The longest lease granted (a request for more gets this).
    max_lease: u32,
    /// Mappings made from now on do not forward either.
    never_forwards: bool,
}

/// IANA protocol numbers, as PCP writes them; NAT-PMP's opcodes map to them.
const UDP: u8 = 17;
const TCP: u8 = 6;

/// The fake; dropping it stops the task.
pub struct FakeRouter {
    /// The loopback address it answers on.
    pub addr: Ipv4Addr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeRouter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeRouter {
    /// Start on `addr`:5351.
    pub async fn start(addr: Ipv4Addr, speaks: Speaks) -> Self {
        let socket = UdpSocket::bind(SocketAddr::from((addr, 5351)))
            .await
            .expect("bind the fake router's 5351 on loopback");
        let state = Arc::new(Mutex::new(State {
            speaks,
            silent: false,
            booted: Instant::now(),
            seen: Vec::new(),
            table: Table::new(),
            taken: BTreeSet::new(),
            max_lease: u32::MAX,
            never_forwards: false,
        }));
        let external = Ipv4Addr::new(203, 0, 113, 2);
        let task = tokio::spawn(serve(socket, state.clone(), external));
        FakeRouter { addr, state, task }
    }

    /// Requests answered so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// Lose all state: the epoch starts again from 0, the mappings are gone.
    pub fn reboot(&self) {
        let mut st = self.state.lock().unwrap();
        st.booted = Instant::now();
        st.table.clear();
    }

    /// Forget every mapping without rebooting (the epoch goes on), as a
    /// router does when its table is flushed or a mapping is evicted.
    pub fn forget(&self) {
        self.state.lock().unwrap().table.clear();
    }

    /// Another host holds external `port` from now on.
    pub fn take_port(&self, port: u16) {
        self.state.lock().unwrap().taken.insert(port);
    }

    /// Grant at most `secs` of lease, whatever is asked.
    pub fn set_max_lease(&self, secs: u32) {
        self.state.lock().unwrap().max_lease = secs;
    }

    /// The external port the router holds for UDP `internal`, if any.
    pub fn holds_udp(&self, internal: u16) -> Option<u16> {
        let st = self.state.lock().unwrap();
        st.table.get(&(UDP, internal)).map(|r| r.external)
    }

    /// Keep claiming every mapping held now, but forward none of them any
    /// more; a mapping deleted and made again forwards again.
    pub fn flush_forwarding(&self) {
        for r in self.state.lock().unwrap().table.values_mut() {
            r.forwards = false;
        }
    }

    /// Claim every mapping, forward none, old or new (broken firmware).
    pub fn set_never_forwards(&self, never: bool) {
        let mut st = self.state.lock().unwrap();
        st.never_forwards = never;
        for r in st.table.values_mut() {
            r.forwards = !never;
        }
    }

    /// Where a UDP packet from outside to external `port` is forwarded
    /// (None: dropped), for the fake STUN server's RESPONSE-PORT answers.
    pub fn forwarder(&self) -> super::stun::Forwarder {
        let state = self.state.clone();
        Arc::new(move |port| {
            let st = state.lock().unwrap();
            st.table
                .iter()
                .find(|((proto, _), r)| *proto == UDP && r.external == port && r.forwards)
                .map(|((_, internal), r)| SocketAddr::new(r.host, *internal))
        })
    }

    /// Stop answering (a router that is off), or answer again.
    pub fn set_silent(&self, silent: bool) {
        self.state.lock().unwrap().silent = silent;
    }
}

async fn serve(socket: UdpSocket, state: Arc<Mutex<State>>, external: Ipv4Addr) {
    let mut buf = [0u8; 1100];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            return;
        };
        let answer = {
            let mut st = state.lock().unwrap();
            let silent = st.silent;
            let (kind, lifetime, answer) = answer(&mut st, &buf[..n], external, silent, from.ip());
            st.seen.push(Seen {
                at: Instant::now(),
                kind,
                lifetime,
                answered: answer.is_some(),
            });
            answer
        };
        if let Some(a) = answer {
            let _ = socket.send_to(&a, from).await;
        }
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Map (lifetime > 0) or delete (0) what `ask` says, for external
/// `ask.suggested` (0: any): the port granted and the lease.
fn map(st: &mut State, ask: Ask) -> (u16, u32) {
    let key = (ask.proto, ask.internal);
    if ask.lifetime == 0 {
        let had = st.table.remove(&key).map_or(0, |r| r.external);
        return (had, 0);
    }
    // A renewal keeps the rule as it is (forwarding or not).
    if let Some(r) = st.table.get(&key) {
        return (r.external, ask.lifetime.min(st.max_lease));
    }
    let held: BTreeSet<u16> = st.table.values().map(|r| r.external).collect();
    let mut port = if ask.suggested != 0 {
        ask.suggested
    } else {
        ask.internal
    };
    // The asked port is taken: the next free one above (as miniupnpd does).
    while st.taken.contains(&port) || held.contains(&port) {
        port = port.checked_add(1).unwrap_or(1024);
    }
    let rule = Rule {
        external: port,
        host: ask.host,
        forwards: !st.never_forwards,
    };
    st.table.insert(key, rule);
    (port, ask.lifetime.min(st.max_lease))
}

/// A map request's fields.
struct Ask {
    proto: u8,
    internal: u16,
    suggested: u16,
    lifetime: u32,
    host: IpAddr,
}

/// What the request is, the lifetime it asks, and the answer (None while
/// `silent`: the request changes nothing then).
fn answer(
    st: &mut State,
    req: &[u8],
    external: Ipv4Addr,
    silent: bool,
    host: IpAddr,
) -> (&'static str, u32, Option<Vec<u8>>) {
    let epoch = u32::try_from(st.booted.elapsed().as_secs()).unwrap_or(u32::MAX);
    let (Some(&version), Some(&op)) = (req.first(), req.get(1)) else {
        return ("short", 0, None);
    };
    let (kind, lifetime, answer) = match (version, op) {
        // NAT-PMP external address: 0, 0 -> 0, 128, result 0, epoch, address.
        (0, 0) => {
            let mut a = vec![0, 128, 0, 0];
            a.extend_from_slice(&epoch.to_be_bytes());
            a.extend_from_slice(&external.octets());
            ("natpmp-ext", 0, Some(a))
        }
        // NAT-PMP map UDP (1) or TCP (2): 12 bytes in, 16 out (RFC 6886 §3.3).
        (0, op @ (1 | 2)) if req.len() >= 12 => {
            let internal = be16(req, 4);
            let lifetime = be32(req, 8);
            if silent {
                return ("natpmp-map", lifetime, None);
            }
            let proto = if op == 1 { UDP } else { TCP };
            let ask = Ask {
                proto,
                internal,
                suggested: be16(req, 6),
                lifetime,
                host,
            };
            let (port, granted) = map(st, ask);
            let mut a = vec![0, 128 + op, 0, 0];
            a.extend_from_slice(&epoch.to_be_bytes());
            a.extend_from_slice(&internal.to_be_bytes());
            a.extend_from_slice(&port.to_be_bytes());
            a.extend_from_slice(&granted.to_be_bytes());
            ("natpmp-map", lifetime, Some(a))
        }
        // PCP to a NAT-PMP-only router: UNSUPP_VERSION (1) in NAT-PMP form.
        (2, op) if st.speaks == Speaks::NatPmpOnly => {
            let mut a = vec![0, 128 + (op & 0x7f), 0, 1];
            a.extend_from_slice(&epoch.to_be_bytes());
            ("pcp-refused", 0, Some(a))
        }
        // PCP ANNOUNCE (0): the 24-byte header back, R bit set.
        (2, 0) if req.len() >= 24 => ("pcp-announce", 0, Some(pcp_header(0, 0, epoch))),
        // PCP MAP (1): header + 36-byte MAP payload (RFC 6887 §11.1).
        (2, 1) if req.len() >= 60 => {
            let lifetime = be32(req, 4);
            if silent {
                return ("pcp-map", lifetime, None);
            }
            let internal = be16(req, 40);
            let ask = Ask {
                proto: req[36],
                internal,
                suggested: be16(req, 42),
                lifetime,
                host,
            };
            let (port, granted) = map(st, ask);
            let mut a = pcp_header(1, granted, epoch);
            a.extend_from_slice(&req[24..36]); // nonce
            a.push(req[36]); // protocol
            a.extend_from_slice(&[0, 0, 0]);
            a.extend_from_slice(&internal.to_be_bytes());
            a.extend_from_slice(&port.to_be_bytes());
            a.extend_from_slice(&[0; 10]);
            a.extend_from_slice(&[0xff, 0xff]);
            a.extend_from_slice(&external.octets());
            ("pcp-map", lifetime, Some(a))
        }
        _ => ("unknown", 0, None),
    };
    let answer = if silent { None } else { answer };
    (kind, lifetime, answer)
}

/// A PCP response header: version 2, R|opcode, reserved, result 0,
/// lifetime, epoch, 12 reserved bytes.
fn pcp_header(opcode: u8, lifetime: u32, epoch: u32) -> Vec<u8> {
    let mut a = vec![2, 0x80 | opcode, 0, 0];
    a.extend_from_slice(&lifetime.to_be_bytes());
    a.extend_from_slice(&epoch.to_be_bytes());
    a.extend_from_slice(&[0; 12]);
    a
}
