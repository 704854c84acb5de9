//! When to register: a random start delay after boot, periodic
//! re-registration with jitter, and capped exponential backoff with full
//! jitter after failures. Pure arithmetic on durations; the randomness comes
//! from [`crate::entropy`].
//!
//! Why a start delay: after a site-wide (or fleet-wide) power cut every
//! gateway boots within seconds. Registering at once would hit the service
//! with the whole fleet in one burst. Each gateway instead waits a uniformly
//! random time in `0..startup_spread` (default 90 s): 10,000 gateways then
//! arrive at about 10,000 / 90 ≈ 111 requests/s on average, and all are done
//! within the spread plus one round trip. The stored assignment keeps
//! tailscaled working meanwhile, so nothing waits on it. A gateway that has
//! never been assigned has nothing to work with, so its wait is capped at
//! [`UNASSIGNED_SPREAD_CAP`].

use std::time::Duration;

use crate::entropy::between;

/// Longest start delay of a gateway without a stored assignment.
pub const UNASSIGNED_SPREAD_CAP: Duration = Duration::from_secs(5);
/// First retry ceiling; doubles per consecutive failure up to the cap.
pub const RETRY_BASE: Duration = Duration::from_secs(2);
/// No retry comes sooner than this, whatever the jitter drew.
pub const RETRY_FLOOR: Duration = Duration::from_secs(1);

/// The wait before the first registration after start.
pub fn first_delay(startup_spread: Duration, has_assignment: bool) -> Duration {
    let spread = if has_assignment {
        startup_spread
    } else {
        startup_spread.min(UNASSIGNED_SPREAD_CAP)
    };
    between(Duration::ZERO, spread)
}

/// The wait until the next periodic registration: `interval` ±10 %, so a
/// fleet that registered together drifts apart instead of staying in step.
pub fn periodic(interval: Duration) -> Duration {
    between(interval.mul_f64(0.9), interval.mul_f64(1.1))
}

/// The ceiling after `failures` consecutive failures (1 = first failure).
pub fn retry_ceiling(failures: u32, cap: Duration) -> Duration {
    let exp = failures.saturating_sub(1).min(20);
    RETRY_BASE
        .saturating_mul(1 << exp)
        .min(cap)
        .max(RETRY_FLOOR)
}

/// Full jitter: uniformly random up to the ceiling, never below the floor.
pub fn retry(failures: u32, cap: Duration) -> Duration {
    let ceiling = retry_ceiling(failures, cap);
    between(RETRY_FLOOR.min(ceiling), ceiling)
}

/// The wait after the service said "busy": at least its Retry-After, at
/// least our own backoff draw.
pub fn after_busy(failures: u32, cap: Duration, retry_after: Option<Duration>) -> Duration {
    retry(failures, cap).max(retry_after.unwrap_or_default())
}

/// The wait after a failed registration: a refusal with a reason (4xx)
/// waits a whole interval (it needs a person, retrying sooner changes
/// nothing); "busy" waits at least the service's Retry-After; everything
/// else backs off exponentially with full jitter up to `cap`.
pub fn after_failure(
    e: &super::client::AcsError,
    failures: u32,
    interval: Duration,
    cap: Duration,
) -> Duration {
    use super::client::AcsError;
    match e {
        AcsError::Rejected { .. } => periodic(interval),
        AcsError::Busy { retry_after, .. } => after_busy(failures, cap, *retry_after),
        _ => retry(failures, cap),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap() {
        let cap = Duration::from_secs(300);
        assert_eq!(retry_ceiling(1, cap), Duration::from_secs(2));
        assert_eq!(retry_ceiling(2, cap), Duration::from_secs(4));
        assert_eq!(retry_ceiling(8, cap), Duration::from_secs(256));
        assert_eq!(retry_ceiling(9, cap), cap);
        assert_eq!(retry_ceiling(u32::MAX, cap), cap);
        for n in 1..40 {
            let d = retry(n, cap);
            assert!(d >= RETRY_FLOOR && d <= retry_ceiling(n, cap), "{n}: {d:?}");
        }
    }

    #[test]
    fn jitter_spreads() {
        let cap = Duration::from_secs(300);
        let draws: std::collections::HashSet<_> = (0..50).map(|_| retry(9, cap)).collect();
        assert!(draws.len() > 10, "full jitter draws differ");
        let p = periodic(Duration::from_secs(600));
        assert!(p >= Duration::from_secs(540) && p <= Duration::from_secs(660));
    }

    #[test]
    fn start_delay_depends_on_assignment() {
        let spread = Duration::from_secs(90);
        for _ in 0..100 {
            assert!(first_delay(spread, false) <= UNASSIGNED_SPREAD_CAP);
            assert!(first_delay(spread, true) <= spread);
        }
        assert_eq!(first_delay(Duration::ZERO, true), Duration::ZERO);
    }

    #[test]
    fn busy_honours_retry_after() {
        let d = after_busy(1, Duration::from_secs(300), Some(Duration::from_secs(30)));
        assert!(d >= Duration::from_secs(30));
    }
}
