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

/// A uniformly random number in `0..n` (0 when `n` is 0).
pub fn below(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let mut b = [0u8; 8];
    fill(&mut b);
    // Modulo bias is below 2^-40 for the small ranges used here (timers).
    u64::from_le_bytes(b) % n
}

/// A random duration in `lo..=hi` with millisecond resolution, for jitter.
pub fn between(lo: std::time::Duration, hi: std::time::Duration) -> std::time::Duration {
    let span = hi.saturating_sub(lo).as_millis() as u64;
    lo + std::time::Duration::from_millis(below(span + 1))
}
