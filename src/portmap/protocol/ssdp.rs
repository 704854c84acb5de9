//! SSDP discovery codec (UPnP Device Architecture 1.1/2.0): builds M-SEARCH
//! requests and parses the unicast `HTTP/1.1 200 OK` answers. No sockets.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

/// The well-known SSDP port.
pub const SSDP_PORT: u16 = 1900;
/// The IPv4 SSDP multicast group and port, `239.255.255.250:1900`.
pub const SSDP_MULTICAST_V4: SocketAddr = SocketAddr::V4(SocketAddrV4::new(
    Ipv4Addr::new(239, 255, 255, 250),
    SSDP_PORT,
));
/// Search target for IGD version 1 root devices.
pub const ST_IGD_V1: &str = "urn:schemas-upnp-org:device:InternetGatewayDevice:1";
/// Search target for IGD version 2 root devices.
pub const ST_IGD_V2: &str = "urn:schemas-upnp-org:device:InternetGatewayDevice:2";
/// Service type of WANIPConnection version 1.
pub const ST_WAN_IP_CONNECTION_V1: &str = "urn:schemas-upnp-org:service:WANIPConnection:1";
/// Service type of WANIPConnection version 2.
pub const ST_WAN_IP_CONNECTION_V2: &str = "urn:schemas-upnp-org:service:WANIPConnection:2";
/// Largest datagram [`parse_response`] accepts, in bytes.
pub const MAX_DATAGRAM_LEN: usize = 2048;
/// Most header lines [`parse_response`] accepts (the status line not counted).
pub const MAX_HEADERS: usize = 32;
/// Longest line [`parse_response`] accepts, in bytes, without its line ending.
pub const MAX_LINE_LEN: usize = 512;

/// What went wrong decoding an SSDP answer or its LOCATION URL. Line
/// numbers are 1-based; the status line is line 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SsdpError {
    /// The datagram (of this size) exceeds [`MAX_DATAGRAM_LEN`].
    #[error("SSDP datagram is {0} bytes, more than the {MAX_DATAGRAM_LEN} allowed")]
    TooLarge(usize),
    /// The datagram holds no status line at all.
    #[error("SSDP datagram is empty")]
    Empty,
    /// This line of the header section is not UTF-8.
    #[error("SSDP line {0} is not valid UTF-8")]
    NotUtf8(usize),
    /// This line exceeds [`MAX_LINE_LEN`].
    #[error("SSDP line {0} is longer than {MAX_LINE_LEN} bytes")]
    LineTooLong(usize),
    /// More than [`MAX_HEADERS`] header lines.
    #[error("SSDP response has more than {MAX_HEADERS} headers")]
    TooManyHeaders,
    /// The first line is not `HTTP/1.1 <3-digit status>` (for example a
    /// NOTIFY or M-SEARCH request from another host).
    #[error("SSDP datagram is not an HTTP/1.1 response")]
    NotAResponse,
    /// An HTTP/1.1 response with a status other than 200.
    #[error("SSDP response status is {0}, only 200 OK is accepted")]
    Status(u16),
    /// This header line is not `NAME: value`.
    #[error("SSDP header line {0} is not of the form NAME: value")]
    MalformedHeader(usize),
    /// A header this codec interprets appears twice.
    #[error("SSDP response has more than one {0} header")]
    DuplicateHeader(&'static str),
    /// No LOCATION header.
    #[error("SSDP response has no LOCATION header")]
    MissingLocation,
    /// A LOCATION header with an empty value.
    #[error("SSDP response has an empty LOCATION header")]
    EmptyLocation,
    /// LOCATION does not start with `http://` (https and others are refused).
    #[error("LOCATION URL is not plain http://")]
    UnsupportedScheme,
    /// LOCATION contains whitespace, control or non-ASCII characters.
    #[error("LOCATION URL contains whitespace, control or non-ASCII characters")]
    InvalidCharacter,
    /// LOCATION carries `user@` credentials.
    #[error("LOCATION URL contains user information ('@')")]
    UserInfo,
    /// LOCATION has no host.
    #[error("LOCATION URL has no host")]
    MissingHost,
    /// LOCATION's host is a name or malformed, not a literal IP address.
    #[error("LOCATION host {0:?} is not a literal IPv4 address or [IPv6] address")]
    HostNotIpLiteral(String),
    /// LOCATION's port is not a decimal number in 1..=65535.
    #[error("LOCATION port {0:?} is not a number in 1..=65535")]
    InvalidPort(String),
}

/// The fields of an SSDP search answer that port mapping needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SsdpResponse {
    /// LOCATION: URL of the root device description (not yet validated, see
    /// [`location_host`]).
    pub location: String,
    /// ST: the search target this answer matches.
    pub search_target: Option<String>,
    /// USN: unique service name.
    pub usn: Option<String>,
    /// SERVER: OS, UPnP version and product.
    pub server: Option<String>,
    /// BOOTID.UPNP.ORG, when present and numeric.
    pub boot_id: Option<u32>,
    /// CONFIGID.UPNP.ORG, when present and numeric.
    pub config_id: Option<u32>,
    /// `max-age` of CACHE-CONTROL, when present and numeric.
    pub cache_max_age: Option<u32>,
}

/// Builds an M-SEARCH request for `search_target`, addressed to `host`: either
/// [`SSDP_MULTICAST_V4`] or the router's own address on port 1900 (unicast).
///
/// `mx_secs` is clamped to 1..=5 as UDA requires. An IPv6 scope id is left
/// out of the HOST header.
pub fn msearch_request(host: SocketAddr, search_target: &str, mx_secs: u8) -> Vec<u8> {
    let host = match host {
        SocketAddr::V4(v4) => v4.to_string(),
        SocketAddr::V6(v6) => format!("[{}]:{}", v6.ip(), v6.port()),
    };
    let mx = mx_secs.clamp(1, 5);
    format!(
        "M-SEARCH * HTTP/1.1\r\nHOST: {host}\r\nMAN: \"ssdp:discover\"\r\nMX: {mx}\r\nST: {search_target}\r\n\r\n"
    )
    .into_bytes()
}

/// Sets `slot` once; a second value for the same header is an error.
fn set_once(slot: &mut Option<String>, value: &str, name: &'static str) -> Result<(), SsdpError> {
    if slot.is_some() {
        return Err(SsdpError::DuplicateHeader(name));
    }
    *slot = Some(value.to_owned());
    Ok(())
}

/// Reads `max-age` from a CACHE-CONTROL value such as `no-cache="Ext", max-age=1800`.
fn max_age(value: &str) -> Option<u32> {
    value.split(',').find_map(|directive| {
        let (name, v) = directive.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("max-age") {
            return None;
        }
        parse_decimal(v.trim().trim_matches('"'))
    })
}

/// Parses a plain decimal `u32` (no sign, no spaces).
fn parse_decimal(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses one SSDP search answer. Only `HTTP/1.1 200 OK` responses with a
/// LOCATION header are accepted; header names are case-insensitive, `\n` and
/// `\r\n` line endings and surrounding whitespace are tolerated. Unparsable
/// BOOTID, CONFIGID and max-age values are reported as `None`.
pub fn parse_response(datagram: &[u8]) -> Result<SsdpResponse, SsdpError> {
    if datagram.len() > MAX_DATAGRAM_LEN {
        return Err(SsdpError::TooLarge(datagram.len()));
    }
    let mut status_seen = false;
    let mut headers = 0usize;
    let mut location = None;
    let mut r = SsdpResponse::default();
    for (index, raw) in datagram.split(|&b| b == b'\n').enumerate() {
        let line_no = index + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.len() > MAX_LINE_LEN {
            return Err(SsdpError::LineTooLong(line_no));
        }
        let line = std::str::from_utf8(raw)
            .map_err(|_| SsdpError::NotUtf8(line_no))?
            .trim();
        if !status_seen {
            if line.is_empty() {
                continue; // tolerate leading blank lines
            }
            check_status_line(line)?;
            status_seen = true;
            continue;
        }
        if line.is_empty() {
            break; // end of the header section; SSDP answers have no body
        }
        headers += 1;
        if headers > MAX_HEADERS {
            return Err(SsdpError::TooManyHeaders);
        }
        let (name, value) = line
            .split_once(':')
            .map(|(n, v)| (n.trim(), v.trim()))
            .filter(|(n, _)| !n.is_empty())
            .ok_or(SsdpError::MalformedHeader(line_no))?;
        match name.to_ascii_uppercase().as_str() {
            "LOCATION" => set_once(&mut location, value, "LOCATION")?,
            "ST" => set_once(&mut r.search_target, value, "ST")?,
            "USN" => set_once(&mut r.usn, value, "USN")?,
            "SERVER" => set_once(&mut r.server, value, "SERVER")?,
            "BOOTID.UPNP.ORG" => r.boot_id = parse_decimal(value),
            "CONFIGID.UPNP.ORG" => r.config_id = parse_decimal(value),
            "CACHE-CONTROL" => r.cache_max_age = max_age(value),
            _ => {}
        }
    }
    if !status_seen {
        return Err(SsdpError::Empty);
    }
    r.location = location.ok_or(SsdpError::MissingLocation)?;
    if r.location.is_empty() {
        return Err(SsdpError::EmptyLocation);
    }
    Ok(r)
}

/// Accepts `HTTP/1.1 200 <any reason>`.
fn check_status_line(line: &str) -> Result<(), SsdpError> {
    let mut parts = line.split_whitespace().map(str::to_ascii_uppercase);
    let (version, code) = (parts.next(), parts.next().unwrap_or_default());
    match (version.as_deref(), code.len(), parse_decimal(&code)) {
        (Some("HTTP/1.1"), 3, Some(200)) => Ok(()),
        (Some("HTTP/1.1"), 3, Some(other)) => Err(SsdpError::Status(other.try_into().unwrap_or(0))),
        _ => Err(SsdpError::NotAResponse),
    }
}

/// Splits an `http://IP[:PORT][/path]` LOCATION URL into address, port
/// (default 80) and request path (default `/`, query kept, fragment dropped).
///
/// Only literal IPv4 and bracketed IPv6 hosts are accepted: the caller must
/// check the address is the default gateway. IPv4-mapped IPv6 addresses are
/// returned as IPv4. https, other schemes, user information, whitespace,
/// control and non-ASCII characters are refused.
pub fn location_host(location: &str) -> Result<(IpAddr, u16, String), SsdpError> {
    let url = location.trim();
    if url.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err(SsdpError::InvalidCharacter);
    }
    let rest = url
        .get(..7)
        .filter(|scheme| scheme.eq_ignore_ascii_case("http://"))
        .and_then(|_| url.get(7..))
        .ok_or(SsdpError::UnsupportedScheme)?;
    let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    let path = match path.starts_with('/') {
        true => path.to_owned(),
        false => format!("/{path}"),
    };
    match authority {
        "" => return Err(SsdpError::MissingHost),
        a if a.contains('@') => return Err(SsdpError::UserInfo),
        _ => {}
    }
    let not_ip = |h: &str| SsdpError::HostNotIpLiteral(h.to_owned());
    let (ip, port) = match authority.strip_prefix('[') {
        Some(bracketed) => {
            let (inside, after) = bracketed.split_once(']').ok_or_else(|| not_ip(authority))?;
            let ip: std::net::Ipv6Addr = inside.parse().map_err(|_| not_ip(inside))?;
            let port = match after.strip_prefix(':') {
                Some(port) => Some(port),
                None if after.is_empty() => None,
                None => return Err(SsdpError::InvalidPort(after.to_owned())),
            };
            (IpAddr::V6(ip).to_canonical(), port)
        }
        None => {
            let (host, port) = authority
                .split_once(':')
                .map_or((authority, None), |(h, p)| (h, Some(p)));
            if host.is_empty() {
                return Err(SsdpError::MissingHost);
            }
            (IpAddr::V4(host.parse().map_err(|_| not_ip(host))?), port)
        }
    };
    let port = match port {
        None | Some("") => 80,
        Some(p) => parse_decimal(p)
            .and_then(|n| u16::try_from(n).ok())
            .filter(|&n| n != 0)
            .ok_or_else(|| SsdpError::InvalidPort(p.to_owned()))?,
    };
    Ok((ip, port, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A miniupnpd 2.3.1 answer as captured, with documentation addresses.
    const MINIUPNPD: &[u8] = b"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\n\
ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\
USN: uuid:3d3cec3a-8cf0-11e0-98ee-001a6bd2d07d::urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\
EXT:\r\nSERVER: Debian/6.1 UPnP/1.1 MiniUPnPd/2.3.1\r\n\
LOCATION: http://192.0.2.1:5000/rootDesc.xml\r\n\
OPT: \"http://schemas.upnp.org/upnp/1/0/\"; ns=01\r\n01-NLS: 1700000000\r\n\
BOOTID.UPNP.ORG: 1700000000\r\nCONFIGID.UPNP.ORG: 1337\r\n\r\n";
    const OK: &str = "HTTP/1.1 200 OK\r\n";

    fn text(b: Vec<u8>) -> String {
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn msearch_multicast_and_unicast() {
        let m = text(msearch_request(SSDP_MULTICAST_V4, ST_IGD_V1, 2));
        let expected =
            "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\n\
MX: 2\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\r\n";
        assert_eq!(m, expected);
        let gateway = ([192, 0, 2, 1], SSDP_PORT).into();
        let u = text(msearch_request(gateway, ST_WAN_IP_CONNECTION_V2, 0));
        assert!(u.contains("HOST: 192.0.2.1:1900\r\nMAN") && u.contains("MX: 1\r\n"));
        assert!(u.ends_with("ST: urn:schemas-upnp-org:service:WANIPConnection:2\r\n\r\n"));
        let v6 = std::net::SocketAddrV6::new("ff02::c".parse().unwrap(), 1900, 0, 3);
        let v6 = text(msearch_request(v6.into(), ST_IGD_V2, 9));
        assert!(v6.contains("HOST: [ff02::c]:1900\r\n") && v6.contains("MX: 5\r\n"));
        assert!(ST_WAN_IP_CONNECTION_V1.ends_with("service:WANIPConnection:1"));
    }

    #[test]
    fn golden_miniupnpd_answer() {
        let r = parse_response(MINIUPNPD).unwrap();
        assert_eq!(r.location, "http://192.0.2.1:5000/rootDesc.xml");
        assert_eq!(r.search_target.as_deref(), Some(ST_IGD_V1));
        assert!(r.usn.as_deref().unwrap().starts_with("uuid:3d3cec3a-"));
        let server = r.server.as_deref();
        assert_eq!(server, Some("Debian/6.1 UPnP/1.1 MiniUPnPd/2.3.1"));
        assert_eq!(r.boot_id, Some(1_700_000_000));
        assert_eq!((r.config_id, r.cache_max_age), (Some(1337), Some(120)));
        let (ip, port, path) = location_host(&r.location).unwrap();
        assert_eq!((ip, port), (IpAddr::from([192, 0, 2, 1]), 5000));
        assert_eq!(path, "/rootDesc.xml");
    }

    #[test]
    fn tolerant_parsing() {
        let d = b"\nhttp/1.1 200 Ok\n  location :  http://192.0.2.1/igd.xml  \n\
Cache-Control: no-cache=\"Ext\", MAX-AGE = \"1800\"\nbootid.upnp.org: soon\nx-junk:\n";
        let r = parse_response(d).unwrap();
        assert_eq!(r.location, "http://192.0.2.1/igd.xml");
        assert_eq!((r.boot_id, r.cache_max_age), (None, Some(1800)));
        // Whatever follows the blank line is ignored, even when not UTF-8.
        assert!(parse_response(b"HTTP/1.1 200 \r\nLOCATION: x\r\n\r\n\xff\xfe").is_ok());
    }

    #[test]
    fn limits_are_inclusive() {
        let mut d = format!("{OK}LOCATION: /\r\n").into_bytes();
        d.extend(std::iter::repeat_n(b"X: y\r\n".as_slice(), MAX_HEADERS - 1).flatten());
        assert!(parse_response(&d).is_ok());
        d.extend_from_slice(b"X: y\r\n");
        assert_eq!(parse_response(&d), Err(SsdpError::TooManyHeaders));
        let long = format!("{OK}LOCATION: /\r\nX: {}\r\n", "a".repeat(MAX_LINE_LEN - 3));
        assert!(parse_response(long.as_bytes()).is_ok());
        let long = long.replacen("X: ", "X:  ", 1);
        let e = parse_response(long.as_bytes());
        assert_eq!(e, Err(SsdpError::LineTooLong(3)));
        let mut big = MINIUPNPD.to_vec();
        big.resize(MAX_DATAGRAM_LEN, b' ');
        assert!(parse_response(&big).is_ok());
        big.push(b' ');
        assert_eq!(parse_response(&big), Err(SsdpError::TooLarge(2049)));
    }

    #[test]
    fn error_paths() {
        use SsdpError as E;
        let cases: [(&[u8], E); 14] = [
            (b"", E::Empty),
            (b"\r\n\r\n", E::Empty),
            (b"HTTP/1.1 200 OK\r\nSERVER: \xc3\x28\r\n", E::NotUtf8(2)),
            (b"NOTIFY * HTTP/1.1\r\nLOCATION: x\r\n", E::NotAResponse),
            (b"M-SEARCH * HTTP/1.1\r\n", E::NotAResponse),
            (b"HTTP/1.0 200 OK\r\nLOCATION: x\r\n", E::NotAResponse),
            (b"HTTP/1.1 2000 OK\r\n", E::NotAResponse),
            (b"HTTP/1.1 404 Not Found\r\nLOCATION: x\r\n", E::Status(404)),
            (b"HTTP/1.1 200 OK\r\nLOCATION x\r\n", E::MalformedHeader(2)),
            (b"HTTP/1.1 200 OK\r\n: x\r\n", E::MalformedHeader(2)),
            (b"HTTP/1.1 200 OK\nST: a\n\nLOCATION: x", E::MissingLocation),
            (b"HTTP/1.1 200 OK\r\nLocation:  \r\n", E::EmptyLocation),
            (
                b"HTTP/1.1 200 OK\nLOCATION: a\nlocation: b",
                E::DuplicateHeader("LOCATION"),
            ),
            (b"HTTP/1.1 200 OK\nST: a\nSt: b\n", E::DuplicateHeader("ST")),
        ];
        for (datagram, expected) in cases {
            assert_eq!(parse_response(datagram), Err(expected), "{datagram:?}");
        }
        let msg = E::MissingLocation.to_string();
        assert_eq!(msg, "SSDP response has no LOCATION header");
    }

    #[test]
    fn location_urls() {
        let v4 = IpAddr::from([192, 0, 2, 1]);
        let v6 = IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, 1]);
        for (url, ip, port, path) in [
            ("http://192.0.2.1", v4, 80, "/"),
            (" HTTP://192.0.2.1:/a?b=c#frag ", v4, 80, "/a?b=c"),
            ("http://192.0.2.1:49152?x", v4, 49152, "/?x"),
            ("http://[fd00::1]:5000/d.xml", v6, 5000, "/d.xml"),
            ("http://[fd00::1]", v6, 80, "/"),
            ("http://[::ffff:192.0.2.1]:80/", v4, 80, "/"),
        ] {
            assert_eq!(location_host(url), Ok((ip, port, path.to_owned())), "{url}");
        }
        use SsdpError as E;
        let host = |h: &str| E::HostNotIpLiteral(h.into());
        for (url, expected) in [
            ("https://192.0.2.1/", E::UnsupportedScheme),
            ("ftp://192.0.2.1/", E::UnsupportedScheme),
            ("http:/", E::UnsupportedScheme),
            ("http://router.lan:5000/", host("router.lan")),
            ("http://192.0.2.010/", host("192.0.2.010")),
            ("http://[fe80::1%25eth0]/", host("fe80::1%25eth0")),
            ("http://[fd00::1/", host("[fd00::1")),
            ("http://[fd00::1]5000/", E::InvalidPort("5000".into())),
            ("http://192.0.2.1@198.51.100.1/", E::UserInfo),
            ("http:///x", E::MissingHost),
            ("http://:80/x", E::MissingHost),
            ("http://192.0.2.1/a b", E::InvalidCharacter),
            ("http://192.0.2.1/\r\nX: y", E::InvalidCharacter),
            ("http://192.0.2.1/é", E::InvalidCharacter),
        ] {
            assert_eq!(location_host(url), Err(expected), "{url:?}");
        }
        for port in ["0", "65536", "+80", "8o", "99999999999"] {
            let url = format!("http://192.0.2.1:{port}/");
            assert_eq!(location_host(&url), Err(E::InvalidPort(port.into())));
        }
    }

    #[test]
    fn never_panics_on_truncation_or_mutation() {
        let check = |d: &[u8]| {
            if let Ok(r) = parse_response(d) {
                let _ = location_host(&r.location);
            }
            let _ = location_host(&String::from_utf8_lossy(d));
        };
        (0..=MINIUPNPD.len()).for_each(|end| check(&MINIUPNPD[..end]));
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let tokens: Vec<&[u8]> = b"\r\n|\n|:|[|]|@|\xff|LOCATION: http://["
            .split(|&b| b == b'|')
            .collect();
        for _ in 0..4000 {
            let mut d = MINIUPNPD.to_vec();
            for _ in 0..1 + next() % 8 {
                let at = (next() as usize) % (d.len() + 1);
                match next() % 4 {
                    0 if at < d.len() => d[at] = next() as u8,
                    1 if at < d.len() => _ = d.remove(at),
                    2 => d.insert(at, next() as u8),
                    _ => {
                        let t = tokens[(next() as usize) % tokens.len()];
                        d.splice(at..at, t.iter().copied());
                    }
                }
            }
            check(&d);
        }
    }
}

#[cfg(test)]
mod miniupnpd_answer {
    use super::*;

    /// Captured from miniupnpd 2.3.1 in the lab (unicast M-SEARCH answer).
    #[test]
    fn parses_real_miniupnpd_answer() {
        let d = b"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nUSN: uuid:d1d7da21-f255-46e0-aa5f-7d9cb5b2cbb4::urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nEXT:\r\nSERVER: Debian/6.18.44-fc-v669 UPnP/1.1 MiniUPnPd/2.3.1\r\nLOCATION: http://192.0.2.1:5000/rootDesc.xml\r\nOPT: \"http://schemas.upnp.org/upnp/1/0/\"; ns=01\r\n01-NLS: 1795600959\r\nBOOTID.UPNP.ORG: 1795600959\r\nCONFIGID.UPNP.ORG: 1337\r\n\r\n";
        let r = parse_response(d).unwrap();
        assert_eq!(r.boot_id, Some(1795600959));
        assert_eq!(r.location, "http://192.0.2.1:5000/rootDesc.xml");
    }
}
