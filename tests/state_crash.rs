//! kill -9 the writer at random moments, 200 times: the state always loads.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use edgereach::state::StateDir;

#[test]
fn state_survives_200_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let state_path = dir.path().join("state");
    // xorshift: deterministic "random" moments, reproducible on failure.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut loaded = 0;
    let mut first_write_seen = false;
    for round in 0..200 {
        let mut child = Command::new(bin())
            .args(["debug", "write-state", "--dir"])
            .arg(&state_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_micros(2_000 + seed % 30_000));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let state = StateDir::open(&state_path).unwrap();
        match state.read_json::<serde_json::Value>("torture.json") {
            Ok(Some(v)) => {
                assert!(v["i"].is_u64(), "round {round}: {v}");
                loaded += 1;
                first_write_seen = true;
            }
            Ok(None) => assert!(
                !first_write_seen,
                "round {round}: state vanished or was corrupt after a kill -9"
            ),
            Err(e) => panic!("round {round}: {e}"),
        }
        assert!(
            !state_path.join("torture.json.corrupt").exists(),
            "round {round}: corrupt file"
        );
    }
    eprintln!("200 kills, state loaded {loaded} times");
    assert!(loaded >= 190, "writer too slow to start? loaded {loaded}");
}
