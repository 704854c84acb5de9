//! STUN Binding codec for netcheck (RFC 8489, with the RFC 5780 discovery
//! attributes and RFC 3489 fallbacks). Pure functions: no sockets, no
//! retransmission, no clock.
//!
//! Encoding and attribute decoding are done by the `stun-rs` crate. This module
//! adds what a NAT probe needs on top of it: a size bound, a header check with
//! precise errors, the transaction-id match, FINGERPRINT placement and CRC,
//! and the address fallbacks for old servers. Three attribute types that
//! `stun-rs` does not know (CHANGED-ADDRESS 0x0005, SOURCE-ADDRESS 0x0004 and
//! the non-standard XOR-MAPPED-ADDRESS 0x8020) are read from their raw bytes
//! by [`parse_address`] here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use stun_rs::attributes::discovery::{
    ChangeRequest as ChangeRequestAttr, ChangeRequestFlags, ResponsePort,
};
use stun_rs::attributes::stun::{Fingerprint, Software};
use stun_rs::attributes::StunAttribute;
use stun_rs::{
    methods::BINDING, DecoderContextBuilder, MessageClass, MessageDecoderBuilder,
    MessageEncoderBuilder, MessageType, StunMessageBuilder,
};

#[cfg(test)]
mod tests;

/// Largest datagram [`decode_binding_response`] accepts (an Ethernet MTU).
pub const MAX_DATAGRAM: usize = 1500;
/// Length of the fixed STUN header.
pub const HEADER_LEN: usize = 20;
/// The RFC 5389 magic cookie, bytes 4..8 of every modern STUN message.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// SOFTWARE value sent in every request.
///
/// Tailscale's DERP STUN server (`net/stunserver`) silently drops a Binding
/// request unless it carries SOFTWARE with exactly this value and ends in
/// FINGERPRINT; other servers ignore SOFTWARE.
pub const SOFTWARE: &str = "tailnode";

/// FINGERPRINT attribute type.
const ATTR_FINGERPRINT: u16 = 0x8028;
/// RFC 3489 SOURCE-ADDRESS: where the server sent the response from.
const ATTR_SOURCE_ADDRESS: u16 = 0x0004;
/// RFC 3489 CHANGED-ADDRESS: the server's alternate address.
const ATTR_CHANGED_ADDRESS: u16 = 0x0005;
/// XOR-MAPPED-ADDRESS under the pre-RFC 5389 draft number, still sent by some
/// servers (tailscale's client accepts it too).
const ATTR_XOR_MAPPED_ADDRESS_OLD: u16 = 0x8020;
/// Room for header, SOFTWARE, CHANGE-REQUEST and FINGERPRINT.
const REQUEST_CAPACITY: usize = 64;

/// A 96-bit STUN transaction id. The caller supplies the randomness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TransactionId([u8; 12]);

impl TransactionId {
    /// Wraps 12 (random) bytes.
    pub const fn new(bytes: [u8; 12]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 12] {
        &self.0
    }
}

impl From<[u8; 12]> for TransactionId {
    fn from(bytes: [u8; 12]) -> Self {
        Self(bytes)
    }
}

/// The RFC 5780 CHANGE-REQUEST flags: ask the server to answer from its
/// other IP and/or other port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ChangeRequest {
    /// Answer from the alternate IP address.
    pub change_ip: bool,
    /// Answer from the alternate port.
    pub change_port: bool,
}

/// What a successful Binding response told us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BindingResponse {
    /// Our reflexive address: XOR-MAPPED-ADDRESS (0x0020, else the old 0x8020),
    /// falling back to MAPPED-ADDRESS for RFC 3489 servers. IPv4-mapped IPv6
    /// addresses are turned into IPv4.
    pub mapped: SocketAddr,
    /// The server's alternate address: RFC 5780 OTHER-ADDRESS, else RFC 3489
    /// CHANGED-ADDRESS.
    pub other_address: Option<SocketAddr>,
    /// Where the server says it answered from: RFC 5780 RESPONSE-ORIGIN, else
    /// RFC 3489 SOURCE-ADDRESS.
    pub response_origin: Option<SocketAddr>,
}

/// Why a datagram is not a usable Binding response (or request).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StunError {
    /// Larger than [`MAX_DATAGRAM`].
    #[error("datagram of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Datagram length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Shorter than the 20-byte header.
    #[error("datagram of {len} bytes is shorter than the 20-byte STUN header")]
    Truncated {
        /// Datagram length.
        len: usize,
    },
    /// The two most significant bits of the message type are not zero.
    #[error("leading bits {bits:#04b} are not zero: not STUN")]
    LeadingBits {
        /// The two bits.
        bits: u8,
    },
    /// Bytes 4..8 are not the magic cookie (an RFC 3489-only server or junk).
    #[error("magic cookie is {found:#010x}, expected 0x2112a442")]
    BadCookie {
        /// What was there.
        found: u32,
    },
    /// The header's message length disagrees with the datagram.
    #[error("header declares {declared} attribute bytes, datagram carries {actual}")]
    LengthMismatch {
        /// Length field of the header.
        declared: usize,
        /// Bytes after the header.
        actual: usize,
    },
    /// The transaction id is not the one we sent.
    #[error("transaction id does not match the request")]
    TransactionMismatch,
    /// The method is not Binding.
    #[error("method {method:#05x} is not Binding")]
    NotBinding {
        /// The 12-bit method number.
        method: u16,
    },
    /// A request or indication where a response was expected.
    #[error("message class is {class}, expected a response")]
    NotResponse {
        /// `request` or `indication`.
        class: &'static str,
    },
    /// FINGERPRINT present but not the last attribute.
    #[error("FINGERPRINT is not the last attribute")]
    FingerprintNotLast,
    /// FINGERPRINT present but its CRC-32 does not match.
    #[error("FINGERPRINT CRC does not match the message")]
    BadFingerprint,
    /// An attribute could not be decoded (text from `stun-rs`).
    #[error("malformed STUN message: {detail}")]
    Malformed {
        /// The decoder's description (attribute and position).
        detail: String,
    },
    /// A success response with no usable mapped-address attribute.
    #[error("success response carries no XOR-MAPPED-ADDRESS or MAPPED-ADDRESS")]
    NoMappedAddress,
    /// The mapped address is unspecified (0.0.0.0 / ::) or has port 0.
    #[error("mapped address {addr} is unusable")]
    UnusableMappedAddress {
        /// What the server reported.
        addr: SocketAddr,
    },
    /// The server answered with a Binding error response.
    #[error("server answered error {code}: {reason}")]
    ErrorResponse {
        /// ERROR-CODE number (300..=699); 0 if the response had no ERROR-CODE.
        code: u16,
        /// Reason phrase (may be empty; trailing NULs removed).
        reason: String,
    },
    /// The request could not be encoded (should not happen).
    #[error("could not encode the request: {detail}")]
    Encode {
        /// The encoder's description.
        detail: String,
    },
}

/// Builds a Binding request with SOFTWARE [`SOFTWARE`], an optional RFC 5780
/// CHANGE-REQUEST (present whenever `change` is `Some`, even with both flags
/// false) and FINGERPRINT as the last attribute.
pub fn binding_request(
    tid: &TransactionId,
    change: Option<ChangeRequest>,
) -> Result<Vec<u8>, StunError> {
    binding_request_to(tid, change, None)
}

/// A Binding request whose answer the server sends to `response_port` on
/// our public address (RFC 5780 RESPONSE-PORT) instead of the source port.
pub fn binding_request_to(
    tid: &TransactionId,
    change: Option<ChangeRequest>,
    response_port: Option<u16>,
) -> Result<Vec<u8>, StunError> {
    let encode_err = |e: &dyn std::fmt::Display| StunError::Encode {
        detail: e.to_string(),
    };
    let software = Software::new(SOFTWARE).map_err(|e| encode_err(&e))?;
    let mut builder = StunMessageBuilder::new(BINDING, MessageClass::Request)
        .with_transaction_id(stun_rs::TransactionId::from(*tid.as_bytes()))
        .with_attribute(software);
    if let Some(c) = change {
        let flags = match (c.change_ip, c.change_port) {
            (true, true) => Some(ChangeRequestFlags::ChangeIp | ChangeRequestFlags::ChangePort),
            (true, false) => Some(ChangeRequestFlags::ChangeIp.into()),
            (false, true) => Some(ChangeRequestFlags::ChangePort.into()),
            (false, false) => None,
        };
        builder = builder.with_attribute(ChangeRequestAttr::new(flags));
    }
    if let Some(port) = response_port {
        builder = builder.with_attribute(ResponsePort::from(port));
    }
    let msg = builder.with_attribute(Fingerprint::default()).build();
    let mut buf = vec![0u8; REQUEST_CAPACITY];
    let len = MessageEncoderBuilder::default()
        .build()
        .encode(&mut buf, &msg)
        .map_err(|e| encode_err(&e))?;
    buf.truncate(len);
    Ok(buf)
}

/// Cheap demultiplexing test: at least a header, leading bits zero, the magic
/// cookie, and a length field that is a multiple of 4 and accounts for exactly
/// the rest of the datagram. Does not look at attributes or the size limit.
pub fn looks_like_stun(datagram: &[u8]) -> bool {
    check_header(datagram).is_ok()
}

/// The transaction id of anything that [`looks_like_stun`], so the I/O side
/// can find the probe a datagram answers before decoding it.
pub fn peek_transaction_id(datagram: &[u8]) -> Option<TransactionId> {
    check_header(datagram).ok()?;
    let bytes: [u8; 12] = datagram.get(8..HEADER_LEN)?.try_into().ok()?;
    Some(TransactionId(bytes))
}

/// Decodes a Binding response to the request with transaction id `expected`.
///
/// Checks, in order: size (≤ [`MAX_DATAGRAM`]), header (leading bits, magic
/// cookie, length), attribute syntax (via `stun-rs`), FINGERPRINT, the
/// transaction id, then method Binding and a response class. An error
/// response becomes [`StunError::ErrorResponse`].
///
/// FINGERPRINT is optional: when present it must be the last attribute and
/// its CRC must match; when absent the response is accepted, because
/// Tailscale's DERP STUN servers never send one (coturn always does). The
/// transaction id is then the only guard against stray datagrams.
///
/// MESSAGE-INTEGRITY is not verified (netcheck has no credentials); as RFC
/// 8489 requires, attributes after it other than FINGERPRINT are ignored.
/// Unknown comprehension-required attributes are tolerated, because RFC 3489
/// servers send SOURCE-ADDRESS and CHANGED-ADDRESS in every answer.
pub fn decode_binding_response(
    datagram: &[u8],
    expected: &TransactionId,
) -> Result<BindingResponse, StunError> {
    if datagram.len() > MAX_DATAGRAM {
        return Err(StunError::TooLarge {
            len: datagram.len(),
            max: MAX_DATAGRAM,
        });
    }
    let msg_type = check_header(datagram)?;
    let ctx = DecoderContextBuilder::default().with_unknown_data().build();
    let (msg, _) = MessageDecoderBuilder::default()
        .with_context(ctx)
        .build()
        .decode(datagram)
        .map_err(|e| StunError::Malformed {
            detail: e.to_string(),
        })?;
    check_fingerprint(datagram, &msg)?;
    if msg.transaction_id().as_bytes() != expected.as_bytes() {
        return Err(StunError::TransactionMismatch);
    }
    let method = MessageType::from(msg_type).method();
    if method != BINDING {
        return Err(StunError::NotBinding {
            method: method.as_u16(),
        });
    }
    match msg.class() {
        MessageClass::SuccessResponse => success(&msg, expected),
        MessageClass::ErrorResponse => Err(error_response(&msg)),
        MessageClass::Request => Err(StunError::NotResponse { class: "request" }),
        MessageClass::Indication => Err(StunError::NotResponse {
            class: "indication",
        }),
    }
}

/// Header checks shared by [`looks_like_stun`] and the decoder; returns the
/// 16-bit message type.
fn check_header(d: &[u8]) -> Result<u16, StunError> {
    let header: &[u8; HEADER_LEN] = d
        .get(..HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(StunError::Truncated { len: d.len() })?;
    let msg_type = u16::from_be_bytes([header[0], header[1]]);
    if msg_type >> 14 != 0 {
        return Err(StunError::LeadingBits {
            bits: header[0] >> 6,
        });
    }
    let cookie = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    if cookie != MAGIC_COOKIE {
        return Err(StunError::BadCookie { found: cookie });
    }
    let declared = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let actual = d.len() - HEADER_LEN;
    if declared != actual || declared % 4 != 0 {
        return Err(StunError::LengthMismatch { declared, actual });
    }
    Ok(msg_type)
}

/// FINGERPRINT, if present, must be the last attribute and match the CRC.
///
/// `stun-rs` silently drops whatever follows a FINGERPRINT, so its placement
/// is checked here on the raw attribute list.
fn check_fingerprint(d: &[u8], msg: &stun_rs::StunMessage) -> Result<(), StunError> {
    let Some(attr) = msg.get::<Fingerprint>() else {
        return Ok(());
    };
    let Ok(fp) = attr.as_fingerprint() else {
        return Ok(());
    };
    if !fingerprint_is_last(d) {
        return Err(StunError::FingerprintNotLast);
    }
    // `get_input_text` yields the message before the (first) FINGERPRINT with
    // the length field covering it, which is what the CRC is computed over.
    let input = stun_rs::get_input_text::<Fingerprint>(d).ok_or(StunError::BadFingerprint)?;
    if fp.validate(&input) {
        Ok(())
    } else {
        Err(StunError::BadFingerprint)
    }
}

/// True when the only FINGERPRINT is the last attribute, in the final 8 bytes.
fn fingerprint_is_last(d: &[u8]) -> bool {
    let mut at = HEADER_LEN;
    let mut last = None;
    while let Some(h) = d.get(at..at + 4) {
        if last.is_some_and(|(t, _)| t == ATTR_FINGERPRINT) {
            return false;
        }
        let len = usize::from(u16::from_be_bytes([h[2], h[3]]));
        last = Some((u16::from_be_bytes([h[0], h[1]]), at));
        at += 4 + len.next_multiple_of(4);
    }
    last == Some((ATTR_FINGERPRINT, d.len().wrapping_sub(8)))
}

/// Collects the addresses of a success response.
fn success(msg: &stun_rs::StunMessage, tid: &TransactionId) -> Result<BindingResponse, StunError> {
    let (mut xor, mut xor_old, mut plain) = (None, None, None);
    let (mut other, mut changed, mut origin, mut source) = (None, None, None, None);
    for attr in msg.attributes() {
        match attr {
            StunAttribute::XorMappedAddress(a) => {
                xor = xor.or(Some(*a.socket_address()));
            }
            StunAttribute::MappedAddress(a) => plain = plain.or(Some(*a.socket_address())),
            StunAttribute::OtherAddress(a) => other = other.or(Some(*a.socket_address())),
            StunAttribute::ResponseOrigin(a) => origin = origin.or(Some(*a.socket_address())),
            StunAttribute::Unknown(u) => {
                let value = u.attribute_data().unwrap_or_default();
                match u.attribute_type().as_u16() {
                    ATTR_XOR_MAPPED_ADDRESS_OLD => {
                        xor_old = xor_old.or(parse_address(value, Some(tid)));
                    }
                    ATTR_CHANGED_ADDRESS => changed = changed.or(parse_address(value, None)),
                    ATTR_SOURCE_ADDRESS => source = source.or(parse_address(value, None)),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    let mapped = canonical(
        xor.or(xor_old)
            .or(plain)
            .ok_or(StunError::NoMappedAddress)?,
    );
    if mapped.ip().is_unspecified() || mapped.port() == 0 {
        return Err(StunError::UnusableMappedAddress { addr: mapped });
    }
    Ok(BindingResponse {
        mapped,
        other_address: other.or(changed).map(canonical),
        response_origin: origin.or(source).map(canonical),
    })
}

/// The ERROR-CODE of an error response.
fn error_response(msg: &stun_rs::StunMessage) -> StunError {
    let found = msg
        .get::<stun_rs::attributes::stun::ErrorCode>()
        .and_then(|a| a.as_error_code().ok());
    match found {
        Some(e) => StunError::ErrorResponse {
            code: e.error_code().error_code(),
            // coturn 4.6 counts two NUL padding bytes into the reason.
            reason: e.error_code().reason().trim_end_matches('\0').to_owned(),
        },
        None => StunError::ErrorResponse {
            code: 0,
            reason: String::new(),
        },
    }
}

/// Reads a MAPPED-ADDRESS-style value (reserved byte, family, port, address),
/// un-XORing it with the cookie and `xor_tid` when given. For attribute types
/// `stun-rs` does not know; `None` if the value is malformed.
fn parse_address(value: &[u8], xor_tid: Option<&TransactionId>) -> Option<SocketAddr> {
    let (head, rest) = value.split_first_chunk::<4>()?;
    let mut port = u16::from_be_bytes([head[2], head[3]]);
    let mut pad = [0u8; 16];
    pad[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    if let Some(tid) = xor_tid {
        port ^= (MAGIC_COOKIE >> 16) as u16;
        pad[4..].copy_from_slice(tid.as_bytes());
    }
    let unxor = |i: usize, b: u8| if xor_tid.is_some() { b ^ pad[i] } else { b };
    let ip = match head[1] {
        1 => {
            let a: [u8; 4] = *rest.first_chunk::<4>()?;
            let mut o = [0u8; 4];
            for (i, b) in a.into_iter().enumerate() {
                o[i] = unxor(i, b);
            }
            IpAddr::V4(Ipv4Addr::from(o))
        }
        2 => {
            let a: [u8; 16] = *rest.first_chunk::<16>()?;
            let mut o = [0u8; 16];
            for (i, b) in a.into_iter().enumerate() {
                o[i] = unxor(i, b);
            }
            IpAddr::V6(Ipv6Addr::from(o))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`, sent by servers on dual-stack
/// sockets) becomes plain IPv4.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}
