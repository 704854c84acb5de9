//! NAT-PMP (RFC 6886) codec.
//!
//! Requests are built with [`external_address_request`] and
//! [`MapRequest::encode`]; answers are checked and parsed by
//! [`decode_response`]. Nothing here touches the network.

use std::net::Ipv4Addr;

use super::{array, be16, be32, Protocol, MAX_MESSAGE_LEN};

/// The NAT-PMP version number.
pub const VERSION: u8 = 0;

/// Bit set in the opcode of every response.
const RESPONSE_BIT: u8 = 0x80;
/// Length of version, opcode, result code and epoch: the shortest response.
const COMMON_LEN: usize = 8;

/// A NAT-PMP request opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Opcode {
    /// Opcode 0: ask for the external IPv4 address.
    ExternalAddress,
    /// Opcode 1: map a UDP port.
    MapUdp,
    /// Opcode 2: map a TCP port.
    MapTcp,
}

impl Opcode {
    /// The request opcode byte (the response carries this plus 128).
    pub const fn to_u8(self) -> u8 {
        match self {
            Self::ExternalAddress => 0,
            Self::MapUdp => 1,
            Self::MapTcp => 2,
        }
    }

    /// Length of a successful response to this opcode.
    pub const fn response_len(self) -> usize {
        match self {
            Self::ExternalAddress => 12,
            Self::MapUdp | Self::MapTcp => 16,
        }
    }
}

result_codes! {
    /// A NAT-PMP result code (RFC 6886 §3.5).
    ResultCode(u16), from_u16, to_u16;
    /// 0: success.
    Success = 0,
    /// 1: unsupported version.
    UnsupportedVersion = 1,
    /// 2: not authorized or refused (e.g. NAT-PMP disabled on the box).
    NotAuthorized = 2,
    /// 3: network failure (e.g. the NAT has no external address yet).
    NetworkFailure = 3,
    /// 4: out of resources (no more mappings available).
    OutOfResources = 4,
    /// 5: unsupported opcode.
    UnsupportedOpcode = 5,
}

/// Why a NAT-PMP response was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[allow(missing_docs)] // Field meanings are given in each variant's doc.
pub enum NatPmpError {
    /// `len` bytes arrived; the response needs at least `need`.
    #[error("NAT-PMP response too short: {len} bytes, need {need}")]
    TooShort { len: usize, need: usize },
    /// `len` exceeds [`MAX_MESSAGE_LEN`].
    #[error("NAT-PMP response too long: {len} bytes, max {MAX_MESSAGE_LEN}")]
    TooLong { len: usize },
    /// No response to this opcode is `len` bytes; success is `expected`.
    #[error("NAT-PMP response has wrong length: {len} bytes, expected {expected}")]
    BadLength { len: usize, expected: usize },
    /// The version byte is `got`, not 0; see [`super::classify_reply`].
    #[error("NAT-PMP response has version {got}, expected 0")]
    Version { got: u8 },
    /// The opcode byte lacks the response bit: this is a request.
    #[error("NAT-PMP message with opcode {opcode} is not a response")]
    NotAResponse { opcode: u8 },
    /// Response opcode byte `got` does not answer request opcode `expected`.
    #[error("NAT-PMP response opcode {got} does not answer request opcode {expected}")]
    OpcodeMismatch { expected: u8, got: u8 },
    /// The mapping is for internal port `got`, not the requested `expected`.
    #[error("NAT-PMP mapping is for internal port {got}, requested {expected}")]
    InternalPortMismatch { expected: u16, got: u16 },
    /// The server answered with a non-success result code.
    #[error("NAT-PMP server returned result {0:?}")]
    Server(ResultCode),
}

/// Encodes the external-address request (version 0, opcode 0).
pub const fn external_address_request() -> [u8; 2] {
    [VERSION, 0]
}

/// A request to create, renew or delete a port mapping (RFC 6886 §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MapRequest {
    /// UDP or TCP.
    pub protocol: Protocol,
    /// The port on this host.
    pub internal_port: u16,
    /// Preferred external port; 0 lets the server choose.
    pub suggested_external_port: u16,
    /// Requested lifetime in seconds; 0 deletes the mapping.
    pub lifetime_secs: u32,
}

impl MapRequest {
    /// A request deleting the mapping for `internal_port` (lifetime and
    /// suggested port 0, as RFC 6886 §3.4 requires).
    pub const fn delete(protocol: Protocol, internal_port: u16) -> Self {
        Self {
            protocol,
            internal_port,
            suggested_external_port: 0,
            lifetime_secs: 0,
        }
    }

    /// The opcode of this request.
    pub const fn opcode(&self) -> Opcode {
        match self.protocol {
            Protocol::Udp => Opcode::MapUdp,
            Protocol::Tcp => Opcode::MapTcp,
        }
    }

    /// Encodes the 12-byte request.
    pub fn encode(&self) -> [u8; 12] {
        let mut out = [0u8; 12];
        out[0] = VERSION;
        out[1] = self.opcode().to_u8();
        // out[2..4] reserved, zero.
        out[4..6].copy_from_slice(&self.internal_port.to_be_bytes());
        out[6..8].copy_from_slice(&self.suggested_external_port.to_be_bytes());
        out[8..12].copy_from_slice(&self.lifetime_secs.to_be_bytes());
        out
    }
}

/// A mapping granted by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mapping {
    /// UDP or TCP, from the response opcode.
    pub protocol: Protocol,
    /// The internal port the mapping is for; compare it with the request's.
    pub internal_port: u16,
    /// The external port actually mapped (may differ from the suggestion).
    pub external_port: u16,
    /// Granted lifetime in seconds (0 confirms a deletion).
    pub lifetime_secs: u32,
}

/// The opcode-specific part of a successful response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Body {
    /// Answer to opcode 0. `0.0.0.0` means the NAT has no address yet.
    ExternalAddress(Ipv4Addr),
    /// Answer to opcode 1 or 2.
    Mapping(Mapping),
}

/// A decoded, well-formed NAT-PMP response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Response {
    /// The request opcode this answers.
    pub opcode: Opcode,
    /// The server's result code.
    pub result: ResultCode,
    /// Seconds since the server's port-mapping table was (re)initialised;
    /// a jump backwards means the server lost its mappings.
    pub epoch_secs: u32,
    /// Present exactly when `result` is [`ResultCode::Success`].
    pub body: Option<Body>,
}

/// Decodes a response to a request with `opcode`.
///
/// Successful responses must have exactly [`Opcode::response_len`] bytes.
/// Error responses may stop after the epoch field (8 bytes) or carry the
/// full layout; their body is not parsed. The RFC's unsupported-version
/// reply (opcode 128) is accepted whatever `opcode` is.
pub fn decode_response(buf: &[u8], opcode: Opcode) -> Result<Response, NatPmpError> {
    let len = buf.len();
    if len > MAX_MESSAGE_LEN {
        return Err(NatPmpError::TooLong { len });
    }
    let short = |need| NatPmpError::TooShort { len, need };
    let version = *buf.first().ok_or(short(COMMON_LEN))?;
    if version != VERSION {
        return Err(NatPmpError::Version { got: version });
    }
    let (Some(&op), Some(code), Some(epoch_secs)) = (buf.get(1), be16(buf, 2), be32(buf, 4)) else {
        return Err(short(COMMON_LEN));
    };
    let result = ResultCode::from_u16(code);
    if op & RESPONSE_BIT == 0 {
        return Err(NatPmpError::NotAResponse { opcode: op });
    }
    let version_reply = result == ResultCode::UnsupportedVersion && op == RESPONSE_BIT;
    if op != opcode.to_u8() | RESPONSE_BIT && !version_reply {
        let expected = opcode.to_u8();
        return Err(NatPmpError::OpcodeMismatch { expected, got: op });
    }
    let expected = opcode.response_len();
    let success = result == ResultCode::Success;
    if len > expected || (!success && !len.is_multiple_of(4)) {
        return Err(NatPmpError::BadLength { len, expected });
    }
    let body = match (success, opcode) {
        (false, _) => None,
        (true, Opcode::ExternalAddress) => {
            array(buf, 8).map(|a: [u8; 4]| Body::ExternalAddress(a.into()))
        }
        (true, Opcode::MapUdp) => decode_mapping(buf, Protocol::Udp),
        (true, Opcode::MapTcp) => decode_mapping(buf, Protocol::Tcp),
    };
    if success && body.is_none() {
        return Err(short(expected));
    }
    Ok(Response {
        opcode,
        result,
        epoch_secs,
        body,
    })
}

/// A successful answer to a [`MapRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MapGrant {
    /// The mapping, with the requested internal port.
    pub mapping: Mapping,
    /// The server's epoch, as in [`Response::epoch_secs`].
    pub epoch_secs: u32,
}

/// Decodes the answer to `request`, requiring success and a matching port.
///
/// Fails with [`NatPmpError::Server`] on a non-success result and with
/// [`NatPmpError::InternalPortMismatch`] if the answer is for another port.
pub fn decode_map_response(buf: &[u8], request: &MapRequest) -> Result<MapGrant, NatPmpError> {
    let response = decode_response(buf, request.opcode())?;
    let Some(Body::Mapping(mapping)) = response.body else {
        return Err(NatPmpError::Server(response.result));
    };
    let (expected, got) = (request.internal_port, mapping.internal_port);
    if expected != got {
        return Err(NatPmpError::InternalPortMismatch { expected, got });
    }
    Ok(MapGrant {
        mapping,
        epoch_secs: response.epoch_secs,
    })
}

/// Reads the mapping fields of a 16-byte map response.
fn decode_mapping(buf: &[u8], protocol: Protocol) -> Option<Body> {
    Some(Body::Mapping(Mapping {
        protocol,
        internal_port: be16(buf, 8)?,
        external_port: be16(buf, 10)?,
        lifetime_secs: be32(buf, 12)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::super::XorShift;
    use super::*;

    /// External address 203.0.113.7, epoch 86400.
    const EXT_OK: [u8; 12] = [0, 0x80, 0, 0, 0x00, 0x01, 0x51, 0x80, 203, 0, 113, 7];
    /// UDP 41641 -> 50000 for 3600 s, epoch 42.
    const MAP_OK: [u8; 16] = [
        0, 0x81, 0, 0, 0, 0, 0, 0x2a, 0xa2, 0xa9, 0xc3, 0x50, 0, 0, 0x0e, 0x10,
    ];

    fn udp_41641() -> MapRequest {
        MapRequest {
            protocol: Protocol::Udp,
            internal_port: 41641,
            suggested_external_port: 41641,
            lifetime_secs: 7200,
        }
    }

    #[test]
    fn encode_golden() {
        assert_eq!(external_address_request(), [0x00, 0x00]);
        let udp = [0, 1, 0, 0, 0xa2, 0xa9, 0xa2, 0xa9, 0x00, 0x00, 0x1c, 0x20];
        assert_eq!(udp_41641().encode(), udp);
        let del = [0, 2, 0, 0, 0x1f, 0x90, 0, 0, 0, 0, 0, 0];
        assert_eq!(MapRequest::delete(Protocol::Tcp, 8080).encode(), del);
    }

    #[test]
    fn decode_golden() {
        let r = decode_response(&EXT_OK, Opcode::ExternalAddress).unwrap();
        assert_eq!((r.result, r.epoch_secs), (ResultCode::Success, 86_400));
        assert_eq!(
            r.body,
            Some(Body::ExternalAddress(Ipv4Addr::new(203, 0, 113, 7)))
        );
        let want = Mapping {
            protocol: Protocol::Udp,
            internal_port: 41641,
            external_port: 50000,
            lifetime_secs: 3600,
        };
        let r = decode_response(&MAP_OK, Opcode::MapUdp).unwrap();
        assert_eq!(
            (r.opcode, r.epoch_secs, r.body),
            (Opcode::MapUdp, 42, Some(Body::Mapping(want)))
        );
        let grant = MapGrant {
            mapping: want,
            epoch_secs: 42,
        };
        assert_eq!(decode_map_response(&MAP_OK, &udp_41641()), Ok(grant));
        let mut tcp = MAP_OK;
        tcp[1] = 0x82;
        let req = MapRequest {
            protocol: Protocol::Tcp,
            ..udp_41641()
        };
        assert_eq!(
            decode_map_response(&tcp, &req).unwrap().mapping.protocol,
            Protocol::Tcp
        );
    }

    #[test]
    fn decode_error_results() {
        // Short form (8 bytes) and full form (16 bytes) both carry the code.
        let short = [0, 0x81, 0, 3, 0, 0, 0, 42];
        let r = decode_response(&short, Opcode::MapUdp).unwrap();
        assert_eq!((r.result, r.body), (ResultCode::NetworkFailure, None));
        let err = NatPmpError::Server(ResultCode::NetworkFailure);
        assert_eq!(decode_map_response(&short, &udp_41641()), Err(err));
        let mut full = MAP_OK;
        full[3] = 2;
        let r = decode_response(&full, Opcode::MapUdp).unwrap();
        assert_eq!((r.result, r.body), (ResultCode::NotAuthorized, None));
        // The unsupported-version reply uses opcode 128 whatever was asked.
        let r = decode_response(&[0, 0x80, 0, 1, 0, 0, 0, 1], Opcode::MapTcp).unwrap();
        assert_eq!(r.result, ResultCode::UnsupportedVersion);
        let r = decode_response(&[0, 0x80, 0x12, 0x34, 0, 0, 0, 1], Opcode::ExternalAddress);
        assert_eq!(r.unwrap().result, ResultCode::Unknown(0x1234));
        for v in 0..=6u16 {
            assert_eq!(ResultCode::from_u16(v).to_u16(), v);
        }
        assert_eq!(ResultCode::from_u16(6), ResultCode::Unknown(6));
    }

    #[test]
    fn error_paths() {
        use NatPmpError as E;
        let (ext, udp) = (Opcode::ExternalAddress, Opcode::MapUdp);
        let mut long = MAP_OK.to_vec();
        long.extend_from_slice(&[0; 4]);
        #[rustfmt::skip]
        let cases: &[(&[u8], Opcode, NatPmpError)] = &[
            (&[], ext, E::TooShort { len: 0, need: 8 }),
            (&[0, 0x80, 0, 0, 0, 0, 0], ext, E::TooShort { len: 7, need: 8 }),
            (&EXT_OK[..11], ext, E::TooShort { len: 11, need: 12 }),
            (&MAP_OK[..12], udp, E::TooShort { len: 12, need: 16 }),
            (&MAP_OK, ext, E::OpcodeMismatch { expected: 0, got: 0x81 }),
            (&EXT_OK, udp, E::OpcodeMismatch { expected: 1, got: 0x80 }),
            (&[0, 0x01, 0, 0, 0, 0, 0, 0], udp, E::NotAResponse { opcode: 1 }),
            (&[2, 0x81, 0, 0], udp, E::Version { got: 2 }),
            (&[0, 0x81, 0, 3, 0, 0, 0, 0, 0, 0], udp, E::BadLength { len: 10, expected: 16 }),
            (&[0, 0x80, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], ext, E::BadLength { len: 16, expected: 12 }),
            (&long, udp, E::BadLength { len: 20, expected: 16 }),
            (&[0; MAX_MESSAGE_LEN + 1], ext, E::TooLong { len: 1101 }),
        ];
        for (buf, op, want) in cases {
            assert_eq!(decode_response(buf, *op).as_ref(), Err(want), "{buf:?}");
        }
        let other = MapRequest {
            internal_port: 1,
            ..udp_41641()
        };
        let want = E::InternalPortMismatch {
            expected: 1,
            got: 41641,
        };
        assert_eq!(decode_map_response(&MAP_OK, &other), Err(want));
        let msg = E::TooShort { len: 7, need: 8 }.to_string();
        assert_eq!(msg, "NAT-PMP response too short: 7 bytes, need 8");
        let msg = E::Server(ResultCode::NotAuthorized).to_string();
        assert_eq!(msg, "NAT-PMP server returned result NotAuthorized");
    }

    #[test]
    fn never_panics() {
        let check = |buf: &[u8]| {
            for op in [Opcode::ExternalAddress, Opcode::MapUdp, Opcode::MapTcp] {
                if let Ok(r) = decode_response(buf, op) {
                    assert_eq!(r.body.is_some(), r.result == ResultCode::Success);
                    assert!(buf.len() <= op.response_len());
                }
            }
        };
        for valid in [&EXT_OK[..], &MAP_OK[..]] {
            (0..=valid.len()).for_each(|n| check(&valid[..n]));
        }
        let mut rng = XorShift::new(0x6886);
        for _ in 0..5000 {
            let mut buf = rng.bytes(1200);
            // Bias towards plausible headers so the deeper checks run.
            if let [v, op, ..] = buf.as_mut_slice() {
                *v &= 1;
                *op = (*op & 0x83) | ((*v ^ 1) << 7);
            }
            check(&buf);
            let mut m = MAP_OK;
            m[rng.below(16)] ^= 1 << rng.below(8);
            check(&m);
        }
    }
}
