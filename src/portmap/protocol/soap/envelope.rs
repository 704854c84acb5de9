//! The SOAP envelope: building an action request, reading a UPnP fault.

use super::error::UpnpFault;
use super::xml::{extract, xml_escape};

pub use crate::primitives::Protocol;

/// Builds the request for `action` of `service_type` (e.g.
/// `urn:schemas-upnp-org:service:WANIPConnection:1`) with `args` in order:
/// returns the SOAPAction header value (quoted, `"<service>#<action>"`) and
/// the XML body. Argument values are escaped. Characters that cannot appear
/// in a URN or an HTTP header (controls, spaces, quotes, backslashes,
/// non-ASCII) are dropped from `service_type` first, so a hostile device
/// description cannot inject headers.
pub fn action_request(service_type: &str, action: &str, args: &[(&str, &str)]) -> (String, String) {
    let service: String = service_type
        .chars()
        .filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\')
        .collect();
    let mut body = format!(
        "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" \
s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>\
<u:{action} xmlns:u=\"{}\">",
        xml_escape(&service)
    );
    for (name, value) in args {
        body.push_str(&format!("<{name}>{}</{name}>", xml_escape(value)));
    }
    body.push_str(&format!("</u:{action}></s:Body></s:Envelope>\r\n"));
    (format!("\"{service}#{action}\""), body)
}

/// Reads `errorCode` and `errorDescription` from the `UPnPError` detail of
/// a SOAP fault. `None` if there is none, the code is not a number, or the
/// body is oversized or malformed.
pub fn parse_soap_fault(body: &str) -> Option<UpnpFault> {
    let [code, description] =
        extract(body, "UPnPError", ["errorCode", "errorDescription"]).ok()??;
    Some(UpnpFault {
        code: decimal(&code?).and_then(|n| u16::try_from(n).ok())?,
        description: description.unwrap_or_default(),
    })
}

/// Parses a plain decimal `u32` (no sign).
pub(super) fn decimal(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}
