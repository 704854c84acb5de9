//! One router and the three ways to ask it for a mapping: probe which
//! protocols it speaks, then create, renew, check and delete through the
//! protocol that worked.

use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::pmp::{self, Ignored, PmpError};
use super::protocol::{natpmp, pcp};
use super::upnp::{UpnpError, UpnpRouter};
use crate::config::MappingConfig;
use crate::deadline::Later;

/// Why a router call failed; kept typed so retries can tell a timeout from
/// a refusal (a UPnP fault code, a PCP result code).
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// PCP or NAT-PMP: no answer, a socket error, or the router's result code.
    #[error(transparent)]
    Pmp(#[from] PmpError),
    /// UPnP IGD: a fault or a failed request.
    #[error(transparent)]
    Upnp(#[from] UpnpError),
    /// A UPnP step was asked of a router that has no IGD.
    #[error("no UPnP IGD")]
    NoIgd,
}

/// Time one NAT-PMP/PCP exchange may take (retransmits included).
const PMP_BUDGET: Duration = Duration::from_millis(1500);
/// Description shown in the router's UPnP table.
const DESCRIPTION: &str = "edgereach";

pub use super::model::Method;

/// A mapping as the router granted it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    /// Protocol that granted it.
    pub method: Method,
    /// Public side; the IP is unspecified when the router did not say.
    pub external: SocketAddrV4,
    /// Lease in seconds (0 = permanent).
    pub lease_s: u32,
    /// Router epoch at grant time (NAT-PMP/PCP).
    pub epoch: Option<u32>,
    /// When it was granted.
    pub at: Instant,
}

/// Outcome of checking a UPnP mapping on the router.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpnpCheck {
    /// The entry is there, for us, and the public address is unchanged.
    Holds,
    /// No entry for us at that external port any more.
    Gone,
    /// The router's public address moved.
    ExternalIpChanged(Ipv4Addr),
}

/// One protocol's probe outcome.
pub enum ProbeResult {
    /// Whether PCP answered an ANNOUNCE.
    Pcp(bool),
    /// NAT-PMP's public address, if it answered.
    NatPmp(Option<Ipv4Addr>),
    /// The UPnP IGD, if found.
    Upnp(Option<UpnpRouter>),
}

/// What a probe of the router found.
pub struct Router {
    /// The default gateway.
    pub addr: Ipv4Addr,
    /// Our address toward it.
    pub local: Ipv4Addr,
    /// PCP answered.
    pub pcp: bool,
    /// NAT-PMP answered, with the public address it reported.
    pub natpmp: Option<Ipv4Addr>,
    /// UPnP IGD found.
    pub upnp: Option<UpnpRouter>,
    /// Datagrams ignored for source or content.
    pub ignored: Arc<Ignored>,
}

fn v4(ip: IpAddr) -> Ipv4Addr {
    match ip {
        IpAddr::V4(a) => a,
        IpAddr::V6(a) => a.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED),
    }
}

impl Router {
    /// A router nothing is known about yet.
    pub fn unprobed(addr: Ipv4Addr, local: Ipv4Addr, ignored: Arc<Ignored>) -> Self {
        Self {
            addr,
            local,
            pcp: false,
            natpmp: None,
            upnp: None,
            ignored,
        }
    }

    /// Start asking PCP, NAT-PMP and UPnP in parallel, each within its own
    /// bound; each answer arrives on its own, so the fastest protocol can be
    /// used without waiting for a silent one to time out.
    pub fn start_probes(&self) -> JoinSet<ProbeResult> {
        let (addr, local) = (self.addr, self.local);
        let mut set = JoinSet::new();
        let ignored = self.ignored.clone();
        set.spawn(async move {
            ProbeResult::Pcp(
                pmp::pcp_announce(addr, local, PMP_BUDGET, &ignored)
                    .await
                    .is_ok(),
            )
        });
        let ignored = self.ignored.clone();
        set.spawn(async move {
            let r = pmp::natpmp_external(addr, local, PMP_BUDGET, &ignored).await;
            ProbeResult::NatPmp(r.ok().map(|(ip, _)| ip))
        });
        let ignored = self.ignored.clone();
        set.spawn(async move {
            let r = UpnpRouter::discover(addr, local, &ignored).await;
            if let Err(e) = &r {
                tracing::debug!("UPnP probe: {e}");
            }
            ProbeResult::Upnp(r.ok())
        });
        set
    }

    /// Record one probe's answer.
    pub fn merge(&mut self, result: ProbeResult) {
        match result {
            ProbeResult::Pcp(ok) => self.pcp = ok,
            ProbeResult::NatPmp(ip) => self.natpmp = ip,
            ProbeResult::Upnp(igd) => self.upnp = igd,
        }
    }

    /// Probe all three protocols and wait for every answer.
    pub async fn probe(addr: Ipv4Addr, local: Ipv4Addr, ignored: Arc<Ignored>) -> Self {
        let mut router = Self::unprobed(addr, local, ignored);
        let mut probes = router.start_probes();
        while let Some(done) = probes.join_next().await {
            if let Ok(r) = done {
                router.merge(r);
            }
        }
        router
    }

    /// Probe all three protocols, keeping what answered within `budget`; a
    /// protocol still silent then counts as absent (its probe is dropped).
    /// For reports that only name the protocols (`edgereach netcheck`),
    /// where waiting out every retransmission of a silent router would cost
    /// more than the rest of the report.
    pub async fn probe_within(
        addr: Ipv4Addr,
        local: Ipv4Addr,
        ignored: Arc<Ignored>,
        budget: Duration,
    ) -> Self {
        let mut router = Self::unprobed(addr, local, ignored);
        let mut probes = router.start_probes();
        let deadline = Instant::now().later(budget);
        while let Ok(Some(done)) = tokio::time::timeout_at(deadline, probes.join_next()).await {
            if let Ok(r) = done {
                router.merge(r);
            }
        }
        router
    }

    /// Protocols that answered, in the order they are tried.
    pub fn methods(&self) -> Vec<Method> {
        let mut m = Vec::new();
        if self.pcp {
            m.push(Method::Pcp);
        }
        if self.natpmp.is_some() {
            m.push(Method::NatPmp);
        }
        if self.upnp.is_some() {
            m.push(Method::Upnp);
        }
        m
    }

    /// Create or renew `mapping` through `method`, asking for `external_port`.
    pub async fn map(
        &self,
        method: Method,
        mapping: &MappingConfig,
        external_port: u16,
        lease: Duration,
        nonce: [u8; 12],
    ) -> Result<Grant, RouterError> {
        let lease_s = u32::try_from(lease.as_secs()).unwrap_or(u32::MAX);
        match method {
            Method::Pcp => {
                let req = self.pcp_request(mapping, external_port, lease_s, nonce);
                let g = pmp::pcp_map(self.addr, &req, PMP_BUDGET, &self.ignored).await?;
                Ok(Grant {
                    method,
                    external: SocketAddrV4::new(
                        v4(g.mapping.external_addr),
                        g.mapping.external_port,
                    ),
                    lease_s: g.lifetime_secs,
                    epoch: Some(g.epoch_secs),
                    at: Instant::now(),
                })
            }
            Method::NatPmp => {
                let req = natpmp::MapRequest {
                    protocol: mapping.protocol,
                    internal_port: mapping.internal_port,
                    suggested_external_port: external_port,
                    lifetime_secs: lease_s,
                };
                let g =
                    pmp::natpmp_map(self.addr, self.local, &req, PMP_BUDGET, &self.ignored).await?;
                // The mapping answer has no address: ask for it each time, so a
                // changed public address is noticed at the next renewal.
                let ip = pmp::natpmp_external(self.addr, self.local, PMP_BUDGET, &self.ignored)
                    .await
                    .map(|(ip, _)| ip)
                    .unwrap_or(self.natpmp.unwrap_or(Ipv4Addr::UNSPECIFIED));
                Ok(Grant {
                    method,
                    external: SocketAddrV4::new(ip, g.mapping.external_port),
                    lease_s: g.mapping.lifetime_secs,
                    epoch: Some(g.epoch_secs),
                    at: Instant::now(),
                })
            }
            Method::Upnp => {
                let igd = self.upnp.as_ref().ok_or(RouterError::NoIgd)?;
                let g = igd
                    .add(
                        mapping.protocol,
                        mapping.internal_port,
                        external_port,
                        lease_s,
                        DESCRIPTION,
                    )
                    .await?;
                let ip = igd
                    .external_ip()
                    .await
                    .map(v4)
                    .unwrap_or(Ipv4Addr::UNSPECIFIED);
                Ok(Grant {
                    method,
                    external: SocketAddrV4::new(ip, g.external_port),
                    lease_s: g.lease_s,
                    epoch: None,
                    at: Instant::now(),
                })
            }
        }
    }

    /// Check a UPnP grant on the router: the table entry for its external
    /// port must still point at us, and the public address must not have
    /// moved. (NAT-PMP and PCP are checked by renewing, which also repairs.)
    pub async fn upnp_check(
        &self,
        mapping: &MappingConfig,
        grant: &Grant,
    ) -> Result<UpnpCheck, RouterError> {
        let igd = self.upnp.as_ref().ok_or(RouterError::NoIgd)?;
        let entry = igd
            .specific_entry(mapping.protocol, grant.external.port())
            .await?;
        let ours = entry.is_some_and(|e| {
            e.internal_client == IpAddr::V4(self.local)
                && e.internal_port == mapping.internal_port
                && e.enabled
        });
        if !ours {
            return Ok(UpnpCheck::Gone);
        }
        let ip = igd.external_ip().await.map(v4)?;
        if !ip.is_unspecified() && ip != *grant.external.ip() {
            return Ok(UpnpCheck::ExternalIpChanged(ip));
        }
        Ok(UpnpCheck::Holds)
    }

    /// Delete `grant` from the router.
    pub async fn unmap(
        &self,
        mapping: &MappingConfig,
        grant: &Grant,
        nonce: [u8; 12],
    ) -> Result<(), RouterError> {
        match grant.method {
            Method::Pcp => {
                let req = self.pcp_request(mapping, grant.external.port(), 0, nonce);
                pmp::pcp_map(self.addr, &req, PMP_BUDGET, &self.ignored)
                    .await
                    .map(|_| ())
                    .map_err(RouterError::from)
            }
            Method::NatPmp => {
                let req = natpmp::MapRequest::delete(mapping.protocol, mapping.internal_port);
                pmp::natpmp_map(self.addr, self.local, &req, PMP_BUDGET, &self.ignored)
                    .await
                    .map(|_| ())
                    .map_err(RouterError::from)
            }
            Method::Upnp => match &self.upnp {
                Some(igd) => igd
                    .remove(mapping.protocol, grant.external.port())
                    .await
                    .map_err(RouterError::from),
                None => Err(RouterError::NoIgd),
            },
        }
    }

    /// Delete whatever `mapping` may hold on the router although we never
    /// recorded a grant (an answer lost, or a step cut short by shutdown):
    /// PCP by our nonce, NAT-PMP by our internal port, UPnP only after the
    /// table shows the wanted port points at us. Never touches others' entries.
    pub async fn release_unrecorded(&self, mapping: &MappingConfig, nonce: [u8; 12]) {
        let probe_grant = |method| Grant {
            method,
            external: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, mapping.external_port),
            lease_s: 0,
            epoch: None,
            at: Instant::now(),
        };
        for method in self.methods() {
            match method {
                Method::Pcp | Method::NatPmp => {
                    let _ = self.unmap(mapping, &probe_grant(method), nonce).await;
                }
                Method::Upnp => {
                    let g = probe_grant(method);
                    if let Ok(UpnpCheck::Holds | UpnpCheck::ExternalIpChanged(_)) =
                        self.upnp_check(mapping, &g).await
                    {
                        let _ = self.unmap(mapping, &g, nonce).await;
                    }
                }
            }
        }
    }

    fn pcp_request(
        &self,
        mapping: &MappingConfig,
        external_port: u16,
        lease_s: u32,
        nonce: [u8; 12],
    ) -> pcp::MapRequest {
        pcp::MapRequest {
            lifetime_secs: lease_s,
            client_addr: IpAddr::V4(self.local),
            nonce,
            protocol: mapping.protocol,
            internal_port: mapping.internal_port,
            suggested_external_port: external_port,
            suggested_external_addr: None,
        }
    }
}
