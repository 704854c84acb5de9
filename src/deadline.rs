//! Deadlines that cannot panic, and that coalesce. `Instant + Duration`
//! panics on overflow, and many durations come from the configuration, a
//! router's lease or a peer: every deadline in the crate is made with
//! [`Later::later`] instead.
//!
//! Coalescing: a deadline at least [`COALESCE_FROM`] away is moved up to the
//! next whole second of one process-wide grid. The actors' periodic work
//! (renewals, verification, proofs, polls, rescans) then falls on shared
//! seconds, and work due within the same second wakes the daemon once
//! (issue 15: idle wakeups). Never earlier than asked and at most a second
//! later, against periods of ten seconds and more; short waits (retransmits,
//! debounces, budgets) stay exact.

use std::sync::OnceLock;
use std::time::Duration;

/// Far enough to mean "never" for a daemon, near enough to be representable.
const FAR: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// Deadlines at least this far away are coalesced onto the grid.
pub const COALESCE_FROM: Duration = Duration::from_secs(5);

/// The grid's spacing.
const GRID: Duration = Duration::from_secs(1);

/// Saturating addition of a duration to an instant.
pub trait Later: Sized + Copy {
    /// `self + d`, or a point far in the future when that is not
    /// representable; moved up onto the grid when `d` >= [`COALESCE_FROM`].
    fn later(self, d: Duration) -> Self;

    /// `self + d` off the grid, saturating: for jittered schedules, whose
    /// point is to spread out (keepalive pings to many peers).
    fn exactly_later(self, d: Duration) -> Self;
}

impl Later for std::time::Instant {
    fn exactly_later(self, d: Duration) -> Self {
        self.checked_add(d)
            .or_else(|| self.checked_add(FAR))
            .unwrap_or(self)
    }

    fn later(self, d: Duration) -> Self {
        let at = self.exactly_later(d);
        if d < COALESCE_FROM {
            return at;
        }
        static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();
        let origin = *ORIGIN.get_or_init(|| self);
        on_grid(at, origin, |o, d| o.checked_add(d))
    }
}

impl Later for tokio::time::Instant {
    fn exactly_later(self, d: Duration) -> Self {
        self.checked_add(d)
            .or_else(|| self.checked_add(FAR))
            .unwrap_or(self)
    }

    fn later(self, d: Duration) -> Self {
        let at = self.exactly_later(d);
        if d < COALESCE_FROM {
            return at;
        }
        static ORIGIN: OnceLock<tokio::time::Instant> = OnceLock::new();
        let origin = *ORIGIN.get_or_init(|| self);
        on_grid(at, origin, |o, d| o.checked_add(d))
    }
}

/// `at` moved up to the next grid point after `origin`; `at` itself when it
/// is on a point already, before the origin (a clock the grid does not
/// cover) or where the sum would not be representable.
fn on_grid<I>(at: I, origin: I, add: impl Fn(I, Duration) -> Option<I>) -> I
where
    I: Copy + Ord + std::ops::Sub<I, Output = Duration>,
{
    if at <= origin {
        return at;
    }
    let since = at - origin;
    let grid = GRID.as_nanos();
    let rest = since.as_nanos() % grid;
    if rest == 0 {
        return at;
    }
    let up = u64::try_from(grid - rest).unwrap_or(0);
    add(at, Duration::from_nanos(up)).map_or(at, |g| g.max(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_saturates_instead_of_panicking() {
        let now = std::time::Instant::now();
        assert!(now.later(Duration::MAX) > now.later(Duration::from_secs(3600)));
        assert_eq!(
            now.later(Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
        let t = tokio::time::Instant::now();
        assert!(t.later(Duration::MAX) > t);
    }

    #[test]
    fn long_deadlines_share_whole_seconds_short_ones_stay_exact() {
        let now = std::time::Instant::now();
        // Set the grid's origin (the first long deadline of the process may
        // have set it already: any origin will do).
        let _ = now.later(COALESCE_FROM);
        let short = Duration::from_millis(4_300);
        assert_eq!(now.later(short), now + short, "short waits are exact");
        let a = now.later(Duration::from_millis(30_100));
        let b = (now + Duration::from_millis(400)).later(Duration::from_millis(29_900));
        assert_eq!(a, b, "due within the same second: one wake");
        for d in [30_100, 30_900, 60_000, 3_600_001] {
            let asked = now + Duration::from_millis(d);
            let got = now.later(Duration::from_millis(d));
            assert!(got >= asked, "never earlier");
            assert!(got - asked < GRID, "at most a grid step later");
        }
    }

    #[test]
    fn the_grid_never_moves_a_deadline_before_its_origin_or_earlier() {
        let origin = Duration::from_secs(100);
        let add = |o: Duration, d: Duration| o.checked_add(d);
        assert_eq!(
            on_grid(Duration::from_secs(50), origin, add),
            Duration::from_secs(50)
        );
        assert_eq!(
            on_grid(Duration::from_millis(100_250), origin, add),
            Duration::from_secs(101)
        );
        assert_eq!(
            on_grid(Duration::from_secs(105), origin, add),
            Duration::from_secs(105)
        );
        assert_eq!(on_grid(Duration::MAX, origin, |_, _| None), Duration::MAX);
    }
}
