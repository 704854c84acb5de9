//! UPnP IGD I/O: igd-next for discovery and the actions it has; our own
//! codecs for SSDP BOOTID probes and GetSpecificPortMappingEntry.
//!
//! Only the default gateway is trusted: the search is sent to it by unicast,
//! and a gateway, LOCATION or answer from any other address is ignored.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use igd_next::aio::tokio::Tokio;
use igd_next::aio::{Gateway, Provider};
use igd_next::{AddAnyPortError, AddPortError, PortMappingProtocol, SearchOptions};
use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::pmp::Ignored;
use super::protocol::soap::{self, SpecificEntry, UpnpFault};
use super::protocol::ssdp;
use crate::config::Protocol;

/// Why a UPnP operation failed.
#[derive(Debug, thiserror::Error)]
pub enum UpnpError {
    /// Discovery found no IGD at the default gateway.
    #[error("no UPnP IGD answered at {0}:1900")]
    NotFound(Ipv4Addr),
    /// The IGD found lives elsewhere than the default gateway.
    #[error("UPnP IGD at {found} is not the default gateway {router}; ignored")]
    Untrusted {
        /// Address that answered.
        found: IpAddr,
        /// The default gateway.
        router: Ipv4Addr,
    },
    /// A request failed or timed out.
    #[error("UPnP {action}: {detail}")]
    Request {
        /// SOAP action or step.
        action: &'static str,
        /// What went wrong.
        detail: String,
    },
}

fn req_err(action: &'static str, detail: impl ToString) -> UpnpError {
    UpnpError::Request {
        action,
        detail: detail.to_string(),
    }
}

/// Time allowed for discovery (SSDP + device description).
const DISCOVERY_BUDGET: Duration = Duration::from_secs(2);
/// Time allowed for one SOAP request.
const REQUEST_BUDGET: Duration = Duration::from_secs(3);
/// Time allowed for a BOOTID probe.
const BOOTID_BUDGET: Duration = Duration::from_millis(800);

/// What the router granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpnpGrant {
    /// External port obtained.
    pub external_port: u16,
    /// Lease in seconds; 0 = permanent (the router accepts nothing else).
    pub lease_s: u32,
}

/// An IGD at the default gateway.
#[derive(Clone, Debug)]
pub struct UpnpRouter {
    gateway: Gateway<Tokio>,
    router: Ipv4Addr,
    local: Ipv4Addr,
}

fn igd_protocol(p: Protocol) -> PortMappingProtocol {
    match p {
        Protocol::Udp => PortMappingProtocol::UDP,
        Protocol::Tcp => PortMappingProtocol::TCP,
    }
}

fn soap_protocol(p: Protocol) -> soap::Protocol {
    match p {
        Protocol::Udp => soap::Protocol::Udp,
        Protocol::Tcp => soap::Protocol::Tcp,
    }
}

impl UpnpRouter {
    /// Find the IGD on `router` (unicast search from `local`).
    pub async fn discover(router: Ipv4Addr, local: Ipv4Addr) -> Result<Self, UpnpError> {
        let mut opts = SearchOptions::default();
        opts.bind_addr = SocketAddr::from((local, 0));
        opts.broadcast_address = SocketAddr::from((router, ssdp::SSDP_PORT));
        opts.timeout = Some(DISCOVERY_BUDGET);
        opts.single_search_timeout = Some(DISCOVERY_BUDGET);
        // igd-next's own timeout is not always honoured; bound it ourselves.
        let found = tokio::time::timeout(
            DISCOVERY_BUDGET + Duration::from_millis(200),
            igd_next::aio::tokio::search_gateway(opts),
        )
        .await
        .map_err(|_| UpnpError::NotFound(router))?
        .map_err(|_| UpnpError::NotFound(router))?;
        if found.addr.ip() != IpAddr::V4(router) {
            return Err(UpnpError::Untrusted {
                found: found.addr.ip(),
                router,
            });
        }
        Ok(Self {
            gateway: found,
            router,
            local,
        })
    }

    /// The router's public address.
    pub async fn external_ip(&self) -> Result<IpAddr, UpnpError> {
        tokio::time::timeout(REQUEST_BUDGET, self.gateway.get_external_ip())
            .await
            .map_err(|_| req_err("GetExternalIPAddress", "timed out"))?
            .map_err(|e| req_err("GetExternalIPAddress", e))
    }

    /// Map `external_port` to `internal_port` on this host. When the port is
    /// taken, any port is accepted instead; when only permanent leases are
    /// allowed (725, or 402 from older IGDs), lease 0 is used.
    pub async fn add(
        &self,
        protocol: Protocol,
        internal_port: u16,
        external_port: u16,
        lease_s: u32,
        description: &str,
    ) -> Result<UpnpGrant, UpnpError> {
        let local = SocketAddr::V4(SocketAddrV4::new(self.local, internal_port));
        let proto = igd_protocol(protocol);
        let mut lease = lease_s;
        for _attempt in 0..2 {
            let added = tokio::time::timeout(
                REQUEST_BUDGET,
                self.gateway
                    .add_port(proto, external_port, local, lease, description),
            )
            .await
            .map_err(|_| req_err("AddPortMapping", "timed out"))?;
            match added {
                Ok(()) => {
                    return Ok(UpnpGrant {
                        external_port,
                        lease_s: lease,
                    })
                }
                Err(AddPortError::OnlyPermanentLeasesSupported) if lease != 0 => lease = 0,
                Err(AddPortError::RequestError(e))
                    if lease != 0 && e.to_string().contains("402") =>
                {
                    lease = 0
                }
                Err(AddPortError::PortInUse) | Err(AddPortError::SamePortValuesRequired) => {
                    return self.add_any(proto, local, lease, description).await;
                }
                Err(e) => return Err(req_err("AddPortMapping", e)),
            }
        }
        Err(req_err(
            "AddPortMapping",
            "refused with and without a lease",
        ))
    }

    async fn add_any(
        &self,
        proto: PortMappingProtocol,
        local: SocketAddr,
        lease: u32,
        description: &str,
    ) -> Result<UpnpGrant, UpnpError> {
        let any = tokio::time::timeout(
            REQUEST_BUDGET * 2,
            self.gateway.add_any_port(proto, local, lease, description),
        )
        .await
        .map_err(|_| req_err("AddAnyPortMapping", "timed out"))?;
        match any {
            Ok(port) => Ok(UpnpGrant {
                external_port: port,
                lease_s: lease,
            }),
            // igd-next classifies 725 only for AddPortMapping; from
            // AddAnyPortMapping it arrives as a bare error code.
            Err(AddAnyPortError::OnlyPermanentLeasesSupported)
            | Err(AddAnyPortError::RequestError(igd_next::RequestError::ErrorCode(725 | 402, _)))
                if lease != 0 =>
            {
                Box::pin(self.add_any(proto, local, 0, description)).await
            }
            Err(e) => Err(req_err("AddAnyPortMapping", e)),
        }
    }

    /// Delete a mapping.
    pub async fn remove(&self, protocol: Protocol, external_port: u16) -> Result<(), UpnpError> {
        tokio::time::timeout(
            REQUEST_BUDGET,
            self.gateway
                .remove_port(igd_protocol(protocol), external_port),
        )
        .await
        .map_err(|_| req_err("DeletePortMapping", "timed out"))?
        .map_err(|e| req_err("DeletePortMapping", e))
    }

    /// The mapping for `external_port`, or `None` when the router has none.
    pub async fn specific_entry(
        &self,
        protocol: Protocol,
        external_port: u16,
    ) -> Result<Option<SpecificEntry>, UpnpError> {
        const ACTION: &str = "GetSpecificPortMappingEntry";
        let (soap_action, body) = soap::get_specific_entry_request(
            &self.gateway.service_type,
            external_port,
            soap_protocol(protocol),
        );
        let url = self.control_url()?;
        let text =
            tokio::time::timeout(REQUEST_BUDGET, Tokio::send_async(&url, &soap_action, &body))
                .await
                .map_err(|_| req_err(ACTION, "timed out"))?
                .map_err(|e| req_err(ACTION, e))?;
        if let Some(fault) = soap::parse_soap_fault(&text) {
            return if fault.code == UpnpFault::NO_SUCH_ENTRY_IN_ARRAY {
                Ok(None)
            } else {
                Err(req_err(
                    ACTION,
                    format!("fault {} {}", fault.code, fault.description),
                ))
            };
        }
        soap::parse_get_specific_entry_response(&text)
            .map(Some)
            .map_err(|e| req_err(ACTION, e))
    }

    fn control_url(&self) -> Result<String, UpnpError> {
        let c = &self.gateway.control_url;
        if c.starts_with("http://") {
            let (ip, _, _) = ssdp::location_host(c).map_err(|e| req_err("control URL", e))?;
            if ip != IpAddr::V4(self.router) {
                return Err(UpnpError::Untrusted {
                    found: ip,
                    router: self.router,
                });
            }
            return Ok(c.clone());
        }
        let path = if c.starts_with('/') {
            c.clone()
        } else {
            format!("/{c}")
        };
        Ok(format!("http://{}{}", self.gateway.addr, path))
    }

    /// The router's current SSDP BOOTID (changes on every restart).
    pub async fn boot_id(&self, ignored: &Ignored) -> Result<Option<u32>, UpnpError> {
        probe_boot_id(self.router, self.local, ignored).await
    }
}

/// Unicast M-SEARCH to the router; the BOOTID.UPNP.ORG of its answer.
pub async fn probe_boot_id(
    router: Ipv4Addr,
    local: Ipv4Addr,
    ignored: &Ignored,
) -> Result<Option<u32>, UpnpError> {
    let socket = UdpSocket::bind(SocketAddr::from((local, 0)))
        .await
        .map_err(|e| req_err("M-SEARCH", e))?;
    let target = SocketAddr::from((router, ssdp::SSDP_PORT));
    let request = ssdp::msearch_request(target, ssdp::ST_IGD_V1, 1);
    socket
        .send_to(&request, target)
        .await
        .map_err(|e| req_err("M-SEARCH", e))?;
    let deadline = Instant::now() + BOOTID_BUDGET;
    let mut buf = [0u8; ssdp::MAX_DATAGRAM_LEN + 1];
    loop {
        let (len, from) = match tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await
        {
            Err(_) => return Err(req_err("M-SEARCH", "no answer")),
            Ok(r) => r.map_err(|e| req_err("M-SEARCH", e))?,
        };
        let parsed = buf
            .get(..len)
            .filter(|_| from.ip() == IpAddr::V4(router))
            .and_then(|d| ssdp::parse_response(d).ok())
            .filter(|r| {
                ssdp::location_host(&r.location).is_ok_and(|(ip, _, _)| ip == IpAddr::V4(router))
            });
        match parsed {
            Some(r) => return Ok(r.boot_id),
            None => ignored.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        };
    }
}
