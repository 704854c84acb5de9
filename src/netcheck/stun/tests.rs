use super::*;

/// RFC 5769 transaction id shared by the sample vectors.
const TID: [u8; 12] = [
    0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
];

/// RFC 5769 §2.2: IPv4 response, SOFTWARE, XOR-MAPPED-ADDRESS 192.0.2.1:32853,
/// MESSAGE-INTEGRITY (password `VOkJxbRl1RmTxUk/WvJxBt`), FINGERPRINT.
const RFC5769_V4: [u8; 80] = [
    0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63,
    0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43,
    0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3, 0x8c, 0x74, 0x89, 0xf9,
    0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7, 0x80, 0x28, 0x00, 0x04, 0xc0, 0x7d, 0x4c, 0x96,
];

/// RFC 5769 §2.3: the same with XOR-MAPPED-ADDRESS
/// [2001:db8:1234:5678:11:2233:4455:6677]:32853.
const RFC5769_V6: [u8; 92] = [
    0x01, 0x01, 0x00, 0x48, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63,
    0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47, 0x01, 0x13, 0xa9, 0xfa,
    0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9, 0x00, 0x08, 0x00, 0x14,
    0xa3, 0x82, 0x95, 0x4e, 0x4b, 0xe6, 0x7b, 0xf1, 0x17, 0x84, 0xc9, 0x7c, 0x82, 0x92, 0xc2, 0x75,
    0xbf, 0xe3, 0xed, 0x41, 0x80, 0x28, 0x00, 0x04, 0xc8, 0xfb, 0x0b, 0x4c,
];

/// RFC 5769 §2.1: a Binding request (SOFTWARE, PRIORITY, ICE-CONTROLLED,
/// USERNAME, MESSAGE-INTEGRITY, FINGERPRINT).
const RFC5769_REQUEST: [u8; 108] = [
    0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e, 0x20, 0x74, 0x65, 0x73,
    0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x00, 0x24, 0x00, 0x04, 0x6e, 0x00, 0x01, 0xff,
    0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36, 0x00, 0x06, 0x00, 0x09,
    0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76, 0x59, 0x20, 0x20, 0x20, 0x00, 0x08, 0x00, 0x14,
    0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e, 0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49,
    0xc1, 0xb5, 0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf,
];

fn tid() -> TransactionId {
    TransactionId::new(TID)
}

/// Bitwise CRC-32 (IEEE), independent of the crate under test.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Builds a message by hand: type, attributes (padded), optional FINGERPRINT.
fn forge(msg_type: u16, tid: &[u8; 12], attrs: &[(u16, &[u8])], fingerprint: bool) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&msg_type.to_be_bytes());
    m.extend_from_slice(&[0, 0]);
    m.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    m.extend_from_slice(tid);
    for (t, v) in attrs {
        m.extend_from_slice(&t.to_be_bytes());
        m.extend_from_slice(&u16::try_from(v.len()).unwrap().to_be_bytes());
        m.extend_from_slice(v);
        m.resize(m.len().next_multiple_of(4), 0);
    }
    let extra = if fingerprint { 8 } else { 0 };
    let len = u16::try_from(m.len() - HEADER_LEN + extra).unwrap();
    m[2..4].copy_from_slice(&len.to_be_bytes());
    if fingerprint {
        let fp = crc32(&m) ^ 0x5354_554e;
        m.extend_from_slice(&[0x80, 0x28, 0, 4]);
        m.extend_from_slice(&fp.to_be_bytes());
    }
    m
}

/// An address attribute value, XORed with cookie and `TID` when `xor`.
fn addr_value(addr: SocketAddr, xor: bool) -> Vec<u8> {
    let mut pad = MAGIC_COOKIE.to_be_bytes().to_vec();
    pad.extend_from_slice(&TID);
    let k = |i: usize| if xor { pad[i] } else { 0 };
    let (fam, ip) = match addr.ip() {
        IpAddr::V4(a) => (1u8, a.octets().to_vec()),
        IpAddr::V6(a) => (2u8, a.octets().to_vec()),
    };
    let port = addr.port() ^ if xor { 0x2112 } else { 0 };
    let mut v = vec![0, fam];
    v.extend_from_slice(&port.to_be_bytes());
    v.extend(ip.iter().enumerate().map(|(i, b)| b ^ k(i)));
    v
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn request_golden_bytes() {
    // Expected bytes computed independently (Python zlib.crc32 ^ 0x5354554e).
    let plain: [u8; 40] = [
        0x00, 0x01, 0x00, 0x14, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6,
        0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x08, 0x74, 0x61, 0x69, 0x6c, 0x6e, 0x6f,
        0x64, 0x65, 0x80, 0x28, 0x00, 0x04, 0x9e, 0x8d, 0xf0, 0xce,
    ];
    assert_eq!(binding_request(&tid(), None).unwrap(), plain);
    let mut port_only = plain[..32].to_vec();
    port_only[3] = 0x1c;
    port_only.extend_from_slice(&[0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x00, 0x02]);
    port_only.extend_from_slice(&[0x80, 0x28, 0x00, 0x04, 0xa2, 0xaa, 0xe2, 0xb6]);
    let change_port = ChangeRequest {
        change_ip: false,
        change_port: true,
    };
    assert_eq!(
        binding_request(&tid(), Some(change_port)).unwrap(),
        port_only
    );
    let both = ChangeRequest {
        change_ip: true,
        change_port: true,
    };
    let req = binding_request(&tid(), Some(both)).unwrap();
    assert_eq!(
        &req[32..40],
        &[0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x00, 0x06]
    );
    assert_eq!(&req[44..], &[0xa5, 0xc7, 0x26, 0xaf]);
    let ip_only = binding_request(
        &tid(),
        Some(ChangeRequest {
            change_ip: true,
            change_port: false,
        }),
    );
    assert_eq!(ip_only.unwrap()[39], 0x04);
    let neither = binding_request(&tid(), Some(ChangeRequest::default())).unwrap();
    assert_eq!(
        &neither[32..40],
        &[0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00]
    );
}

#[test]
fn request_is_stun_but_not_a_response() {
    let req = binding_request(&tid(), None).unwrap();
    assert!(looks_like_stun(&req));
    assert_eq!(peek_transaction_id(&req), Some(tid()));
    let err = decode_binding_response(&req, &tid()).unwrap_err();
    assert_eq!(err, StunError::NotResponse { class: "request" });
}

#[test]
fn rfc5769_ipv4_response() {
    let r = decode_binding_response(&RFC5769_V4, &tid()).unwrap();
    assert_eq!(r.mapped, sa("192.0.2.1:32853"));
    assert_eq!(r.other_address, None);
    assert_eq!(r.response_origin, None);
    assert!(looks_like_stun(&RFC5769_V4));
}

#[test]
fn rfc5769_ipv6_response() {
    let r = decode_binding_response(&RFC5769_V6, &tid()).unwrap();
    assert_eq!(r.mapped, sa("[2001:db8:1234:5678:11:2233:4455:6677]:32853"));
}

#[test]
fn rfc5769_request_fingerprint_checks_out() {
    let err = decode_binding_response(&RFC5769_REQUEST, &tid()).unwrap_err();
    assert_eq!(err, StunError::NotResponse { class: "request" });
}

#[test]
fn wrong_transaction_id() {
    let mut other = TID;
    other[11] ^= 1;
    let err = decode_binding_response(&RFC5769_V4, &TransactionId::new(other)).unwrap_err();
    assert_eq!(err, StunError::TransactionMismatch);
}

#[test]
fn wrong_cookie_and_leading_bits() {
    let mut d = RFC5769_V4;
    d[4] = 0x21 ^ 0xff;
    assert!(!looks_like_stun(&d));
    assert!(matches!(
        decode_binding_response(&d, &tid()),
        Err(StunError::BadCookie { found: 0xde12_a442 })
    ));
    let mut d = RFC5769_V4;
    d[0] |= 0x80;
    assert!(!looks_like_stun(&d));
    let err = decode_binding_response(&d, &tid()).unwrap_err();
    assert_eq!(err, StunError::LeadingBits { bits: 2 });
}

#[test]
fn bad_fingerprint() {
    let mut d = RFC5769_V4;
    d[79] ^= 1;
    let err = decode_binding_response(&d, &tid()).unwrap_err();
    assert_eq!(err, StunError::BadFingerprint);
    // A change anywhere else is caught by the CRC too (here in SOFTWARE).
    let mut d = RFC5769_V6;
    d[25] ^= 0x20;
    let err = decode_binding_response(&d, &tid()).unwrap_err();
    assert_eq!(err, StunError::BadFingerprint);
}

#[test]
fn fingerprint_must_be_last() {
    let xma = addr_value(sa("198.51.100.7:4000"), true);
    let mut d = forge(0x0101, &TID, &[(0x0020, &xma)], true);
    // Append SOFTWARE after FINGERPRINT and fix the length.
    d.extend_from_slice(&[0x80, 0x22, 0, 4, b't', b'e', b's', b't']);
    let len = u16::try_from(d.len() - HEADER_LEN).unwrap();
    d[2..4].copy_from_slice(&len.to_be_bytes());
    let err = decode_binding_response(&d, &tid()).unwrap_err();
    assert_eq!(err, StunError::FingerprintNotLast);
    // Same, with the trailing value ending in bytes that look like a FINGERPRINT.
    let mut d = forge(0x0101, &TID, &[(0x0020, &xma)], true);
    let fp_attr = d[d.len() - 8..].to_vec();
    d.extend_from_slice(&[0x80, 0x99, 0, 12, b'j', b'u', b'n', b'k']);
    d.extend_from_slice(&fp_attr);
    let len = u16::try_from(d.len() - HEADER_LEN).unwrap();
    d[2..4].copy_from_slice(&len.to_be_bytes());
    let err = decode_binding_response(&d, &tid()).unwrap_err();
    assert_eq!(err, StunError::FingerprintNotLast);
    // Two FINGERPRINTs: the first is not last.
    let mut d = forge(0x0101, &TID, &[(0x0020, &xma)], true);
    d.extend_from_slice(&fp_attr);
    let len = u16::try_from(d.len() - HEADER_LEN).unwrap();
    d[2..4].copy_from_slice(&len.to_be_bytes());
    let err = decode_binding_response(&d, &tid()).unwrap_err();
    assert_eq!(err, StunError::FingerprintNotLast);
}

#[test]
fn fingerprint_is_optional_as_from_tailscale_derp() {
    let xma = addr_value(sa("198.51.100.7:41641"), true);
    let d = forge(0x0101, &TID, &[(0x0020, &xma)], false);
    assert_eq!(d.len(), 32);
    let r = decode_binding_response(&d, &tid()).unwrap();
    assert_eq!(r.mapped, sa("198.51.100.7:41641"));
    // An IPv4-mapped IPv6 answer (dual-stack server socket) becomes IPv4.
    let xma = addr_value(sa("[::ffff:198.51.100.7]:41641"), true);
    let d = forge(0x0101, &TID, &[(0x0020, &xma)], false);
    let r = decode_binding_response(&d, &tid()).unwrap();
    assert_eq!(r.mapped, sa("198.51.100.7:41641"));
}

#[test]
fn rfc3489_style_fallbacks() {
    let mapped = addr_value(sa("203.0.113.9:5000"), false);
    let source = addr_value(sa("192.0.2.10:3478"), false);
    let changed = addr_value(sa("192.0.2.11:3479"), false);
    let attrs = [(0x0001, &mapped[..]), (0x0004, &source), (0x0005, &changed)];
    let d = forge(0x0101, &TID, &attrs, false);
    let r = decode_binding_response(&d, &tid()).unwrap();
    assert_eq!(r.mapped, sa("203.0.113.9:5000"));
    assert_eq!(r.response_origin, Some(sa("192.0.2.10:3478")));
    assert_eq!(r.other_address, Some(sa("192.0.2.11:3479")));
}

#[test]
fn rfc5780_attributes_win_over_rfc3489_ones() {
    let xma = addr_value(sa("[2001:db8::5]:6000"), true);
    let plain = addr_value(sa("203.0.113.9:5000"), false);
    let other = addr_value(sa("192.0.2.21:3479"), false);
    let origin = addr_value(sa("192.0.2.20:3478"), false);
    let stale = addr_value(sa("192.0.2.99:9"), false);
    let attrs = [
        (0x0001, &plain[..]),
        (0x0005, &stale),
        (0x0004, &stale),
        (0x0020, &xma),
        (0x802c, &other),
        (0x802b, &origin),
    ];
    let r = decode_binding_response(&forge(0x0101, &TID, &attrs, true), &tid()).unwrap();
    assert_eq!(r.mapped, sa("[2001:db8::5]:6000"));
    assert_eq!(r.other_address, Some(sa("192.0.2.21:3479")));
    assert_eq!(r.response_origin, Some(sa("192.0.2.20:3478")));
}

#[test]
fn old_xor_mapped_address_type() {
    let xma = addr_value(sa("198.51.100.8:1234"), true);
    let plain = addr_value(sa("10.9.9.9:1"), false);
    let d = forge(0x0101, &TID, &[(0x0001, &plain), (0x8020, &xma)], true);
    let r = decode_binding_response(&d, &tid()).unwrap();
    assert_eq!(r.mapped, sa("198.51.100.8:1234"));
}

#[test]
fn error_responses() {
    let mut ec = vec![0, 0, 4, 0];
    ec.extend_from_slice(b"Bad Request");
    let d = forge(0x0111, &TID, &[(0x0009, &ec)], true);
    let err = decode_binding_response(&d, &tid()).unwrap_err();
    assert_eq!(
        err,
        StunError::ErrorResponse {
            code: 400,
            reason: "Bad Request".into()
        }
    );
    // coturn 4.6 sends the reason with two NULs counted in its length.
    let mut ec = vec![0, 0, 4, 20];
    ec.extend_from_slice(b"Unknown attribute\0\0");
    let d = forge(0x0111, &TID, &[(0x0009, &ec)], true);
    let err = decode_binding_response(&d, &tid()).unwrap_err();
    assert_eq!(
        err,
        StunError::ErrorResponse {
            code: 420,
            reason: "Unknown attribute".into()
        }
    );
    let d = forge(0x0111, &TID, &[], false);
    let err = decode_binding_response(&d, &tid()).unwrap_err();
    assert_eq!(
        err,
        StunError::ErrorResponse {
            code: 0,
            reason: String::new()
        }
    );
}

#[test]
fn other_methods_and_classes() {
    let xma = addr_value(sa("198.51.100.7:4000"), true);
    // Allocate success response.
    let d = forge(0x0103, &TID, &[(0x0020, &xma)], true);
    let err = decode_binding_response(&d, &tid()).unwrap_err();
    assert_eq!(err, StunError::NotBinding { method: 3 });
    // Binding indication.
    let d = forge(0x0011, &TID, &[], true);
    let err = decode_binding_response(&d, &tid()).unwrap_err();
    assert_eq!(
        err,
        StunError::NotResponse {
            class: "indication"
        }
    );
}

#[test]
fn size_and_length_checks() {
    let pad = vec![0u8; MAX_DATAGRAM - HEADER_LEN];
    let d = forge(0x0101, &TID, &[(0x8022, &pad[..pad.len() - 4])], false);
    assert_eq!(d.len(), MAX_DATAGRAM);
    assert!(!matches!(
        decode_binding_response(&d, &tid()),
        Err(StunError::TooLarge { .. })
    ));
    let d = forge(0x0101, &TID, &[(0x8022, &pad)], false);
    assert!(looks_like_stun(&d));
    assert_eq!(
        decode_binding_response(&d, &tid()).unwrap_err(),
        StunError::TooLarge {
            len: MAX_DATAGRAM + 4,
            max: MAX_DATAGRAM
        }
    );
    let mut d = RFC5769_V4.to_vec();
    d.push(0);
    assert!(!looks_like_stun(&d));
    assert_eq!(
        decode_binding_response(&d, &tid()).unwrap_err(),
        StunError::LengthMismatch {
            declared: 60,
            actual: 61
        }
    );
    assert_eq!(
        decode_binding_response(&d[..7], &tid()).unwrap_err(),
        StunError::Truncated { len: 7 }
    );
}

#[test]
fn missing_unusable_or_malformed_addresses() {
    let d = forge(0x0101, &TID, &[(0x8022, b"srv")], true);
    let err = decode_binding_response(&d, &tid()).unwrap_err();
    assert_eq!(err, StunError::NoMappedAddress);
    let zero = addr_value(sa("0.0.0.0:0"), true);
    let d = forge(0x0101, &TID, &[(0x0020, &zero)], true);
    let err = decode_binding_response(&d, &tid()).unwrap_err();
    assert!(matches!(err, StunError::UnusableMappedAddress { .. }));
    let mut bad = addr_value(sa("198.51.100.7:4000"), true);
    bad[1] = 3;
    let d = forge(0x0101, &TID, &[(0x0020, &bad)], true);
    let err = decode_binding_response(&d, &tid()).unwrap_err();
    assert!(matches!(err, StunError::Malformed { .. }), "{err:?}");
    // stun-rs is strict: a SOFTWARE that is not UTF-8 sinks the whole message.
    let xma = addr_value(sa("198.51.100.7:4000"), true);
    let d = forge(0x0101, &TID, &[(0x8022, &[0xff]), (0x0020, &xma)], true);
    let err = decode_binding_response(&d, &tid()).unwrap_err();
    assert!(matches!(err, StunError::Malformed { .. }), "{err:?}");
    // Attributes after MESSAGE-INTEGRITY are ignored (RFC 8489 §14.5).
    let xma = addr_value(sa("198.51.100.7:4000"), true);
    let d = forge(0x0101, &TID, &[(0x0008, &[0; 20]), (0x0020, &xma)], true);
    let err = decode_binding_response(&d, &tid()).unwrap_err();
    assert_eq!(err, StunError::NoMappedAddress);
}

#[test]
fn every_prefix_is_rejected_without_panic() {
    let req = binding_request(&tid(), Some(ChangeRequest::default())).unwrap();
    for v in [&RFC5769_V4[..], &RFC5769_V6, &RFC5769_REQUEST, &req] {
        for n in 0..v.len() {
            assert!(decode_binding_response(&v[..n], &tid()).is_err());
            assert!(!looks_like_stun(&v[..n]));
            let _ = peek_transaction_id(&v[..n]);
        }
    }
}

/// Deterministic xorshift64 for mutation tests.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }
}

#[test]
fn random_mutations_never_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let xma = addr_value(sa("[2001:db8::5]:6000"), true);
    let rich = forge(
        0x0101,
        &TID,
        &[(0x0020, &xma), (0x802c, &xma[..8]), (0x8020, &xma)],
        true,
    );
    let seeds: [&[u8]; 4] = [&RFC5769_V4, &RFC5769_V6, &RFC5769_REQUEST, &rich];
    let mut accepted = 0;
    for i in 0..6000 {
        let mut d = seeds[i % seeds.len()].to_vec();
        for _ in 0..=rng.below(4) {
            let at = rng.below(d.len().max(1));
            match rng.below(5) {
                0 => d[at] ^= 1 << rng.below(8),
                1 => d[at] = rng.next() as u8,
                2 => d.truncate(at),
                3 => d.extend((0..rng.below(12)).map(|_| rng.next() as u8)),
                _ => {
                    // Keep the header consistent so attribute parsing is reached.
                    if d.len() >= HEADER_LEN {
                        let len = u16::try_from((d.len() - HEADER_LEN) & 0xfffc).unwrap();
                        d.truncate(HEADER_LEN + usize::from(len));
                        d[2..4].copy_from_slice(&len.to_be_bytes());
                    }
                }
            }
            if d.is_empty() {
                break;
            }
        }
        if let Ok(r) = decode_binding_response(&d, &tid()) {
            accepted += 1;
            assert!(looks_like_stun(&d));
            assert!(d.len() <= MAX_DATAGRAM);
            assert!(r.mapped.port() != 0);
        }
    }
    assert!(accepted > 0, "no mutant decoded at all");
}

#[test]
fn response_port_is_encoded() {
    let req = binding_request_to(&tid(), None, Some(41641)).unwrap();
    // RESPONSE-PORT: type 0x0027, the 2-byte port (as stun-rs writes the
    // length; coturn accepts it), then 2 bytes of padding.
    let attr = [0x00, 0x27, 0x00, 0x02, 0xa2, 0xa9, 0x00, 0x00];
    assert!(req.windows(attr.len()).any(|w| w == attr), "{req:02x?}");
    assert!(!binding_request(&tid(), None)
        .unwrap()
        .windows(2)
        .any(|w| w == [0x00, 0x27]));
}
