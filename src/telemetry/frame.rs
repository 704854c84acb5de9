//! On-disk framing of the telemetry outbox: a pure codec, no I/O.
//!
//! A segment file is a sequence of frames:
//!
//! ```text
//! magic  2 bytes  0xE5 0x0B
//! len    u32 LE   length of the body that follows the header
//! crc    u32 LE   CRC-32 (IEEE) over the `len` bytes and the body
//! body   kind u8 | id u64 LE | rest
//!   kind 1 = data: rest = topic length u8 | topic | payload
//!   kind 2 = ack:  rest empty; `id` is the record acknowledged
//!   kind 3 = meta: rest = dropped-record total u64 LE (`id` unused, 0)
//! ```
//!
//! The decoder reads what is on disk after a crash or a power cut: it skips
//! garbage between frames (resynchronising on the magic and a good checksum),
//! reports where the last good frame ends so a torn tail can be cut off, and
//! bounds every length it believes.

/// First two bytes of every frame.
pub const MAGIC: [u8; 2] = [0xE5, 0x0B];
/// Bytes before the body: magic, length, checksum.
pub const HEADER_LEN: usize = 10;
/// Largest body accepted, in bytes (a netcheck report is about 1 KiB).
pub const MAX_BODY: usize = 256 * 1024;
/// Longest topic suffix stored with a record.
pub const MAX_TOPIC: usize = 64;

const KIND_DATA: u8 = 1;
const KIND_ACK: u8 = 2;
const KIND_META: u8 = 3;
/// kind + id
const BODY_FIXED: usize = 9;

/// One decoded frame, borrowing from the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A record to publish on `topic` (a suffix under the topic prefix).
    Data {
        /// Record id, increasing in file order.
        id: u64,
        /// Topic suffix, e.g. `events`.
        topic: &'a str,
        /// The message payload.
        payload: &'a [u8],
    },
    /// Record `id` was acknowledged by the broker.
    Ack {
        /// The record acknowledged.
        id: u64,
    },
    /// Bookkeeping carried across deleted segments.
    Meta {
        /// Records dropped (outbox full) since the outbox was created.
        dropped: u64,
    },
}

/// Why a frame cannot be encoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncodeError {
    /// Topic empty, too long or with characters outside `[a-z0-9_/-]`.
    #[error("outbox topic {0:?} must be 1-64 characters of a-z, 0-9, '_', '-' or '/'")]
    BadTopic(String),
    /// The record is larger than [`MAX_BODY`].
    #[error("outbox record of {0} bytes is larger than the {MAX_BODY} allowed")]
    TooLarge(usize),
}

/// Whether `topic` may be stored (and later used under the prefix).
pub fn valid_topic(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= MAX_TOPIC
        && topic.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'/')
        })
}

/// Encode one frame.
pub fn encode(frame: &Frame<'_>) -> Result<Vec<u8>, EncodeError> {
    let (kind, id, rest_len) = match frame {
        Frame::Data { id, topic, payload } => {
            if !valid_topic(topic) {
                return Err(EncodeError::BadTopic((*topic).to_string()));
            }
            (KIND_DATA, *id, 1 + topic.len() + payload.len())
        }
        Frame::Ack { id } => (KIND_ACK, *id, 0),
        Frame::Meta { .. } => (KIND_META, 0, 8),
    };
    let body_len = BODY_FIXED + rest_len;
    if body_len > MAX_BODY {
        return Err(EncodeError::TooLarge(body_len));
    }
    let mut out = Vec::with_capacity(HEADER_LEN + body_len);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.push(kind);
    out.extend_from_slice(&id.to_le_bytes());
    match frame {
        Frame::Data { topic, payload, .. } => {
            out.push(topic.len() as u8);
            out.extend_from_slice(topic.as_bytes());
            out.extend_from_slice(payload);
        }
        Frame::Ack { .. } => {}
        Frame::Meta { dropped } => out.extend_from_slice(&dropped.to_le_bytes()),
    }
    let crc = checksum(&out[2..6], &out[HEADER_LEN..]);
    out[6..10].copy_from_slice(&crc.to_le_bytes());
    Ok(out)
}

fn checksum(len: &[u8], body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(len);
    h.update(body);
    h.finalize()
}

/// Everything decodable in one segment's bytes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// Good frames in file order, each with its offset.
    pub frames: Vec<(usize, Frame<'a>)>,
    /// Where the last good frame ends: anything after it is a torn tail.
    pub valid_end: usize,
    /// Bytes skipped between good frames (corruption inside the file).
    pub skipped: usize,
}

/// Decode every good frame in `buf`.
pub fn decode_all(buf: &[u8]) -> Decoded<'_> {
    let mut out = Decoded::default();
    let mut pos = 0;
    while pos < buf.len() {
        if let Some((frame, size)) = decode_at(buf, pos) {
            out.frames.push((pos, frame));
            pos += size;
            out.valid_end = pos;
            continue;
        }
        // Resynchronise on the next position that holds a whole good frame.
        match (pos + 1..buf.len()).find(|&p| decode_at(buf, p).is_some()) {
            Some(next) => {
                out.skipped += next - pos;
                pos = next;
            }
            None => break,
        }
    }
    out
}

/// A whole good frame at `pos`, with its encoded size.
fn decode_at(buf: &[u8], pos: usize) -> Option<(Frame<'_>, usize)> {
    let rest = buf.get(pos..)?;
    if rest.len() < HEADER_LEN || rest[..2] != MAGIC {
        return None;
    }
    let len = u32::from_le_bytes(rest[2..6].try_into().ok()?) as usize;
    if !(BODY_FIXED..=MAX_BODY).contains(&len) || rest.len() - HEADER_LEN < len {
        return None;
    }
    let body = &rest[HEADER_LEN..HEADER_LEN + len];
    let crc = u32::from_le_bytes(rest[6..10].try_into().ok()?);
    if checksum(&rest[2..6], body) != crc {
        return None;
    }
    let kind = body[0];
    let id = u64::from_le_bytes(body[1..9].try_into().ok()?);
    let tail = &body[BODY_FIXED..];
    let frame = match kind {
        KIND_DATA => {
            let (&tlen, after) = tail.split_first()?;
            let topic = std::str::from_utf8(after.get(..tlen as usize)?).ok()?;
            if !valid_topic(topic) {
                return None;
            }
            Frame::Data {
                id,
                topic,
                payload: &after[tlen as usize..],
            }
        }
        KIND_ACK if tail.is_empty() => Frame::Ack { id },
        KIND_META if tail.len() == 8 => Frame::Meta {
            dropped: u64::from_le_bytes(tail.try_into().ok()?),
        },
        _ => return None,
    };
    Some((frame, HEADER_LEN + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(id: u64, payload: &[u8]) -> Vec<u8> {
        encode(&Frame::Data {
            id,
            topic: "events",
            payload,
        })
        .unwrap()
    }

    #[test]
    fn golden_ack_frame() {
        let f = encode(&Frame::Ack { id: 7 }).unwrap();
        assert_eq!(&f[..6], &[0xE5, 0x0B, 9, 0, 0, 0]);
        assert_eq!(&f[10..], &[2, 7, 0, 0, 0, 0, 0, 0, 0]);
        let crc = crc32fast::hash(&[&f[2..6], &f[10..]].concat());
        assert_eq!(&f[6..10], &crc.to_le_bytes());
    }

    #[test]
    fn round_trip_all_kinds() {
        let mut buf = data(1, b"{\"a\":1}");
        buf.extend(encode(&Frame::Ack { id: 1 }).unwrap());
        buf.extend(encode(&Frame::Meta { dropped: 42 }).unwrap());
        buf.extend(data(2, b""));
        let d = decode_all(&buf);
        assert_eq!(d.valid_end, buf.len());
        assert_eq!(d.skipped, 0);
        let frames: Vec<_> = d.frames.into_iter().map(|(_, f)| f).collect();
        assert_eq!(
            frames,
            [
                Frame::Data {
                    id: 1,
                    topic: "events",
                    payload: b"{\"a\":1}"
                },
                Frame::Ack { id: 1 },
                Frame::Meta { dropped: 42 },
                Frame::Data {
                    id: 2,
                    topic: "events",
                    payload: b""
                },
            ]
        );
    }

    #[test]
    fn torn_tail_is_not_a_frame() {
        let mut buf = data(1, b"first");
        let good = buf.len();
        let second = data(2, b"second record");
        for cut in 1..second.len() {
            let mut b = buf.clone();
            b.extend_from_slice(&second[..cut]);
            let d = decode_all(&b);
            assert_eq!(d.frames.len(), 1, "cut {cut}");
            assert_eq!(d.valid_end, good, "cut {cut}");
        }
        buf.extend(second);
        assert_eq!(decode_all(&buf).frames.len(), 2);
    }

    #[test]
    fn corruption_in_the_middle_is_skipped() {
        let a = data(1, b"aaaa");
        let b = data(2, b"bbbb");
        let c = data(3, b"cccc");
        let mut buf = [a.clone(), b.clone(), c].concat();
        buf[a.len() + HEADER_LEN + 3] ^= 0xFF; // inside b's body
        let d = decode_all(&buf);
        let ids: Vec<u64> = d
            .frames
            .iter()
            .filter_map(|(_, f)| match f {
                Frame::Data { id, .. } => Some(*id),
                _ => None,
            })
            .collect();
        assert_eq!(ids, [1, 3]);
        assert_eq!(d.skipped, b.len());
        assert_eq!(d.valid_end, buf.len());
    }

    #[test]
    fn lengths_are_bounded_and_topics_checked() {
        assert_eq!(
            encode(&Frame::Data {
                id: 1,
                topic: "events",
                payload: &vec![0; MAX_BODY]
            }),
            Err(EncodeError::TooLarge(MAX_BODY + BODY_FIXED + 7))
        );
        for bad in ["", "Events", "a+b", "#", &"x".repeat(65)] {
            assert!(encode(&Frame::Data {
                id: 1,
                topic: bad,
                payload: b""
            })
            .is_err());
        }
        // A header claiming a huge body is not believed.
        let mut f = encode(&Frame::Ack { id: 1 }).unwrap();
        f[2..6].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_all(&f).frames.is_empty());
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x1234_5678_u32;
        for len in 0..300 {
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (seed >> 16) as u8
                })
                .collect();
            let d = decode_all(&buf);
            assert!(d.valid_end <= buf.len());
        }
    }
}
