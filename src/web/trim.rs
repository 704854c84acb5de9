//! When to give the heap back after a burst of connections.
//!
//! Each web connection holds about 30 kB of buffers; when a burst (a load
//! test, a scan, a slow-header attack) ends, glibc keeps the freed memory
//! (see [`crate::heap`]). The web actor polls the connection counts once a
//! second and asks [`QuietAfterBurst`] whether to trim now: once after each
//! burst, when it is over, never more often than [`MIN_SPACING`]. Pure
//! logic, so the decision is tested without a clock or an allocator.

use std::time::Duration;

use tokio::time::Instant;

/// A burst is at least this many connections open at once. Below it the
/// memory kept is small (about 30 kB a connection) and ordinary page views
/// (one or two connections) never cause a trim.
pub const BURST_CONNECTIONS: u32 = 8;
/// The burst is over when fewer than [`BURST_CONNECTIONS`] are open and no
/// new connection came for this long.
pub const QUIET: Duration = Duration::from_secs(2);
/// Never trim more often than this, whatever the traffic does.
pub const MIN_SPACING: Duration = Duration::from_secs(10);

/// Watches connection counts and says when a burst has ended.
#[derive(Debug, Default)]
pub struct QuietAfterBurst {
    /// Most connections open at once since the last trim.
    peak: u32,
    /// Connections accepted since start, at the last look.
    accepted: u64,
    /// Since when it has been quiet; `None` while busy.
    quiet_since: Option<Instant>,
    last_trim: Option<Instant>,
}

impl QuietAfterBurst {
    /// Take in one look at the server: `open` connections now, `peak` open
    /// at once since the last look, `accepted` since start. `true` means
    /// trim now (the caller does it, once).
    pub fn observe(&mut self, now: Instant, open: u32, peak: u32, accepted: u64) -> bool {
        self.peak = self.peak.max(peak).max(open);
        let new_connections = accepted != self.accepted;
        self.accepted = accepted;
        if new_connections || open >= BURST_CONNECTIONS {
            self.quiet_since = None;
            return false;
        }
        let quiet_since = *self.quiet_since.get_or_insert(now);
        let due = self.peak >= BURST_CONNECTIONS
            && now.saturating_duration_since(quiet_since) >= QUIET
            && self
                .last_trim
                .is_none_or(|t| now.saturating_duration_since(t) >= MIN_SPACING);
        if due {
            self.last_trim = Some(now);
            self.peak = open;
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    /// One look a second: `(open, peak, accepted)` each; the seconds at
    /// which it said "trim".
    fn trims(looks: &[(u32, u32, u64)]) -> Vec<usize> {
        let t0 = Instant::now();
        let mut q = QuietAfterBurst::default();
        looks
            .iter()
            .enumerate()
            .filter(|(i, &(open, peak, acc))| q.observe(t0 + S * (*i as u32), open, peak, acc))
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn one_trim_once_a_burst_has_gone_quiet() {
        // 64 connections for 3 s, then they close; quiet from second 3.
        let mut looks = vec![(64, 64, 64); 3];
        looks.extend([(0, 64, 64); 10]);
        assert_eq!(trims(&looks), vec![5]);
    }

    #[test]
    fn a_burst_between_two_looks_counts() {
        // 20 connections came and went within one second.
        let looks = [(0, 0, 0), (0, 20, 20), (0, 0, 20), (0, 0, 20), (0, 0, 20)];
        assert_eq!(trims(&looks), vec![4]);
    }

    #[test]
    fn small_traffic_never_trims() {
        // A browser: a connection or two, new ones now and then.
        let looks: Vec<_> = (0..60).map(|i| (1, 2, i / 5)).collect();
        assert!(trims(&looks).is_empty());
    }

    #[test]
    fn not_while_connections_keep_coming_or_many_stay_open() {
        // Few open, but a new one every second: not quiet.
        let looks: Vec<_> = (0..20).map(|i| (2, 10, i)).collect();
        assert!(trims(&looks).is_empty());
        // Many open and idle (held by a slow-header attacker): not over.
        assert!(trims(&[(16, 16, 16); 20]).is_empty());
    }

    #[test]
    fn back_to_back_bursts_are_spaced() {
        // A burst every 4 s for 40 s: trims at least MIN_SPACING apart.
        let looks: Vec<_> = (0..40u64)
            .map(|i| {
                if i % 4 == 0 {
                    (0, 30, 30 * (i / 4 + 1))
                } else {
                    (0, 0, 30 * (i / 4 + 1))
                }
            })
            .collect();
        let at = trims(&looks);
        assert!(!at.is_empty(), "{at:?}");
        assert!(at.windows(2).all(|w| w[1] - w[0] >= 10), "{at:?}");
    }
}
