//! When each selected peer is pinged next: a new peer's first ping is spread
//! over the first few seconds, then every interval with ±10 % jitter, so
//! pings to many peers never bunch up and never line up with other timers.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::deadline::Later;
use crate::entropy::between;

/// First pings of newly seen peers land within this window (or the interval
/// if shorter): soon enough to warm paths right after tailscaled comes up.
const FIRST_PING_SPREAD: Duration = Duration::from_secs(3);

/// Per-peer due times.
#[derive(Debug)]
pub struct Schedule {
    interval: Duration,
    due: HashMap<String, Instant>,
}

impl Schedule {
    /// Ping every `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            due: HashMap::new(),
        }
    }

    /// Keep exactly `keys`: new ones get a first ping soon, gone ones are dropped.
    pub fn retain_and_add(&mut self, keys: &[String], now: Instant) {
        self.due.retain(|k, _| keys.contains(k));
        let spread = FIRST_PING_SPREAD.min(self.interval);
        for k in keys {
            self.due
                .entry(k.clone())
                .or_insert_with(|| now.later(between(Duration::ZERO, spread)));
        }
    }

    /// The earliest due time, if any peer is scheduled.
    pub fn next_due(&self) -> Option<Instant> {
        self.due.values().min().copied()
    }

    /// Up to `max` peers that are due at `now`, earliest first; each is
    /// rescheduled one jittered interval later.
    pub fn take_due(&mut self, now: Instant, max: usize) -> Vec<String> {
        let mut due: Vec<(Instant, String)> = self
            .due
            .iter()
            .filter(|(_, &t)| t <= now)
            .map(|(k, &t)| (t, k.clone()))
            .collect();
        due.sort();
        due.truncate(max);
        let (lo, hi) = (self.interval * 9 / 10, self.interval * 11 / 10);
        for (_, k) in &due {
            self.due.insert(k.clone(), now.later(between(lo, hi)));
        }
        due.into_iter().map(|(_, k)| k).collect()
    }

    /// Number of peers scheduled.
    pub fn len(&self) -> usize {
        self.due.len()
    }

    /// Whether no peer is scheduled.
    pub fn is_empty(&self) -> bool {
        self.due.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("k{i}")).collect()
    }

    #[test]
    fn first_pings_spread_then_jittered_interval() {
        let t0 = Instant::now();
        let mut s = Schedule::new(Duration::from_secs(25));
        s.retain_and_add(&keys(50), t0);
        assert_eq!(s.len(), 50);
        let first = s.next_due().unwrap();
        assert!(first >= t0 && first <= t0 + FIRST_PING_SPREAD);
        // All due within the spread window; concurrency caps each batch.
        let later = t0 + FIRST_PING_SPREAD;
        let batch = s.take_due(later, 4);
        assert_eq!(batch.len(), 4);
        let rest = s.take_due(later, 100);
        assert_eq!(rest.len(), 46);
        // Rescheduled 22.5..27.5 s later, not all at the same instant.
        let dues: Vec<_> = s.due.values().copied().collect();
        assert!(dues
            .iter()
            .all(|&d| d >= later + Duration::from_millis(22_500)
                && d <= later + Duration::from_millis(27_500)));
        let distinct: std::collections::HashSet<_> = dues.iter().collect();
        assert!(
            distinct.len() > 25,
            "jitter spreads the pings: {}",
            distinct.len()
        );
        assert!(s.take_due(later, 100).is_empty());
    }

    #[test]
    fn peers_come_and_go() {
        let t0 = Instant::now();
        let mut s = Schedule::new(Duration::from_secs(25));
        s.retain_and_add(&keys(3), t0);
        let due_k0 = s.due["k0"];
        s.retain_and_add(&["k0".to_string(), "new".to_string()], t0);
        assert_eq!(s.len(), 2);
        assert_eq!(s.due["k0"], due_k0, "a known peer keeps its slot");
        s.retain_and_add(&[], t0);
        assert!(s.is_empty() && s.next_due().is_none());
    }
}
