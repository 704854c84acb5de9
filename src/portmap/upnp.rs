//! UPnP IGD I/O. igd-next does the WANIPConnection actions it has
//! (AddPortMapping, AddAnyPortMapping and its AddPortMapping fallback,
//! DeletePortMapping, GetExternalIPAddress) and the IGDv2 pinhole actions
//! (AddPinhole, UpdatePinhole, DeletePinhole, GetFirewallStatus) over our
//! own HTTP/1.1 transport ([`IgdHttp`]); its `Gateway` is built from the
//! description we fetched.
//! Ours, because igd-next has no equivalent: the unicast SSDP search with
//! BOOTID.UPNP.ORG (a reboot), the device description (its parser is only
//! behind its own discovery, which multicasts and fetches with its own
//! client), and GetSpecificPortMappingEntry (the periodic check), all
//! through the bounded codecs in `protocol::{ssdp, description, soap}`.
//! igd-next's calls have no timeout of their own we can set: every one is
//! wrapped in ours.
//!
//! Only the default gateway is trusted: the search is sent to it by unicast,
//! and a gateway, LOCATION, control URL or answer from any other address is
//! ignored.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::Duration;

use igd_next::aio::Gateway;
use igd_next::{GetExternalIpError, PortMappingProtocol, RemovePortError};
use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::http::{self, IgdHttp, Soap, REQUEST_BUDGET};
use super::pmp::Ignored;
use super::protocol::description::{self, WanService};
use super::protocol::soap::{self, SoapError, SpecificEntry, UpnpFault};
use super::protocol::ssdp;
use crate::config::Protocol;
use crate::deadline::Later;
pub use error::UpnpError;
use error::{
    fault, from_add_any, from_add_port, from_pinhole, from_request, permanent_only, req_err,
};

mod error;

/// Time allowed for discovery (SSDP + device description).
const DISCOVERY_BUDGET: Duration = Duration::from_secs(2);
/// Time allowed for a BOOTID probe.
const BOOTID_BUDGET: Duration = Duration::from_millis(800);
/// Time allowed for igd-next's any-port mapping: one AddAnyPortMapping, or
/// on a router without it up to 20 AddPortMapping on random ports.
const ANY_PORT_BUDGET: Duration = Duration::from_secs(12);
/// 401 Invalid Action and 602 OptionalActionNotImplemented: no such action.
const NO_SUCH_ACTION: [u16; 2] = [401, 602];

/// The argument lists igd-next fills the mapping requests from, as the
/// WANIPConnection and WANPPPConnection service descriptions define them.
/// Taken from the standard rather than fetched: one HTTP request less at
/// every discovery, and igd-next's SCPD parser is only behind its own
/// discovery. AddAnyPortMapping is listed whatever the service version:
/// WANIPConnection:2 defines it, and IGDv1 routers that have it anyway exist
/// (the lab's fake725igd is one); one that answers 401 or 602 has it removed
/// and igd-next falls back to AddPortMapping on random ports (`add_any`).
fn control_schema() -> HashMap<String, Vec<String>> {
    const MAPPING: [&str; 8] = [
        "NewRemoteHost",
        "NewExternalPort",
        "NewProtocol",
        "NewInternalPort",
        "NewInternalClient",
        "NewEnabled",
        "NewPortMappingDescription",
        "NewLeaseDuration",
    ];
    let names = |list: &[&str]| list.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let mut schema = HashMap::new();
    schema.insert("AddPortMapping".into(), names(&MAPPING));
    schema.insert("AddAnyPortMapping".into(), names(&MAPPING));
    schema.insert("DeletePortMapping".into(), names(&MAPPING[..3]));
    schema
}

/// igd-next's spelling of the protocol.
fn igd_protocol(p: Protocol) -> PortMappingProtocol {
    match p {
        Protocol::Udp => PortMappingProtocol::UDP,
        Protocol::Tcp => PortMappingProtocol::TCP,
    }
}

/// Runs one igd-next call within `budget`; its own client would wait 10 s.
async fn bounded<T, E>(
    action: &'static str,
    budget: Duration,
    call: impl Future<Output = Result<T, E>>,
    typed: impl FnOnce(&'static str, E) -> UpnpError,
) -> Result<T, UpnpError> {
    match tokio::time::timeout(budget, call).await {
        Err(_) => Err(req_err(action, "timed out")),
        Ok(r) => r.map_err(|e| typed(action, e)),
    }
}

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
    service: WanService,
    /// Boxed: it is most of the size, and routers are moved around whole.
    gateway: Box<Gateway<IgdHttp>>,
    router: Ipv4Addr,
    local: Ipv4Addr,
}

/// Whether `url`'s host is `router`.
fn check_host(url: &str, router: Ipv4Addr, step: &'static str) -> Result<(), UpnpError> {
    let (ip, _, _) = ssdp::location_host(url).map_err(|e| req_err(step, e))?;
    match ip == IpAddr::V4(router) {
        true => Ok(()),
        false => Err(UpnpError::Untrusted { found: ip, router }),
    }
}

/// igd-next's gateway for the service we chose; `control_url` is checked
/// to be a literal-IP http:// URL on the router.
fn gateway(
    service: &WanService,
    location: &str,
    step: &'static str,
) -> Result<Gateway<IgdHttp>, UpnpError> {
    let (ip, port, _) = ssdp::location_host(&service.control_url).map_err(|e| req_err(step, e))?;
    Ok(Gateway {
        addr: SocketAddr::new(ip, port),
        root_url: location.to_owned(),
        control_url: service.control_url.clone(),
        control_schema_url: String::new(),
        control_schema: control_schema(),
        service_type: service.service_type.clone(),
        ipv6_firewall_control_url: service.firewall_control_url.clone(),
        provider: IgdHttp,
    })
}

impl UpnpRouter {
    /// Find the IGD on `router` (unicast search from `local`) and read its
    /// device description.
    pub async fn discover(
        router: Ipv4Addr,
        local: Ipv4Addr,
        ignored: &Ignored,
    ) -> Result<Self, UpnpError> {
        let deadline = Instant::now().later(DISCOVERY_BUDGET);
        let answer = search(router, local, deadline, ignored)
            .await
            .map_err(|_| UpnpError::NotFound(router))?;
        let location = answer.location.trim();
        const STEP: &str = "device description";
        let reply = tokio::time::timeout_at(deadline, http::exchange(location, None))
            .await
            .map_err(|_| req_err(STEP, "timed out"))?
            .map_err(|e| req_err(STEP, e))?;
        if reply.status != 200 {
            return Err(req_err(STEP, format!("HTTP status {}", reply.status)));
        }
        let service =
            description::parse_description(&reply.body, location).map_err(|e| req_err(STEP, e))?;
        check_host(&service.control_url, router, STEP)?;
        let mut service = service;
        // A firewall service elsewhere than the router is not asked: pinholes
        // stay PCP's, port mapping is unaffected.
        service.firewall_control_url = service
            .firewall_control_url
            .filter(|url| check_host(url, router, STEP).is_ok());
        Ok(Self {
            gateway: Box::new(gateway(&service, location, STEP)?),
            service,
            router,
            local,
        })
    }

    /// POSTs one SOAP action of our own codec and returns the response body
    /// of a 200 answer; a UPnP fault (HTTP 500) becomes [`UpnpError::Fault`].
    async fn call(
        &self,
        action: &'static str,
        (soap_action, body): (String, String),
    ) -> Result<String, UpnpError> {
        let soap = Soap {
            action: &soap_action,
            body,
        };
        let reply = tokio::time::timeout(
            REQUEST_BUDGET,
            http::exchange(&self.service.control_url, Some(soap)),
        )
        .await
        .map_err(|_| req_err(action, "timed out"))?
        .map_err(|e| req_err(action, e))?;
        if let Some(fault) = soap::parse_soap_fault(&reply.body) {
            return Err(UpnpError::Fault { action, fault });
        }
        match reply.status {
            200 => Ok(reply.body),
            status => Err(req_err(action, format!("HTTP status {status}"))),
        }
    }

    /// Maps a decode error of a 200 answer.
    fn decoded<T>(action: &'static str, r: Result<T, SoapError>) -> Result<T, UpnpError> {
        r.map_err(|e| match e {
            SoapError::Fault(fault) => UpnpError::Fault { action, fault },
            e => req_err(action, e),
        })
    }

    /// The router's public address.
    pub async fn external_ip(&self) -> Result<IpAddr, UpnpError> {
        let call = self.gateway.get_external_ip();
        bounded(
            "GetExternalIPAddress",
            REQUEST_BUDGET,
            call,
            |action, e| match e {
                GetExternalIpError::ActionNotAuthorized => UpnpError::Fault {
                    action,
                    fault: fault(606),
                },
                GetExternalIpError::RequestError(e) => from_request(action, e),
            },
        )
        .await
    }

    /// AddPortMapping, once more without the lease when the router allows
    /// only permanent ones (725, or 402 from older IGDs); `lease_s` keeps the
    /// lease the router took, so later requests ask for that straight away.
    async fn add_fixed(
        &self,
        protocol: Protocol,
        internal_port: u16,
        external_port: u16,
        lease_s: &mut u32,
        description: &str,
    ) -> Result<UpnpGrant, UpnpError> {
        let local = SocketAddr::from((self.local, internal_port));
        loop {
            let call = self.gateway.add_port(
                igd_protocol(protocol),
                external_port,
                local,
                *lease_s,
                description,
            );
            match bounded("AddPortMapping", REQUEST_BUDGET, call, from_add_port).await {
                Ok(()) => {
                    return Ok(UpnpGrant {
                        external_port,
                        lease_s: *lease_s,
                    })
                }
                Err(e) if *lease_s != 0 && permanent_only(&e) => *lease_s = 0,
                Err(e) => return Err(e),
            }
        }
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
        let mut lease_s = lease_s;
        let fixed = self
            .add_fixed(
                protocol,
                internal_port,
                external_port,
                &mut lease_s,
                description,
            )
            .await;
        match fixed {
            Err(e) if e.fault_code() == Some(UpnpFault::CONFLICT_IN_MAPPING_ENTRY) => {
                self.add_any(protocol, internal_port, lease_s, description)
                    .await
            }
            other => other,
        }
    }

    /// Any external port, by igd-next: AddAnyPortMapping where the IGD has
    /// it, otherwise AddPortMapping on random ports. Again with lease 0 when
    /// only permanent leases are allowed; again without AddAnyPortMapping
    /// when an IGDv2 turns out not to have it.
    async fn add_any(
        &self,
        protocol: Protocol,
        internal_port: u16,
        lease_s: u32,
        description: &str,
    ) -> Result<UpnpGrant, UpnpError> {
        const ACTION: &str = "AddAnyPortMapping";
        let local = SocketAddr::from((self.local, internal_port));
        let mut gateway = (*self.gateway).clone();
        let mut lease_s = lease_s;
        loop {
            let call = gateway.add_any_port(igd_protocol(protocol), local, lease_s, description);
            match bounded(ACTION, ANY_PORT_BUDGET, call, from_add_any).await {
                Ok(external_port) => {
                    return Ok(UpnpGrant {
                        external_port,
                        lease_s,
                    })
                }
                Err(e) if lease_s != 0 && permanent_only(&e) => lease_s = 0,
                Err(e)
                    if e.fault_code().is_some_and(|c| NO_SUCH_ACTION.contains(&c))
                        && gateway.control_schema.remove(ACTION).is_some() => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Delete a mapping.
    pub async fn remove(&self, protocol: Protocol, external_port: u16) -> Result<(), UpnpError> {
        let call = self
            .gateway
            .remove_port(igd_protocol(protocol), external_port);
        bounded("DeletePortMapping", REQUEST_BUDGET, call, |action, e| {
            let code = match e {
                RemovePortError::ActionNotAuthorized => 606,
                RemovePortError::NoSuchPortMapping => UpnpFault::NO_SUCH_ENTRY_IN_ARRAY,
                RemovePortError::RequestError(e) => return from_request(action, e),
            };
            UpnpError::Fault {
                action,
                fault: fault(code),
            }
        })
        .await
    }

    /// The mapping for `external_port`, or `None` when the router has none
    /// (our codec: igd-next reads the table only by index).
    pub async fn specific_entry(
        &self,
        protocol: Protocol,
        external_port: u16,
    ) -> Result<Option<SpecificEntry>, UpnpError> {
        const ACTION: &str = soap::GET_SPECIFIC_ENTRY_ACTION;
        let request =
            soap::get_specific_entry_request(&self.service.service_type, external_port, protocol);
        match self.call(ACTION, request).await {
            Err(e) if e.fault_code() == Some(UpnpFault::NO_SUCH_ENTRY_IN_ARRAY) => Ok(None),
            Err(e) => Err(e),
            Ok(body) => {
                Self::decoded(ACTION, soap::parse_get_specific_entry_response(&body)).map(Some)
            }
        }
    }

    /// Whether the IGD offers WANIPv6FirewallControl (IGDv2 pinholes).
    pub fn has_firewall(&self) -> bool {
        self.gateway.ipv6_firewall_control_url.is_some()
    }

    /// AddPinhole by igd-next: inbound `protocol` from any remote host and
    /// port to `[addr]:port` for `lease_s` seconds (1 to 86400). The
    /// router's UniqueID of the pinhole, for renewing and deleting it.
    pub async fn add_pinhole(
        &self,
        protocol: Protocol,
        addr: Ipv6Addr,
        port: u16,
        lease_s: u32,
    ) -> Result<u16, UpnpError> {
        let client = SocketAddrV6::new(addr, port, 0, 0);
        let call = self
            .gateway
            .add_pinhole(igd_protocol(protocol), client, lease_s);
        bounded("AddPinhole", REQUEST_BUDGET, call, from_pinhole).await
    }

    /// UpdatePinhole: a new lease for the pinhole `unique_id`.
    pub async fn update_pinhole(&self, unique_id: u16, lease_s: u32) -> Result<(), UpnpError> {
        let call = self.gateway.update_pinhole(unique_id, lease_s);
        bounded("UpdatePinhole", REQUEST_BUDGET, call, from_pinhole).await
    }

    /// DeletePinhole.
    pub async fn remove_pinhole(&self, unique_id: u16) -> Result<(), UpnpError> {
        let call = self.gateway.remove_pinhole(unique_id);
        bounded("DeletePinhole", REQUEST_BUDGET, call, from_pinhole).await
    }

    /// GetFirewallStatus: whether the firewall is on and lets pinholes be
    /// opened (a pinhole is pointless on a router whose firewall is off).
    pub async fn firewall_status(&self) -> Result<igd_next::FirewallStatus, UpnpError> {
        let call = self.gateway.get_firewall_status();
        bounded("GetFirewallStatus", REQUEST_BUDGET, call, from_pinhole).await
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
    let answer = search(router, local, Instant::now().later(BOOTID_BUDGET), ignored).await?;
    Ok(answer.boot_id)
}

/// Unicast M-SEARCH for an IGD to the router; its first valid answer whose
/// LOCATION is on the router. Anything else is counted in `ignored`.
async fn search(
    router: Ipv4Addr,
    local: Ipv4Addr,
    deadline: Instant,
    ignored: &Ignored,
) -> Result<ssdp::SsdpResponse, UpnpError> {
    let socket = UdpSocket::bind(SocketAddr::from((local, 0)))
        .await
        .map_err(|e| req_err("M-SEARCH", e))?;
    let target = SocketAddr::from((router, ssdp::SSDP_PORT));
    let request = ssdp::msearch_request(target, ssdp::ST_IGD_V1, 1);
    socket
        .send_to(&request, target)
        .await
        .map_err(|e| req_err("M-SEARCH", e))?;
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
            .filter(|r| check_host(&r.location, router, "M-SEARCH").is_ok());
        match parsed {
            Some(r) => return Ok(r),
            None => ignored.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_service_is_asked_for_any_port_with_the_standard_arguments() {
        let schema = control_schema();
        for action in ["AddPortMapping", "AddAnyPortMapping"] {
            let args = schema.get(action).map(|a| a.join(","));
            assert_eq!(
                args.as_deref(),
                Some(
                    "NewRemoteHost,NewExternalPort,NewProtocol,NewInternalPort,\
NewInternalClient,NewEnabled,NewPortMappingDescription,NewLeaseDuration"
                ),
                "{action}"
            );
        }
        let delete = schema.get("DeletePortMapping").map(|a| a.join(","));
        assert_eq!(
            delete.as_deref(),
            Some("NewRemoteHost,NewExternalPort,NewProtocol")
        );
    }
}
