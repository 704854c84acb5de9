//! Pure wire codecs for the port-mapping protocols: no sockets, no clocks.

/// Defines a wire result-code enum with an `Unknown` catch-all and
/// `const` conversions to and from the raw value.
macro_rules! result_codes {
    (
        $(#[$meta:meta])* $name:ident($raw:ty), $from:ident, $to:ident;
        $($(#[$vmeta:meta])* $variant:ident = $value:literal,)*
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
            /// A code the RFC does not define.
            Unknown($raw),
        }

        impl $name {
            /// Parses the wire value.
            pub const fn $from(v: $raw) -> Self {
                match v {
                    $($value => Self::$variant,)*
                    n => Self::Unknown(n),
                }
            }

            /// The wire value.
            pub const fn $to(self) -> $raw {
                match self {
                    $(Self::$variant => $value,)*
                    Self::Unknown(n) => n,
                }
            }
        }
    };
}

pub mod description;
pub mod natpmp;
pub mod pcp;
pub mod pinhole;
pub mod soap;
pub mod ssdp;

/// UDP port on which NAT-PMP and PCP servers listen (RFC 6886, RFC 6887).
pub const SERVER_PORT: u16 = 5351;

/// Largest datagram either decoder accepts (the PCP maximum, RFC 6887 §7).
pub const MAX_MESSAGE_LEN: usize = 1100;

pub use crate::primitives::Protocol;

/// What kind of answer arrived on port 5351, judged from its first four bytes.
///
/// NAT-PMP and PCP share the port and the first bytes of the header, so a
/// client that sends PCP first can tell from the reply whether to fall back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// A NAT-PMP response (version 0); decode it with [`natpmp::decode_response`].
    NatPmp,
    /// A PCP response (version 2); decode it with [`pcp::decode_response`].
    Pcp,
    /// The server rejected the request's version and speaks `server_version`.
    ///
    /// `0` means a NAT-PMP-only server refused a PCP request (result 1 in NAT-PMP
    /// format): fall back to NAT-PMP. `2` means a PCP server refused a NAT-PMP
    /// request (`UNSUPP_VERSION`): use PCP.
    UnsupportedVersion {
        /// The version field of the reply.
        server_version: u8,
    },
    /// Not a NAT-PMP or PCP response (too short, a request, unknown version).
    Unrecognized,
}

/// Classifies a datagram received from port 5351 without fully decoding it.
pub fn classify_reply(buf: &[u8]) -> Reply {
    let (version, op, hi, lo) = match buf {
        [v, op, hi, lo, ..] if buf.len() <= MAX_MESSAGE_LEN => (*v, *op, *hi, *lo),
        _ => return Reply::Unrecognized,
    };
    let is_response = op & 0x80 != 0;
    if version == natpmp::VERSION {
        // NAT-PMP has a 16-bit result code; 1 only ever means "unsupported
        // version". Servers set the opcode to 128, 128 + request opcode, or
        // (RFC 6886 erratum 3618) leave it 0.
        if u16::from_be_bytes([hi, lo]) == 1 && (is_response || op == 0) {
            Reply::UnsupportedVersion { server_version: 0 }
        } else if is_response {
            Reply::NatPmp
        } else {
            Reply::Unrecognized
        }
    } else if !is_response {
        Reply::Unrecognized
    } else if lo == pcp::ResultCode::UnsuppVersion.to_u8() {
        // PCP: byte 2 is reserved, byte 3 is the result code. Pre-RFC
        // servers may answer with version 1.
        Reply::UnsupportedVersion {
            server_version: version,
        }
    } else if version == pcp::VERSION {
        Reply::Pcp
    } else {
        Reply::Unrecognized
    }
}

/// Reads a big-endian `u16` at `at`, or `None` if out of bounds.
fn be16(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(array(buf, at)?))
}

/// Reads a big-endian `u32` at `at`, or `None` if out of bounds.
fn be32(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(array(buf, at)?))
}

/// Copies `N` bytes starting at `at`, or `None` if out of bounds.
fn array<const N: usize>(buf: &[u8], at: usize) -> Option<[u8; N]> {
    buf.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// Tiny deterministic generator for the robustness tests.
#[cfg(test)]
struct XorShift(u64);

#[cfg(test)]
impl XorShift {
    fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Random bytes, random length in `0..=max_len`.
    fn bytes(&mut self, max_len: usize) -> Vec<u8> {
        let len = self.below(max_len + 1);
        (0..len).map(|_| self.next() as u8).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_numbers() {
        for p in [Protocol::Udp, Protocol::Tcp] {
            assert_eq!(Protocol::from_iana_number(p.iana_number()), Some(p));
        }
        assert_eq!(Protocol::Udp.iana_number(), 17);
        assert_eq!(Protocol::from_iana_number(0), None);
    }

    #[test]
    fn classify() {
        let natpmp_ok = [0, 128, 0, 0, 0, 0, 0, 9, 192, 0, 2, 1];
        assert_eq!(classify_reply(&natpmp_ok), Reply::NatPmp);
        // NAT-PMP-only server answering a PCP request (RFC 6886 §3.5, erratum).
        let natpmp_unsupp = [0, 128, 0, 1, 0, 0, 0, 9];
        let v0 = Reply::UnsupportedVersion { server_version: 0 };
        assert_eq!(classify_reply(&natpmp_unsupp), v0);
        assert_eq!(classify_reply(&[0, 0, 0, 1, 0, 0, 0, 9]), v0);
        assert_eq!(classify_reply(&[0, 129, 0, 1, 0, 0, 0, 9]), v0);
        assert_eq!(classify_reply(&[0, 129, 0, 3, 0, 0, 0, 9]), Reply::NatPmp);
        // PCP server answering a NAT-PMP request with UNSUPP_VERSION.
        let mut pcp = [0u8; 24];
        pcp[..4].copy_from_slice(&[2, 0x80, 0, 1]);
        let v2 = Reply::UnsupportedVersion { server_version: 2 };
        assert_eq!(classify_reply(&pcp), v2);
        pcp[3] = 0;
        assert_eq!(classify_reply(&pcp), Reply::Pcp);
        pcp[1] = 0x01; // a request, not a response
        assert_eq!(classify_reply(&pcp), Reply::Unrecognized);
        assert_eq!(classify_reply(&[0, 1, 0, 0]), Reply::Unrecognized);
        assert_eq!(classify_reply(&[1, 0x81, 0, 0]), Reply::Unrecognized);
        let v1 = Reply::UnsupportedVersion { server_version: 1 };
        assert_eq!(classify_reply(&[1, 0x81, 0, 1]), v1);
        assert_eq!(classify_reply(&[0, 128, 0]), Reply::Unrecognized);
        assert_eq!(classify_reply(&[]), Reply::Unrecognized);
        let huge = [0u8; MAX_MESSAGE_LEN + 1];
        assert_eq!(classify_reply(&huge), Reply::Unrecognized);
    }

    #[test]
    fn readers_are_bounds_checked() {
        let b = [1, 2, 3, 4, 5];
        assert_eq!(be16(&b, 3), Some(0x0405));
        assert_eq!(be16(&b, 4), None);
        assert_eq!(be32(&b, 1), Some(0x0203_0405));
        assert_eq!(be32(&b, 2), None);
        assert_eq!(array::<2>(&b, usize::MAX), None);
    }

    #[test]
    fn classify_never_panics() {
        let mut rng = XorShift::new(5351);
        for _ in 0..5000 {
            let _ = classify_reply(&rng.bytes(64));
        }
    }
}
