//! An in-process fake router on a loopback address: NAT-PMP (RFC 6886) and
//! PCP MAP/ANNOUNCE (RFC 6887) on UDP 5351, answering as a router would,
//! with every byte written here by hand from the RFCs (not with the
//! crate's codecs, so a codec bug shows up as a failed exchange). Each test
//! takes its own 127.0.0.N (all of 127/8 is loopback on Linux), so no root
//! and no port clash between tests. Scriptable: which protocols it speaks,
//! a reboot (epoch back to 0, mappings forgotten) and silence.

use std::net::{Ipv4Addr, SocketAddr};
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

#[derive(Debug)]
struct State {
    speaks: Speaks,
    silent: bool,
    booted: Instant,
    seen: Vec<Seen>,
}

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
        }));
        let external = Ipv4Addr::new(203, 0, 113, 2);
        let task = tokio::spawn(serve(socket, state.clone(), external));
        FakeRouter { addr, state, task }
    }

    /// Requests answered so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// Lose all state: the epoch starts again from 0.
    pub fn reboot(&self) {
        self.state.lock().unwrap().booted = Instant::now();
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
            let (kind, lifetime, answer) = answer(&st, &buf[..n], external);
            let answer = answer.filter(|_| !st.silent);
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

/// What the request is, the lifetime it asks, and the answer.
fn answer(st: &State, req: &[u8], external: Ipv4Addr) -> (&'static str, u32, Option<Vec<u8>>) {
    let epoch = u32::try_from(st.booted.elapsed().as_secs()).unwrap_or(u32::MAX);
    let (Some(&version), Some(&op)) = (req.first(), req.get(1)) else {
        return ("short", 0, None);
    };
    match (version, op) {
        // NAT-PMP external address: 0, 0 -> 0, 128, result 0, epoch, address.
        (0, 0) => {
            let mut a = vec![0, 128, 0, 0];
            a.extend_from_slice(&epoch.to_be_bytes());
            a.extend_from_slice(&external.octets());
            ("natpmp-ext", 0, Some(a))
        }
        // NAT-PMP map UDP (1) or TCP (2): 12 bytes in, 16 out, the port kept.
        (0, op @ (1 | 2)) if req.len() >= 12 => {
            let internal = be16(req, 4);
            let suggested = be16(req, 6);
            let lifetime = be32(req, 8);
            let mut a = vec![0, 128 + op, 0, 0];
            a.extend_from_slice(&epoch.to_be_bytes());
            a.extend_from_slice(&internal.to_be_bytes());
            a.extend_from_slice(&(if suggested == 0 { internal } else { suggested }).to_be_bytes());
            a.extend_from_slice(&lifetime.to_be_bytes());
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
        // PCP MAP (1): header + 36-byte MAP payload, the asked port granted.
        (2, 1) if req.len() >= 60 => {
            let lifetime = be32(req, 4);
            let mut a = pcp_header(1, lifetime, epoch);
            a.extend_from_slice(&req[24..36]); // nonce
            a.push(req[36]); // protocol
            a.extend_from_slice(&[0, 0, 0]);
            let internal = be16(req, 40);
            let suggested = be16(req, 42);
            a.extend_from_slice(&internal.to_be_bytes());
            a.extend_from_slice(&(if suggested == 0 { internal } else { suggested }).to_be_bytes());
            a.extend_from_slice(&[0; 10]);
            a.extend_from_slice(&[0xff, 0xff]);
            a.extend_from_slice(&external.octets());
            ("pcp-map", lifetime, Some(a))
        }
        _ => ("unknown", 0, None),
    }
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
