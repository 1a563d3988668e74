//! The SQLite connections behind [`DbPool::acquire`](super::DbPool::acquire),
//! kept without sqlx's pool.
//!
//! sqlx 0.7 pings every connection given back to its pool. sqlx runs each
//! SQLite connection on a thread of its own, so the ping is one more round
//! trip to that thread, and it buys nothing: a connection to a local file
//! does not go stale. Here a connection goes back to the idle list when
//! dropped, at the cost of a mutex: 19 % more reads by id per second and
//! 26 % more `GET /users/me` (bench/NOTES.md). Write transactions still come
//! from sqlx's pool ([`DbPool::begin`](super::DbPool::begin)), which also
//! rolls back a transaction dropped half-way.
//!
//! A statement cut off half-way (its future dropped) leaves the connection
//! usable: its thread stops sending rows and resets the statement before
//! taking the next command. A connection whose thread has died (sqlx reports
//! `WorkerCrashed`, which only a bug in sqlx or SQLite causes) must not go
//! back to the list: every connection in use when such an error was seen is
//! dropped instead. Connections are opened on demand, up to the pool's
//! `max_connections`, and stay open (`idle_timeout` applies to sqlx's pool
//! only).

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rocket::tokio::sync::{OwnedSemaphorePermit, Semaphore};
use rocket::tokio::time::timeout;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};

/// How many `WorkerCrashed` errors this process has seen.
static WORKER_CRASHES: AtomicU64 = AtomicU64::new(0);

/// Records that a SQLite connection's thread was found dead.
pub(super) fn note_worker_crash() {
    WORKER_CRASHES.fetch_add(1, Ordering::Relaxed);
}

/// Up to `max` SQLite connections, opened on demand and kept open.
#[derive(Clone)]
pub struct SqliteConns {
    inner: Arc<Inner>,
}

struct Inner {
    options: SqliteConnectOptions,
    idle: Mutex<Vec<SqliteConnection>>,
    max: u32,
    permits: Arc<Semaphore>,
    acquire_timeout: Duration,
    closed: AtomicBool,
}

impl fmt::Debug for SqliteConns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteConns")
            .field("available", &self.inner.permits.available_permits())
            .field("closed", &self.inner.closed.load(Ordering::Relaxed))
            .finish()
    }
}

impl SqliteConns {
    pub fn new(options: SqliteConnectOptions, max: u32, acquire_timeout: Duration) -> Self {
        let max = max.max(1);
        SqliteConns {
            inner: Arc::new(Inner {
                options,
                idle: Mutex::new(Vec::with_capacity(max as usize)),
                max,
                permits: Arc::new(Semaphore::new(max as usize)),
                acquire_timeout,
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// An idle connection, or a new one while fewer than `max` are open;
    /// waits for one to come back otherwise, up to the acquire timeout.
    pub async fn acquire(&self) -> Result<SqliteConn, sqlx::Error> {
        let permit = timeout(
            self.inner.acquire_timeout,
            Arc::clone(&self.inner.permits).acquire_owned(),
        )
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)?
        .map_err(|_| sqlx::Error::PoolClosed)?;
        let crashes_seen = WORKER_CRASHES.load(Ordering::Relaxed);
        let idle = self.inner.idle_list().pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.inner.options.connect().await?,
        };
        Ok(SqliteConn {
            conn: Some(conn),
            inner: Arc::clone(&self.inner),
            crashes_seen,
            _permit: permit,
        })
    }

    /// Waits (up to the acquire timeout) for the connections in use to come
    /// back, then refuses further acquires and closes every connection
    /// (SQLite checkpoints the WAL as the last one closes).
    pub async fn close(&self) {
        let all = self.inner.permits.acquire_many(self.inner.max);
        // Held until the semaphore is closed, so nobody acquires meanwhile.
        let held = timeout(self.inner.acquire_timeout, all).await;
        if held.is_err() {
            log::warn!("closing SQLite connections while some are still in use");
        }
        self.inner.closed.store(true, Ordering::Relaxed);
        self.inner.permits.close();
        drop(held);
        let idle = std::mem::take(&mut *self.inner.idle_list());
        for conn in idle {
            if let Err(err) = conn.close().await {
                log::warn!("closing a SQLite connection: {err}");
            }
        }
    }
}

impl Inner {
    fn idle_list(&self) -> std::sync::MutexGuard<'_, Vec<SqliteConnection>> {
        // The list is only pushed to and popped from: a panic elsewhere
        // cannot leave it inconsistent.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A connection of [`SqliteConns`]; back to the idle list when dropped.
pub struct SqliteConn {
    conn: Option<SqliteConnection>,
    inner: Arc<Inner>,
    crashes_seen: u64,
    _permit: OwnedSemaphorePermit,
}

impl Deref for SqliteConn {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        self.conn.as_ref().expect("present until dropped")
    }
}

impl DerefMut for SqliteConn {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.conn.as_mut().expect("present until dropped")
    }
}

impl Drop for SqliteConn {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        let crashed = WORKER_CRASHES.load(Ordering::Relaxed) != self.crashes_seen;
        if !crashed && !self.inner.closed.load(Ordering::Relaxed) {
            self.inner.idle_list().push(conn);
        }
        // Otherwise dropping the connection ends its thread, which closes
        // the SQLite handle.
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rocket::tokio::sync::Mutex as AsyncMutex;
    use std::str::FromStr;

    /// The crash counter is one per process: these tests take turns.
    static SERIAL: AsyncMutex<()> = AsyncMutex::const_new(());

    fn conns(dir: &tempfile::TempDir, max: u32) -> SqliteConns {
        let options = SqliteConnectOptions::from_str(&format!(
            "sqlite://{}/t.db?mode=rwc",
            dir.path().display()
        ))
        .unwrap();
        SqliteConns::new(options, max, Duration::from_millis(200))
    }

    async fn answer(conn: &mut SqliteConn) -> i64 {
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
    async fn a_crash_seen_meanwhile_drops_the_connection() {
        let _turn = SERIAL.lock().await;
        let dir = tempfile::tempdir().unwrap();
        let pool = conns(&dir, 2);
        let conn = pool.acquire().await.unwrap();
        note_worker_crash();
        drop(conn);
        assert_eq!(pool.inner.idle_list().len(), 0);
        let conn = pool.acquire().await.unwrap();
        drop(conn);
        assert_eq!(pool.inner.idle_list().len(), 1);
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
