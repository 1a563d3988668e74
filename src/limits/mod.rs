//! Rate limiting: the generic cell rate algorithm (GCRA), per policy and key.
//!
//! A client may spend its whole budget of N at once, then regains one
//! request every 60/N seconds. Both backends keep one "theoretical arrival
//! time" per key and run the same arithmetic: in this process (a sharded
//! map), or in Redis in an atomic script, so instances that share
//! `redis_url` share each client's budget. A spent unit can be given back
//! ([`RateLimiter::refund`]): the per-username login budget counts only
//! failed attempts.

mod memory;
mod redis;

use crate::config::{RateLimitBackend, RateLimitSettings};

/// A named limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    /// Every route under `/api`, per client address.
    General,
    /// `POST /api/v1/auth/login`, per client address.
    Login,
    /// `POST /api/v1/auth/login`, per username tried: failed attempts
    /// only, five times the per-address budget, so that one address meets
    /// its own limit long before it could lock the user out.
    LoginUsername,
    /// `POST /api/v1/users`, per client address.
    Register,
}

impl Policy {
    pub const ALL: [Policy; 4] = [
        Policy::General,
        Policy::Login,
        Policy::LoginUsername,
        Policy::Register,
    ];

    fn name(self) -> &'static str {
        match self {
            Policy::General => "general",
            Policy::Login => "login",
            Policy::LoginUsername => "login-user",
            Policy::Register => "register",
        }
    }

    fn per_minute(self, settings: &RateLimitSettings) -> u32 {
        match self {
            Policy::General => settings.per_minute,
            Policy::Login => settings.login_per_minute,
            Policy::LoginUsername => settings.login_per_minute.saturating_mul(5),
            Policy::Register => settings.register_per_minute,
        }
    }
}

/// The outcome of one check, with what the `RateLimit-*` headers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub limit: u32,
    /// Requests left now.
    pub remaining: u32,
    /// Seconds until the whole budget is back.
    pub reset: u64,
    /// Seconds to wait when refused.
    pub retry_after: Option<u64>,
}

impl Decision {
    pub fn allowed(&self) -> bool {
        self.retry_after.is_none()
    }
}

pub enum RateLimiter {
    Memory(memory::MemoryLimiter),
    Redis(Box<redis::RedisLimiter>),
}

impl RateLimiter {
    pub fn new(settings: &RateLimitSettings) -> Result<Self, String> {
        Ok(match settings.backend {
            RateLimitBackend::Memory => RateLimiter::Memory(memory::MemoryLimiter::new(settings)),
            RateLimitBackend::Redis => {
                RateLimiter::Redis(Box::new(redis::RedisLimiter::new(settings)?))
            }
        })
    }

    /// Counts one request of `key` against `policy`. `None` when the limit
    /// could not be checked (Redis unreachable): the request goes through.
    pub async fn check(&self, policy: Policy, key: &str) -> Option<Decision> {
        match self {
            RateLimiter::Memory(limiter) => Some(limiter.check(policy, key)),
            RateLimiter::Redis(limiter) => limiter.check(policy, key).await,
        }
    }

    /// Gives back one unit that [`check`](Self::check) spent for `key`.
    pub async fn refund(&self, policy: Policy, key: &str) {
        match self {
            RateLimiter::Memory(limiter) => limiter.refund(policy, key),
            RateLimiter::Redis(limiter) => limiter.refund(policy, key).await,
        }
    }

    /// Forgets keys whose budget is full again, so memory stays bounded.
    pub fn purge(&self) {
        if let RateLimiter::Memory(limiter) = self {
            limiter.purge();
        }
    }

    /// Why limits are not being enforced right now, for readiness.
    pub fn degraded(&self) -> Option<String> {
        match self {
            RateLimiter::Memory(_) => None,
            RateLimiter::Redis(limiter) => limiter.degraded(),
        }
    }
}
