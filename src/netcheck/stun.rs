//! STUN Binding (RFC 8489) and the RFC 5780 attributes we need, over the
//! stun-rs codec. Pure functions: no sockets, no clocks, no randomness.

use std::net::SocketAddr;

use stun_rs::attributes::discovery::{
    ChangeRequest as ChangeRequestAttr, ChangeRequestFlags, OtherAddress, ResponseOrigin,
};
use stun_rs::attributes::stun::{ErrorCode, Fingerprint, MappedAddress, XorMappedAddress};
use stun_rs::methods::BINDING;
use stun_rs::{MessageClass, MessageDecoderBuilder, MessageEncoderBuilder, StunMessageBuilder};

/// Largest datagram decoded; a Binding answer is far smaller.
pub const MAX_DATAGRAM: usize = 1500;
/// RFC 5389 magic cookie.
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
/// Header length.
const HEADER_LEN: usize = 20;

/// A 96-bit transaction id (the caller supplies the randomness).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TransactionId([u8; 12]);

impl TransactionId {
    /// From raw bytes.
    pub const fn new(bytes: [u8; 12]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 12] {
        &self.0
    }
}

/// RFC 5780 CHANGE-REQUEST flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChangeRequest {
    /// Answer from the alternate IP.
    pub change_ip: bool,
    /// Answer from the alternate port.
    pub change_port: bool,
}

/// A decoded Binding success response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BindingResponse {
    /// XOR-MAPPED-ADDRESS, or MAPPED-ADDRESS from RFC 3489 servers.
    pub mapped: SocketAddr,
    /// RFC 5780 OTHER-ADDRESS: the server's alternate address and port.
    pub other_address: Option<SocketAddr>,
    /// RFC 5780 RESPONSE-ORIGIN.
    pub response_origin: Option<SocketAddr>,
}

/// What was wrong with a STUN message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StunError {
    /// Larger than [`MAX_DATAGRAM`].
    #[error("STUN datagram of {0} bytes is larger than {MAX_DATAGRAM}")]
    TooLarge(usize),
    /// Not a STUN message (bits, cookie or length).
    #[error("not a STUN message")]
    NotStun,
    /// The codec rejected it (bad attribute, bad FINGERPRINT, ...).
    #[error("malformed STUN message: {0}")]
    Malformed(String),
    /// Not an answer to our transaction.
    #[error("STUN transaction id does not match")]
    WrongTransaction,
    /// A request or indication, or another method.
    #[error("not a Binding response")]
    NotBindingResponse,
    /// The server answered with an error.
    #[error("STUN error response {code}: {reason}")]
    ErrorResponse {
        /// Error code (e.g. 420).
        code: u16,
        /// Reason phrase.
        reason: String,
    },
    /// A success response without any mapped address.
    #[error("STUN Binding response has no (XOR-)MAPPED-ADDRESS")]
    NoMappedAddress,
    /// Encoding failed (should not happen for our fixed requests).
    #[error("cannot encode STUN request: {0}")]
    Encode(String),
}

/// A Binding request with FINGERPRINT, optionally with CHANGE-REQUEST.
pub fn binding_request(
    tid: &TransactionId,
    change: Option<ChangeRequest>,
) -> Result<Vec<u8>, StunError> {
    let mut builder = StunMessageBuilder::new(BINDING, MessageClass::Request)
        .with_transaction_id(stun_rs::TransactionId::from(tid.0));
    if let Some(c) = change {
        let flags = match (c.change_ip, c.change_port) {
            (true, true) => Some(ChangeRequestFlags::ChangeIp | ChangeRequestFlags::ChangePort),
            (true, false) => Some(ChangeRequestFlags::ChangeIp.into()),
            (false, true) => Some(ChangeRequestFlags::ChangePort.into()),
            (false, false) => None,
        };
        builder = builder.with_attribute(ChangeRequestAttr::new(flags));
    }
    let msg = builder.with_attribute(Fingerprint::default()).build();
    let mut buf = [0u8; 128];
    let n = MessageEncoderBuilder::default()
        .build()
        .encode(&mut buf, &msg)
        .map_err(|e| StunError::Encode(e.to_string()))?;
    Ok(buf.get(..n).unwrap_or_default().to_vec())
}

/// Cheap check that a datagram is a STUN message: top two bits zero, the
/// magic cookie, and a length that matches the datagram.
pub fn looks_like_stun(d: &[u8]) -> bool {
    match (d.first(), d.get(2..4), d.get(4..8)) {
        (Some(b0), Some(len), Some(cookie)) => {
            let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
            b0 & 0xc0 == 0 && cookie == MAGIC_COOKIE && len % 4 == 0 && HEADER_LEN + len == d.len()
        }
        _ => false,
    }
}

/// Decode a Binding response to `expected`. A FINGERPRINT, when present, must
/// be right; it is not required (RFC 5389 makes it optional).
pub fn decode_binding_response(
    d: &[u8],
    expected: &TransactionId,
) -> Result<BindingResponse, StunError> {
    if d.len() > MAX_DATAGRAM {
        return Err(StunError::TooLarge(d.len()));
    }
    if !looks_like_stun(d) {
        return Err(StunError::NotStun);
    }
    if d.get(8..20) != Some(&expected.0[..]) {
        return Err(StunError::WrongTransaction);
    }
    if !fingerprint_ok(d) {
        return Err(StunError::Malformed("FINGERPRINT does not match".into()));
    }
    let (msg, _) = MessageDecoderBuilder::default()
        .build()
        .decode(d)
        .map_err(|e| StunError::Malformed(format!("{e:?}")))?;
    if msg.method() != BINDING {
        return Err(StunError::NotBindingResponse);
    }
    match msg.class() {
        MessageClass::SuccessResponse => {}
        MessageClass::ErrorResponse => {
            let (code, reason) = msg
                .get::<ErrorCode>()
                .and_then(|a| a.as_error_code().ok())
                .map(|e| {
                    (
                        e.error_code().error_code(),
                        e.error_code().reason().to_string(),
                    )
                })
                .unwrap_or((0, String::new()));
            return Err(StunError::ErrorResponse { code, reason });
        }
        _ => return Err(StunError::NotBindingResponse),
    }
    let mapped = msg
        .get::<XorMappedAddress>()
        .and_then(|a| a.as_xor_mapped_address().ok())
        .map(|a| *a.socket_address())
        .or_else(|| {
            msg.get::<MappedAddress>()
                .and_then(|a| a.as_mapped_address().ok())
                .map(|a| *a.socket_address())
        })
        .ok_or(StunError::NoMappedAddress)?;
    let other_address = msg
        .get::<OtherAddress>()
        .and_then(|a| a.as_other_address().ok())
        .map(|a| *a.socket_address());
    let response_origin = msg
        .get::<ResponseOrigin>()
        .and_then(|a| a.as_response_origin().ok())
        .map(|a| *a.socket_address());
    Ok(BindingResponse {
        mapped,
        other_address,
        response_origin,
    })
}

/// FINGERPRINT type and the XOR value (RFC 8489 §14.7).
const FINGERPRINT_TYPE: [u8; 2] = [0x80, 0x28];
const FINGERPRINT_XOR: u32 = 0x5354_554e;

/// True when there is no FINGERPRINT, or when the one at the end is right.
/// (stun-rs checks it only together with MESSAGE-INTEGRITY keys.)
fn fingerprint_ok(d: &[u8]) -> bool {
    let Some(at) = d.len().checked_sub(8) else {
        return true;
    };
    match (d.get(at..at + 2), d.get(at + 2..at + 4), d.get(at + 4..)) {
        (Some(t), Some(&[0, 4]), Some(v)) if t == FINGERPRINT_TYPE => {
            let want = u32::from_be_bytes([v[0], v[1], v[2], v[3]]);
            crc32(d.get(..at).unwrap_or_default()) ^ FINGERPRINT_XOR == want
        }
        _ => true,
    }
}

/// CRC-32 (IEEE 802.3), bitwise: inputs are at most 1500 bytes.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xedb8_8320 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests;
