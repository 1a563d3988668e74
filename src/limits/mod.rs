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
    /// Wrong current passwords at `PUT /api/v1/users/me/password`, per
    /// user: 5 in 15 minutes, so a stolen session is no password oracle.
    PasswordChange,
    /// `POST /api/v1/auth/password-reset`, per client address, per hour.
    PasswordReset,
    /// Reset and verification emails to one address, per hour, so that no
    /// one can flood a mailbox through Roster.
    AccountEmail,
}

impl Policy {
    pub const ALL: [Policy; 7] = [
        Policy::General,
        Policy::Login,
        Policy::LoginUsername,
        Policy::Register,
        Policy::PasswordChange,
        Policy::PasswordReset,
        Policy::AccountEmail,
    ];

    /// The policy's name, in Redis keys and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Policy::General => "general",
            Policy::Login => "login",
            Policy::LoginUsername => "login-user",
            Policy::Register => "register",
            Policy::PasswordChange => "password",
            Policy::PasswordReset => "password-reset",
            Policy::AccountEmail => "account-email",
        }
    }

    /// The budget, and the milliseconds in which all of it comes back.
    fn quota(self, settings: &RateLimitSettings) -> (u32, u64) {
        const MINUTE_MS: u64 = 60_000;
        let (limit, period) = match self {
            Policy::General => (settings.per_minute, MINUTE_MS),
            Policy::Login => (settings.login_per_minute, MINUTE_MS),
            Policy::LoginUsername => (settings.login_per_minute.saturating_mul(5), MINUTE_MS),
            Policy::Register => (settings.register_per_minute, MINUTE_MS),
            Policy::PasswordChange => (5, 15 * MINUTE_MS),
            Policy::PasswordReset => (settings.password_reset_per_hour, 60 * MINUTE_MS),
            Policy::AccountEmail => (settings.account_email_per_hour, 60 * MINUTE_MS),
        };
        (limit.max(1), period)
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

/// The counters, in this process or in Redis, and (when metrics are on)
/// the count of refusals by policy.
pub struct RateLimiter {
    backend: Backend,
    refusals: Option<prometheus::IntCounterVec>,
}

enum Backend {
    Memory(memory::MemoryLimiter),
    Redis(Box<redis::RedisLimiter>),
}

impl RateLimiter {
    pub fn new(settings: &RateLimitSettings) -> Result<Self, String> {
        let backend = match settings.backend {
            RateLimitBackend::Memory => Backend::Memory(memory::MemoryLimiter::new(settings)),
            RateLimitBackend::Redis => {
                Backend::Redis(Box::new(redis::RedisLimiter::new(settings)?))
            }
        };
        Ok(RateLimiter {
            backend,
            refusals: None,
        })
    }

    /// Counts every refusal in `refusals`, labelled with the policy's name.
    pub fn counting_refusals(self, refusals: prometheus::IntCounterVec) -> Self {
        RateLimiter {
            refusals: Some(refusals),
            ..self
        }
    }

    /// Counts one request of `key` against `policy`. `None` when the limit
    /// could not be checked (Redis unreachable): the request goes through.
    pub async fn check(&self, policy: Policy, key: &str) -> Option<Decision> {
        let decision = match &self.backend {
            Backend::Memory(limiter) => Some(limiter.check(policy, key)),
            Backend::Redis(limiter) => limiter.check(policy, key).await,
        };
        if let (Some(refusals), Some(false)) = (&self.refusals, decision.map(|d| d.allowed())) {
            refusals.with_label_values(&[policy.name()]).inc();
        }
        decision
    }

    /// Gives back one unit that [`check`](Self::check) spent for `key`.
    pub async fn refund(&self, policy: Policy, key: &str) {
        match &self.backend {
            Backend::Memory(limiter) => limiter.refund(policy, key),
            Backend::Redis(limiter) => limiter.refund(policy, key).await,
        }
    }

    /// Forgets keys whose budget is full again, so memory stays bounded.
    pub fn purge(&self) {
        if let Backend::Memory(limiter) = &self.backend {
            limiter.purge();
        }
    }

    /// Why limits are not being enforced right now, for readiness.
    pub fn degraded(&self) -> Option<String> {
        match &self.backend {
            Backend::Memory(_) => None,
            Backend::Redis(limiter) => limiter.degraded(),
        }
    }
}
