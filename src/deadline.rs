//! Deadlines that cannot panic. `Instant + Duration` panics on overflow, and
//! many durations come from the configuration, a router's lease or a peer:
//! every deadline in the crate is made with [`Later::later`] instead.

use std::time::Duration;

/// Far enough to mean "never" for a daemon, near enough to be representable.
const FAR: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// Saturating addition of a duration to an instant.
pub trait Later: Sized + Copy {
    /// `self + d`, or a point far in the future when that is not representable.
    fn later(self, d: Duration) -> Self;
}

impl Later for std::time::Instant {
    fn later(self, d: Duration) -> Self {
        self.checked_add(d)
            .or_else(|| self.checked_add(FAR))
            .unwrap_or(self)
    }
}

impl Later for tokio::time::Instant {
    fn later(self, d: Duration) -> Self {
        self.checked_add(d)
            .or_else(|| self.checked_add(FAR))
            .unwrap_or(self)
    }
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
}
