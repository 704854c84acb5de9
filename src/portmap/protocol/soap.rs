//! SOAP codec for the IGD action igd-next lacks, `GetSpecificPortMappingEntry`,
//! plus UPnP fault decoding. A tiny bounded, non-recursive tag reader stands
//! in for an XML crate: elements are matched on their local name.

use std::net::IpAddr;

/// Largest SOAP body the parsers accept, in bytes.
pub const MAX_BODY_LEN: usize = 64 * 1024;
/// Deepest element nesting the parsers accept.
const MAX_DEPTH: usize = 32;
/// Name of the action this module encodes.
pub const GET_SPECIFIC_ENTRY_ACTION: &str = "GetSpecificPortMappingEntry";

/// Transport protocol of a port mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
}

impl Protocol {
    /// The IGD spelling, `"UDP"` or `"TCP"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Udp => "UDP",
            Protocol::Tcp => "TCP",
        }
    }
}

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

/// A UPnP error carried in a SOAP fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpnpFault {
    /// errorCode, e.g. [`UpnpFault::NO_SUCH_ENTRY_IN_ARRAY`].
    pub code: u16,
    /// errorDescription (empty when absent).
    pub description: String,
}

impl UpnpFault {
    /// 402 Invalid Args.
    pub const INVALID_ARGS: u16 = 402;
    /// 501 Action Failed.
    pub const ACTION_FAILED: u16 = 501;
    /// 606 Action not authorized.
    pub const NOT_AUTHORIZED: u16 = 606;
    /// 714 NoSuchEntryInArray: the mapping does not exist.
    pub const NO_SUCH_ENTRY_IN_ARRAY: u16 = 714;
    /// 718 ConflictInMappingEntry: the port is mapped to another client.
    pub const CONFLICT_IN_MAPPING_ENTRY: u16 = 718;
    /// 724 SamePortValuesRequired.
    pub const SAME_PORT_VALUES_REQUIRED: u16 = 724;
    /// 725 OnlyPermanentLeasesSupported: retry with lease duration 0.
    pub const ONLY_PERMANENT_LEASES_SUPPORTED: u16 = 725;
}

/// What went wrong decoding a SOAP response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SoapError {
    /// The body exceeds [`MAX_BODY_LEN`].
    #[error("SOAP body is {0} bytes, more than the {MAX_BODY_LEN} allowed")]
    TooLarge(usize),
    /// The XML is broken at byte `offset`.
    #[error("malformed SOAP XML at byte {offset}: {reason}")]
    Malformed {
        /// Byte offset into the body.
        offset: usize,
        /// What was wrong there.
        reason: &'static str,
    },
    /// The router answered with a UPnP fault.
    #[error("router returned UPnP error {} ({})", .0.code, .0.description)]
    Fault(UpnpFault),
    /// Neither the expected response element nor a fault is present.
    #[error("SOAP body has no <{0}> element")]
    MissingResponse(&'static str),
    /// A required argument is missing from the response.
    #[error("SOAP response has no <{0}> element")]
    MissingElement(&'static str),
    /// An argument appears twice.
    #[error("SOAP response has more than one <{0}> element")]
    DuplicateElement(&'static str),
    /// An argument's text does not parse.
    #[error("SOAP response element <{element}> has invalid value {value:?}")]
    InvalidValue {
        /// The element.
        element: &'static str,
        /// Its text (at most 64 characters).
        value: String,
    },
}

/// Escapes `& < > " '` for XML text and attribute values and drops
/// characters XML 1.0 cannot carry (C0 controls other than tab, LF and CR,
/// U+FFFE and U+FFFF).
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c < ' ' || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// Builds a `GetSpecificPortMappingEntry` request for `service_type` (e.g.
/// `urn:schemas-upnp-org:service:WANIPConnection:1`): returns the SOAPAction
/// header value (quoted, `"<service>#GetSpecificPortMappingEntry"`) and the
/// XML body. Characters that cannot appear in a URN or an HTTP header
/// (controls, spaces, quotes, backslashes, non-ASCII) are dropped from
/// `service_type` first, so a hostile device description cannot inject headers.
pub fn get_specific_entry_request(
    service_type: &str,
    external_port: u16,
    protocol: Protocol,
) -> (String, String) {
    let service: String = service_type
        .chars()
        .filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\')
        .collect();
    let action = format!("\"{service}#{GET_SPECIFIC_ENTRY_ACTION}\"");
    let body = format!(
        "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" \
s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>\
<u:{GET_SPECIFIC_ENTRY_ACTION} xmlns:u=\"{}\"><NewRemoteHost></NewRemoteHost>\
<NewExternalPort>{external_port}</NewExternalPort><NewProtocol>{}</NewProtocol>\
</u:{GET_SPECIFIC_ENTRY_ACTION}></s:Body></s:Envelope>\r\n",
        xml_escape(&service),
        protocol.as_str()
    );
    (action, body)
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
    let invalid = |i: usize, v: &str| SoapError::InvalidValue {
        element: NAMES[i],
        value: v.chars().take(64).collect(),
    };
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
fn decimal(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// One piece of markup or text.
enum Token<'a> {
    Start { qname: &'a str, empty: bool },
    End { qname: &'a str },
    Text(&'a str),
    CData(&'a str),
}

/// Strips a namespace prefix: `u:Foo` -> `Foo`.
fn local_name(qname: &str) -> &str {
    qname.rsplit_once(':').map_or(qname, |(_, local)| local)
}

/// Returns the next token at `*pos` and advances, `None` at the end.
fn next_token<'a>(src: &'a str, pos: &mut usize) -> Result<Option<Token<'a>>, SoapError> {
    loop {
        let at = *pos;
        let bad = |reason| SoapError::Malformed { offset: at, reason };
        let Some(rest) = src.get(at..).filter(|r| !r.is_empty()) else {
            return Ok(None);
        };
        let skip_to = |open: usize, close: &str, what| {
            let inner = rest.get(open..).ok_or(bad(what))?;
            let end = inner.find(close).ok_or(bad(what))?;
            Ok::<_, SoapError>((
                inner.get(..end).unwrap_or_default(),
                open + end + close.len(),
            ))
        };
        if !rest.starts_with('<') {
            let len = rest.find('<').unwrap_or(rest.len());
            *pos = at + len;
            return Ok(Some(Token::Text(rest.get(..len).unwrap_or_default())));
        }
        if rest.starts_with("<?") {
            *pos = at + skip_to(2, "?>", "unterminated processing instruction")?.1;
        } else if rest.starts_with("<!--") {
            *pos = at + skip_to(4, "-->", "unterminated comment")?.1;
        } else if rest.starts_with("<![CDATA[") {
            let (inner, len) = skip_to(9, "]]>", "unterminated CDATA section")?;
            *pos = at + len;
            return Ok(Some(Token::CData(inner)));
        } else if rest.starts_with("<!") {
            return Err(bad("document type declarations are not allowed"));
        } else if let Some(tail) = rest.strip_prefix("</") {
            let end = tail.find('>').ok_or(bad("unterminated end tag"))?;
            let qname = tail.get(..end).unwrap_or_default().trim_end();
            if qname.is_empty() || qname.contains(char::is_whitespace) {
                return Err(bad("invalid end tag"));
            }
            *pos = at + 2 + end + 1;
            return Ok(Some(Token::End { qname }));
        } else {
            // Find the closing '>' outside quoted attribute values.
            let mut quote = None;
            let close = rest.bytes().enumerate().skip(1).find_map(|(i, b)| {
                match (quote, b) {
                    (None, b'"' | b'\'') => quote = Some(b),
                    (Some(q), _) if q == b => quote = None,
                    (None, b'>') => return Some(i),
                    _ => {}
                }
                None
            });
            let close = close.ok_or(bad("unterminated start tag"))?;
            let inside = rest.get(1..close).unwrap_or_default();
            let empty = inside.ends_with('/');
            let inside = inside.strip_suffix('/').unwrap_or(inside);
            let name_len = inside.find(char::is_whitespace).unwrap_or(inside.len());
            let qname = inside.get(..name_len).unwrap_or_default();
            if qname.is_empty() || qname.contains(['<', '&', '=', '"', '\'']) {
                return Err(bad("invalid start tag"));
            }
            *pos = at + close + 1;
            return Ok(Some(Token::Start { qname, empty }));
        }
    }
}

/// Appends `text` with the five predefined and numeric entities decoded;
/// anything else after `&` is kept literally.
fn decode_into(text: &str, out: &mut String) {
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(rest.get(..amp).unwrap_or_default());
        let after = rest.get(amp + 1..).unwrap_or_default();
        let entity = after.find(';').filter(|&semi| semi <= 8).and_then(|semi| {
            let name = after.get(..semi)?;
            let c = match name {
                "amp" => '&',
                "lt" => '<',
                "gt" => '>',
                "quot" => '"',
                "apos" => '\'',
                _ => {
                    let num = name.strip_prefix('#')?;
                    let (digits, radix) = match num.strip_prefix(['x', 'X']) {
                        Some(hex) => (hex, 16),
                        None => (num, 10),
                    };
                    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
                        return None;
                    }
                    char::from_u32(u32::from_str_radix(digits, radix).ok()?)
                        .filter(|&c| c != '\0')?
                }
            };
            Some((c, semi + 1))
        });
        match entity {
            Some((c, len)) => {
                out.push(c);
                rest = after.get(len..).unwrap_or_default();
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
}

/// Finds the first element named `container` (local name) and returns the
/// trimmed, decoded text of its direct leaf children named in `wanted`, or
/// `None` if there is no such element.
fn extract<const N: usize>(
    body: &str,
    container: &str,
    wanted: [&'static str; N],
) -> Result<Option<[Option<String>; N]>, SoapError> {
    if body.len() > MAX_BODY_LEN {
        return Err(SoapError::TooLarge(body.len()));
    }
    let mut out: [Option<String>; N] = std::array::from_fn(|_| None);
    let mut stack: Vec<&str> = Vec::new();
    let mut container_depth = None;
    let mut leaf: Option<(usize, String)> = None;
    let mut pos = 0;
    loop {
        let at = pos;
        let bad = |reason| SoapError::Malformed { offset: at, reason };
        let Some(token) = next_token(body, &mut pos)? else {
            return match container_depth {
                Some(_) => Err(bad("document ends inside the response element")),
                None => Ok(None),
            };
        };
        match token {
            Token::Start { qname, empty } => {
                if leaf.is_some() {
                    return Err(bad("unexpected element inside an argument"));
                }
                let local = local_name(qname);
                let depth = stack.len();
                match container_depth {
                    None if local == container => {
                        if empty {
                            return Ok(Some(out));
                        }
                        container_depth = Some(depth);
                    }
                    Some(d) if depth == d + 1 => {
                        if let Some(i) = wanted.iter().position(|w| *w == local) {
                            if out.get(i).is_some_and(Option::is_some) {
                                return Err(SoapError::DuplicateElement(wanted[i]));
                            }
                            if empty {
                                out[i] = Some(String::new());
                            } else {
                                leaf = Some((i, String::new()));
                            }
                        }
                    }
                    _ => {}
                }
                if !empty {
                    if depth >= MAX_DEPTH {
                        return Err(bad("elements nested too deeply"));
                    }
                    stack.push(qname);
                }
            }
            Token::End { qname } => {
                if stack.pop() != Some(qname) {
                    return Err(bad("end tag does not match start tag"));
                }
                if let Some((i, text)) = leaf.take() {
                    out[i] = Some(text.trim().to_owned());
                }
                if container_depth == Some(stack.len()) {
                    return Ok(Some(out));
                }
            }
            Token::Text(text) => {
                if let Some((_, buf)) = leaf.as_mut() {
                    decode_into(text, buf);
                }
            }
            Token::CData(text) => {
                if let Some((_, buf)) = leaf.as_mut() {
                    buf.push_str(text);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENVELOPE: &str = "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>";
    /// miniupnpd 2.3.1 answer, as captured.
    const GOLDEN: &str = "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body><u:GetSpecificPortMappingEntryResponse xmlns:u=\"urn:schemas-upnp-org:service:WANIPConnection:1\"><NewInternalPort>41641</NewInternalPort><NewInternalClient>192.168.1.20</NewInternalClient><NewEnabled>1</NewEnabled><NewPortMappingDescription>edgereach &amp; &lt;tailscale&gt; &quot;x&quot;</NewPortMappingDescription><NewLeaseDuration>3599</NewLeaseDuration></u:GetSpecificPortMappingEntryResponse></s:Body></s:Envelope>\r\n";

    fn fault(code: u16, text: &str) -> String {
        format!("{ENVELOPE}<s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns=\"urn:schemas-upnp-org:control-1-0\"><errorCode>{code}</errorCode><errorDescription>{text}</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>")
    }

    fn response(children: &str) -> String {
        format!("{ENVELOPE}<m:GetSpecificPortMappingEntryResponse xmlns:m=\"x\">{children}</m:GetSpecificPortMappingEntryResponse></s:Body></s:Envelope>")
    }

    const CHILDREN: [&str; 5] = [
        "<NewInternalPort>41641</NewInternalPort>",
        "<NewInternalClient>192.168.1.20</NewInternalClient>",
        "<NewEnabled>1</NewEnabled>",
        "<NewPortMappingDescription>d</NewPortMappingDescription>",
        "<NewLeaseDuration>0</NewLeaseDuration>",
    ];

    fn with(replace: usize, child: &str) -> Result<SpecificEntry, SoapError> {
        let mut c = CHILDREN.map(str::to_owned);
        c[replace] = child.to_owned();
        parse_get_specific_entry_response(&response(&c.concat()))
    }

    #[test]
    fn request_golden() {
        let (action, body) = get_specific_entry_request(
            "urn:schemas-upnp-org:service:WANIPConnection:1",
            41641,
            Protocol::Udp,
        );
        assert_eq!(
            action,
            "\"urn:schemas-upnp-org:service:WANIPConnection:1#GetSpecificPortMappingEntry\""
        );
        assert_eq!(body, format!("<?xml version=\"1.0\"?>\r\n{ENVELOPE}<u:GetSpecificPortMappingEntry xmlns:u=\"urn:schemas-upnp-org:service:WANIPConnection:1\"><NewRemoteHost></NewRemoteHost><NewExternalPort>41641</NewExternalPort><NewProtocol>UDP</NewProtocol></u:GetSpecificPortMappingEntry></s:Body></s:Envelope>\r\n"));
        let (action, body) = get_specific_entry_request("urn:a&b\"\r\nX: y:1", 80, Protocol::Tcp);
        assert_eq!(action, "\"urn:a&bX:y:1#GetSpecificPortMappingEntry\"");
        assert!(body.contains("xmlns:u=\"urn:a&amp;bX:y:1\"") && body.contains(">TCP<"));
    }

    #[test]
    fn escape_round_trips() {
        assert_eq!(
            xml_escape("a&b<c>d\"e'f\tg\u{1}\u{FFFF}é"),
            "a&amp;b&lt;c&gt;d&quot;e&apos;f\tgé"
        );
        let mut out = String::new();
        decode_into(
            "&amp;&lt;&gt;&quot;&apos;&#65;&#x42;&#X43; &bogus; & &#; &#0; &#x110000; &#12a;",
            &mut out,
        );
        assert_eq!(out, "&<>\"'ABC &bogus; & &#; &#0; &#x110000; &#12a;");
    }

    #[test]
    fn golden_response_and_faults() {
        let e = parse_get_specific_entry_response(GOLDEN).unwrap();
        assert_eq!(
            e,
            SpecificEntry {
                internal_port: 41641,
                internal_client: IpAddr::from([192, 168, 1, 20]),
                enabled: true,
                description: "edgereach & <tailscale> \"x\"".into(),
                lease_duration: 3599,
            }
        );
        assert_eq!(parse_soap_fault(GOLDEN), None);
        for (code, text) in [
            (714, "NoSuchEntryInArray"),
            (718, "ConflictInMappingEntry"),
            (725, "OnlyPermanentLeasesSupported"),
            (402, "Invalid Args"),
        ] {
            let f = UpnpFault {
                code,
                description: text.into(),
            };
            assert_eq!(parse_soap_fault(&fault(code, text)), Some(f.clone()));
            assert_eq!(
                parse_get_specific_entry_response(&fault(code, text)),
                Err(SoapError::Fault(f))
            );
        }
        let msg = SoapError::Fault(parse_soap_fault(&fault(714, "NoSuchEntryInArray")).unwrap())
            .to_string();
        assert_eq!(msg, "router returned UPnP error 714 (NoSuchEntryInArray)");
        let loose = "<Fault><detail><e:UPnPError xmlns:e=\"u\">\n  <e:errorCode> 501 </e:errorCode>\n</e:UPnPError></detail></Fault>";
        assert_eq!(
            parse_soap_fault(loose),
            Some(UpnpFault {
                code: 501,
                description: String::new()
            })
        );
        assert_eq!(
            parse_soap_fault(&fault(0, "x").replace(">0<", ">7x4<")),
            None
        );
        assert_eq!(parse_soap_fault(&fault(0, "x").replace(">0<", "><")), None);
        assert_eq!(
            parse_soap_fault(&fault(0, "x").replace(">0<", ">65536<")),
            None
        );
        assert_eq!(
            parse_soap_fault("<UPnPError><errorCode>1</errorCode>"),
            None
        );
        assert_eq!(parse_soap_fault("<UPnPError/>"), None);
        assert_eq!(parse_soap_fault(""), None);
    }

    #[test]
    fn tolerant_layouts() {
        let body = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Envelope><Body>\n  <!-- hi -->\n  <GetSpecificPortMappingEntryResponse a='>' b=\"/>\">\n    <NewLeaseDuration> 7200 </NewLeaseDuration>\n    <Extra><Deep>1</Deep></Extra>\n    <r:NewInternalClient xmlns:r='x'>fd00::20</r:NewInternalClient >\n    <NewEnabled>false</NewEnabled>\n    <NewInternalPort>\n41641\n</NewInternalPort>\n    <NewPortMappingDescription><![CDATA[a <b> &amp;]]></NewPortMappingDescription>\n  </GetSpecificPortMappingEntryResponse>\n</Body></Envelope> trailing";
        let e = parse_get_specific_entry_response(body).unwrap();
        assert_eq!(
            (e.internal_port, e.enabled, e.lease_duration),
            (41641, false, 7200)
        );
        assert_eq!(
            (e.internal_client.to_string(), e.description.as_str()),
            ("fd00::20".into(), "a <b> &amp;")
        );
        assert_eq!(
            with(3, "<NewPortMappingDescription/>").unwrap().description,
            ""
        );
        assert!(with(2, "<NewEnabled>YES</NewEnabled>").unwrap().enabled);
    }

    #[test]
    fn error_paths() {
        use SoapError as E;
        let huge = " ".repeat(MAX_BODY_LEN + 1);
        assert_eq!(
            parse_get_specific_entry_response(&huge),
            Err(E::TooLarge(MAX_BODY_LEN + 1))
        );
        assert_eq!(parse_soap_fault(&huge), None);
        assert_eq!(
            parse_get_specific_entry_response(&" ".repeat(MAX_BODY_LEN)),
            Err(E::MissingResponse("GetSpecificPortMappingEntryResponse"))
        );
        assert_eq!(
            parse_get_specific_entry_response("<GetSpecificPortMappingEntryResponse/>"),
            Err(E::MissingElement("NewInternalPort"))
        );
        for (i, name) in [
            "NewInternalPort",
            "NewInternalClient",
            "NewEnabled",
            "NewPortMappingDescription",
            "NewLeaseDuration",
        ]
        .into_iter()
        .enumerate()
        {
            let mut c = CHILDREN;
            c[i] = "";
            assert_eq!(
                parse_get_specific_entry_response(&response(&c.concat())),
                Err(E::MissingElement(name))
            );
        }
        let dup = response(&format!("{}{}", CHILDREN.concat(), CHILDREN[4]));
        assert_eq!(
            parse_get_specific_entry_response(&dup),
            Err(E::DuplicateElement("NewLeaseDuration"))
        );
        let invalid = |element, value: &str| {
            Err(E::InvalidValue {
                element,
                value: value.into(),
            })
        };
        for port in ["0", "65536", "+1", "abc", ""] {
            assert_eq!(
                with(0, &format!("<NewInternalPort>{port}</NewInternalPort>")),
                invalid("NewInternalPort", port)
            );
        }
        assert_eq!(
            with(1, "<NewInternalClient>router.lan</NewInternalClient>"),
            invalid("NewInternalClient", "router.lan")
        );
        assert_eq!(
            with(2, "<NewEnabled>2</NewEnabled>"),
            invalid("NewEnabled", "2")
        );
        assert_eq!(
            with(4, "<NewLeaseDuration>-1</NewLeaseDuration>"),
            invalid("NewLeaseDuration", "-1")
        );
        let long = "9".repeat(100);
        assert_eq!(
            with(4, &format!("<NewLeaseDuration>{long}</NewLeaseDuration>")),
            invalid("NewLeaseDuration", &long[..64])
        );
        let malformed = |body: &str| match parse_get_specific_entry_response(body) {
            Err(E::Malformed { reason, .. }) => reason,
            other => panic!("{body:?} gave {other:?}"),
        };
        assert_eq!(malformed("<a><b></a>"), "end tag does not match start tag");
        assert_eq!(malformed("</a>"), "end tag does not match start tag");
        assert_eq!(malformed("<a"), "unterminated start tag");
        assert_eq!(malformed("<a b='>"), "unterminated start tag");
        assert_eq!(malformed("< a>"), "invalid start tag");
        assert_eq!(malformed("<a></a b>"), "invalid end tag");
        assert_eq!(malformed("<a></a"), "unterminated end tag");
        assert_eq!(malformed("<?xml"), "unterminated processing instruction");
        assert_eq!(malformed("<!-- x"), "unterminated comment");
        assert_eq!(
            malformed("<GetSpecificPortMappingEntryResponse><NewEnabled><![CDATA[1"),
            "unterminated CDATA section"
        );
        assert_eq!(
            malformed("<!DOCTYPE x [<!ENTITY a 'b'>]><a/>"),
            "document type declarations are not allowed"
        );
        assert_eq!(
            malformed(&"<a>".repeat(MAX_DEPTH + 1)),
            "elements nested too deeply"
        );
        assert_eq!(
            malformed("<x:GetSpecificPortMappingEntryResponse><NewEnabled>1</NewEnabled>"),
            "document ends inside the response element"
        );
        assert_eq!(
            malformed(&response("<NewEnabled><b>1</b></NewEnabled>")),
            "unexpected element inside an argument"
        );
        let e = E::Malformed {
            offset: 3,
            reason: "x",
        };
        assert_eq!(e.to_string(), "malformed SOAP XML at byte 3: x");
    }

    #[test]
    fn never_panics_on_truncation_or_mutation() {
        let inputs = [GOLDEN.to_owned(), fault(714, "NoSuchEntryInArray")];
        for input in &inputs {
            for end in 0..=input.len() {
                let s = String::from_utf8_lossy(&input.as_bytes()[..end]);
                let _ = (parse_get_specific_entry_response(&s), parse_soap_fault(&s));
            }
        }
        let mut state = 0x2545_F491_4F6C_DD1D_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let tokens = [
            "<",
            ">",
            "/",
            "&",
            ";",
            "&#x",
            "]]>",
            "<![CDATA[",
            "<!--",
            "<?",
            "'",
            "\"",
            ":",
            "é",
        ];
        for round in 0..4000 {
            let mut d = inputs[round % 2].clone().into_bytes();
            for _ in 0..1 + next() % 8 {
                let at = (next() as usize) % (d.len() + 1);
                match next() % 4 {
                    0 if at < d.len() => d[at] = next() as u8,
                    1 if at < d.len() => {
                        d.remove(at);
                    }
                    2 => d.insert(at, next() as u8),
                    _ => {
                        let t = tokens[(next() as usize) % tokens.len()];
                        d.splice(at..at, t.bytes());
                    }
                }
            }
            let s = String::from_utf8_lossy(&d);
            let _ = (parse_get_specific_entry_response(&s), parse_soap_fault(&s));
        }
    }
}
