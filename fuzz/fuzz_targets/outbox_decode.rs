//! Feeds arbitrary bytes (a segment file after a crash, or a damaged disk) to
//! the outbox frame decoder: every frame found re-encodes to the same bytes,
//! and nothing is believed past the input or the body bound.
#![no_main]

use edgereach::telemetry::frame::{decode_all, encode, MAX_BODY};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let d = decode_all(data);
    assert!(d.valid_end <= data.len());
    let mut last_end = 0;
    for (offset, frame) in &d.frames {
        assert!(*offset >= last_end);
        let bytes = encode(frame).expect("a decoded frame encodes");
        assert!(bytes.len() <= MAX_BODY + 10);
        assert_eq!(&data[*offset..*offset + bytes.len()], &bytes[..]);
        last_end = offset + bytes.len();
    }
    assert_eq!(last_end, d.valid_end);
});
