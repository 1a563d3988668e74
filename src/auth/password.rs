//! bcrypt hashing and verification, always on the blocking pool and never
//! more at once than the machine has cores, so a flood of logins or
//! registrations cannot starve the async workers or the blocking pool.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rocket::tokio::sync::{OnceCell, Semaphore};
use rocket::tokio::task;

use crate::domain::Password;
use crate::error::ApiError;

#[derive(Clone)]
pub struct PasswordHasher {
    cost: u32,
    permits: Arc<Semaphore>,
    /// How long a request waits for a hasher before 503 (`bcrypt_queue_timeout`).
    queue_timeout: Duration,
    /// Requests waiting for a permit now (a metric).
    waiting: Arc<AtomicUsize>,
    /// A hash at the configured cost, checked for unknown usernames so that
    /// a wrong name takes as long as a wrong password.
    dummy_hash: Arc<OnceCell<String>>,
}

impl PasswordHasher {
    pub fn new(cost: u32, queue_timeout: Duration) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        PasswordHasher {
            cost,
            permits: Arc::new(Semaphore::new(cores)),
            queue_timeout,
            waiting: Arc::new(AtomicUsize::new(0)),
            dummy_hash: Arc::new(OnceCell::new()),
        }
    }

    /// How many requests are waiting for a free hasher.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Computes the dummy hash ahead of the first login (at start).
    pub async fn prepare(&self) -> Result<(), ApiError> {
        self.dummy_hash().await.map(drop)
    }

    async fn dummy_hash(&self) -> Result<&str, ApiError> {
        let cost = self.cost;
        self.dummy_hash
            .get_or_try_init(|| async move {
                self.run(move || bcrypt::hash("roster-dummy-password-0", cost))
                    .await?
                    .map_err(ApiError::internal("hashing the dummy password"))
            })
            .await
            .map(String::as_str)
    }

    /// Spends the time of one verification, for an unknown username.
    pub async fn verify_dummy(&self, password: &str) -> Result<(), ApiError> {
        let hash = self.dummy_hash().await?.to_owned();
        self.verify(password, &hash).await.map(drop)
    }

    /// Hashes a validated password. `Password` is at most 72 bytes, all of
    /// which bcrypt reads (its `non_truncating_*` variants count a NUL
    /// terminator too and refuse exactly 72), so nothing is lost.
    pub async fn hash(&self, password: &Password) -> Result<String, ApiError> {
        self.hash_str(password.expose()).await
    }

    /// Hashes again, at the configured cost, a password that just matched
    /// its stored hash (it may predate today's rules, but it is at most 72
    /// bytes: longer ones never match).
    pub async fn rehash(&self, matched: &str) -> Result<String, ApiError> {
        self.hash_str(matched).await
    }

    async fn hash_str(&self, password: &str) -> Result<String, ApiError> {
        let password = password.to_owned();
        let cost = self.cost;
        self.run(move || bcrypt::hash(password, cost))
            .await?
            .map_err(ApiError::internal("hashing a password"))
    }

    /// Checks `password` against a stored hash. Longer than any password
    /// Roster accepts, it cannot match (and must not match on its first 72
    /// bytes). A malformed hash counts as a mismatch (and is logged): the
    /// caller answers as for a wrong password.
    pub async fn verify(&self, password: &str, hash: &str) -> Result<bool, ApiError> {
        if password.len() > Password::MAX_BYTES {
            return Ok(false);
        }
        let password = password.to_owned();
        let hash = hash.to_owned();
        match self.run(move || bcrypt::verify(password, &hash)).await? {
            Ok(ok) => Ok(ok),
            Err(err) => {
                tracing::error!("password verification failed: {err}");
                Ok(false)
            }
        }
    }

    /// Runs `job` on the blocking pool once a hasher is free.
    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> bcrypt::BcryptResult<T> + Send + 'static,
    ) -> Result<bcrypt::BcryptResult<T>, ApiError> {
        // The queue is bounded in time: past `queue_timeout` the request is
        // 503 with Retry-After instead of waiting behind a flood.
        let waiting = Waiting::start(&self.waiting);
        let permit = rocket::tokio::time::timeout(self.queue_timeout, self.permits.acquire()).await;
        drop(waiting);
        let _permit = permit
            .map_err(|_| ApiError::Busy {
                retry_after: self.queue_timeout.as_secs().max(1),
            })?
            .map_err(ApiError::internal("waiting for a password hasher"))?;
        task::spawn_blocking(job)
            .await
            .map_err(ApiError::internal("running bcrypt"))
    }
}

/// One request counted in [`PasswordHasher::waiting`] until dropped (also
/// when the request is abandoned while it waits).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn start(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
