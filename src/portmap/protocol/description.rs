//! The IGD's device description (the XML behind SSDP's LOCATION): which WAN
//! connection service the router offers and where its control requests go.
//! Pure and bounded like the SOAP codec it shares the tag reader with.

use super::soap::xml::{extract, extract_all};
use super::soap::SoapError;
use super::ssdp::{location_host, SsdpError};

/// Most `<service>` elements read from one description.
pub const MAX_SERVICES: usize = 64;

/// Service types that can map ports, best first: WANIPConnection:2 has
/// AddAnyPortMapping; PPP links (DSL modems) offer WANPPPConnection:1.
pub const WAN_SERVICES: [&str; 3] = [
    "urn:schemas-upnp-org:service:WANIPConnection:2",
    "urn:schemas-upnp-org:service:WANIPConnection:1",
    "urn:schemas-upnp-org:service:WANPPPConnection:1",
];

/// The IGDv2 service that opens IPv6 pinholes (AddPinhole and friends).
pub const FIREWALL_SERVICE: &str = "urn:schemas-upnp-org:service:WANIPv6FirewallControl:1";

/// The service port mapping talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WanService {
    /// Its service type, one of [`WAN_SERVICES`].
    pub service_type: String,
    /// Absolute `http://` control URL (not yet checked to be the router).
    pub control_url: String,
    /// Absolute control URL of [`FIREWALL_SERVICE`], when the IGD lists
    /// it with a usable URL (not yet checked to be the router).
    pub firewall_control_url: Option<String>,
}

/// Why a description gives no usable service.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DescriptionError {
    /// The XML is oversized or broken.
    #[error("device description: {0}")]
    Xml(#[from] SoapError),
    /// No WANIPConnection or WANPPPConnection service is listed.
    #[error("device description lists no WANIPConnection or WANPPPConnection service")]
    NoWanService,
    /// The base (URLBase or LOCATION) or the control URL is unusable.
    #[error("device description: bad URL {url:?}: {why}")]
    BadUrl {
        /// The URL (first 128 characters).
        url: String,
        /// What is wrong with it.
        why: SsdpError,
    },
}

fn bad_url(url: &str, why: SsdpError) -> DescriptionError {
    DescriptionError::BadUrl {
        url: url.chars().take(128).collect(),
        why,
    }
}

/// Picks the best WAN service of the description fetched from `location`
/// and resolves its control URL against `URLBase` (when present) or
/// `location`.
pub fn parse_description(body: &str, location: &str) -> Result<WanService, DescriptionError> {
    let services = extract_all(body, "service", ["serviceType", "controlURL"], MAX_SERVICES)?;
    let control_of = |wanted: &str| {
        services.iter().find_map(|[service_type, control]| {
            let control = control.as_deref().filter(|c| !c.is_empty())?;
            (service_type.as_deref() == Some(wanted)).then_some(control)
        })
    };
    let (service_type, control) = WAN_SERVICES
        .iter()
        .find_map(|st| Some((*st, control_of(st)?)))
        .ok_or(DescriptionError::NoWanService)?;
    let base = match extract(body, "root", ["URLBase"]) {
        Ok(Some([Some(base)])) if !base.is_empty() => base,
        _ => location.to_owned(),
    };
    Ok(WanService {
        service_type: service_type.to_owned(),
        control_url: resolve(&base, control)?,
        // Optional: an unusable one leaves pinholes to PCP, mapping works.
        firewall_control_url: control_of(FIREWALL_SERVICE).and_then(|c| resolve(&base, c).ok()),
    })
}

/// `reference` made absolute against `base` (RFC 3986 for the forms IGDs
/// use: absolute URL, absolute path, relative path).
fn resolve(base: &str, reference: &str) -> Result<String, DescriptionError> {
    // A scheme (a colon before any slash) makes it absolute: only http://.
    let colon = reference.find(':');
    if colon.is_some() && reference.find('/').is_none_or(|slash| colon < Some(slash)) {
        location_host(reference).map_err(|e| bad_url(reference, e))?;
        return Ok(reference.to_owned());
    }
    let (ip, port, base_path) = location_host(base).map_err(|e| bad_url(base, e))?;
    let authority = match ip {
        std::net::IpAddr::V4(v4) => format!("{v4}:{port}"),
        std::net::IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    };
    let path = if reference.starts_with('/') {
        reference.to_owned()
    } else {
        let path_only = base_path.split(['?', '#']).next().unwrap_or("/");
        let dir = path_only.rsplit_once('/').map_or("", |(dir, _)| dir);
        format!("{dir}/{reference}")
    };
    let url = format!("http://{authority}{path}");
    location_host(&url).map_err(|e| bad_url(&url, e))?;
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCATION: &str = "http://10.77.0.1:5000/rootDesc.xml";

    fn service(service_type: &str, control: &str) -> String {
        format!(
            "<service><serviceType>{service_type}</serviceType><serviceId>x</serviceId>\
<controlURL>{control}</controlURL><eventSubURL>/evt</eventSubURL><SCPDURL>/s.xml</SCPDURL></service>"
        )
    }

    /// The nesting of miniupnpd's rootDesc.xml: IGD > WANDevice > WANConnectionDevice.
    fn description(url_base: &str, services: &[String]) -> String {
        format!(
            "<?xml version=\"1.0\"?>\r\n<root xmlns=\"urn:schemas-upnp-org:device-1-0\">\
<specVersion><major>1</major><minor>0</minor></specVersion>{url_base}<device>\
<deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType><serviceList>{}</serviceList>\
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANDevice:1</deviceType><serviceList>{}\
</serviceList><deviceList><device><deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:1\
</deviceType><serviceList>{}</serviceList></device></deviceList></device></deviceList></device></root>",
            service("urn:schemas-upnp-org:service:Layer3Forwarding:1", "/L3F"),
            service(
                "urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1",
                "/ctl/CmnIfCfg"
            ),
            services.concat()
        )
    }

    #[test]
    fn picks_the_best_wan_service_and_resolves_its_url() {
        let ppp = service(WAN_SERVICES[2], "/ctl/PPP");
        let v1 = service(WAN_SERVICES[1], "/ctl/IPConn");
        let v2 = service(WAN_SERVICES[0], "ctl/IPConn2");
        let parse = |base: &str, s: &[String]| parse_description(&description(base, s), LOCATION);
        let got = parse("", &[ppp.clone(), v1.clone()]);
        let want = WanService {
            service_type: WAN_SERVICES[1].into(),
            control_url: "http://10.77.0.1:5000/ctl/IPConn".into(),
            firewall_control_url: None,
        };
        assert_eq!(got, Ok(want));
        let got = parse("", &[v1.clone(), v2.clone(), ppp.clone()]);
        assert_eq!(
            got.map(|s| (s.service_type, s.control_url)),
            Ok((
                WAN_SERVICES[0].into(),
                "http://10.77.0.1:5000/ctl/IPConn2".into()
            ))
        );
        let got = parse("", std::slice::from_ref(&ppp)).map(|s| s.control_url);
        assert_eq!(got, Ok("http://10.77.0.1:5000/ctl/PPP".into()));
        let base = "<URLBase>http://10.77.0.1:49152/igd/</URLBase>";
        let got = parse(base, std::slice::from_ref(&v2)).map(|s| s.control_url);
        assert_eq!(got, Ok("http://10.77.0.1:49152/igd/ctl/IPConn2".into()));
        let absolute = service(WAN_SERVICES[1], "http://10.77.0.1:1780/ctl");
        let got = parse(base, &[absolute]).map(|s| s.control_url);
        assert_eq!(got, Ok("http://10.77.0.1:1780/ctl".into()));
    }

    #[test]
    fn the_ipv6_firewall_service_is_read_when_listed() {
        let v2 = service(WAN_SERVICES[0], "/ctl/IPConn");
        let firewall = |control: &str| service(FIREWALL_SERVICE, control);
        let parse = |s: &[String]| parse_description(&description("", s), LOCATION);
        let got = parse(&[v2.clone(), firewall("/ctl/IP6FCtl")]).map(|s| s.firewall_control_url);
        assert_eq!(got, Ok(Some("http://10.77.0.1:5000/ctl/IP6FCtl".into())));
        // Listed before the WAN service, as some IGDs do: found the same.
        let got = parse(&[firewall("ctl/6"), v2.clone()]).map(|s| s.firewall_control_url);
        assert_eq!(got, Ok(Some("http://10.77.0.1:5000/ctl/6".into())));
        for unusable in ["", "https://10.77.0.1/ctl", "http://router.lan/ctl"] {
            let got = parse(&[v2.clone(), firewall(unusable)]);
            assert_eq!(
                got.map(|s| (s.control_url, s.firewall_control_url)),
                Ok(("http://10.77.0.1:5000/ctl/IPConn".into(), None)),
                "{unusable:?}"
            );
        }
        assert_eq!(
            parse(&[firewall("/ctl/IP6FCtl")]),
            Err(DescriptionError::NoWanService),
            "a firewall alone maps no port"
        );
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        let parse = |s: &[String]| parse_description(&description("", s), LOCATION);
        assert_eq!(parse(&[]), Err(DescriptionError::NoWanService));
        let empty = service(WAN_SERVICES[1], "");
        assert_eq!(parse(&[empty]), Err(DescriptionError::NoWanService));
        let https = service(WAN_SERVICES[1], "https://10.77.0.1/ctl");
        assert!(matches!(
            parse(&[https]),
            Err(DescriptionError::BadUrl { .. })
        ));
        let named = service(WAN_SERVICES[1], "http://router.lan/ctl");
        assert!(matches!(
            parse(&[named]),
            Err(DescriptionError::BadUrl { .. })
        ));
        let v1 = service(WAN_SERVICES[1], "/ctl");
        let bad_base = parse_description(&description("", &[v1]), "ftp://x/");
        assert!(matches!(bad_base, Err(DescriptionError::BadUrl { .. })));
        let huge = " ".repeat(super::super::soap::MAX_BODY_LEN + 1);
        let e = parse_description(&huge, LOCATION);
        assert!(matches!(
            e,
            Err(DescriptionError::Xml(SoapError::TooLarge(_)))
        ));
        let broken = description("", &[service(WAN_SERVICES[1], "/ctl")]).replace("</root>", "");
        assert!(
            parse_description(&broken, LOCATION).is_ok(),
            "services read before the break"
        );
        let cut = &description("", &[service(WAN_SERVICES[1], "/ctl")])[..300];
        assert!(parse_description(cut, LOCATION).is_err());
    }
}
