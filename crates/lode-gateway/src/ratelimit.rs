//! Per-client-IP token buckets and connection counts.
//!
//! Pure bookkeeping: the caller passes the current time, so the logic is
//! deterministic and testable. IPv6 clients are grouped by /64 (one household
//! or host usually owns a whole /64).

use std::collections::HashMap;
use std::net::IpAddr;

/// The key a client is limited under: its IPv4 address, or its IPv6 /64.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let mut seg = v6.segments();
            for s in &mut seg[4..] {
                *s = 0;
            }
            IpAddr::V6(seg.into())
        }
    }
}

/// Token bucket per client: `burst` tokens, refilled at `per_second`.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: HashMap<IpAddr, (f64, u64)>,
    max_clients: usize,
}

impl RateLimiter {
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self {
            per_second: per_second as f64,
            burst: burst.max(1) as f64,
            buckets: HashMap::new(),
            max_clients: 100_000,
        }
    }

    /// Takes one token for `ip` at time `now_ms`. `Err(retry_after_ms)` when empty.
    pub fn check(&mut self, ip: IpAddr, now_ms: u64) -> Result<(), u64> {
        let key = client_key(ip);
        if self.buckets.len() >= self.max_clients && !self.buckets.contains_key(&key) {
            // Forget clients whose buckets have refilled completely: they are idle.
            let full_after_ms = (self.burst / self.per_second * 1000.0) as u64;
            self.buckets
                .retain(|_, (_, t)| now_ms.saturating_sub(*t) < full_after_ms);
        }
        let (tokens, last) = self.buckets.entry(key).or_insert((self.burst, now_ms));
        let elapsed = now_ms.saturating_sub(*last) as f64 / 1000.0;
        *tokens = (*tokens + elapsed * self.per_second).min(self.burst);
        *last = now_ms.max(*last);
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / self.per_second * 1000.0).ceil() as u64)
        }
    }
}

/// Open connections per client, with a cap.
#[derive(Debug, Default)]
pub struct ConnectionCounter {
    open: HashMap<IpAddr, u32>,
}

impl ConnectionCounter {
    /// Registers a connection; `false` (and nothing recorded) when `ip` is at `max`.
    pub fn try_open(&mut self, ip: IpAddr, max: u32) -> bool {
        let n = self.open.entry(client_key(ip)).or_insert(0);
        if *n >= max {
            return false;
        }
        *n += 1;
        true
    }

    pub fn close(&mut self, ip: IpAddr) {
        let key = client_key(ip);
        if let Some(n) = self.open.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.open.remove(&key);
            }
        }
    }

    pub fn open_for(&self, ip: IpAddr) -> u32 {
        self.open.get(&client_key(ip)).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_groups_by_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(client_key(mapped), "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn bucket_limits_and_refills() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        let mut rl = RateLimiter::new(10, 3);
        for _ in 0..3 {
            rl.check(ip, 0).unwrap();
        }
        let retry = rl.check(ip, 0).unwrap_err();
        assert_eq!(retry, 100);
        rl.check(other, 0).unwrap();
        rl.check(ip, 100).unwrap();
        assert!(rl.check(ip, 100).is_err());
        // Never more than the burst, however long the pause.
        for _ in 0..3 {
            rl.check(ip, 1_000_000).unwrap();
        }
        assert!(rl.check(ip, 1_000_000).is_err());
    }

    #[test]
    fn connections_are_capped_per_client() {
        let ip: IpAddr = "10.1.1.1".parse().unwrap();
        let mut cc = ConnectionCounter::default();
        assert!(cc.try_open(ip, 2));
        assert!(cc.try_open(ip, 2));
        assert!(!cc.try_open(ip, 2));
        cc.close(ip);
        assert_eq!(cc.open_for(ip), 1);
        assert!(cc.try_open(ip, 2));
    }
}
