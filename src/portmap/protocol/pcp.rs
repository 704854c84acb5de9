//! PCP (RFC 6887) codec.
//!
//! Requests are built with [`MapRequest::encode`] and [`announce_request`];
//! answers are checked and parsed by [`decode_response`], or by
//! [`decode_map_response`], which also matches the answer to its request.
//! IPv4 addresses travel as IPv4-mapped IPv6 (`::ffff:a.b.c.d`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{array, be16, be32, Protocol, MAX_MESSAGE_LEN};

/// The PCP version number.
pub const VERSION: u8 = 2;
/// Length of the common request and response header.
pub const HEADER_LEN: usize = 24;
/// Length of the MAP opcode-specific body.
pub const MAP_BODY_LEN: usize = 36;

/// The R bit: set in the opcode byte of every response.
const RESPONSE_BIT: u8 = 0x80;
/// Offset of the MAP body and the end of a MAP message without options.
const MAP_END: usize = HEADER_LEN + MAP_BODY_LEN;

/// A PCP opcode this codec understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Opcode {
    /// Opcode 0: ANNOUNCE, no body; reveals a PCP server and its epoch.
    Announce,
    /// Opcode 1: MAP, create, renew or delete an inbound mapping.
    Map,
}

impl Opcode {
    /// The 7-bit opcode value.
    pub const fn to_u8(self) -> u8 {
        match self {
            Self::Announce => 0,
            Self::Map => 1,
        }
    }
}

result_codes! {
    /// A PCP result code (RFC 6887 §7.4); variants name the RFC's codes.
    ResultCode(u8), from_u8, to_u8;
    /// 0: `SUCCESS`.
    Success = 0,
    /// 1: `UNSUPP_VERSION`; see [`super::classify_reply`].
    UnsuppVersion = 1,
    /// 2: `NOT_AUTHORIZED`: the server refuses (e.g. PCP disabled).
    NotAuthorized = 2,
    /// 3: `MALFORMED_REQUEST`.
    MalformedRequest = 3,
    /// 4: `UNSUPP_OPCODE`.
    UnsuppOpcode = 4,
    /// 5: `UNSUPP_OPTION`: a mandatory option was not understood.
    UnsuppOption = 5,
    /// 6: `MALFORMED_OPTION`.
    MalformedOption = 6,
    /// 7: `NETWORK_FAILURE`: e.g. no external address yet.
    NetworkFailure = 7,
    /// 8: `NO_RESOURCES`.
    NoResources = 8,
    /// 9: `UNSUPP_PROTOCOL`.
    UnsuppProtocol = 9,
    /// 10: `USER_EX_QUOTA`: this client has too many mappings.
    UserExQuota = 10,
    /// 11: `CANNOT_PROVIDE_EXTERNAL`: the suggested address/port is taken.
    CannotProvideExternal = 11,
    /// 12: `ADDRESS_MISMATCH`: the client address field differs from the
    /// packet's source (a NAT between client and server).
    AddressMismatch = 12,
    /// 13: `EXCESSIVE_REMOTE_PEERS`.
    ExcessiveRemotePeers = 13,
}

/// Why a PCP response was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[allow(missing_docs)] // Field meanings are given in each variant's doc.
pub enum PcpError {
    /// `len` bytes arrived; the response needs at least `need`.
    #[error("PCP response too short: {len} bytes, need {need}")]
    TooShort { len: usize, need: usize },
    /// `len` exceeds [`MAX_MESSAGE_LEN`].
    #[error("PCP response too long: {len} bytes, max {MAX_MESSAGE_LEN}")]
    TooLong { len: usize },
    /// `len` is not a multiple of 4.
    #[error("PCP response length {len} is not a multiple of 4")]
    NotMultipleOf4 { len: usize },
    /// The version byte is `got`, not 2; see [`super::classify_reply`].
    #[error("PCP response has version {got}, expected 2")]
    Version { got: u8 },
    /// The opcode byte lacks the R bit: this is a request.
    #[error("PCP message with opcode byte {opcode} is not a response (R bit clear)")]
    NotAResponse { opcode: u8 },
    /// Response opcode `got` does not answer request opcode `expected`.
    #[error("PCP response opcode {got} does not answer request opcode {expected}")]
    OpcodeMismatch { expected: u8, got: u8 },
    /// The MAP body names protocol number `got`, neither UDP nor TCP.
    #[error("PCP MAP response has unsupported protocol {got}")]
    UnknownProtocol { got: u8 },
    /// The option starting at byte `offset` runs past the end.
    #[error("PCP option at offset {offset} runs past the end of the response")]
    MalformedOption { offset: usize },
    /// The MAP nonce differs from the request's: stale or spoofed.
    #[error("PCP MAP response nonce does not match the request")]
    NonceMismatch,
    /// The MAP answer is for protocol number `got`, not `expected`.
    #[error("PCP MAP response is for protocol {got}, requested {expected}")]
    ProtocolMismatch { expected: u8, got: u8 },
    /// The MAP answer is for internal port `got`, not `expected`.
    #[error("PCP MAP response is for internal port {got}, requested {expected}")]
    InternalPortMismatch { expected: u16, got: u16 },
    /// The server answered with a non-success result code.
    #[error("PCP server returned result {0:?}")]
    Server(ResultCode),
}

/// Encodes an ANNOUNCE request from `client_addr` (header only, lifetime 0).
pub fn announce_request(client_addr: IpAddr) -> [u8; 24] {
    request_header(Opcode::Announce, 0, client_addr)
}

/// A MAP request (RFC 6887 §11.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MapRequest {
    /// Requested lifetime in seconds; 0 deletes the mapping with this nonce.
    pub lifetime_secs: u32,
    /// This host's address as the server sees it (source of the request).
    pub client_addr: IpAddr,
    /// Random 12 bytes chosen per mapping and reused when renewing it.
    pub nonce: [u8; 12],
    /// UDP or TCP.
    pub protocol: Protocol,
    /// The port on this host.
    pub internal_port: u16,
    /// Preferred external port; 0 lets the server choose.
    pub suggested_external_port: u16,
    /// Preferred external address. `None` sends the all-zeros address of the
    /// client's family: `::ffff:0.0.0.0` for IPv4, `::` for IPv6.
    pub suggested_external_addr: Option<IpAddr>,
}

impl MapRequest {
    /// Encodes the 60-byte request.
    pub fn encode(&self) -> [u8; 60] {
        let mut out = [0u8; MAP_END];
        let header = request_header(Opcode::Map, self.lifetime_secs, self.client_addr);
        out[..HEADER_LEN].copy_from_slice(&header);
        let zero = match self.client_addr {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let external = self.suggested_external_addr.unwrap_or(zero);
        out[24..36].copy_from_slice(&self.nonce);
        out[36] = self.protocol.iana_number();
        // out[37..40] reserved, zero.
        out[40..42].copy_from_slice(&self.internal_port.to_be_bytes());
        out[42..44].copy_from_slice(&self.suggested_external_port.to_be_bytes());
        out[44..60].copy_from_slice(&wire_addr(external).octets());
        out
    }
}

/// The MAP body of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mapping {
    /// Echo of the request's nonce; see [`MapRequest::nonce`].
    pub nonce: [u8; 12],
    /// UDP or TCP.
    pub protocol: Protocol,
    /// The internal port the mapping is for.
    pub internal_port: u16,
    /// The assigned external port.
    pub external_port: u16,
    /// The assigned external address, IPv4 when sent IPv4-mapped.
    pub external_addr: IpAddr,
}

/// A decoded, well-formed PCP response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Response {
    /// The request opcode this answers.
    pub opcode: Opcode,
    /// The server's result code.
    pub result: ResultCode,
    /// Granted lifetime on success; on error, how long the error holds.
    pub lifetime_secs: u32,
    /// Seconds since the server's state was (re)initialised; a jump
    /// backwards means the server lost its mappings.
    pub epoch_secs: u32,
    /// The MAP body: always present for a successful MAP, present for a MAP
    /// error when the server echoed it, absent for ANNOUNCE.
    pub mapping: Option<Mapping>,
}

/// Decodes a response to a request with `opcode`.
///
/// Checks version, R bit, opcode, lengths (24..=1100, a multiple of 4, a
/// full MAP body on success) and skips trailing options with bounds checks.
/// Does not check the nonce: use [`decode_map_response`] for that.
pub fn decode_response(buf: &[u8], opcode: Opcode) -> Result<Response, PcpError> {
    let len = buf.len();
    if len > MAX_MESSAGE_LEN {
        return Err(PcpError::TooLong { len });
    }
    let short = PcpError::TooShort {
        len,
        need: HEADER_LEN,
    };
    let version = *buf.first().ok_or(short.clone())?;
    if version != VERSION {
        return Err(PcpError::Version { got: version });
    }
    if len < HEADER_LEN {
        return Err(short);
    }
    if !len.is_multiple_of(4) {
        return Err(PcpError::NotMultipleOf4 { len });
    }
    let (Some(&op), Some(&code), Some(lifetime_secs), Some(epoch_secs)) =
        (buf.get(1), buf.get(3), be32(buf, 4), be32(buf, 8))
    else {
        return Err(short);
    };
    if op & RESPONSE_BIT == 0 {
        return Err(PcpError::NotAResponse { opcode: op });
    }
    let (expected, got) = (opcode.to_u8(), op & !RESPONSE_BIT);
    if got != expected {
        return Err(PcpError::OpcodeMismatch { expected, got });
    }
    let result = ResultCode::from_u8(code);
    let (mapping, body_end) = match opcode {
        Opcode::Announce => (None, HEADER_LEN),
        // An error response may carry only the header.
        Opcode::Map if len == HEADER_LEN && result != ResultCode::Success => (None, HEADER_LEN),
        Opcode::Map => (Some(decode_mapping(buf)?), MAP_END),
    };
    skip_options(buf, body_end)?;
    Ok(Response {
        opcode,
        result,
        lifetime_secs,
        epoch_secs,
        mapping,
    })
}

/// A successful answer to a [`MapRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MapGrant {
    /// The mapping, matching the request's nonce, protocol and port.
    pub mapping: Mapping,
    /// Granted lifetime in seconds (0 confirms a deletion).
    pub lifetime_secs: u32,
    /// The server's epoch, as in [`Response::epoch_secs`].
    pub epoch_secs: u32,
}

/// Decodes the answer to `request`, requiring success and a matching
/// nonce, protocol and internal port (RFC 6887 §11.4).
///
/// A mismatching answer must be ignored, not treated as a failure: keep
/// waiting for the real one.
pub fn decode_map_response(buf: &[u8], request: &MapRequest) -> Result<MapGrant, PcpError> {
    let response = decode_response(buf, Opcode::Map)?;
    if let Some(m) = response.mapping {
        if m.nonce != request.nonce {
            return Err(PcpError::NonceMismatch);
        }
        let (expected, got) = (request.protocol.iana_number(), m.protocol.iana_number());
        if expected != got {
            return Err(PcpError::ProtocolMismatch { expected, got });
        }
        let (expected, got) = (request.internal_port, m.internal_port);
        if expected != got {
            return Err(PcpError::InternalPortMismatch { expected, got });
        }
    }
    match (response.result, response.mapping) {
        (ResultCode::Success, Some(mapping)) => Ok(MapGrant {
            mapping,
            lifetime_secs: response.lifetime_secs,
            epoch_secs: response.epoch_secs,
        }),
        (result, _) => Err(PcpError::Server(result)),
    }
}

/// Builds a request header: version, opcode (R bit clear), lifetime, client.
fn request_header(opcode: Opcode, lifetime_secs: u32, client: IpAddr) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out[0] = VERSION;
    out[1] = opcode.to_u8();
    // out[2..4] reserved, zero.
    out[4..8].copy_from_slice(&lifetime_secs.to_be_bytes());
    out[8..24].copy_from_slice(&wire_addr(client).octets());
    out
}

/// The 16-byte wire form: IPv4 as `::ffff:a.b.c.d`.
fn wire_addr(addr: IpAddr) -> Ipv6Addr {
    match addr {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// Reads the MAP body at bytes 24..60.
fn decode_mapping(buf: &[u8]) -> Result<Mapping, PcpError> {
    let short = PcpError::TooShort {
        len: buf.len(),
        need: MAP_END,
    };
    let (Some(nonce), Some(&proto), Some(internal_port), Some(external_port), Some(addr)) = (
        array(buf, 24),
        buf.get(36),
        be16(buf, 40),
        be16(buf, 42),
        array::<16>(buf, 44),
    ) else {
        return Err(short);
    };
    let protocol =
        Protocol::from_iana_number(proto).ok_or(PcpError::UnknownProtocol { got: proto })?;
    let addr = Ipv6Addr::from(addr);
    let external_addr = addr.to_ipv4_mapped().map_or(IpAddr::V6(addr), IpAddr::V4);
    Ok(Mapping {
        nonce,
        protocol,
        internal_port,
        external_port,
        external_addr,
    })
}

/// Walks the options from `at` to the end: code, reserved, length, data
/// padded to 4 bytes. Fails if one runs past the end.
fn skip_options(buf: &[u8], mut at: usize) -> Result<(), PcpError> {
    while at < buf.len() {
        let data_len = buf.get(at..).and_then(|opt| be16(opt, 2));
        let padded = data_len.map(|n| usize::from(n).next_multiple_of(4));
        match padded.and_then(|n| n.checked_add(4)?.checked_add(at)) {
            Some(end) if end <= buf.len() => at = end,
            _ => return Err(PcpError::MalformedOption { offset: at }),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::XorShift;
    use super::*;

    const NONCE: [u8; 12] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];

    /// MAP success: lifetime 3600, epoch 42, UDP 41641 -> 203.0.113.7:50000.
    #[rustfmt::skip]
    const MAP_OK: [u8; 60] = [
        0x02, 0x81, 0x00, 0x00, 0x00, 0x00, 0x0e, 0x10, 0x00, 0x00, 0x00, 0x2a,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // reserved
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, // nonce
        0x11, 0, 0, 0, 0xa2, 0xa9, 0xc3, 0x50, // UDP, 41641, 50000
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 7,
    ];

    /// The request MAP_OK answers, changed by `f`.
    fn request(f: impl FnOnce(&mut MapRequest)) -> MapRequest {
        let mut r = MapRequest {
            lifetime_secs: 7200,
            client_addr: IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10)),
            nonce: NONCE,
            protocol: Protocol::Udp,
            internal_port: 41641,
            suggested_external_port: 41641,
            suggested_external_addr: None,
        };
        f(&mut r);
        r
    }

    fn with_options(opts: &[u8]) -> Vec<u8> {
        [&MAP_OK[..], opts].concat()
    }

    fn v6(last: u8) -> [u8; 16] {
        [0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last]
    }

    #[test]
    fn encode_golden() {
        #[rustfmt::skip]
        let want: [u8; 60] = [
            0x02, 0x01, 0x00, 0x00, 0x00, 0x00, 0x1c, 0x20, // v2, MAP, 7200 s
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 1, 10,
            1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
            0x11, 0, 0, 0, 0xa2, 0xa9, 0xa2, 0xa9,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0,
        ];
        assert_eq!(request(|_| {}).encode(), want);
        let got = request(|r| {
            r.client_addr = IpAddr::V6(v6(1).into());
            r.suggested_external_addr = Some(IpAddr::V6(v6(2).into()));
            r.protocol = Protocol::Tcp;
        })
        .encode();
        assert_eq!(
            (&got[8..24], got[36], &got[44..60]),
            (&v6(1)[..], 6, &v6(2)[..])
        );
        let no_pref = request(|r| r.client_addr = IpAddr::V6(v6(1).into())).encode();
        assert_eq!(no_pref[44..60], [0; 16]);
        let ann = announce_request(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
        let want = [
            2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 2,
        ];
        assert_eq!(ann, want);
    }

    #[test]
    fn decode_golden() {
        let mapping = Mapping {
            nonce: NONCE,
            protocol: Protocol::Udp,
            internal_port: 41641,
            external_port: 50000,
            external_addr: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)),
        };
        let r = decode_response(&MAP_OK, Opcode::Map).unwrap();
        assert_eq!(r.result, ResultCode::Success);
        assert_eq!((r.lifetime_secs, r.epoch_secs), (3600, 42));
        assert_eq!(r.mapping, Some(mapping));
        let grant = decode_map_response(&MAP_OK, &request(|_| {})).unwrap();
        assert_eq!(
            (grant.mapping, grant.lifetime_secs, grant.epoch_secs),
            (mapping, 3600, 42)
        );
        // A native IPv6 external address stays IPv6.
        let mut buf = MAP_OK;
        buf[44..60].copy_from_slice(&v6(9));
        let m = decode_response(&buf, Opcode::Map).unwrap().mapping;
        assert_eq!(m.map(|m| m.external_addr), Some(IpAddr::V6(v6(9).into())));
        // ANNOUNCE answer: header only, epoch 256.
        let ann = [
            2, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let r = decode_response(&ann, Opcode::Announce).unwrap();
        assert_eq!(
            (r.opcode, r.epoch_secs, r.mapping),
            (Opcode::Announce, 256, None)
        );
    }

    #[test]
    fn options_are_skipped() {
        // PREFER_FAILURE (code 2, no data) then FILTER (code 3, 20 bytes).
        let mut opts = vec![2, 0, 0, 0, 3, 0, 0, 20];
        opts.extend_from_slice(&[0; 20]);
        assert!(decode_map_response(&with_options(&opts), &request(|_| {})).is_ok());
        // Odd data length padded to 4: length 5 occupies 8 bytes.
        let padded = with_options(&[0x80, 0, 0, 5, 1, 2, 3, 4, 5, 0, 0, 0]);
        assert!(decode_response(&padded, Opcode::Map).is_ok());
        // Zero-length options fill up to the 1100-byte cap exactly.
        assert!(decode_response(&with_options(&[0; 1040]), Opcode::Map).is_ok());
        let bad = with_options(&[0x80, 0, 0, 5, 1, 2, 3, 4]);
        let want = PcpError::MalformedOption { offset: 60 };
        assert_eq!(decode_response(&bad, Opcode::Map), Err(want));
        let bad = with_options(&[2, 0, 0, 0, 3, 0, 0xff, 0xff]);
        let want = PcpError::MalformedOption { offset: 64 };
        assert_eq!(decode_response(&bad, Opcode::Map), Err(want));
    }

    #[test]
    fn error_results() {
        // NOT_AUTHORIZED, header only, error valid for 30 s.
        let short = [
            2, 0x81, 0, 2, 0, 0, 0, 30, 0, 0, 0, 42, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let r = decode_response(&short, Opcode::Map).unwrap();
        assert_eq!((r.result, r.lifetime_secs), (ResultCode::NotAuthorized, 30));
        assert_eq!(r.mapping, None);
        let want = PcpError::Server(ResultCode::NotAuthorized);
        assert_eq!(decode_map_response(&short, &request(|_| {})), Err(want));
        // An echoed body is parsed and still checked against the request.
        let mut echoed = MAP_OK;
        echoed[3] = 11;
        let want = PcpError::Server(ResultCode::CannotProvideExternal);
        assert_eq!(decode_map_response(&echoed, &request(|_| {})), Err(want));
        let other = request(|r| r.nonce = [0; 12]);
        assert_eq!(
            decode_map_response(&echoed, &other),
            Err(PcpError::NonceMismatch)
        );
        for v in 0..=14u8 {
            assert_eq!(ResultCode::from_u8(v).to_u8(), v);
        }
        assert_eq!(ResultCode::from_u8(14), ResultCode::Unknown(14));
    }

    #[test]
    fn error_paths() {
        use PcpError as E;
        let (map, ann) = (Opcode::Map, Opcode::Announce);
        let natpmp_reply = [0, 0x80, 0, 1, 0, 0, 0, 7];
        let mut req = MAP_OK;
        req[1] = 0x01;
        let mut proto = MAP_OK;
        proto[36] = 47;
        #[rustfmt::skip]
        let cases: &[(&[u8], Opcode, PcpError)] = &[
            (&[], map, E::TooShort { len: 0, need: 24 }),
            (&MAP_OK[..20], map, E::TooShort { len: 20, need: 24 }),
            (&MAP_OK[..26], map, E::NotMultipleOf4 { len: 26 }),
            (&MAP_OK[..24], map, E::TooShort { len: 24, need: 60 }),
            (&MAP_OK[..28], map, E::TooShort { len: 28, need: 60 }),
            (&natpmp_reply, map, E::Version { got: 0 }),
            (&req, map, E::NotAResponse { opcode: 1 }),
            (&MAP_OK, ann, E::OpcodeMismatch { expected: 0, got: 1 }),
            (&proto, map, E::UnknownProtocol { got: 47 }),
            (&with_options(&[0; 1044]), map, E::TooLong { len: 1104 }),
        ];
        for (buf, op, want) in cases {
            assert_eq!(decode_response(buf, *op).as_ref(), Err(want), "{buf:?}");
        }
        #[rustfmt::skip]
        let mismatches = [
            (request(|r| r.protocol = Protocol::Tcp), E::ProtocolMismatch { expected: 6, got: 17 }),
            (request(|r| r.internal_port = 22), E::InternalPortMismatch { expected: 22, got: 41641 }),
        ];
        for (req, want) in mismatches {
            assert_eq!(decode_map_response(&MAP_OK, &req), Err(want));
        }
        let msg = E::TooShort { len: 20, need: 24 }.to_string();
        assert_eq!(msg, "PCP response too short: 20 bytes, need 24");
    }

    #[test]
    fn never_panics() {
        let req = request(|_| {});
        let check = |buf: &[u8]| {
            for op in [Opcode::Announce, Opcode::Map] {
                if let Ok(r) = decode_response(buf, op) {
                    let map_ok = op == Opcode::Map && r.result == ResultCode::Success;
                    assert!(!map_ok || r.mapping.is_some());
                }
            }
            let _ = decode_map_response(buf, &req);
        };
        let valid = with_options(&[0x80, 0, 0, 5, 1, 2, 3, 4, 5, 0, 0, 0]);
        (0..=valid.len()).for_each(|n| check(&valid[..n]));
        let mut rng = XorShift::new(0x6887);
        for _ in 0..3000 {
            let mut buf = rng.bytes(1200);
            if let [v, op, ..] = buf.as_mut_slice() {
                (*v, *op) = (2, 0x80 | (*op & 1));
            }
            check(&buf);
            // A valid MAP followed by random option bytes, length rounded to 4.
            let mut tail = rng.bytes(64);
            tail.truncate(tail.len() & !3);
            check(&with_options(&tail));
            let mut m = MAP_OK;
            m[rng.below(60)] ^= 1 << rng.below(8);
            check(&m);
        }
    }
}
