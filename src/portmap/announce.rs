//! Router announcements: a restarting router multicasts SSDP `ssdp:alive`
//! NOTIFYs (with a new BOOTID) and a PCP ANNOUNCE / NAT-PMP address notice to
//! 224.0.0.1:5350. Any such datagram from the default gateway is a hint to
//! verify the mappings now instead of at the next `verify_interval`; that is
//! how a router reboot is repaired within seconds. Datagrams from anyone else
//! are counted and ignored.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket as StdUdpSocket};
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::pmp::Ignored;
use super::protocol::ssdp;

/// Where NAT-PMP/PCP servers multicast their announcements (RFC 6886 §3.2.1).
const ANNOUNCE_PORT: u16 = 5350;
/// Foreign datagrams handled per [`FLOOD_WINDOW`] before reading pauses.
const FLOOD_LIMIT: u32 = 200;
/// Window for [`FLOOD_LIMIT`].
const FLOOD_WINDOW: std::time::Duration = std::time::Duration::from_secs(1);
/// Largest announcement read; longer datagrams are truncated and ignored.
const MAX_ANNOUNCE: usize = 2048;

/// A UDP socket on `port` that shares the port with other listeners.
fn shared_socket(port: u16) -> std::io::Result<UdpSocket> {
    let fd: OwnedFd = socket::socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    socket::setsockopt(&fd, sockopt::ReusePort, &true)?;
    let addr = SockaddrIn::from(std::net::SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port));
    socket::bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr)?;
    UdpSocket::from_std(StdUdpSocket::from(fd))
}

/// Listen for announcements from `router` and send `()` on `hints` for each.
/// Ends when the receiver is dropped. Sockets that cannot be opened are
/// skipped with a debug log: verification still runs on its timer.
pub async fn listen(
    router: Ipv4Addr,
    local: Ipv4Addr,
    hints: mpsc::Sender<()>,
    ignored: Arc<Ignored>,
) {
    let pmp = shared_socket(ANNOUNCE_PORT)
        .map_err(|e| tracing::debug!("no NAT-PMP/PCP announcement listener: {e}"))
        .ok();
    let ssdp = shared_socket(ssdp::SSDP_PORT)
        .and_then(|s| {
            s.join_multicast_v4(Ipv4Addr::new(239, 255, 255, 250), local)?;
            Ok(s)
        })
        .map_err(|e| tracing::debug!("no SSDP announcement listener: {e}"))
        .ok();
    if pmp.is_none() && ssdp.is_none() {
        return;
    }
    let mut a = [0u8; MAX_ANNOUNCE];
    let mut b = [0u8; MAX_ANNOUNCE];
    // A flood of foreign datagrams must not cost a core: past FLOOD_LIMIT in
    // one second, stop reading until the second is over (the kernel drops
    // the rest; a router announcement lost that way is caught by the timer).
    let mut window = tokio::time::Instant::now();
    let mut foreign_in_window = 0u32;
    loop {
        if foreign_in_window >= FLOOD_LIMIT {
            tokio::select! {
                _ = tokio::time::sleep_until(window + FLOOD_WINDOW) => {}
                _ = hints.closed() => return,
            }
        }
        if window.elapsed() >= FLOOD_WINDOW {
            window = tokio::time::Instant::now();
            foreign_in_window = 0;
        }
        let from: std::io::Result<SocketAddr> = tokio::select! {
            r = recv(pmp.as_ref(), &mut a) => r,
            r = recv(ssdp.as_ref(), &mut b) => r,
            _ = hints.closed() => return,
        };
        match from {
            Ok(addr) if addr.ip() == std::net::IpAddr::V4(router) => {
                // Full channel: a hint is already pending, which is enough.
                let _ = hints.try_send(());
            }
            Ok(_) => {
                ignored.0.fetch_add(1, Ordering::Relaxed);
                foreign_in_window += 1;
            }
            Err(e) => {
                tracing::debug!("announcement listener stopped: {e}");
                return;
            }
        }
    }
}

async fn recv(socket: Option<&UdpSocket>, buf: &mut [u8]) -> std::io::Result<SocketAddr> {
    match socket {
        Some(s) => s.recv_from(buf).await.map(|(_, from)| from),
        None => std::future::pending().await,
    }
}
