//! Per-client connection caps and request rates: what keeps one client (or
//! one slow-header attacker) from taking the page away from everyone else.
//!
//! Clients are counted by address; an IPv6 client by its /64, since one host
//! usually holds a whole /64 and could otherwise rotate addresses at will.
//! Every table is bounded.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// The address a client is counted under.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut seg = v6.segments();
                seg[4..].fill(0);
                IpAddr::V6(seg.into())
            }
        },
    }
}

/// Why a connection was turned away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// This client already holds its share of connections.
    PerClient,
    /// The server holds as many connections as it takes.
    Total,
}

/// Counts open connections per client and in total.
#[derive(Debug)]
pub struct ConnectionLimits {
    per_client: u32,
    total: u32,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: u32,
    by_client: HashMap<IpAddr, u32>,
    /// Most open at once since [`ConnectionLimits::take_peak`] last asked.
    peak: u32,
    /// Connections let in since start.
    accepted: u64,
}

impl ConnectionLimits {
    /// Caps of `per_client` connections per client and `total` overall.
    pub fn new(per_client: u32, total: u32) -> Arc<Self> {
        Arc::new(Self {
            per_client,
            total,
            open: Mutex::new(Open::default()),
        })
    }

    /// Take a slot for a connection from `ip`; it is given back when the
    /// guard is dropped.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionGuard, Refusal> {
        let key = client_key(ip);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.total >= self.total {
            return Err(Refusal::Total);
        }
        let n = open.by_client.entry(key).or_insert(0);
        if *n >= self.per_client {
            return Err(Refusal::PerClient);
        }
        *n += 1;
        open.total += 1;
        open.peak = open.peak.max(open.total);
        open.accepted += 1;
        Ok(ConnectionGuard {
            limits: self.clone(),
            key,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> u32 {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }

    /// The most connections open at once since the last call (a burst
    /// shorter than the caller's polling interval still shows), and how
    /// many were let in since start.
    pub fn take_peak(&self) -> (u32, u64) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let peak = open.peak.max(open.total);
        open.peak = open.total;
        (peak, open.accepted)
    }

    fn release(&self, key: IpAddr) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_client.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.by_client.remove(&key);
            }
        }
    }
}

/// One open connection's slot.
#[derive(Debug)]
pub struct ConnectionGuard {
    limits: Arc<ConnectionLimits>,
    key: IpAddr,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.limits.release(self.key);
    }
}

/// Most clients whose request rate is remembered at once.
pub const MAX_TRACKED_CLIENTS: usize = 4096;

/// A token bucket per client: `per_minute` requests a minute, in bursts of
/// up to ten seconds' worth (at least 5).
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    max_clients: usize,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// A limiter allowing `per_minute` requests per client and minute.
    pub fn new(per_minute: u32, max_clients: usize) -> Self {
        let per_second = f64::from(per_minute.max(1)) / 60.0;
        Self {
            per_second,
            burst: (per_second * 10.0).max(5.0),
            max_clients,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a request from `ip` at `now` may be served.
    pub fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        let key = client_key(ip);
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if !buckets.contains_key(&key) && buckets.len() >= self.max_clients {
            // Forget clients whose bucket has refilled: they lose nothing.
            let full_after = Duration::from_secs_f64(self.burst / self.per_second);
            buckets.retain(|_, b| now.saturating_duration_since(b.at) < full_after);
            if buckets.len() >= self.max_clients {
                // Every tracked client is busy: a flood of new addresses.
                // Refusing the newcomer keeps the table bounded and the
                // known clients served.
                return false;
            }
        }
        let b = buckets.entry(key).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let refill = now.saturating_duration_since(b.at).as_secs_f64() * self.per_second;
        b.tokens = (b.tokens + refill).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Clients remembered now.
    pub fn tracked(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_clients_count_by_64_and_mapped_v4_as_v4() {
        assert_eq!(
            client_key(ip("2001:db8:1:2:aaaa::1")),
            client_key(ip("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            client_key(ip("2001:db8:1:2::1")),
            client_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(client_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
    }

    #[test]
    fn per_client_and_total_caps_and_release() {
        let l = ConnectionLimits::new(2, 3);
        let a1 = l.try_acquire(ip("192.0.2.1")).unwrap();
        let _a2 = l.try_acquire(ip("192.0.2.1")).unwrap();
        assert_eq!(
            l.try_acquire(ip("192.0.2.1")).unwrap_err(),
            Refusal::PerClient
        );
        let _b1 = l.try_acquire(ip("192.0.2.2")).unwrap();
        assert_eq!(l.try_acquire(ip("192.0.2.3")).unwrap_err(), Refusal::Total);
        assert_eq!(l.open(), 3);
        drop(a1);
        assert_eq!(l.open(), 2);
        let _a3 = l.try_acquire(ip("192.0.2.1")).unwrap();
        assert_eq!(l.open(), 3);
    }

    #[test]
    fn peak_sees_a_burst_between_polls() {
        let l = ConnectionLimits::new(100, 100);
        let burst: Vec<_> = (0..5u8)
            .map(|i| l.try_acquire(IpAddr::from([192, 0, 2, i])).unwrap())
            .collect();
        let kept = l.try_acquire(ip("192.0.2.9")).unwrap();
        drop(burst);
        assert_eq!(l.open(), 1);
        assert_eq!(l.take_peak(), (6, 6));
        assert_eq!(l.take_peak(), (1, 6), "reset to the connections open now");
        drop(kept);
        assert_eq!(l.take_peak(), (1, 6));
        assert_eq!(l.take_peak(), (0, 6));
        assert!(l.try_acquire(ip("192.0.2.1")).is_ok());
        assert_eq!(l.take_peak(), (1, 7));
    }

    #[test]
    fn guards_leave_no_entries_behind() {
        let l = ConnectionLimits::new(1, 100);
        for i in 0..50u8 {
            drop(l.try_acquire(IpAddr::from([192, 0, 2, i])).unwrap());
        }
        assert_eq!(l.open(), 0);
        assert!(l.open.lock().unwrap().by_client.is_empty());
    }

    #[test]
    fn rate_allows_a_burst_then_refills() {
        let r = RateLimiter::new(60, 100); // 1/s, burst 10
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        let served = (0..20).filter(|_| r.allow(a, t0)).count();
        assert_eq!(served, 10);
        assert!(!r.allow(a, t0 + Duration::from_millis(500)));
        assert!(r.allow(a, t0 + Duration::from_millis(1100)));
        assert!(r.allow(ip("192.0.2.2"), t0), "others are not affected");
        assert_eq!(
            (0..30)
                .filter(|_| r.allow(a, t0 + Duration::from_secs(3600)))
                .count(),
            10,
            "the burst never grows past its size"
        );
    }

    #[test]
    fn small_rates_still_get_a_minimum_burst() {
        let r = RateLimiter::new(1, 100);
        let t0 = Instant::now();
        assert_eq!((0..10).filter(|_| r.allow(ip("192.0.2.1"), t0)).count(), 5);
    }

    #[test]
    fn client_table_is_bounded_and_forgets_idle_clients() {
        let r = RateLimiter::new(600, 8);
        let t0 = Instant::now();
        for i in 0..8u8 {
            assert!(r.allow(IpAddr::from([198, 51, 100, i]), t0));
        }
        assert!(
            !r.allow(ip("198.51.100.200"), t0),
            "table full of busy clients"
        );
        assert_eq!(r.tracked(), 8);
        // 10 s later every bucket has refilled: the idle ones are forgotten.
        assert!(r.allow(ip("198.51.100.200"), t0 + Duration::from_secs(11)));
        assert_eq!(r.tracked(), 1);
    }
}
