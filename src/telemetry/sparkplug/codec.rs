//! The Sparkplug B payload: a pure codec, no I/O.
//!
//! The structs mirror `sparkplug_b.proto` (Eclipse Tahu, Sparkplug 3.0)
//! field for field and tag for tag, derived with prost so no protoc or
//! build script is needed. Only the parts an edge node of scalar metrics
//! uses are declared: `Payload` (timestamp, metrics, seq, uuid, body) and
//! `Metric` (name, alias, timestamp, datatype, the three flags and the
//! scalar values). Fields this node never reads (metadata, properties,
//! data sets, templates, extensions) are skipped when decoding, as protobuf
//! skips any unknown field.
//!
//! Also here: the primary host's `STATE` message (Sparkplug 3.0 JSON).

use prost::Message;

/// Largest payload decoded (NCMD or anything else); larger ones are
/// refused before protobuf sees them.
pub const MAX_PAYLOAD: usize = 64 * 1024;
/// Most metrics one decoded payload may carry.
pub const MAX_METRICS: usize = 1024;

/// Sparkplug data types (`DataType` in the schema), the ones used here.
pub mod datatype {
    /// Signed 32-bit, carried in `int_value`.
    pub const INT32: u32 = 3;
    /// Signed 64-bit, carried in `long_value`.
    pub const INT64: u32 = 4;
    /// Unsigned 32-bit, carried in `int_value`.
    pub const UINT32: u32 = 7;
    /// Unsigned 64-bit, carried in `long_value`.
    pub const UINT64: u32 = 8;
    /// 64-bit float, `double_value`.
    pub const DOUBLE: u32 = 10;
    /// `boolean_value`.
    pub const BOOLEAN: u32 = 11;
    /// UTF-8, `string_value`.
    pub const STRING: u32 = 12;
    /// Milliseconds since the Unix epoch, `long_value`.
    pub const DATETIME: u32 = 13;
}

/// `Payload`.
#[derive(Clone, PartialEq, Message)]
pub struct Payload {
    /// Milliseconds since the Unix epoch (UTC) when the payload was made.
    #[prost(uint64, optional, tag = "1")]
    pub timestamp: Option<u64>,
    /// The metrics.
    #[prost(message, repeated, tag = "2")]
    pub metrics: Vec<Metric>,
    /// Sequence number, 0..=255 (absent in NDEATH and STATE).
    #[prost(uint64, optional, tag = "3")]
    pub seq: Option<u64>,
    /// Optional UUID of the body's schema.
    #[prost(string, optional, tag = "4")]
    pub uuid: Option<String>,
    /// Opaque body.
    #[prost(bytes = "vec", optional, tag = "5")]
    pub body: Option<Vec<u8>>,
}

/// `Payload.Metric`.
#[derive(Clone, PartialEq, Message)]
pub struct Metric {
    /// Name (always in NBIRTH; NDATA and NCMD may use the alias alone).
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    /// Alias declared in NBIRTH.
    #[prost(uint64, optional, tag = "2")]
    pub alias: Option<u64>,
    /// Milliseconds since the Unix epoch when the value was taken.
    #[prost(uint64, optional, tag = "3")]
    pub timestamp: Option<u64>,
    /// [`datatype`] (in NBIRTH; optional elsewhere).
    #[prost(uint32, optional, tag = "4")]
    pub datatype: Option<u32>,
    /// Stored and forwarded: must not update the host's current value.
    #[prost(bool, optional, tag = "5")]
    pub is_historical: Option<bool>,
    /// Not to be stored by the host.
    #[prost(bool, optional, tag = "6")]
    pub is_transient: Option<bool>,
    /// The value is null (and absent).
    #[prost(bool, optional, tag = "7")]
    pub is_null: Option<bool>,
    /// The value.
    #[prost(oneof = "Value", tags = "10, 11, 12, 13, 14, 15, 16")]
    pub value: Option<Value>,
}

/// `Payload.Metric.value`, the scalar members.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Value {
    /// Int8..Int32 (two's complement) and UInt8..UInt32.
    #[prost(uint32, tag = "10")]
    Int(u32),
    /// Int64 (two's complement), UInt64 and DateTime.
    #[prost(uint64, tag = "11")]
    Long(u64),
    /// Float.
    #[prost(float, tag = "12")]
    Float(f32),
    /// Double.
    #[prost(double, tag = "13")]
    Double(f64),
    /// Boolean.
    #[prost(bool, tag = "14")]
    Boolean(bool),
    /// String, Text, UUID.
    #[prost(string, tag = "15")]
    String(String),
    /// Bytes, File.
    #[prost(bytes = "vec", tag = "16")]
    Bytes(Vec<u8>),
}

/// Why bytes are not a payload we accept.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// More than [`MAX_PAYLOAD`] bytes.
    #[error("Sparkplug payload of {0} bytes is larger than the {MAX_PAYLOAD} accepted")]
    TooLarge(usize),
    /// Not protobuf of the Sparkplug schema.
    #[error("not a Sparkplug payload: {0}")]
    Protobuf(String),
    /// More than [`MAX_METRICS`] metrics.
    #[error("Sparkplug payload with {0} metrics, more than the {MAX_METRICS} accepted")]
    TooManyMetrics(usize),
}

/// Encode a payload.
pub fn encode(p: &Payload) -> Vec<u8> {
    p.encode_to_vec()
}

/// Decode a payload, bounded in size and metric count.
pub fn decode(bytes: &[u8]) -> Result<Payload, DecodeError> {
    if bytes.len() > MAX_PAYLOAD {
        return Err(DecodeError::TooLarge(bytes.len()));
    }
    let p = Payload::decode(bytes).map_err(|e| DecodeError::Protobuf(e.to_string()))?;
    if p.metrics.len() > MAX_METRICS {
        return Err(DecodeError::TooManyMetrics(p.metrics.len()));
    }
    Ok(p)
}

/// A stored NDATA made ready to send: its `seq` set and, for data recorded
/// before the current birth, every metric flagged historical (it must not
/// overwrite the host's current value, which the NBIRTH just gave).
pub fn stamp(stored: &[u8], seq: u8, historical: bool) -> Result<Vec<u8>, DecodeError> {
    let mut p = decode(stored)?;
    p.seq = Some(u64::from(seq));
    if historical {
        for m in &mut p.metrics {
            m.is_historical = Some(true);
        }
    }
    Ok(encode(&p))
}

impl Metric {
    /// A metric with a name, alias, datatype and timestamp (NBIRTH form).
    pub fn named(name: &str, alias: Option<u64>, datatype: u32, ts: u64, v: Option<Value>) -> Self {
        Metric {
            name: Some(name.to_string()),
            alias,
            timestamp: Some(ts),
            datatype: Some(datatype),
            is_null: v.is_none().then_some(true),
            value: v,
            ..Metric::default()
        }
    }

    /// A metric by alias alone (NDATA form).
    pub fn aliased(alias: u64, datatype: u32, ts: u64, v: Option<Value>) -> Self {
        Metric {
            alias: Some(alias),
            timestamp: Some(ts),
            datatype: Some(datatype),
            is_null: v.is_none().then_some(true),
            value: v,
            ..Metric::default()
        }
    }
}

/// The one metric an NCMD may set.
pub const REBIRTH: &str = "Node Control/Rebirth";

/// What an NCMD asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Command {
    /// `Node Control/Rebirth` = true was among the metrics.
    pub rebirth: bool,
    /// Metrics that are not ours to set (ignored).
    pub unknown: usize,
}

/// Read an NCMD payload; `rebirth_alias` is the alias the NBIRTH gave
/// `Node Control/Rebirth` (a host may name it or use the alias).
/// A rebirth metric of any type but Boolean is an error.
pub fn read_command(bytes: &[u8], rebirth_alias: u64) -> Result<Command, DecodeError> {
    let p = decode(bytes)?;
    let mut c = Command::default();
    for m in &p.metrics {
        let is_rebirth = match (&m.name, m.alias) {
            (Some(n), _) => n == REBIRTH,
            (None, Some(a)) => a == rebirth_alias,
            (None, None) => false,
        };
        match (is_rebirth, &m.value) {
            (true, Some(Value::Boolean(b))) => c.rebirth |= b,
            (true, _) => {
                return Err(DecodeError::Protobuf(format!(
                    "{REBIRTH} must be a Boolean"
                )))
            }
            (false, _) => c.unknown += 1,
        }
    }
    Ok(c)
}

/// The primary host's `STATE` message (Sparkplug 3.0):
/// `{"online": bool, "timestamp": ms}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct HostState {
    /// Whether the host is online.
    pub online: bool,
    /// When the host said so (ms since the Unix epoch).
    pub timestamp: u64,
}

/// Largest STATE message read.
pub const MAX_STATE: usize = 1024;

/// Decode a STATE message; `None` for anything else (including the plain
/// `ONLINE`/`OFFLINE` strings of Sparkplug 2.2, which carry no timestamp).
pub fn decode_state(bytes: &[u8]) -> Option<HostState> {
    if bytes.len() > MAX_STATE {
        return None;
    }
    serde_json::from_slice(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Payload {
        Payload {
            timestamp: Some(1_767_225_600_000),
            seq: Some(0),
            metrics: vec![
                Metric::named("bdSeq", None, datatype::INT64, 1, Some(Value::Long(3))),
                Metric::named(
                    "Reachability/Verdict",
                    Some(1),
                    datatype::STRING,
                    2,
                    Some(Value::String("direct".into())),
                ),
                Metric::named(
                    "Mappings/tailscale/External",
                    Some(9),
                    datatype::STRING,
                    3,
                    None,
                ),
            ],
            ..Payload::default()
        }
    }

    #[test]
    fn round_trip() {
        let p = sample();
        let bytes = encode(&p);
        assert_eq!(decode(&bytes).unwrap(), p);
        assert_eq!(p.metrics[2].is_null, Some(true));
    }

    /// Bytes as the official schema encodes them (worked by hand from the
    /// protobuf wire format): a decoder built from sparkplug_b.proto reads
    /// the same fields.
    #[test]
    fn wire_bytes_match_the_schema() {
        let p = Payload {
            timestamp: Some(1),
            seq: Some(5),
            metrics: vec![Metric {
                name: Some("a".into()),
                alias: Some(2),
                datatype: Some(datatype::BOOLEAN),
                value: Some(Value::Boolean(true)),
                ..Metric::default()
            }],
            ..Payload::default()
        };
        assert_eq!(
            encode(&p),
            [
                0x08, 0x01, // timestamp = 1
                0x12, 0x09, // metrics, 9 bytes
                0x0a, 0x01, b'a', // name
                0x10, 0x02, // alias
                0x20, 0x0b, // datatype Boolean
                0x70, 0x01, // boolean_value
                0x18, 0x05, // seq = 5
            ]
        );
    }

    #[test]
    fn unknown_fields_are_skipped() {
        // A metric with `properties` (tag 9, a PropertySet) and an
        // extension field 6 on the payload: both skipped.
        let mut bytes = vec![0x12, 0x07, 0x0a, 0x01, b'x', 0x4a, 0x02, 0x08, 0x01];
        bytes.extend_from_slice(&[0x30, 0x07]);
        let p = decode(&bytes).unwrap();
        assert_eq!(p.metrics[0].name.as_deref(), Some("x"));
    }

    #[test]
    fn bad_input_is_refused() {
        assert!(matches!(
            decode(&[0xff, 0xff, 0xff]),
            Err(DecodeError::Protobuf(_))
        ));
        assert!(matches!(
            decode(&vec![0u8; MAX_PAYLOAD + 1]),
            Err(DecodeError::TooLarge(_))
        ));
        // A string field with invalid UTF-8.
        assert!(decode(&[0x12, 0x03, 0x0a, 0x01, 0xff]).is_err());
        // Too many (empty) metrics.
        let many: Vec<u8> = [0x12, 0x00].repeat(MAX_METRICS + 1);
        assert_eq!(
            decode(&many),
            Err(DecodeError::TooManyMetrics(MAX_METRICS + 1))
        );
        assert!(decode(&[]).unwrap().metrics.is_empty());
    }

    #[test]
    fn stamp_sets_seq_and_history() {
        let mut p = sample();
        p.seq = None;
        let out = decode(&stamp(&encode(&p), 200, true).unwrap()).unwrap();
        assert_eq!(out.seq, Some(200));
        assert!(out.metrics.iter().all(|m| m.is_historical == Some(true)));
        let live = decode(&stamp(&encode(&p), 7, false).unwrap()).unwrap();
        assert!(live.metrics.iter().all(|m| m.is_historical.is_none()));
        assert!(stamp(&[0xff], 1, false).is_err());
    }

    #[test]
    fn host_state() {
        assert_eq!(
            decode_state(br#"{"online":true,"timestamp":1700000000000}"#),
            Some(HostState {
                online: true,
                timestamp: 1_700_000_000_000
            })
        );
        assert_eq!(decode_state(b"ONLINE"), None);
        assert_eq!(decode_state(br#"{"online":"yes","timestamp":1}"#), None);
        assert_eq!(decode_state(&[b' '; MAX_STATE + 1]), None);
    }
    #[test]
    fn commands() {
        let cmd = |metrics: Vec<Metric>| {
            encode(&Payload {
                metrics,
                ..Payload::default()
            })
        };
        let by_name = cmd(vec![Metric {
            name: Some(REBIRTH.into()),
            value: Some(Value::Boolean(true)),
            ..Metric::default()
        }]);
        assert_eq!(
            read_command(&by_name, 1),
            Ok(Command {
                rebirth: true,
                unknown: 0
            })
        );
        let by_alias = cmd(vec![
            Metric::aliased(7, datatype::BOOLEAN, 0, Some(Value::Boolean(true))),
            Metric::named(
                "Reboot",
                None,
                datatype::BOOLEAN,
                0,
                Some(Value::Boolean(true)),
            ),
        ]);
        let c = read_command(&by_alias, 7).unwrap();
        assert!(c.rebirth);
        assert_eq!(c.unknown, 1);
        assert!(!read_command(&by_alias, 8).unwrap().rebirth);
        let wrong_type = cmd(vec![Metric::named(
            REBIRTH,
            None,
            datatype::STRING,
            0,
            Some(Value::String("true".into())),
        )]);
        assert!(read_command(&wrong_type, 1).is_err());
        assert!(read_command(b"garbage\xff", 1).is_err());
    }
}
