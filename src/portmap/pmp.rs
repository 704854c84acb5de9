//! NAT-PMP and PCP over UDP: one request with bounded retransmission, and
//! answers accepted only from the default gateway's port 5351.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::protocol::{natpmp, pcp, MAX_MESSAGE_LEN, SERVER_PORT};
use crate::deadline::Later;

/// First retransmission interval (RFC 6886 §3.1 starts at 250 ms and doubles).
const FIRST_RETRY: Duration = Duration::from_millis(250);

/// Why a NAT-PMP or PCP exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum PmpError {
    /// No valid answer from the router within the budget.
    #[error("no answer from {server} within {budget:?}")]
    Timeout {
        /// The router's PCP/NAT-PMP server.
        server: SocketAddr,
        /// The time allowed.
        budget: Duration,
    },
    /// The socket failed.
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
    /// An IPv6 exchange was asked for an IPv4 request.
    #[error("not an IPv6 request")]
    NotIpv6,
    /// The router answered with a NAT-PMP error.
    #[error("NAT-PMP: {0}")]
    NatPmp(natpmp::NatPmpError),
    /// The router answered with a PCP error.
    #[error("PCP: {0}")]
    Pcp(pcp::PcpError),
}

/// Counts datagrams dropped for their source or content.
#[derive(Debug, Default)]
pub struct Ignored(pub AtomicU64);

impl Ignored {
    fn bump(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// Send `request` to the router and wait for a datagram `accept` takes.
/// `accept` returns `None` for datagrams to ignore (late or foreign answers),
/// `Some(Err)` for a definite error answer, `Some(Ok)` for success.
async fn exchange<T, E>(
    router: Ipv4Addr,
    local: Ipv4Addr,
    request: &[u8],
    budget: Duration,
    ignored: &Ignored,
    accept: impl Fn(&[u8]) -> Option<Result<T, E>>,
) -> Result<Result<T, E>, PmpError> {
    let server = SocketAddr::V4(SocketAddrV4::new(router, SERVER_PORT));
    exchange_at(
        server,
        SocketAddr::from((local, 0)),
        request,
        budget,
        ignored,
        accept,
    )
    .await
}

/// [`exchange`] with any server and local address (IPv6, scoped).
async fn exchange_at<T, E>(
    server: SocketAddr,
    local: SocketAddr,
    request: &[u8],
    budget: Duration,
    ignored: &Ignored,
    accept: impl Fn(&[u8]) -> Option<Result<T, E>>,
) -> Result<Result<T, E>, PmpError> {
    let socket = UdpSocket::bind(local).await?;
    // Connected: the kernel drops datagrams from anyone else, and a router
    // that does not listen on 5351 fails fast with ICMP "port unreachable"
    // instead of running out the whole budget.
    socket.connect(server).await?;
    let deadline = Instant::now().later(budget);
    let mut retry = FIRST_RETRY;
    let mut buf = [0u8; MAX_MESSAGE_LEN + 1];
    loop {
        socket.send(request).await?;
        let resend_at = Instant::now().later(retry).min(deadline);
        retry = retry.saturating_mul(2);
        loop {
            let received = tokio::time::timeout_at(resend_at, socket.recv_from(&mut buf)).await;
            let (len, from) = match received {
                Err(_elapsed) => break,
                Ok(r) => r?,
            };
            if from != server || len > MAX_MESSAGE_LEN {
                ignored.bump();
                continue;
            }
            match accept(buf.get(..len).unwrap_or_default()) {
                Some(answer) => return Ok(answer),
                None => ignored.bump(),
            }
        }
        if Instant::now() >= deadline {
            return Err(PmpError::Timeout { server, budget });
        }
    }
}

/// A PCP MAP (create, renew or, with lifetime 0, delete).
pub async fn pcp_map(
    router: Ipv4Addr,
    request: &pcp::MapRequest,
    budget: Duration,
    ignored: &Ignored,
) -> Result<pcp::MapGrant, PmpError> {
    let local = match request.client_addr {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    };
    let answer = exchange(router, local, &request.encode(), budget, ignored, |d| {
        map_answer(d, request)
    })
    .await?;
    answer.map_err(PmpError::Pcp)
}

/// A PCP MAP over IPv6, sent from `local` (the address being opened, as
/// routers require) to `router` on interface `scope` (its index; needed for
/// a link-local router address).
pub async fn pcp_map_v6(
    router: Ipv6Addr,
    scope: u32,
    request: &pcp::MapRequest,
    budget: Duration,
    ignored: &Ignored,
) -> Result<pcp::MapGrant, PmpError> {
    let IpAddr::V6(local) = request.client_addr else {
        return Err(PmpError::NotIpv6);
    };
    let server = SocketAddr::V6(SocketAddrV6::new(router, SERVER_PORT, 0, scope));
    let local = SocketAddr::V6(SocketAddrV6::new(local, 0, 0, 0));
    let answer = exchange_at(server, local, &request.encode(), budget, ignored, |d| {
        map_answer(d, request)
    })
    .await?;
    answer.map_err(PmpError::Pcp)
}

/// What a datagram says to our MAP `request`, for either family: a grant, a
/// server error for our nonce (an answer too), or `None` for noise.
fn map_answer(
    datagram: &[u8],
    request: &pcp::MapRequest,
) -> Option<Result<pcp::MapGrant, pcp::PcpError>> {
    match pcp::decode_map_response(datagram, request) {
        Ok(g) => Some(Ok(g)),
        Err(e @ pcp::PcpError::Server(_)) => Some(Err(e)),
        Err(_) => None,
    }
}

/// A PCP ANNOUNCE: whether the router speaks PCP, and its epoch.
pub async fn pcp_announce(
    router: Ipv4Addr,
    local: Ipv4Addr,
    budget: Duration,
    ignored: &Ignored,
) -> Result<u32, PmpError> {
    let req = pcp::announce_request(IpAddr::V4(local));
    let answer = exchange(router, local, &req, budget, ignored, announce_answer).await?;
    answer.map_err(PmpError::Pcp)
}

/// [`pcp_announce`] to an IPv6 router (link-local: `scope` is its
/// interface index), sent from `local`.
pub async fn pcp_announce_v6(
    router: Ipv6Addr,
    scope: u32,
    local: Ipv6Addr,
    budget: Duration,
    ignored: &Ignored,
) -> Result<u32, PmpError> {
    let req = pcp::announce_request(IpAddr::V6(local));
    let server = SocketAddr::V6(SocketAddrV6::new(router, SERVER_PORT, 0, scope));
    let from = SocketAddr::V6(SocketAddrV6::new(local, 0, 0, 0));
    let answer = exchange_at(server, from, &req, budget, ignored, announce_answer).await?;
    answer.map_err(PmpError::Pcp)
}

/// What a datagram says to our ANNOUNCE: the epoch, an error, or noise.
fn announce_answer(d: &[u8]) -> Option<Result<u32, pcp::PcpError>> {
    match pcp::decode_response(d, pcp::Opcode::Announce) {
        Ok(r) if r.result == pcp::ResultCode::Success => Some(Ok(r.epoch_secs)),
        Ok(r) => Some(Err(pcp::PcpError::Server(r.result))),
        // A NAT-PMP-only router answers "unsupported version" in its own format.
        Err(pcp::PcpError::Version { .. }) => Some(Err(pcp::PcpError::Version { got: 0 })),
        Err(_) => None,
    }
}

/// A NAT-PMP mapping request (create, renew or, with lifetime 0, delete).
pub async fn natpmp_map(
    router: Ipv4Addr,
    local: Ipv4Addr,
    request: &natpmp::MapRequest,
    budget: Duration,
    ignored: &Ignored,
) -> Result<natpmp::MapGrant, PmpError> {
    let answer = exchange(router, local, &request.encode(), budget, ignored, |d| {
        match natpmp::decode_map_response(d, request) {
            Ok(g) => Some(Ok(g)),
            Err(e @ natpmp::NatPmpError::Server(_)) => Some(Err(e)),
            Err(_) => None,
        }
    })
    .await?;
    answer.map_err(PmpError::NatPmp)
}

/// The router's public address and epoch, by NAT-PMP.
pub async fn natpmp_external(
    router: Ipv4Addr,
    local: Ipv4Addr,
    budget: Duration,
    ignored: &Ignored,
) -> Result<(Ipv4Addr, u32), PmpError> {
    let req = natpmp::external_address_request();
    let answer = exchange(
        router,
        local,
        &req,
        budget,
        ignored,
        |d| match natpmp::decode_response(d, natpmp::Opcode::ExternalAddress) {
            Ok(natpmp::Response {
                body: Some(natpmp::Body::ExternalAddress(ip)),
                epoch_secs,
                ..
            }) => Some(Ok((ip, epoch_secs))),
            Ok(r) => Some(Err(natpmp::NatPmpError::Server(r.result))),
            Err(_) => None,
        },
    )
    .await?;
    answer.map_err(PmpError::NatPmp)
}

/// Whether `now_epoch` means the router lost its state since `last_epoch`
/// was seen `elapsed` ago (RFC 6886 §3.6: allow 1/8 clock drift, 2 s slack).
pub fn epoch_says_rebooted(last_epoch: u32, elapsed: Duration, now_epoch: u32) -> bool {
    let elapsed = elapsed.as_secs();
    let expected = u64::from(last_epoch) + elapsed * 7 / 8;
    u64::from(now_epoch) + 2 < expected || now_epoch < last_epoch
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_rules() {
        assert!(!epoch_says_rebooted(100, Duration::from_secs(30), 130));
        assert!(
            !epoch_says_rebooted(100, Duration::from_secs(30), 127),
            "drift allowed"
        );
        assert!(
            epoch_says_rebooted(100, Duration::from_secs(30), 3),
            "reset"
        );
        assert!(
            epoch_says_rebooted(100, Duration::from_secs(0), 99),
            "went back"
        );
        assert!(!epoch_says_rebooted(0, Duration::from_secs(1), 1));
    }
}
