//! Network readiness: the default route and the addresses, followed through
//! netlink so that nothing spins while the gateway has no network.
//!
//! Netlink messages are only a wake-up: after each burst the task re-reads the
//! kernel's tables (`/proc/net/route`, `/proc/net/ipv6_route`, getifaddrs), so
//! a lost or malformed message can never leave a wrong picture behind.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use nix::sys::socket::{
    self, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
};
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;

pub mod model;

pub use model::NetState;

use crate::actor::Context;
use crate::status::{DefaultRoute, InterfaceAddress, Level, State, StatusHub};

/// Quiet time after a netlink message before the tables are re-read; a link
/// coming up sends a burst of messages.
const DEBOUNCE: Duration = Duration::from_millis(200);
/// Re-read period even without messages, in case the kernel dropped some.
const RESCAN: Duration = Duration::from_secs(60);
/// Re-read period when no netlink socket could be opened.
const POLL_WITHOUT_NETLINK: Duration = Duration::from_secs(5);

impl NetState {
    /// Read the kernel's current tables.
    pub fn read() -> Self {
        let v4 = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
        let v6 = std::fs::read_to_string("/proc/net/ipv6_route").unwrap_or_default();
        let addresses = interface_addresses();
        let default_route = parse_ipv4_default_route(&v4).map(|(interface, gateway)| {
            let source = addresses
                .iter()
                .filter(|a| a.interface == interface)
                .find(|a| a.address.parse::<Ipv4Addr>().is_ok())
                .map(|a| a.address.clone());
            DefaultRoute {
                interface,
                gateway: gateway.map(|g| g.to_string()),
                source,
            }
        });
        Self {
            default_route,
            ipv6_default_route: has_ipv6_default_route(&v6),
            addresses,
        }
    }
}

/// The lowest-metric IPv4 default route in `/proc/net/route` format:
/// (interface, gateway). Gateway 0.0.0.0 means an on-link route.
pub fn parse_ipv4_default_route(text: &str) -> Option<(String, Option<Ipv4Addr>)> {
    const RTF_UP: u32 = 0x1;
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (iface, dest, gw, flags, metric, mask) = (
                f.first()?,
                f.get(1)?,
                f.get(2)?,
                f.get(3)?,
                f.get(6)?,
                f.get(7)?,
            );
            let flags = u32::from_str_radix(flags, 16).ok()?;
            let is_default = *dest == "00000000" && *mask == "00000000" && flags & RTF_UP != 0;
            if !is_default {
                return None;
            }
            // The kernel prints the address in host byte order (little-endian here).
            let gw = u32::from_str_radix(gw, 16).ok()?;
            let gw = Ipv4Addr::from(gw.to_le_bytes());
            let gw = (!gw.is_unspecified()).then_some(gw);
            Some((metric.parse::<u32>().ok()?, iface.to_string(), gw))
        })
        .min_by_key(|(metric, _, _)| *metric)
        .map(|(_, iface, gw)| (iface, gw))
}

/// Whether `/proc/net/ipv6_route` holds a default route off loopback.
pub fn has_ipv6_default_route(text: &str) -> bool {
    text.lines().any(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        matches!(
            (f.first(), f.get(1), f.get(9)),
            (Some(dest), Some(&"00"), Some(iface))
                if dest.chars().all(|c| c == '0') && *iface != "lo"
        )
    })
}

fn interface_addresses() -> Vec<InterfaceAddress> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut out: Vec<InterfaceAddress> = addrs
        .filter_map(|a| {
            let storage = a.address?;
            let ip: IpAddr = if let Some(v4) = storage.as_sockaddr_in() {
                IpAddr::V4(v4.ip())
            } else {
                IpAddr::V6(storage.as_sockaddr_in6()?.ip())
            };
            (!ip.is_loopback()).then(|| InterfaceAddress {
                interface: a.interface_name,
                address: ip.to_string(),
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.interface, &a.address).cmp(&(&b.interface, &b.address)));
    out.dedup();
    out
}

fn open_netlink() -> nix::Result<AsyncFd<OwnedFd>> {
    let fd = socket::socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        SockProtocol::NetlinkRoute,
    )?;
    let groups = (libc::RTMGRP_LINK
        | libc::RTMGRP_IPV4_IFADDR
        | libc::RTMGRP_IPV4_ROUTE
        | libc::RTMGRP_IPV6_IFADDR
        | libc::RTMGRP_IPV6_ROUTE) as u32;
    socket::bind(fd.as_raw_fd(), &NetlinkAddr::new(0, groups))?;
    // `AsyncFd::new` is deprecated because an arbitrary `AsRawFd` may close its
    // descriptor while registered; an `OwnedFd` moved in cannot. The safe-code
    // alternative, `register`, is `unsafe`, which this crate forbids.
    #[allow(deprecated)]
    let registered = AsyncFd::new(fd);
    registered.map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
}

/// Wait for the next netlink message and drain the socket. Errors other than
/// "nothing left" (e.g. ENOBUFS after an overflow) also mean "re-read".
async fn next_wakeup(fd: &AsyncFd<OwnedFd>) {
    let mut buf = [0u8; 8192];
    loop {
        let Ok(mut guard) = fd.readable().await else {
            return;
        };
        let mut got_any = false;
        // Bounded: the kernel queue is finite, and so is this loop.
        for _ in 0..1024 {
            match guard.try_io(|inner| {
                socket::recv(inner.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT)
                    .map_err(std::io::Error::from)
            }) {
                Ok(Ok(0)) => break,
                Ok(Ok(_)) | Ok(Err(_)) => got_any = true,
                Err(_would_block) => break,
            }
        }
        if got_any {
            return;
        }
    }
}

/// Netwatch's links: the one sender of the network state.
pub struct Links {
    /// What every other actor follows (`Context::net` is its receiver).
    pub net: watch::Sender<NetState>,
}

/// Follow the network until shutdown, publishing into the hub (for the
/// views) and into the `NetState` watch (for the actors).
pub async fn run(ctx: Context, links: Links) {
    let Context {
        hub,
        stop: mut shutdown,
        ..
    } = ctx;
    let tx = links.net;
    let netlink = match open_netlink() {
        Ok(fd) => Some(fd),
        Err(e) => {
            tracing::warn!("netlink unavailable ({e}); polling the routing table every {POLL_WITHOUT_NETLINK:?}");
            None
        }
    };
    let mut current = NetState::read();
    publish(&hub, &tx, None, &current);
    loop {
        let wake = async {
            match &netlink {
                Some(fd) => {
                    tokio::select! {
                        _ = next_wakeup(fd) => tokio::time::sleep(DEBOUNCE).await,
                        _ = tokio::time::sleep(RESCAN) => {}
                    }
                }
                None => tokio::time::sleep(POLL_WITHOUT_NETLINK).await,
            }
        };
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = wake => {}
        }
        let next = NetState::read();
        if next != current {
            publish(&hub, &tx, Some(&current), &next);
            current = next;
        }
    }
}

fn publish(hub: &StatusHub, tx: &watch::Sender<NetState>, old: Option<&NetState>, new: &NetState) {
    let changed = old.is_some();
    hub.update(|s| {
        let n = &mut s.network;
        match &new.default_route {
            Some(_) => n.health.set(State::Ok, None),
            None => n.health.set(
                State::Unavailable,
                Some("no IPv4 default route: waiting for the network".into()),
            ),
        }
        n.default_route = new.default_route.clone();
        n.ipv6_default_route = new.ipv6_default_route;
        n.addresses = new.addresses.clone();
        if changed {
            n.changes += 1;
        }
    });
    tx.send_replace(new.clone());
    let describe = |r: &DefaultRoute| {
        format!(
            "{} via {} (source {})",
            r.interface,
            r.gateway.as_deref().unwrap_or("on-link"),
            r.source.as_deref().unwrap_or("none")
        )
    };
    let old_route = old.and_then(|o| o.default_route.as_ref());
    match (old_route, &new.default_route) {
        (None, Some(r)) => {
            hub.emit(
                "network",
                "default_route.up",
                Level::Info,
                format!("default route up: {}", describe(r)),
            );
        }
        (Some(_), None) => {
            hub.emit(
                "network",
                "default_route.lost",
                Level::Warn,
                "default route lost",
            );
        }
        (Some(a), Some(b)) if a != b => {
            hub.emit(
                "network",
                "default_route.changed",
                Level::Info,
                format!("default route changed: {} -> {}", describe(a), describe(b)),
            );
        }
        (None, None) if old.is_none() => {
            hub.emit(
                "network",
                "default_route.none",
                Level::Warn,
                "no default route at start; waiting",
            );
        }
        _ => {}
    }
    if let Some(o) = old {
        if o.addresses != new.addresses {
            hub.emit(
                "network",
                "addresses.changed",
                Level::Info,
                format!("addresses changed: {} now", new.addresses.len()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth1\t00000000\t0202000A\t0003\t0\t0\t200\t00000000\t0\t0\t0\n\
eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";

    #[test]
    fn picks_lowest_metric_default() {
        let (iface, gw) = parse_ipv4_default_route(ROUTE).unwrap();
        assert_eq!(iface, "eth0");
        assert_eq!(gw, Some(Ipv4Addr::new(192, 0, 2, 1)));
    }

    #[test]
    fn no_default_route() {
        let only_lan = ROUTE
            .lines()
            .take(1)
            .chain(ROUTE.lines().skip(3))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(parse_ipv4_default_route(&only_lan), None);
        assert_eq!(parse_ipv4_default_route(""), None);
        assert_eq!(parse_ipv4_default_route("garbage\nx y z\n\u{0}"), None);
    }

    #[test]
    fn ipv6_default() {
        let with = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003 eth0\n";
        let lo = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200 lo\n";
        assert!(has_ipv6_default_route(with));
        assert!(!has_ipv6_default_route(lo));
        assert!(!has_ipv6_default_route(""));
    }
}
