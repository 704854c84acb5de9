//! Random bytes from the kernel (getrandom(2)), for identities, protocol
//! nonces (STUN transaction ids, PCP nonces) and jitter.
//!
//! There is no fallback: time and pid are guessable, and a guessable STUN
//! transaction id or PCP nonce lets an off-path host forge answers. Without
//! the kernel's generator the daemon refuses to start ([`check`]).

/// The operating system's generator failed.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator is unavailable ({0}); refusing to run with weak randomness")]
pub struct EntropyError(String);

/// Whether the kernel's generator works; the binary calls this before
/// anything else, so a failure is one clear error at start, not later.
pub fn check() -> Result<(), EntropyError> {
    try_fill(&mut [0u8; 16])
}

/// Fill `buf` from the kernel's generator.
pub fn try_fill(buf: &mut [u8]) -> Result<(), EntropyError> {
    fill_from(buf, getrandom::getrandom)
}

fn fill_from(
    buf: &mut [u8],
    source: impl FnOnce(&mut [u8]) -> Result<(), getrandom::Error>,
) -> Result<(), EntropyError> {
    source(buf).map_err(|e| EntropyError(e.to_string()))
}

/// Fill `buf` from the kernel's generator. Panics (the release profile
/// aborts) when it fails: [`check`] has proven it at start, and weak bytes
/// are worse than a stopped daemon that systemd restarts and logs.
pub fn fill(buf: &mut [u8]) {
    if let Err(e) = try_fill(buf) {
        panic!("{e}");
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
    lo.saturating_add(std::time::Duration::from_millis(below(
        span.saturating_add(1),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_generator_is_an_error_not_a_weak_fill() {
        let mut buf = [0u8; 12];
        let e = fill_from(&mut buf, |_| Err(getrandom::Error::UNSUPPORTED)).unwrap_err();
        assert!(
            e.to_string()
                .contains("refusing to run with weak randomness"),
            "{e}"
        );
        assert_eq!(buf, [0u8; 12], "nothing made up");
    }

    #[test]
    fn the_kernel_generator_works_and_differs() {
        check().unwrap();
        let (mut a, mut b) = ([0u8; 16], [0u8; 16]);
        fill(&mut a);
        fill(&mut b);
        assert_ne!(a, b);
    }
}
