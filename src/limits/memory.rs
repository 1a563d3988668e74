//! Counters in this process: one theoretical arrival time (TAT) per policy
//! and key in a sharded map, with the arithmetic of the Redis script.

use std::time::Instant;

use dashmap::DashMap;

use super::{Decision, Policy};
use crate::config::RateLimitSettings;

pub struct MemoryLimiter {
    /// What "now" is measured from, in nanoseconds.
    start: Instant,
    /// Each policy's budget and the nanoseconds one unit takes to regain.
    limits: Vec<(Policy, (u32, u64))>,
    tats: DashMap<(Policy, String), u64>,
}

impl MemoryLimiter {
    pub fn new(settings: &RateLimitSettings) -> Self {
        MemoryLimiter {
            start: Instant::now(),
            limits: Policy::ALL
                .into_iter()
                .map(|policy| {
                    let (limit, period_ms) = policy.quota(settings);
                    let interval = (period_ms * 1_000_000 / u64::from(limit)).max(1);
                    (policy, (limit, interval))
                })
                .collect(),
            tats: DashMap::new(),
        }
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// The budget of `policy` and the nanoseconds one unit takes to regain.
    fn limit(&self, policy: Policy) -> (u32, u64) {
        self.limits
            .iter()
            .find(|(p, _)| *p == policy)
            .map_or((1, 1), |(_, quota)| *quota)
    }

    pub fn check(&self, policy: Policy, key: &str) -> Decision {
        let (limit, interval) = self.limit(policy);
        let now = self.now();
        let mut entry = self.tats.entry((policy, key.to_owned())).or_insert(now);
        let tat = (*entry).max(now);
        let new_tat = tat + interval;
        let allow_at = new_tat.saturating_sub(interval * u64::from(limit));
        if allow_at > now {
            return Decision {
                limit,
                remaining: 0,
                reset: secs(tat - now),
                retry_after: Some(secs(allow_at - now).max(1)),
            };
        }
        *entry = new_tat;
        let remaining = (now + interval * u64::from(limit) - new_tat) / interval;
        Decision {
            limit,
            remaining: remaining as u32,
            reset: secs(new_tat - now),
            retry_after: None,
        }
    }

    pub fn refund(&self, policy: Policy, key: &str) {
        let (_, interval) = self.limit(policy);
        let now = self.now();
        self.tats
            .remove_if_mut(&(policy, key.to_owned()), |_, tat| {
                *tat = tat.saturating_sub(interval);
                *tat <= now
            });
    }

    /// Forgets keys whose budget is full again.
    pub fn purge(&self) {
        let now = self.now();
        self.tats.retain(|_, tat| *tat > now);
        self.tats.shrink_to_fit();
    }

    #[cfg(test)]
    pub fn keys(&self) -> usize {
        self.tats.len()
    }
}

/// Whole seconds, rounded up: a client that waits this long is let in.
fn secs(ns: u64) -> u64 {
    ns.div_ceil(1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_minute: u32) -> MemoryLimiter {
        MemoryLimiter::new(&RateLimitSettings {
            per_minute,
            ..RateLimitSettings::default()
        })
    }

    #[test]
    fn the_whole_budget_can_be_spent_at_once_then_requests_wait() {
        let limiter = limiter(3);
        let remaining: Vec<u32> = (0..3)
            .map(|_| limiter.check(Policy::General, "1.2.3.4"))
            .map(|d| {
                assert!(d.allowed());
                d.remaining
            })
            .collect();
        assert_eq!(remaining, [2, 1, 0]);
        let refused = limiter.check(Policy::General, "1.2.3.4");
        assert!(!refused.allowed());
        let wait = refused.retry_after.unwrap();
        assert!(
            (1..=20).contains(&wait),
            "one request back every 20 s: {wait}"
        );
        assert!(
            limiter.check(Policy::General, "5.6.7.8").allowed(),
            "keys are separate"
        );
    }

    #[test]
    fn full_keys_are_purged() {
        let limiter = limiter(6000);
        for i in 0..1000 {
            limiter.check(Policy::General, &format!("10.0.{}.{}", i / 256, i % 256));
        }
        assert_eq!(limiter.keys(), 1000);
        std::thread::sleep(std::time::Duration::from_millis(30));
        limiter.purge();
        assert_eq!(limiter.keys(), 0, "every budget is full again after 10 ms");
    }

    #[test]
    fn a_refunded_unit_can_be_spent_again() {
        let limiter = MemoryLimiter::new(&RateLimitSettings {
            login_per_minute: 1,
            ..RateLimitSettings::default()
        });
        let policy = Policy::LoginUsername;
        for _ in 0..5 {
            assert!(limiter.check(policy, "alice").allowed());
        }
        assert!(!limiter.check(policy, "alice").allowed(), "five per minute");
        limiter.refund(policy, "alice");
        assert!(limiter.check(policy, "alice").allowed(), "one given back");
        assert!(!limiter.check(policy, "alice").allowed());
        for _ in 0..10 {
            limiter.refund(policy, "bob");
        }
        assert_eq!(limiter.keys(), 1, "a refund never makes a key, nor credit");
    }
}
