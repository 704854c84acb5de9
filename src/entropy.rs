//! Random bytes from the kernel, for identities and protocol nonces.

use std::io::Read;

/// Fill `buf` from /dev/urandom; if that fails (a broken chroot), fall back
/// to time and pid, which is enough for nonces that only need to differ.
pub fn fill(buf: &mut [u8]) {
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .is_ok();
    if !ok {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let seed = (nanos ^ (u128::from(std::process::id()) << 64)).to_le_bytes();
        for (i, b) in buf.iter_mut().enumerate() {
            *b = seed[i % seed.len()] ^ (i as u8).wrapping_mul(151);
        }
    }
}
