//! Counters in this process, with `governor`'s GCRA.

use std::collections::HashMap;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use super::{ceil_secs, Decision, Policy};
use crate::config::RateLimitSettings;

type Keyed =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

pub struct MemoryLimiter {
    clock: DefaultClock,
    limiters: HashMap<Policy, (u32, Keyed)>,
}

impl MemoryLimiter {
    pub fn new(settings: &RateLimitSettings) -> Self {
        let clock = DefaultClock::default();
        let limiters = Policy::ALL
            .into_iter()
            .map(|policy| {
                let per_minute = policy.per_minute(settings).max(1);
                let quota =
                    Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN));
                let limiter = RateLimiter::dashmap_with_clock(quota, clock.clone())
                    .with_middleware::<StateInformationMiddleware>();
                (policy, (per_minute, limiter))
            })
            .collect();
        MemoryLimiter { clock, limiters }
    }

    pub fn check(&self, policy: Policy, key: &str) -> Decision {
        let (limit, limiter) = &self.limiters[&policy];
        let limit = *limit;
        // Seconds per request regained.
        let interval = 60.0 / f64::from(limit);
        match limiter.check_key(&key.to_owned()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let reset = (f64::from(limit - remaining.min(limit)) * interval).ceil() as u64;
                Decision {
                    limit,
                    remaining,
                    reset,
                    retry_after: None,
                }
            }
            Err(not_until) => {
                let wait = ceil_secs(not_until.wait_time_from(self.clock.now())).max(1);
                Decision {
                    limit,
                    remaining: 0,
                    reset: (f64::from(limit) * interval).ceil() as u64,
                    retry_after: Some(wait),
                }
            }
        }
    }

    pub fn purge(&self) {
        for (_, limiter) in self.limiters.values() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    #[cfg(test)]
    pub fn keys(&self) -> usize {
        self.limiters.values().map(|(_, l)| l.len()).sum()
    }
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
}
