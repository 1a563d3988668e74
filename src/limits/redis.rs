//! Counters in Redis: GCRA in one atomic script, with Redis's clock, so
//! every instance sharing the server shares each client's budget.
//!
//! If Redis cannot be reached the request goes through (fail open): a
//! rate-limit store must not take the API down. The failure is logged (at
//! most every 30 s) and shown by readiness.

use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;

use super::{Decision, Policy};
use crate::config::RateLimitSettings;

/// Returns {allowed, remaining, reset_ms, retry_ms}.
const GCRA: &str = r#"
local interval = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - interval * limit
if allow_at > now then
  return {0, 0, tat - now, allow_at - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', new_tat - now + 1000)
return {1, math.floor((now + interval * limit - new_tat) / interval), new_tat - now, 0}
"#;

/// Gives back one unit of a key's budget; never below a full budget.
const REFUND: &str = r#"
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat then return 0 end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local new_tat = tat - interval
if new_tat <= now then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], new_tat, 'PX', new_tat - now + 1000)
end
return 1
"#;

/// How long a request waits for Redis before going through unchecked.
const TIMEOUT: Duration = Duration::from_millis(250);
/// How often to try connecting again while Redis is down.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

pub struct RedisLimiter {
    client: redis::Client,
    script: Script,
    refund: Script,
    settings: RateLimitSettings,
    connection: RwLock<Option<ConnectionManager>>,
    /// When a connection was last attempted.
    last_connect: Mutex<Option<Instant>>,
    /// When a request last tried Redis while it was failing.
    last_probe: Mutex<Option<Instant>>,
    last_error: Mutex<Option<(Instant, String)>>,
}

impl RedisLimiter {
    pub fn new(settings: &RateLimitSettings) -> Result<Self, String> {
        let client = redis::Client::open(settings.redis_url.as_str())
            .map_err(|e| format!("rate_limit.redis_url is not a Redis URL: {e}"))?;
        Ok(RedisLimiter {
            client,
            script: Script::new(GCRA),
            refund: Script::new(REFUND),
            settings: settings.clone(),
            connection: RwLock::new(None),
            last_connect: Mutex::new(None),
            last_probe: Mutex::new(None),
            last_error: Mutex::new(None),
        })
    }

    async fn connection(&self) -> Option<ConnectionManager> {
        if let Some(conn) = self.connection.read().ok()?.as_ref() {
            return Some(conn.clone());
        }
        {
            let mut last = self.last_connect.lock().ok()?;
            if last.is_some_and(|at| at.elapsed() < RECONNECT_EVERY) {
                return None;
            }
            *last = Some(Instant::now());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(TIMEOUT)
            .set_response_timeout(TIMEOUT)
            .set_number_of_retries(1);
        match rocket::tokio::time::timeout(
            TIMEOUT * 2,
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await
        {
            Ok(Ok(conn)) => {
                tracing::info!("rate limiting: connected to Redis");
                if let Ok(mut slot) = self.connection.write() {
                    *slot = Some(conn.clone());
                }
                Some(conn)
            }
            Ok(Err(err)) => {
                self.failed(format!("cannot connect to Redis: {err}"));
                None
            }
            Err(_) => {
                self.failed("connecting to Redis timed out".to_owned());
                None
            }
        }
    }

    fn failed(&self, message: String) {
        let Ok(mut last) = self.last_error.lock() else {
            return;
        };
        let quiet = last
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() < Duration::from_secs(30));
        if !quiet {
            tracing::warn!("rate limiting is not enforced (failing open): {message}");
        }
        *last = Some((Instant::now(), message));
    }

    /// Whether Redis failed within the last second: then requests do not
    /// wait for it, and one request a second tries again.
    fn backing_off(&self) -> bool {
        let failing = self
            .last_error
            .lock()
            .ok()
            .and_then(|e| e.as_ref().map(|(at, _)| at.elapsed() < RECONNECT_EVERY))
            .unwrap_or(false);
        if !failing {
            return false;
        }
        let Ok(mut probe) = self.last_probe.lock() else {
            return false;
        };
        if probe.is_some_and(|at| at.elapsed() < RECONNECT_EVERY) {
            return true;
        }
        *probe = Some(Instant::now());
        false
    }

    /// The budget of `policy`, milliseconds to regain one unit, and the key.
    fn key(&self, policy: Policy, key: &str) -> (u32, u64, String) {
        let (limit, period_ms) = policy.quota(&self.settings);
        let interval_ms = (period_ms / u64::from(limit)).max(1);
        (
            limit,
            interval_ms,
            format!("roster:rl:{}:{}", policy.name(), key),
        )
    }

    pub async fn check(&self, policy: Policy, key: &str) -> Option<Decision> {
        if self.backing_off() {
            return None;
        }
        let mut conn = self.connection().await?;
        let (limit, interval_ms, redis_key) = self.key(policy, key);
        let mut invocation = self.script.key(redis_key);
        invocation.arg(interval_ms).arg(limit);
        let call = invocation.invoke_async::<(i64, i64, i64, i64)>(&mut conn);
        match rocket::tokio::time::timeout(TIMEOUT, call).await {
            Ok(Ok((allowed, remaining, reset_ms, retry_ms))) => {
                if let Ok(mut last) = self.last_error.lock() {
                    *last = None;
                }
                let secs = |ms: i64| (ms.max(0) as u64).div_ceil(1000);
                Some(Decision {
                    limit,
                    remaining: remaining.max(0) as u32,
                    reset: secs(reset_ms),
                    retry_after: (allowed == 0).then(|| secs(retry_ms).max(1)),
                })
            }
            Ok(Err(err)) => {
                self.failed(err.to_string());
                None
            }
            Err(_) => {
                self.failed("Redis did not answer in time".to_owned());
                None
            }
        }
    }

    /// Gives back one unit; when Redis cannot be reached, the unit stays
    /// spent (the limit errs on the strict side).
    pub async fn refund(&self, policy: Policy, key: &str) {
        if self.backing_off() {
            return;
        }
        let Some(mut conn) = self.connection().await else {
            return;
        };
        let (_, interval_ms, redis_key) = self.key(policy, key);
        let mut invocation = self.refund.key(redis_key);
        invocation.arg(interval_ms);
        let call = invocation.invoke_async::<i64>(&mut conn);
        match rocket::tokio::time::timeout(TIMEOUT, call).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => self.failed(err.to_string()),
            Err(_) => self.failed("Redis did not answer in time".to_owned()),
        }
    }

    /// The last failure, while it is recent.
    pub fn degraded(&self) -> Option<String> {
        let last = self.last_error.lock().ok()?;
        match last.as_ref() {
            Some((at, message)) if at.elapsed() < Duration::from_secs(60) => {
                Some(format!("rate limits are not enforced: {message}"))
            }
            _ => None,
        }
    }
}
