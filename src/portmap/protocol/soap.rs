//! SOAP codec for what igd-next does not do: `GetSpecificPortMappingEntry`
//! (the periodic check that our mapping is still in the router's table) and
//! UPnP faults. The mapping actions themselves go through igd-next
//! (`portmap::upnp`). A tiny bounded, non-recursive tag reader (the `xml`
//! module, shared with the device description) stands in for an XML crate:
//! elements match on their local name, whatever their namespace prefix.

use std::net::IpAddr;

mod envelope;
mod error;
pub(super) mod xml;
use envelope::decimal;
pub use envelope::{action_request, parse_soap_fault, Protocol};
pub use error::{SoapError, UpnpFault, MAX_BODY_LEN};
use xml::extract;
pub use xml::xml_escape;

/// Name of the action this module encodes.
pub const GET_SPECIFIC_ENTRY_ACTION: &str = "GetSpecificPortMappingEntry";

/// A port mapping as returned by `GetSpecificPortMappingEntry`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecificEntry {
    /// NewInternalPort.
    pub internal_port: u16,
    /// NewInternalClient.
    pub internal_client: IpAddr,
    /// NewEnabled.
    pub enabled: bool,
    /// NewPortMappingDescription, entities decoded, surrounding whitespace trimmed.
    pub description: String,
    /// NewLeaseDuration in seconds remaining (0 means permanent).
    pub lease_duration: u32,
}

/// Builds a `GetSpecificPortMappingEntry` request (see [`action_request`]).
pub fn get_specific_entry_request(
    service_type: &str,
    external_port: u16,
    protocol: Protocol,
) -> (String, String) {
    action_request(
        service_type,
        GET_SPECIFIC_ENTRY_ACTION,
        &[
            ("NewRemoteHost", ""),
            ("NewExternalPort", &external_port.to_string()),
            ("NewProtocol", protocol.igd_name()),
        ],
    )
}

/// Decodes a `GetSpecificPortMappingEntryResponse`. A UPnP fault in the body
/// is returned as [`SoapError::Fault`].
pub fn parse_get_specific_entry_response(body: &str) -> Result<SpecificEntry, SoapError> {
    const NAMES: [&str; 5] = [
        "NewInternalPort",
        "NewInternalClient",
        "NewEnabled",
        "NewPortMappingDescription",
        "NewLeaseDuration",
    ];
    let Some(fields) = extract(body, "GetSpecificPortMappingEntryResponse", NAMES)? else {
        return Err(match parse_soap_fault(body) {
            Some(fault) => SoapError::Fault(fault),
            None => SoapError::MissingResponse("GetSpecificPortMappingEntryResponse"),
        });
    };
    let [port, client, enabled, description, lease] = fields;
    let need = |v: Option<String>, i: usize| v.ok_or(SoapError::MissingElement(NAMES[i]));
    let invalid =
        |i: usize, v: &str| SoapError::InvalidValue(NAMES[i], v.chars().take(64).collect());
    let port = need(port, 0)?;
    let client = need(client, 1)?;
    let enabled = need(enabled, 2)?;
    let description = need(description, 3)?;
    let lease = need(lease, 4)?;
    Ok(SpecificEntry {
        internal_port: decimal(&port)
            .and_then(|n| u16::try_from(n).ok())
            .filter(|&n| n != 0)
            .ok_or_else(|| invalid(0, &port))?,
        internal_client: client.parse().map_err(|_| invalid(1, &client))?,
        enabled: match enabled.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" => true,
            "0" | "false" | "no" => false,
            _ => return Err(invalid(2, &enabled)),
        },
        description,
        lease_duration: decimal(&lease).ok_or_else(|| invalid(4, &lease))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use parse_get_specific_entry_response as parse;

    const ENVELOPE: &str = "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" \
s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>";
    /// A miniupnpd 2.3.1 answer as captured (internal client changed).
    const GOLDEN: &str = "<?xml version=\"1.0\"?>\r\n<s:Envelope \
xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" \
s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>\
<u:GetSpecificPortMappingEntryResponse xmlns:u=\"urn:schemas-upnp-org:service:WANIPConnection:1\">\
<NewInternalPort>41641</NewInternalPort><NewInternalClient>192.168.1.20</NewInternalClient>\
<NewEnabled>1</NewEnabled><NewPortMappingDescription>edgereach &amp; &lt;tailscale&gt; \
&quot;x&quot;</NewPortMappingDescription><NewLeaseDuration>3599</NewLeaseDuration>\
</u:GetSpecificPortMappingEntryResponse></s:Body></s:Envelope>\r\n";
    const ARGS: [&str; 5] = [
        "<NewInternalPort>41641</NewInternalPort>",
        "<NewInternalClient>192.168.1.20</NewInternalClient>",
        "<NewEnabled>1</NewEnabled>",
        "<NewPortMappingDescription>d</NewPortMappingDescription>",
        "<NewLeaseDuration>0</NewLeaseDuration>",
    ];

    /// A UPnP fault exactly as miniupnpd 2.3.1 sends it.
    fn fault(code: &str, text: &str) -> String {
        format!(
            "{ENVELOPE}<s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError\
</faultstring><detail><UPnPError xmlns=\"urn:schemas-upnp-org:control-1-0\"><errorCode>\
{code}</errorCode><errorDescription>{text}</errorDescription></UPnPError></detail>\
</s:Fault></s:Body></s:Envelope>"
        )
    }

    /// Parses a response whose argument `i` is replaced by `arg`.
    fn with(i: usize, arg: &str) -> Result<SpecificEntry, SoapError> {
        let mut args = ARGS;
        args[i] = arg;
        parse(&format!(
            "{ENVELOPE}<m:GetSpecificPortMappingEntryResponse xmlns:m=\"x\">{}\
</m:GetSpecificPortMappingEntryResponse></s:Body></s:Envelope>",
            args.concat()
        ))
    }

    #[test]
    fn request_golden() {
        let (action, body) = get_specific_entry_request(ST_V1, 41641, Protocol::Udp);
        assert_eq!(action, format!("\"{ST_V1}#GetSpecificPortMappingEntry\""));
        let expected = format!(
            "<?xml version=\"1.0\"?>\r\n{ENVELOPE}<u:GetSpecificPortMappingEntry \
xmlns:u=\"{ST_V1}\"><NewRemoteHost></NewRemoteHost><NewExternalPort>41641</NewExternalPort>\
<NewProtocol>UDP</NewProtocol></u:GetSpecificPortMappingEntry></s:Body></s:Envelope>\r\n"
        );
        assert_eq!(body, expected);
        let (action, body) = get_specific_entry_request("urn:a&b\"\r\nX: y:1", 80, Protocol::Tcp);
        assert_eq!(action, "\"urn:a&bX:y:1#GetSpecificPortMappingEntry\"");
        assert!(body.contains("xmlns:u=\"urn:a&amp;bX:y:1\"") && body.contains(">TCP<"));
    }
    const ST_V1: &str = "urn:schemas-upnp-org:service:WANIPConnection:1";

    #[test]
    fn golden_response_and_faults() {
        let entry = SpecificEntry {
            internal_port: 41641,
            internal_client: IpAddr::from([192, 168, 1, 20]),
            enabled: true,
            description: "edgereach & <tailscale> \"x\"".into(),
            lease_duration: 3599,
        };
        assert_eq!(parse(GOLDEN), Ok(entry));
        assert_eq!(parse_soap_fault(GOLDEN), None);
        for (code, text) in [
            (714, "NoSuchEntryInArray"),
            (718, "ConflictInMappingEntry"),
            (725, "OnlyPermanentLeasesSupported"),
            (402, "Invalid Args"),
        ] {
            let body = fault(&code.to_string(), text);
            let f = UpnpFault {
                code,
                description: text.into(),
            };
            assert_eq!(parse_soap_fault(&body), Some(f.clone()));
            assert_eq!(parse(&body), Err(SoapError::Fault(f)));
        }
        let e = parse(&fault("714", "NoSuchEntryInArray"));
        let msg = e.err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(msg, "router returned UPnP error 714 (NoSuchEntryInArray)");
        let loose =
            "<e:UPnPError xmlns:e=\"u\">\n <e:errorCode> 501 </e:errorCode>\n</e:UPnPError>";
        let f = parse_soap_fault(loose).map(|f| (f.code, f.description));
        assert_eq!(f, Some((UpnpFault::ACTION_FAILED, String::new())));
        let unclosed = "<UPnPError><errorCode>1</errorCode>".to_owned();
        for body in [
            fault("7x4", "x"),
            fault("", "x"),
            fault("65536", "x"),
            unclosed,
        ] {
            assert_eq!(parse_soap_fault(&body), None, "{body}");
        }
        assert_eq!(parse_soap_fault("<UPnPError/>"), None);
    }

    #[test]
    fn tolerant_layouts() {
        let body = "<?xml version=\"1.0\"?>\n<Envelope><Body>\n <!-- hi -->\n \
<GetSpecificPortMappingEntryResponse a='>' b=\"/>\">\n  <NewLeaseDuration> 7200 </NewLeaseDuration>\n\
  <Extra><Deep>1</Deep></Extra>\n  <r:NewInternalClient xmlns:r='x'>fd00::20</r:NewInternalClient >\n\
  <NewEnabled>false</NewEnabled>\n  <NewInternalPort>\n41641\n</NewInternalPort>\n\
  <NewPortMappingDescription><![CDATA[a <b> &amp;]]></NewPortMappingDescription>\n\
 </GetSpecificPortMappingEntryResponse>\n</Body></Envelope> trailing";
        let e = parse(body).unwrap();
        assert_eq!((e.internal_port, e.enabled), (41641, false));
        assert_eq!(e.lease_duration, 7200);
        assert_eq!(e.internal_client.to_string(), "fd00::20");
        assert_eq!(e.description, "a <b> &amp;");
        let empty = with(3, "<NewPortMappingDescription/>").map(|e| e.description);
        assert_eq!(empty, Ok(String::new()));
        assert!(with(2, "<NewEnabled>YES</NewEnabled>").is_ok_and(|e| e.enabled));
    }

    #[test]
    fn error_paths() {
        use SoapError as E;
        let huge = " ".repeat(MAX_BODY_LEN + 1);
        let e = parse(&huge);
        assert_eq!(e, Err(E::TooLarge(MAX_BODY_LEN + 1)));
        assert_eq!(parse_soap_fault(&huge), None);
        let e = parse(&huge[1..]);
        let name = "GetSpecificPortMappingEntryResponse";
        assert_eq!(e, Err(E::MissingResponse(name)));
        let e = parse("<GetSpecificPortMappingEntryResponse/>");
        assert_eq!(e, Err(E::MissingElement("NewInternalPort")));
        let names = ARGS.map(|a| a.get(1..a.find('>').unwrap_or(1)).unwrap_or_default());
        for (i, name) in names.into_iter().enumerate() {
            assert_eq!(with(i, ""), Err(E::MissingElement(name)));
        }
        let e = with(4, &ARGS[4].repeat(2));
        assert_eq!(e, Err(E::DuplicateElement("NewLeaseDuration")));
        let long = "9".repeat(100);
        let values = [
            (0, "0"),
            (0, "65536"),
            (0, "+1"),
            (0, ""),
            (1, "gw.lan"),
            (2, "2"),
        ];
        for (i, value) in values.into_iter().chain([(4, "-1"), (4, &long)]) {
            let arg = format!("<{0}>{value}</{0}>", names[i]);
            let shown = value.get(..64).unwrap_or(value).to_owned();
            assert_eq!(with(i, &arg), Err(E::InvalidValue(names[i], shown)));
        }
        let e = with(2, "<NewEnabled><b/>1</NewEnabled>");
        assert!(matches!(
            e,
            Err(E::Malformed(_, "element inside an argument"))
        ));
        let e = parse("<x:GetSpecificPortMappingEntryResponse><NewEnabled>");
        assert!(matches!(
            e,
            Err(E::Malformed(_, "unclosed response element"))
        ));
    }

    #[test]
    fn never_panics_on_truncation_or_mutation() {
        let inputs = [GOLDEN.to_owned(), fault("714", "NoSuchEntryInArray")];
        let check = |b: &[u8]| {
            let s = String::from_utf8_lossy(b);
            let _ = (parse(&s), parse_soap_fault(&s));
        };
        for input in &inputs {
            (0..=input.len()).for_each(|end| check(&input.as_bytes()[..end]));
        }
        let mut state = 0x2545_F491_4F6C_DD1D_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let tokens: Vec<&str> = "<|>|/|&|;|&#x|]]>|<![CDATA[|<!--|<?|'|:"
            .split('|')
            .collect();
        for round in 0..4000 {
            let mut d = inputs[round % 2].clone().into_bytes();
            for _ in 0..1 + next() % 8 {
                let at = (next() as usize) % (d.len() + 1);
                match next() % 4 {
                    0 if at < d.len() => d[at] = next() as u8,
                    1 if at < d.len() => _ = d.remove(at),
                    2 => d.insert(at, next() as u8),
                    _ => {
                        let t = tokens[(next() as usize) % tokens.len()];
                        d.splice(at..at, t.bytes());
                    }
                }
            }
            check(&d);
        }
    }
}
