//! UPnP IGD I/O. igd-next does the WANIPConnection actions it has
//! (AddPortMapping, AddAnyPortMapping and its AddPortMapping fallback,
//! DeletePortMapping, GetExternalIPAddress) over our own HTTP/1.1 transport
//! ([`IgdHttp`]); its `Gateway` is built from the description we fetched.
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
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use igd_next::aio::Gateway;
use igd_next::{
    AddAnyPortError, AddPortError, GetExternalIpError, PortMappingProtocol, RemovePortError,
    RequestError,
};
use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::http::{self, IgdHttp, Soap, REQUEST_BUDGET};
use super::pmp::Ignored;
use super::protocol::description::{self, WanService};
use super::protocol::soap::{self, SoapError, SpecificEntry, UpnpFault};
use super::protocol::ssdp;
use crate::config::Protocol;
use crate::deadline::Later;

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
    /// The router refused the action with a UPnP error.
    #[error("UPnP {action}: router returned error {} ({})", .fault.code, .fault.description)]
    Fault {
        /// SOAP action.
        action: &'static str,
        /// The router's error.
        fault: UpnpFault,
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

impl UpnpError {
    /// The UPnP error code, when the router answered with a fault.
    fn fault_code(&self) -> Option<u16> {
        match self {
            UpnpError::Fault { fault, .. } => Some(fault.code),
            _ => None,
        }
    }
}

fn req_err(action: &'static str, detail: impl ToString) -> UpnpError {
    UpnpError::Request {
        action,
        detail: detail.to_string(),
    }
}

/// Time allowed for discovery (SSDP + device description).
const DISCOVERY_BUDGET: Duration = Duration::from_secs(2);
/// Time allowed for a BOOTID probe.
const BOOTID_BUDGET: Duration = Duration::from_millis(800);
/// Time allowed for igd-next's any-port mapping: one AddAnyPortMapping, or
/// on an IGDv1 up to 20 AddPortMapping on random ports.
const ANY_PORT_BUDGET: Duration = Duration::from_secs(12);
/// 401 Invalid Action and 602 OptionalActionNotImplemented: no such action.
const NO_SUCH_ACTION: [u16; 2] = [401, 602];

/// The standard UPnP error name of the codes igd-next turns into variants
/// (it keeps the router's text only for the codes it passes through).
fn fault(code: u16) -> UpnpFault {
    let description = match code {
        605 => "StringArgumentTooLong",
        606 => "Action not authorized",
        714 => "NoSuchEntryInArray",
        718 => "ConflictInMappingEntry",
        724 => "SamePortValuesRequired",
        725 => "OnlyPermanentLeasesSupported",
        728 => "NoPortMapsAvailable",
        _ => "",
    };
    UpnpFault {
        code,
        description: description.into(),
    }
}

/// igd-next's transport-level error, typed back: a router fault keeps its
/// code (the retry logic reads 718, 724, 725, 402).
fn from_request(action: &'static str, e: RequestError) -> UpnpError {
    match e {
        RequestError::ErrorCode(code, description) => UpnpError::Fault {
            action,
            fault: UpnpFault { code, description },
        },
        RequestError::IoError(e) => req_err(action, e),
        RequestError::InvalidResponse(text) => req_err(
            action,
            format!(
                "invalid answer: {:?}",
                text.chars().take(64).collect::<String>()
            ),
        ),
        other => req_err(action, other),
    }
}

fn from_add_port(action: &'static str, e: AddPortError) -> UpnpError {
    let code = match e {
        AddPortError::DescriptionTooLong => 605,
        AddPortError::ActionNotAuthorized => 606,
        AddPortError::PortInUse => UpnpFault::CONFLICT_IN_MAPPING_ENTRY,
        AddPortError::SamePortValuesRequired => 724,
        AddPortError::OnlyPermanentLeasesSupported => UpnpFault::ONLY_PERMANENT_LEASES_SUPPORTED,
        AddPortError::RequestError(e) => return from_request(action, e),
        other => return req_err(action, other),
    };
    UpnpError::Fault {
        action,
        fault: fault(code),
    }
}

fn from_add_any(action: &'static str, e: AddAnyPortError) -> UpnpError {
    let code = match e {
        AddAnyPortError::DescriptionTooLong => 605,
        AddAnyPortError::ActionNotAuthorized => 606,
        // The last port tried (the internal one, on a router that wants
        // both equal) is mapped to another client.
        AddAnyPortError::ExternalPortInUse => UpnpFault::CONFLICT_IN_MAPPING_ENTRY,
        AddAnyPortError::OnlyPermanentLeasesSupported => UpnpFault::ONLY_PERMANENT_LEASES_SUPPORTED,
        AddAnyPortError::NoPortsAvailable => 728,
        AddAnyPortError::RequestError(e) => return from_request(action, e),
        other => return req_err(action, other),
    };
    UpnpError::Fault {
        action,
        fault: fault(code),
    }
}

/// The argument lists igd-next fills the mapping requests from, as the
/// WANIPConnection and WANPPPConnection service descriptions define them.
/// Taken from the standard rather than fetched: one HTTP request less at
/// every discovery, and igd-next's SCPD parser is only behind its own
/// discovery. AddAnyPortMapping exists from WANIPConnection:2 on; without
/// it igd-next falls back to AddPortMapping on random ports.
fn control_schema(service_type: &str) -> HashMap<String, Vec<String>> {
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
    schema.insert("DeletePortMapping".into(), names(&MAPPING[..3]));
    if service_type == description::WAN_SERVICES[0] {
        schema.insert("AddAnyPortMapping".into(), names(&MAPPING));
    }
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
        control_schema: control_schema(&service.service_type),
        service_type: service.service_type.clone(),
        ipv6_firewall_control_url: None,
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

    /// The router's current SSDP BOOTID (changes on every restart).
    pub async fn boot_id(&self, ignored: &Ignored) -> Result<Option<u32>, UpnpError> {
        probe_boot_id(self.router, self.local, ignored).await
    }
}

/// 725 OnlyPermanentLeasesSupported, or 402 Invalid Args from IGDs older
/// than that code, both meaning: ask again with lease 0.
fn permanent_only(e: &UpnpError) -> bool {
    matches!(
        e.fault_code(),
        Some(UpnpFault::ONLY_PERMANENT_LEASES_SUPPORTED | UpnpFault::INVALID_ARGS)
    )
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
    fn igd_next_errors_keep_the_fault_codes_the_retries_read() {
        let code = |e: UpnpError| e.fault_code();
        assert_eq!(code(from_add_port("a", AddPortError::PortInUse)), Some(718));
        let permanent = from_add_port("a", AddPortError::OnlyPermanentLeasesSupported);
        assert!(permanent_only(&permanent), "{permanent}");
        let old_igd = RequestError::ErrorCode(402, "Invalid Args".into());
        let e = from_add_port("a", AddPortError::RequestError(old_igd));
        assert!(permanent_only(&e));
        assert_eq!(
            e.to_string(),
            "UPnP a: router returned error 402 (Invalid Args)"
        );
        let e = from_add_any("a", AddAnyPortError::OnlyPermanentLeasesSupported);
        assert!(permanent_only(&e));
        let no_action = RequestError::ErrorCode(401, "Invalid Action".into());
        let e = from_add_any("a", AddAnyPortError::RequestError(no_action));
        assert_eq!(code(e), Some(401));
        let timeout = std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out");
        let e = from_request("a", RequestError::IoError(timeout));
        assert_eq!(
            (e.fault_code(), e.to_string()),
            (None, "UPnP a: timed out".into())
        );
    }

    #[test]
    fn any_port_mapping_is_asked_only_of_wanipconnection_2() {
        let [v2, v1, ppp] = description::WAN_SERVICES;
        assert!(control_schema(v2).contains_key("AddAnyPortMapping"));
        for st in [v1, ppp] {
            let schema = control_schema(st);
            assert!(!schema.contains_key("AddAnyPortMapping"), "{st}");
            let delete = schema.get("DeletePortMapping").map(Vec::len);
            assert_eq!(delete, Some(3), "{st}");
            assert_eq!(schema.get("AddPortMapping").map(Vec::len), Some(8));
        }
    }
}
