//! The WANIPConnection actions that create, delete and read port mappings
//! and the public address: request builders and response decoders.

use std::net::{IpAddr, Ipv4Addr};

use super::envelope::{action_request, decimal, parse_soap_fault, Protocol};
use super::error::SoapError;
use super::xml::extract;

/// `AddPortMapping`: map a fixed external port.
pub const ADD_PORT_MAPPING: &str = "AddPortMapping";
/// `AddAnyPortMapping` (WANIPConnection:2): the router may pick another port.
pub const ADD_ANY_PORT_MAPPING: &str = "AddAnyPortMapping";
/// `DeletePortMapping`.
pub const DELETE_PORT_MAPPING: &str = "DeletePortMapping";
/// `GetExternalIPAddress`.
pub const GET_EXTERNAL_IP_ADDRESS: &str = "GetExternalIPAddress";

/// What a mapping request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MappingRequest<'a> {
    /// Transport protocol.
    pub protocol: Protocol,
    /// Port wanted on the router's public side.
    pub external_port: u16,
    /// Our address on the LAN.
    pub internal_client: Ipv4Addr,
    /// Our port.
    pub internal_port: u16,
    /// Lease in seconds, 0 for permanent.
    pub lease_s: u32,
    /// Shown in the router's table.
    pub description: &'a str,
}

fn mapping_request(service_type: &str, action: &str, m: &MappingRequest) -> (String, String) {
    action_request(
        service_type,
        action,
        &[
            ("NewRemoteHost", ""),
            ("NewExternalPort", &m.external_port.to_string()),
            ("NewProtocol", m.protocol.igd_name()),
            ("NewInternalPort", &m.internal_port.to_string()),
            ("NewInternalClient", &m.internal_client.to_string()),
            ("NewEnabled", "1"),
            ("NewPortMappingDescription", m.description),
            ("NewLeaseDuration", &m.lease_s.to_string()),
        ],
    )
}

/// Builds an `AddPortMapping` request: SOAPAction value and body.
pub fn add_port_mapping_request(service_type: &str, m: &MappingRequest) -> (String, String) {
    mapping_request(service_type, ADD_PORT_MAPPING, m)
}

/// Builds an `AddAnyPortMapping` request: SOAPAction value and body.
pub fn add_any_port_mapping_request(service_type: &str, m: &MappingRequest) -> (String, String) {
    mapping_request(service_type, ADD_ANY_PORT_MAPPING, m)
}

/// Builds a `DeletePortMapping` request: SOAPAction value and body.
pub fn delete_port_mapping_request(
    service_type: &str,
    protocol: Protocol,
    external_port: u16,
) -> (String, String) {
    action_request(
        service_type,
        DELETE_PORT_MAPPING,
        &[
            ("NewRemoteHost", ""),
            ("NewExternalPort", &external_port.to_string()),
            ("NewProtocol", protocol.igd_name()),
        ],
    )
}

/// Builds a `GetExternalIPAddress` request: SOAPAction value and body.
pub fn get_external_ip_request(service_type: &str) -> (String, String) {
    action_request(service_type, GET_EXTERNAL_IP_ADDRESS, &[])
}

/// The fault in `body` as an error, or that the response element is missing.
fn fault_or_missing(body: &str, response: &'static str) -> SoapError {
    match parse_soap_fault(body) {
        Some(fault) => SoapError::Fault(fault),
        None => SoapError::MissingResponse(response),
    }
}

/// Decodes the answer to an action without output arguments
/// (`AddPortMapping`, `DeletePortMapping`): `Ok` when the response element
/// is there, the router's fault otherwise.
pub fn parse_empty_response(body: &str, response: &'static str) -> Result<(), SoapError> {
    match extract(body, response, [])? {
        Some(_) => Ok(()),
        None => Err(fault_or_missing(body, response)),
    }
}

/// The one output argument `name` of `response`, parsed by `parse`.
fn single_output<T>(
    body: &str,
    response: &'static str,
    name: &'static str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<T, SoapError> {
    let Some([value]) = extract(body, response, [name])? else {
        return Err(fault_or_missing(body, response));
    };
    let value = value.ok_or(SoapError::MissingElement(name))?;
    parse(&value).ok_or_else(|| SoapError::InvalidValue(name, value.chars().take(64).collect()))
}

/// Decodes `GetExternalIPAddressResponse`. An empty address (the router has
/// none yet) is [`SoapError::InvalidValue`].
pub fn parse_external_ip_response(body: &str) -> Result<IpAddr, SoapError> {
    single_output(
        body,
        "GetExternalIPAddressResponse",
        "NewExternalIPAddress",
        |ip| ip.parse().ok(),
    )
}

/// Decodes `AddAnyPortMappingResponse`: the external port granted.
pub fn parse_add_any_response(body: &str) -> Result<u16, SoapError> {
    single_output(
        body,
        "AddAnyPortMappingResponse",
        "NewReservedPort",
        |port| {
            decimal(port)
                .and_then(|n| u16::try_from(n).ok())
                .filter(|&n| n != 0)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::super::UpnpFault;
    use super::*;

    const ST: &str = "urn:schemas-upnp-org:service:WANIPConnection:2";

    fn envelope(inner: &str) -> String {
        format!(
            "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" \
s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>{inner}</s:Body></s:Envelope>\r\n"
        )
    }

    fn fault(code: u16) -> String {
        envelope(&format!(
            "<s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail>\
<UPnPError xmlns=\"urn:schemas-upnp-org:control-1-0\"><errorCode>{code}</errorCode>\
<errorDescription>x</errorDescription></UPnPError></detail></s:Fault>"
        ))
    }

    #[test]
    fn requests_carry_every_argument_in_order() {
        let m = MappingRequest {
            protocol: Protocol::Udp,
            external_port: 41641,
            internal_client: Ipv4Addr::new(10, 77, 0, 20),
            internal_port: 41642,
            lease_s: 3600,
            description: "edgereach <gw> & co",
        };
        let (action, body) = add_port_mapping_request(ST, &m);
        assert_eq!(action, format!("\"{ST}#AddPortMapping\""));
        let args = "<NewRemoteHost></NewRemoteHost><NewExternalPort>41641</NewExternalPort>\
<NewProtocol>UDP</NewProtocol><NewInternalPort>41642</NewInternalPort>\
<NewInternalClient>10.77.0.20</NewInternalClient><NewEnabled>1</NewEnabled>\
<NewPortMappingDescription>edgereach &lt;gw&gt; &amp; co</NewPortMappingDescription>\
<NewLeaseDuration>3600</NewLeaseDuration>";
        let inner = format!("<u:AddPortMapping xmlns:u=\"{ST}\">{args}</u:AddPortMapping>");
        assert_eq!(body, envelope(&inner));
        let (action, body) = add_any_port_mapping_request(ST, &m);
        assert_eq!(action, format!("\"{ST}#AddAnyPortMapping\""));
        assert!(body.contains(&format!("xmlns:u=\"{ST}\">{args}</u:AddAnyPortMapping>")));
        let (action, body) = delete_port_mapping_request(ST, Protocol::Tcp, 80);
        assert_eq!(action, format!("\"{ST}#DeletePortMapping\""));
        assert!(body.contains("<NewExternalPort>80</NewExternalPort><NewProtocol>TCP<"));
        let (action, body) = get_external_ip_request(ST);
        assert_eq!(action, format!("\"{ST}#GetExternalIPAddress\""));
        assert!(body.contains(&format!("<u:GetExternalIPAddress xmlns:u=\"{ST}\"></u:")));
    }

    #[test]
    fn responses_and_faults() {
        let ok = envelope(&format!("<u:AddPortMappingResponse xmlns:u=\"{ST}\"/>"));
        assert_eq!(parse_empty_response(&ok, "AddPortMappingResponse"), Ok(()));
        let ok =
            envelope("<u:DeletePortMappingResponse xmlns:u=\"x\">\n</u:DeletePortMappingResponse>");
        assert_eq!(
            parse_empty_response(&ok, "DeletePortMappingResponse"),
            Ok(())
        );
        let f = |code| {
            SoapError::Fault(UpnpFault {
                code,
                description: "x".into(),
            })
        };
        assert_eq!(
            parse_empty_response(&fault(718), "AddPortMappingResponse"),
            Err(f(718))
        );
        assert_eq!(
            parse_empty_response(&envelope(""), "AddPortMappingResponse"),
            Err(SoapError::MissingResponse("AddPortMappingResponse"))
        );
        let ip = envelope(
            "<u:GetExternalIPAddressResponse xmlns:u=\"x\"><NewExternalIPAddress> 203.0.113.2 \
</NewExternalIPAddress></u:GetExternalIPAddressResponse>",
        );
        assert_eq!(
            parse_external_ip_response(&ip),
            Ok(IpAddr::from([203, 0, 113, 2]))
        );
        let none = envelope(
            "<u:GetExternalIPAddressResponse><NewExternalIPAddress/></u:GetExternalIPAddressResponse>",
        );
        let invalid = SoapError::InvalidValue("NewExternalIPAddress", String::new());
        assert_eq!(parse_external_ip_response(&none), Err(invalid));
        assert_eq!(parse_external_ip_response(&fault(501)), Err(f(501)));
        let any = |v: &str| {
            parse_add_any_response(&envelope(&format!(
                "<u:AddAnyPortMappingResponse><NewReservedPort>{v}</NewReservedPort>\
</u:AddAnyPortMappingResponse>"
            )))
        };
        assert_eq!(any("41642"), Ok(41642));
        for bad in ["0", "65536", "-1", "x"] {
            let e = SoapError::InvalidValue("NewReservedPort", bad.into());
            assert_eq!(any(bad), Err(e));
        }
        assert_eq!(parse_add_any_response(&fault(725)), Err(f(725)));
        let huge = " ".repeat(super::super::MAX_BODY_LEN + 1);
        assert!(matches!(
            parse_add_any_response(&huge),
            Err(SoapError::TooLarge(_))
        ));
    }
}
