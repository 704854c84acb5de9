//! An in-process fake STUN server on loopback, and the NAT in front of the
//! gateway that it reports: Binding requests (RFC 5389) answered with
//! XOR-MAPPED-ADDRESS, RESPONSE-ORIGIN and FINGERPRINT; an RFC 5780 server
//! listens on its primary and alternate address, each on its primary and
//! alternate port, answers a CHANGE-REQUEST from the socket it names and
//! tells its OTHER-ADDRESS. Every byte is written here by hand from the RFCs
//! (not with the crate's codec), so a decoder bug shows up as a failed run.
//!
//! The NAT is simulated by the server, since all of it is loopback: the
//! public address it reports (its port kept, or changed per destination for
//! a hard NAT), and which CHANGE-REQUEST answers the NAT's filter would let
//! through (the others are not sent). An answer asked to another port
//! (RFC 5780 RESPONSE-PORT: portmap's proof) goes where the router in front
//! forwards that external port ([`Forwarder`]), or nowhere.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;

const MAGIC_COOKIE: u32 = 0x2112_A442;
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const ATTR_CHANGE_REQUEST: u16 = 0x0003;
const ATTR_RESPONSE_PORT: u16 = 0x0027;
const ATTR_XOR_MAPPED_ADDRESS: u16 = 0x0020;
const ATTR_RESPONSE_ORIGIN: u16 = 0x802B;
const ATTR_OTHER_ADDRESS: u16 = 0x802C;
const ATTR_FINGERPRINT: u16 = 0x8028;
/// RFC 5389 §15.5: the CRC-32 is XORed with "STUN".
const FINGERPRINT_XOR: u32 = 0x5354_554E;
/// RFC 5780 §7.2 CHANGE-REQUEST flags.
const CHANGE_IP: u32 = 0x04;
const CHANGE_PORT: u32 = 0x02;

/// Where the router in front of the gateway forwards a packet from outside
/// to its external UDP port (None: it drops it).
pub type Forwarder = Arc<dyn Fn(u16) -> Option<SocketAddr> + Send + Sync>;

/// How the NAT picks the public port (RFC 4787 mapping behaviour).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mapping {
    /// One public port per local socket, whatever the destination; the
    /// local port is kept (as most home routers do).
    EndpointIndependent,
    /// A different public port per destination IP ("hard NAT").
    AddressDependent,
    /// One public port per local socket, whatever the destination, but not
    /// the local one; a new one after the mapping idled out.
    EndpointIndependentRewritten,
}

/// Which inbound packets the NAT lets through (RFC 4787 filtering).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    /// Anything sent to the mapping.
    EndpointIndependent,
    /// Only from an IP the gateway sent to.
    AddressDependent,
    /// Only from the exact address and port it sent to.
    AddressAndPortDependent,
}

#[derive(Debug)]
struct NatState {
    public_ip: Ipv4Addr,
    mapping: Mapping,
    filter: Filter,
    /// How long a mapping lives without outbound traffic (None: forever).
    idle_timeout: Option<Duration>,
    /// Per gateway socket: its last outbound packet and how many of its
    /// mappings idled out (each one gets a new public port).
    flows: std::collections::HashMap<SocketAddr, (Instant, u16)>,
}

/// The NAT between the gateway and the STUN servers; shared by the servers
/// of one test, changed by the test (a new public address, say).
#[derive(Clone, Debug)]
pub struct FakeNat(Arc<Mutex<NatState>>);

impl FakeNat {
    pub fn new(public_ip: Ipv4Addr, mapping: Mapping, filter: Filter) -> Self {
        FakeNat(Arc::new(Mutex::new(NatState {
            public_ip,
            mapping,
            filter,
            idle_timeout: None,
            flows: std::collections::HashMap::new(),
        })))
    }

    /// Mappings idle for longer than `t` are dropped (the next packet gets
    /// a new one).
    pub fn set_idle_timeout(&self, t: Duration) {
        self.0.lock().unwrap().idle_timeout = Some(t);
    }

    pub fn set_public_ip(&self, ip: Ipv4Addr) {
        self.0.lock().unwrap().public_ip = ip;
    }

    pub fn set_filter(&self, filter: Filter) {
        self.0.lock().unwrap().filter = filter;
    }

    /// The public address of a gateway socket `from` talking to `to`.
    fn public(&self, from: SocketAddr, to: SocketAddr) -> SocketAddrV4 {
        let mut st = self.0.lock().unwrap();
        let (now, timeout) = (Instant::now(), st.idle_timeout);
        let flow = st.flows.entry(from).or_insert((now, 0));
        if timeout.is_some_and(|t| now - flow.0 > t) {
            flow.1 += 1;
        }
        flow.0 = now;
        let idled_out = flow.1;
        let port = match (st.mapping, to.ip()) {
            (Mapping::EndpointIndependent, _) => from.port(),
            (Mapping::EndpointIndependentRewritten, _) => {
                let base = u32::from(from.port()) + 1000 + 7 * u32::from(idled_out);
                (1024 + base % 64000) as u16
            }
            // Ports 1024..: a new one for each server IP.
            (Mapping::AddressDependent, IpAddr::V4(ip)) => {
                let spread = u16::from(ip.octets()[3]).wrapping_mul(97);
                1024 + (from.port().wrapping_add(spread) % 60000)
            }
            (Mapping::AddressDependent, IpAddr::V6(_)) => from.port(),
        };
        SocketAddrV4::new(st.public_ip, port)
    }

    /// Whether an answer from `from` reaches a gateway that sent to `sent_to`.
    fn lets_in(&self, from: SocketAddr, sent_to: SocketAddr) -> bool {
        match self.0.lock().unwrap().filter {
            Filter::EndpointIndependent => true,
            Filter::AddressDependent => from.ip() == sent_to.ip(),
            Filter::AddressAndPortDependent => from == sent_to,
        }
    }
}

/// One request the server received.
#[derive(Clone, Debug)]
pub struct StunSeen {
    /// When (tokio's clock: virtual under a paused runtime).
    pub at: Instant,
    /// Which of its sockets it came to.
    pub to: SocketAddr,
    /// The CHANGE-REQUEST flags (ip, port), when the request had one.
    pub change: Option<(bool, bool)>,
    /// The public address reported, when answered.
    pub mapped: Option<SocketAddrV4>,
    /// Where the answer was sent from, when answered.
    pub answered_from: Option<SocketAddr>,
    /// The RESPONSE-PORT asked, when the request had one.
    pub response_port: Option<u16>,
}

#[derive(Default)]
struct ServerState {
    silent: bool,
    delay: Duration,
    seen: Vec<StunSeen>,
    forwarder: Option<Forwarder>,
}

/// The server; dropping it stops its tasks.
pub struct FakeStun {
    /// Where requests go (the primary address and port).
    pub addr: SocketAddr,
    /// The alternate address and port (RFC 5780 servers only).
    pub other: Option<SocketAddr>,
    state: Arc<Mutex<ServerState>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for FakeStun {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The sockets of a server: index 0 is the primary; an RFC 5780 server has
/// (ip, port) = (primary|alternate) x (primary|alternate), index = 2*ip + port.
struct Sockets {
    socks: Vec<UdpSocket>,
    addrs: Vec<SocketAddr>,
}

impl FakeStun {
    /// A plain RFC 5389 server on `addr` (no OTHER-ADDRESS; CHANGE-REQUEST
    /// is not answered).
    pub async fn plain(addr: SocketAddr, nat: &FakeNat) -> Self {
        Self::start(vec![addr], None, nat).await
    }

    /// An RFC 5780 server: `primary`, and `alternate` (another IP and port).
    pub async fn rfc5780(primary: SocketAddr, alternate: SocketAddr, nat: &FakeNat) -> Self {
        let (p, a) = (primary, alternate);
        let grid = vec![
            p,
            SocketAddr::new(p.ip(), a.port()),
            SocketAddr::new(a.ip(), p.port()),
            a,
        ];
        Self::start(grid, Some(alternate), nat).await
    }

    async fn start(addrs: Vec<SocketAddr>, other: Option<SocketAddr>, nat: &FakeNat) -> Self {
        let mut socks = Vec::new();
        for a in &addrs {
            let s = UdpSocket::bind(a)
                .await
                .expect("bind the fake STUN server on loopback");
            socks.push(s);
        }
        let sockets = Arc::new(Sockets {
            socks,
            addrs: addrs.clone(),
        });
        let state = Arc::new(Mutex::new(ServerState::default()));
        let tasks = (0..addrs.len())
            .map(|i| tokio::spawn(serve(sockets.clone(), i, state.clone(), nat.clone())))
            .collect();
        FakeStun {
            addr: addrs[0],
            other,
            state,
            tasks,
        }
    }

    /// Requests received so far.
    pub fn seen(&self) -> Vec<StunSeen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// Stop answering (a server that is down or blocked), or answer again.
    pub fn set_silent(&self, silent: bool) {
        self.state.lock().unwrap().silent = silent;
    }

    /// Send RESPONSE-PORT answers where `f` says the router forwards them.
    pub fn set_forwarder(&self, f: Forwarder) {
        self.state.lock().unwrap().forwarder = Some(f);
    }

    /// Answer after `delay` (a server further away).
    pub fn set_delay(&self, delay: Duration) {
        self.state.lock().unwrap().delay = delay;
    }
}

async fn serve(sockets: Arc<Sockets>, me: usize, state: Arc<Mutex<ServerState>>, nat: FakeNat) {
    let mut buf = [0u8; 1500];
    loop {
        let Ok((n, from)) = sockets.socks[me].recv_from(&mut buf).await else {
            return;
        };
        let Some(req) = parse_request(&buf[..n]) else {
            continue;
        };
        let to = sockets.addrs[me];
        // Which socket answers: the one the CHANGE-REQUEST names, if this
        // server has it (a plain server does not answer a change).
        let (ip_alt, port_alt) = (me / 2 == 1, me % 2 == 1);
        let (ci, cp) = req.change.unwrap_or((false, false));
        let answering = 2 * usize::from(ip_alt ^ ci) + usize::from(port_alt ^ cp);
        let reply_from = sockets.addrs.get(answering).copied();
        let (silent, delay, forwarder) = {
            let st = state.lock().unwrap();
            (st.silent, st.delay, st.forwarder.clone())
        };
        let mapped = nat.public(from, to);
        // To our mapping (through the NAT's filter), or to another external
        // port of the public address (through the router's forwarding).
        let (sent, dest) = match req.response_port {
            None => (reply_from.filter(|f| nat.lets_in(*f, to)), Some(from)),
            Some(port) => (reply_from, forwarder.and_then(|f| f(port))),
        };
        let sent = sent.filter(|_| !silent && dest.is_some());
        state.lock().unwrap().seen.push(StunSeen {
            at: Instant::now(),
            to,
            change: req.change,
            mapped: sent.map(|_| mapped),
            answered_from: sent,
            response_port: req.response_port,
        });
        let (Some(reply_from), Some(dest)) = (sent, dest) else {
            continue;
        };
        // OTHER-ADDRESS: the socket that differs in both IP and port.
        let other = (sockets.addrs.len() == 4).then(|| sockets.addrs[3 - answering]);
        let answer = binding_success(&req.tid, mapped, other, reply_from);
        if delay.is_zero() {
            let _ = sockets.socks[answering].send_to(&answer, dest).await;
        } else {
            let sockets = sockets.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = sockets.socks[answering].send_to(&answer, dest).await;
            });
        }
    }
}

struct Request {
    tid: [u8; 12],
    change: Option<(bool, bool)>,
    response_port: Option<u16>,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A Binding request (RFC 5389 §6): type, length of the rest, the magic
/// cookie, the transaction id; then attributes, of which only
/// CHANGE-REQUEST matters here.
fn parse_request(d: &[u8]) -> Option<Request> {
    if d.len() < 20 || be16(d, 0) != BINDING_REQUEST || be32(d, 4) != MAGIC_COOKIE {
        return None;
    }
    if usize::from(be16(d, 2)) != d.len() - 20 {
        return None;
    }
    let tid: [u8; 12] = d[8..20].try_into().ok()?;
    let (mut change, mut response_port) = (None, None);
    let mut at = 20;
    while at + 4 <= d.len() {
        let (kind, len) = (be16(d, at), usize::from(be16(d, at + 2)));
        if kind == ATTR_CHANGE_REQUEST && len == 4 && at + 8 <= d.len() {
            let flags = be32(d, at + 4);
            change = Some((flags & CHANGE_IP != 0, flags & CHANGE_PORT != 0));
        }
        // RFC 5780 §7.5: the port, then two bytes of padding (counted in
        // the length by some encoders, not by others).
        if kind == ATTR_RESPONSE_PORT && len >= 2 && at + 6 <= d.len() {
            response_port = Some(be16(d, at + 4));
        }
        at += 4 + len.next_multiple_of(4);
    }
    Some(Request {
        tid,
        change,
        response_port,
    })
}

fn push_attr(msg: &mut Vec<u8>, kind: u16, value: &[u8]) {
    msg.extend_from_slice(&kind.to_be_bytes());
    msg.extend_from_slice(&(value.len() as u16).to_be_bytes());
    msg.extend_from_slice(value);
}

/// MAPPED-ADDRESS layout (RFC 5389 §15.1): reserved, family 1, port, IPv4.
fn address(a: SocketAddr) -> Vec<u8> {
    let ip = match a.ip() {
        IpAddr::V4(ip) => ip,
        IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    };
    let mut v = vec![0, 1];
    v.extend_from_slice(&a.port().to_be_bytes());
    v.extend_from_slice(&ip.octets());
    v
}

/// XOR-MAPPED-ADDRESS (RFC 5389 §15.2): port XOR the cookie's top 16 bits,
/// IPv4 XOR the cookie.
fn xor_address(a: SocketAddrV4) -> Vec<u8> {
    let port = a.port() ^ (MAGIC_COOKIE >> 16) as u16;
    let ip = u32::from(*a.ip()) ^ MAGIC_COOKIE;
    let mut v = vec![0, 1];
    v.extend_from_slice(&port.to_be_bytes());
    v.extend_from_slice(&ip.to_be_bytes());
    v
}

/// A Binding success response ending in FINGERPRINT (RFC 5389 §15.5: the
/// CRC-32 of the message before it, with the length already counting it).
fn binding_success(
    tid: &[u8; 12],
    mapped: SocketAddrV4,
    other: Option<SocketAddr>,
    origin: SocketAddr,
) -> Vec<u8> {
    let mut attrs = Vec::new();
    push_attr(&mut attrs, ATTR_XOR_MAPPED_ADDRESS, &xor_address(mapped));
    push_attr(&mut attrs, ATTR_RESPONSE_ORIGIN, &address(origin));
    if let Some(o) = other {
        push_attr(&mut attrs, ATTR_OTHER_ADDRESS, &address(o));
    }
    let mut msg = Vec::with_capacity(20 + attrs.len() + 8);
    msg.extend_from_slice(&BINDING_SUCCESS.to_be_bytes());
    msg.extend_from_slice(&((attrs.len() + 8) as u16).to_be_bytes());
    msg.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    msg.extend_from_slice(tid);
    msg.extend_from_slice(&attrs);
    let crc = crc32fast::hash(&msg) ^ FINGERPRINT_XOR;
    push_attr(&mut msg, ATTR_FINGERPRINT, &crc.to_be_bytes());
    msg
}
