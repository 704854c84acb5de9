//! UPnP IGD I/O: SSDP search, the device description and the SOAP control
//! actions, all through our own bounded codecs (`protocol::{ssdp,
//! description, soap}`) and a one-request-per-connection HTTP/1.1 client.
//!
//! Why not igd-next, which the project started with: it brought hyper's
//! HTTP/2, xml-rs, url and futures into a binary with a 4 MiB budget. Without
//! it the stripped aarch64 build went from 4,541,072 to 3,877,616 bytes
//! (cross/README.md); the codecs it would have replaced were ours already
//! (GetSpecificPortMappingEntry, BOOTID) and the actions it had are five
//! small envelopes, fuzzed with the rest (`fuzz/soap_parse`).
//!
//! Only the default gateway is trusted: the search is sent to it by unicast,
//! and a gateway, LOCATION, control URL or answer from any other address is
//! ignored.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::http::{self, Soap};
use super::pmp::Ignored;
use super::protocol::description::{self, WanService};
use super::protocol::soap::{self, MappingRequest, SoapError, SpecificEntry, UpnpFault};
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
/// Time allowed for one SOAP request.
const REQUEST_BUDGET: Duration = Duration::from_secs(3);
/// Time allowed for a BOOTID probe.
const BOOTID_BUDGET: Duration = Duration::from_millis(800);
/// Ports tried by an IGD without AddAnyPortMapping when the wanted one is taken.
const OTHER_PORT_ATTEMPTS: u16 = 8;
/// 401 Invalid Action and 602 OptionalActionNotImplemented: no AddAnyPortMapping.
const NO_SUCH_ACTION: [u16; 2] = [401, 602];
/// 724 SamePortValuesRequired: the router maps only external = internal port.
const SAME_PORT_VALUES_REQUIRED: u16 = 724;

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
            service,
            router,
            local,
        })
    }

    /// POSTs one SOAP action and returns the response body of a 200 answer;
    /// a UPnP fault (HTTP 500) becomes [`UpnpError::Fault`].
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
        const ACTION: &str = soap::GET_EXTERNAL_IP_ADDRESS;
        let request = soap::get_external_ip_request(&self.service.service_type);
        let body = self.call(ACTION, request).await?;
        Self::decoded(ACTION, soap::parse_external_ip_response(&body))
    }

    fn mapping<'a>(
        &self,
        protocol: Protocol,
        internal_port: u16,
        external_port: u16,
        lease_s: u32,
        description: &'a str,
    ) -> MappingRequest<'a> {
        MappingRequest {
            protocol,
            external_port,
            internal_client: self.local,
            internal_port,
            lease_s,
            description,
        }
    }

    /// AddPortMapping, once without the lease when the router allows only
    /// permanent ones (725, or 402 from older IGDs); `m` keeps the lease the
    /// router took, so later requests ask for that straight away.
    async fn add_fixed(&self, m: &mut MappingRequest<'_>) -> Result<UpnpGrant, UpnpError> {
        const ACTION: &str = soap::ADD_PORT_MAPPING;
        const RESPONSE: &str = "AddPortMappingResponse";
        let st = &self.service.service_type;
        loop {
            let added = match self
                .call(ACTION, soap::add_port_mapping_request(st, m))
                .await
            {
                Ok(body) => Self::decoded(ACTION, soap::parse_empty_response(&body, RESPONSE)),
                Err(e) => Err(e),
            };
            match added {
                Ok(()) => {
                    return Ok(UpnpGrant {
                        external_port: m.external_port,
                        lease_s: m.lease_s,
                    })
                }
                Err(e) if m.lease_s != 0 && permanent_only(&e) => m.lease_s = 0,
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
        let mut m = self.mapping(protocol, internal_port, external_port, lease_s, description);
        match self.add_fixed(&mut m).await {
            Err(e) if e.fault_code() == Some(UpnpFault::CONFLICT_IN_MAPPING_ENTRY) => {
                self.add_any(m).await
            }
            other => other,
        }
    }

    /// Any external port: AddAnyPortMapping where the IGD has it, otherwise
    /// AddPortMapping on a few other ports.
    async fn add_any(&self, m: MappingRequest<'_>) -> Result<UpnpGrant, UpnpError> {
        const ACTION: &str = soap::ADD_ANY_PORT_MAPPING;
        let st = &self.service.service_type;
        let mut m = m;
        let refused = loop {
            let any = match self
                .call(ACTION, soap::add_any_port_mapping_request(st, &m))
                .await
            {
                Ok(body) => Self::decoded(ACTION, soap::parse_add_any_response(&body)),
                Err(e) => Err(e),
            };
            match any {
                Ok(port) => {
                    return Ok(UpnpGrant {
                        external_port: port,
                        lease_s: m.lease_s,
                    })
                }
                Err(e) if m.lease_s != 0 && permanent_only(&e) => m.lease_s = 0,
                Err(e) => break e,
            }
        };
        if !refused
            .fault_code()
            .is_some_and(|c| NO_SUCH_ACTION.contains(&c))
        {
            return Err(refused);
        }
        // An IGDv1: walk other ports from a random start, so that two
        // gateways behind one router rarely ask for the same one.
        let mut random = [0u8; 2];
        crate::entropy::fill(&mut random);
        let start = 1024 + u16::from_le_bytes(random) % (65535 - 1024);
        let mut last = refused;
        for attempt in 0..OTHER_PORT_ATTEMPTS {
            let port = 1024 + (start - 1024 + attempt * 97) % (65535 - 1024);
            m.external_port = port;
            match self.add_fixed(&mut m).await {
                Err(e) if e.fault_code() == Some(UpnpFault::CONFLICT_IN_MAPPING_ENTRY) => last = e,
                Err(e) if e.fault_code() == Some(SAME_PORT_VALUES_REQUIRED) => return Err(e),
                other => return other,
            }
        }
        Err(last)
    }

    /// Delete a mapping.
    pub async fn remove(&self, protocol: Protocol, external_port: u16) -> Result<(), UpnpError> {
        const ACTION: &str = soap::DELETE_PORT_MAPPING;
        let request =
            soap::delete_port_mapping_request(&self.service.service_type, protocol, external_port);
        let body = self.call(ACTION, request).await?;
        Self::decoded(
            ACTION,
            soap::parse_empty_response(&body, "DeletePortMappingResponse"),
        )
    }

    /// The mapping for `external_port`, or `None` when the router has none.
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
