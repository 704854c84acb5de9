//! Feeds arbitrary bytes (an NCMD or STATE message from anyone who may
//! publish on the broker) to the Sparkplug decoders: a payload that decodes
//! re-encodes and decodes to the same thing, never holds more than the
//! metric bound, and the command reader and STATE parser never panic.
#![no_main]

use edgereach::telemetry::sparkplug::codec::{
    decode, decode_state, encode, read_command, MAX_METRICS,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_state(data);
    let _ = read_command(data, 1);
    if let Ok(p) = decode(data) {
        assert!(p.metrics.len() <= MAX_METRICS);
        let again = decode(&encode(&p)).expect("an encoded payload decodes");
        // NaN floats make PartialEq fail: compare the encodings instead.
        assert_eq!(encode(&again), encode(&p));
    }
});
