//! The connection pool behind [`DbPool`](super::DbPool), one for each
//! backend.
//!
//! sqlx's pool pings every connection given back, and by default every one
//! taken: one more round trip to PostgreSQL, or to the thread sqlx runs each
//! SQLite connection on, before and after every request. This pool pings a
//! connection only when there is a reason to doubt it: it has been idle for
//! longer than [`CHECK_AFTER_IDLE`], or a connection failure has been seen
//! since it was last used (`bench/NOTES.md` has what that is worth).
//!
//! A connection failure (a broken socket, a server shutting down, a SQLite
//! thread that died) is noted by [`note_connection_failure`] where the error
//! is converted; every connection in use at that moment is then dropped
//! instead of going back, and idle ones are pinged before their next use.
//! A statement cut off half-way (its future dropped) leaves the connection
//! usable: sqlx finishes reading the old answer before the next statement.
//!
//! Transactions run on these connections too ([`Pooled::begin`]): one given
//! back inside a transaction (dropped without commit, say by an error
//! half-way through a write) is rolled back on a task of its own, still
//! counted against `max`, before it goes back to the list.

use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rocket::tokio::sync::{OwnedSemaphorePermit, Semaphore};
use rocket::tokio::time::timeout;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::SqliteConnection;
use sqlx::{ConnectOptions, Connection};

/// A connection idle for longer than this is pinged before it is used: the
/// server may have closed it meanwhile (a restart, `idle_session_timeout`).
/// Under load connections are idle for microseconds and never pinged.
pub const CHECK_AFTER_IDLE: Duration = Duration::from_secs(1);

/// How many connection failures this process has seen.
static FAILURES: AtomicU64 = AtomicU64::new(0);

/// Records that a connection was found broken: connections in use now are
/// dropped when given back, idle ones pinged before their next use.
pub(super) fn note_connection_failure() {
    FAILURES.fetch_add(1, Ordering::Relaxed);
}

fn failures() -> u64 {
    FAILURES.load(Ordering::Relaxed)
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the pool needs of a connection beyond sqlx's `Connection`.
pub trait PoolConnection: Connection + Sized + 'static {
    /// The statement that opens a write transaction.
    const BEGIN: &'static str;
    fn run(&mut self, statement: &'static str) -> BoxFuture<'_, Result<(), sqlx::Error>>;
}

impl PoolConnection for SqliteConnection {
    /// Takes the write lock at once: a transaction that reads first and
    /// writes later fails with `SQLITE_BUSY` instead of waiting when another
    /// writer got in between, while one that starts with the lock waits its
    /// turn under the busy timeout. So concurrent writes queue, not fail.
    const BEGIN: &'static str = "BEGIN IMMEDIATE";

    fn run(&mut self, statement: &'static str) -> BoxFuture<'_, Result<(), sqlx::Error>> {
        Box::pin(async move { sqlx::query(statement).execute(self).await.map(drop) })
    }
}

impl PoolConnection for PgConnection {
    const BEGIN: &'static str = "BEGIN";

    fn run(&mut self, statement: &'static str) -> BoxFuture<'_, Result<(), sqlx::Error>> {
        Box::pin(async move { sqlx::query(statement).execute(self).await.map(drop) })
    }
}

/// Up to `max` connections, opened on demand and kept open.
pub struct Conns<C: PoolConnection> {
    inner: Arc<Inner<C>>,
}

impl<C: PoolConnection> Clone for Conns<C> {
    fn clone(&self) -> Self {
        Conns {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<C: PoolConnection> {
    options: C::Options,
    idle: Mutex<Vec<Idle<C>>>,
    max: u32,
    permits: Arc<Semaphore>,
    acquire_timeout: Duration,
    idle_timeout: Option<Duration>,
    closed: AtomicBool,
}

struct Idle<C> {
    conn: C,
    since: Instant,
    failures_seen: u64,
}

/// A pool's connections at one moment.
#[derive(Debug, Clone, Copy)]
pub struct PoolStats {
    pub in_use: u32,
    pub idle: u32,
    pub max: u32,
}

/// The pool's limits, from the `databases.roster` configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max: u32,
    pub acquire_timeout: Duration,
    pub idle_timeout: Option<Duration>,
}

impl<C: PoolConnection> fmt::Debug for Conns<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conns")
            .field("max", &self.inner.max)
            .field("available", &self.inner.permits.available_permits())
            .field("closed", &self.inner.closed.load(Ordering::Relaxed))
            .finish()
    }
}

impl<C: PoolConnection> Conns<C>
where
    C::Options: ConnectOptions<Connection = C>,
{
    pub fn new(options: C::Options, limits: Limits) -> Self {
        let max = limits.max.max(1);
        Conns {
            inner: Arc::new(Inner {
                options,
                idle: Mutex::new(Vec::with_capacity(max as usize)),
                max,
                permits: Arc::new(Semaphore::new(max as usize)),
                acquire_timeout: limits.acquire_timeout,
                idle_timeout: limits.idle_timeout,
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// How many connections are in use (or being opened) and idle now.
    pub fn stats(&self) -> PoolStats {
        let free = self.inner.permits.available_permits();
        PoolStats {
            in_use: self
                .inner
                .max
                .saturating_sub(u32::try_from(free).unwrap_or(u32::MAX)),
            idle: u32::try_from(self.inner.idle_list().len()).unwrap_or(u32::MAX),
            max: self.inner.max,
        }
    }

    /// How long [`Conns::acquire`] waits for a connection.
    pub fn acquire_timeout(&self) -> Duration {
        self.inner.acquire_timeout
    }

    /// How connections are opened.
    pub fn options(&self) -> &C::Options {
        &self.inner.options
    }

    /// An idle connection, or a new one while fewer than `max` are open;
    /// waits for one to come back otherwise, up to the acquire timeout.
    pub async fn acquire(&self) -> Result<Pooled<C>, sqlx::Error> {
        let permit = timeout(
            self.inner.acquire_timeout,
            Arc::clone(&self.inner.permits).acquire_owned(),
        )
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)?
        .map_err(|_| sqlx::Error::PoolClosed)?;
        let conn = match self.idle_connection().await {
            Some(conn) => conn,
            None => timeout(self.inner.acquire_timeout, self.inner.options.connect())
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)??,
        };
        Ok(Pooled {
            conn: Some(conn),
            inner: Arc::clone(&self.inner),
            failures_seen: failures(),
            in_transaction: false,
            permit: Some(permit),
        })
    }

    /// The most recently used idle connection that is still good, if any;
    /// connections past the idle timeout, or that fail their check, are
    /// closed on the way.
    async fn idle_connection(&self) -> Option<C> {
        loop {
            let idle = self.inner.idle_list().pop()?;
            let idle_for = idle.since.elapsed();
            if self
                .inner
                .idle_timeout
                .is_some_and(|limit| idle_for > limit)
            {
                drop(idle.conn.close().await);
                continue;
            }
            let mut conn = idle.conn;
            if idle_for > CHECK_AFTER_IDLE || idle.failures_seen != failures() {
                if let Err(err) = conn.ping().await {
                    tracing::info!("dropping a database connection that failed its check: {err}");
                    continue;
                }
            }
            return Some(conn);
        }
    }

    /// Waits (up to the acquire timeout) for the connections in use to come
    /// back, then refuses further acquires and closes every connection
    /// (SQLite checkpoints the WAL as the last one closes).
    pub async fn close(&self) {
        let all = self.inner.permits.acquire_many(self.inner.max);
        // Held until the semaphore is closed, so nobody acquires meanwhile.
        let held = timeout(self.inner.acquire_timeout, all).await;
        if held.is_err() {
            tracing::warn!("closing database connections while some are still in use");
        }
        self.inner.closed.store(true, Ordering::Relaxed);
        self.inner.permits.close();
        drop(held);
        let idle = std::mem::take(&mut *self.inner.idle_list());
        for idle in idle {
            if let Err(err) = idle.conn.close().await {
                tracing::warn!("closing a database connection: {err}");
            }
        }
    }
}

impl<C: PoolConnection> Inner<C> {
    fn idle_list(&self) -> std::sync::MutexGuard<'_, Vec<Idle<C>>> {
        // The list is only pushed to and popped from: a panic elsewhere
        // cannot leave it inconsistent.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts a connection back, unless the pool is closed or a connection
    /// failure was seen while it was out.
    fn give_back(&self, conn: C, failures_seen: u64) {
        if failures_seen == failures() && !self.closed.load(Ordering::Relaxed) {
            self.idle_list().push(Idle {
                conn,
                since: Instant::now(),
                failures_seen,
            });
        }
        // Otherwise the connection is dropped, which closes its socket (or
        // ends its SQLite thread).
    }
}

/// A connection of [`Conns`]; back to the idle list when dropped.
pub struct Pooled<C: PoolConnection> {
    conn: Option<C>,
    inner: Arc<Inner<C>>,
    failures_seen: u64,
    in_transaction: bool,
    permit: Option<OwnedSemaphorePermit>,
}

impl<C: PoolConnection> Pooled<C> {
    /// Opens a write transaction on this connection: [`Pooled::commit`]
    /// ends it; dropping the connection first rolls it back.
    pub async fn begin(&mut self) -> Result<(), sqlx::Error> {
        self.in_transaction = true;
        self.run(C::BEGIN).await
    }

    pub async fn commit(&mut self) -> Result<(), sqlx::Error> {
        self.run("COMMIT").await?;
        self.in_transaction = false;
        Ok(())
    }
}

impl<C: PoolConnection> Deref for Pooled<C> {
    type Target = C;

    fn deref(&self) -> &C {
        self.conn.as_ref().expect("present until dropped")
    }
}

impl<C: PoolConnection> DerefMut for Pooled<C> {
    fn deref_mut(&mut self) -> &mut C {
        self.conn.as_mut().expect("present until dropped")
    }
}

impl<C: PoolConnection> Drop for Pooled<C> {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let failures_seen = self.failures_seen;
        if !self.in_transaction {
            self.inner.give_back(conn, failures_seen);
            return;
        }
        // Roll back before anyone else gets the connection; the permit goes
        // with it, so the pool never has more than `max` open.
        let (inner, permit) = (Arc::clone(&self.inner), self.permit.take());
        if let Ok(runtime) = rocket::tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                match conn.run("ROLLBACK").await {
                    Ok(()) => inner.give_back(conn, failures_seen),
                    Err(err) => tracing::warn!("rolling back an abandoned transaction: {err}"),
                }
                drop(permit);
            });
        }
        // Without a runtime the connection is dropped: closing it ends the
        // transaction on the server.
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rocket::tokio::sync::Mutex as AsyncMutex;
    use sqlx::sqlite::SqliteConnectOptions;
    use std::str::FromStr;

    /// The failure counter is one per process: these tests take turns.
    static SERIAL: AsyncMutex<()> = AsyncMutex::const_new(());

    fn conns(dir: &tempfile::TempDir, max: u32) -> Conns<SqliteConnection> {
        let options = SqliteConnectOptions::from_str(&format!(
            "sqlite://{}/t.db?mode=rwc",
            dir.path().display()
        ))
        .unwrap();
        let limits = Limits {
            max,
            acquire_timeout: Duration::from_millis(200),
            idle_timeout: None,
        };
        Conns::new(options, limits)
    }

    async fn answer(conn: &mut Pooled<SqliteConnection>) -> i64 {
        sqlx::query_scalar("SELECT 41 + 1")
            .fetch_one(&mut **conn)
            .await
            .unwrap()
    }

    #[rocket::async_test]
    async fn connections_are_reused_and_bounded() {
        let _turn = SERIAL.lock().await;
        let dir = tempfile::tempdir().unwrap();
        let pool = conns(&dir, 2);
        let mut first = pool.acquire().await.unwrap();
        assert_eq!(answer(&mut first).await, 42);
        let second = pool.acquire().await.unwrap();
        // Both in use: a third waits, then times out.
        assert!(matches!(
            pool.acquire().await,
            Err(sqlx::Error::PoolTimedOut)
        ));
        drop(second);
        drop(first);
        assert_eq!(pool.inner.idle_list().len(), 2);
        let mut again = pool.acquire().await.unwrap();
        assert_eq!(pool.inner.idle_list().len(), 1);
        assert_eq!(answer(&mut again).await, 42);
    }

    #[rocket::async_test]
    async fn a_statement_cut_off_half_way_leaves_the_connection_usable() {
        use futures::StreamExt;

        let _turn = SERIAL.lock().await;
        let dir = tempfile::tempdir().unwrap();
        let pool = conns(&dir, 1);
        let mut conn = pool.acquire().await.unwrap();
        {
            let mut rows = sqlx::query_scalar::<_, i64>(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000) \
                 SELECT i FROM n",
            )
            .fetch(&mut *conn);
            assert_eq!(rows.next().await.unwrap().unwrap(), 1);
            // Dropped with most rows still to come.
        }
        drop(conn);
        let mut again = pool.acquire().await.unwrap();
        assert_eq!(answer(&mut again).await, 42);
    }

    #[rocket::async_test]
    async fn a_failure_seen_meanwhile_drops_the_connection() {
        let _turn = SERIAL.lock().await;
        let dir = tempfile::tempdir().unwrap();
        let pool = conns(&dir, 2);
        let conn = pool.acquire().await.unwrap();
        note_connection_failure();
        drop(conn);
        assert_eq!(pool.inner.idle_list().len(), 0);
        let conn = pool.acquire().await.unwrap();
        drop(conn);
        assert_eq!(pool.inner.idle_list().len(), 1);
    }

    #[rocket::async_test]
    async fn a_transaction_dropped_half_way_is_rolled_back_before_reuse() {
        let _turn = SERIAL.lock().await;
        let dir = tempfile::tempdir().unwrap();
        let pool = conns(&dir, 1);
        let mut conn = pool.acquire().await.unwrap();
        conn.run("CREATE TABLE t (x INTEGER)").await.unwrap();
        conn.begin().await.unwrap();
        conn.run("INSERT INTO t VALUES (1)").await.unwrap();
        drop(conn);
        // The one connection comes back only after its rollback.
        let mut conn = pool.acquire().await.unwrap();
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM t")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(rows, 0);
        conn.begin().await.unwrap();
        conn.run("INSERT INTO t VALUES (2)").await.unwrap();
        conn.commit().await.unwrap();
        drop(conn);
        let mut conn = pool.acquire().await.unwrap();
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM t")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(rows, 1);
    }

    #[rocket::async_test]
    async fn closing_waits_for_connections_in_use_then_refuses_acquires() {
        let _turn = SERIAL.lock().await;
        let dir = tempfile::tempdir().unwrap();
        let pool = conns(&dir, 2);
        let in_use = pool.acquire().await.unwrap();
        drop(pool.acquire().await.unwrap());
        let closing = rocket::tokio::spawn({
            let pool = pool.clone();
            async move { pool.close().await }
        });
        rocket::tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!closing.is_finished(), "waits for the connection in use");
        drop(in_use);
        closing.await.unwrap();
        assert_eq!(pool.inner.idle_list().len(), 0);
        assert!(matches!(pool.acquire().await, Err(sqlx::Error::PoolClosed)));
    }
}
