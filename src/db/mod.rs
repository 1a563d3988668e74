//! The database: one build serves SQLite or PostgreSQL, chosen by the URL at
//! start.
//!
//! `sqlx::AnyPool` cannot read NULLs, bools or timestamps in sqlx 0.7, so the
//! pool is an enum of the two concrete pools and every query is written once,
//! in SQL both accept, and compiled once per backend by [`on_conn!`]. Modules
//! below hold the queries of one table each; nothing here knows HTTP.

#[macro_use]
pub mod users;
pub mod outbox;
pub mod sessions;
mod sqlite_conns;
pub mod uploads;

pub use sqlite_conns::{SqliteConn, SqliteConns};

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use rocket::figment::Figment;
use rocket_db_pools::Database;
use sqlx::pool::{PoolConnection, PoolOptions};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Postgres, Sqlite, Transaction};
use time::OffsetDateTime;

/// Runs `$body` with `$c` bound to the concrete connection of either
/// backend; the body is compiled once for each.
macro_rules! on_conn {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::db::Conn::Sqlite($c) => $body,
            $crate::db::Conn::Postgres($c) => $body,
        }
    };
}
pub(crate) use on_conn;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// How long a SQLite writer waits for another to finish before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The `roster` database of Rocket's `databases` configuration.
#[derive(Database)]
#[database("roster")]
pub struct Db(DbPool);

#[derive(Clone, Debug)]
pub enum DbPool {
    /// Single connections come from `conns`, transactions and migrations
    /// from sqlx's pool (see [`SqliteConns`] for why).
    Sqlite {
        pool: SqlitePool,
        conns: SqliteConns,
    },
    Postgres(PgPool),
}

/// A borrowed connection of either backend: from the pool or inside a
/// transaction.
pub enum Conn<'c> {
    Sqlite(&'c mut SqliteConnection),
    Postgres(&'c mut PgConnection),
}

// Short-lived, on the stack of one request: boxing would allocate per query.
#[allow(clippy::large_enum_variant)]
pub enum PooledConn {
    Sqlite(SqliteConn),
    Postgres(PoolConnection<Postgres>),
}

/// A write transaction; dropped without [`Tx::commit`] it rolls back.
#[allow(clippy::large_enum_variant)]
pub enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of_url(url: &str) -> Result<Self, DbError> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            _ => Err(DbError::Config(format!(
                "unsupported database URL scheme {scheme:?}: use sqlite://... or postgres://..."
            ))),
        }
    }
}

/// A unique constraint that a write hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    Username,
    Email,
    Other(String),
}

impl Conflict {
    fn from_constraint(name: &str) -> Self {
        if name.contains("username") {
            Conflict::Username
        } else if name.contains("email") {
            Conflict::Email
        } else {
            Conflict::Other(name.to_owned())
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Conflict::Username => "Username already taken",
            Conflict::Email => "Email already registered",
            Conflict::Other(_) => "Conflicts with existing data",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{}", .0.message())]
    Conflict(Conflict),
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// A value the database cannot take (PostgreSQL's data exceptions, such
    /// as a NUL character in text): the client's input, not a bug.
    #[error("invalid value for the database: {0}")]
    InvalidValue(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Query(#[source] sqlx::Error),
    #[error("database configuration: {0}")]
    Config(String),
    #[error("migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for DbError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => DbError::Unavailable(err),
            sqlx::Error::WorkerCrashed => {
                sqlite_conns::note_worker_crash();
                DbError::Unavailable(err)
            }
            sqlx::Error::Database(db) => {
                if db.kind() == sqlx::error::ErrorKind::UniqueViolation {
                    let name = db.constraint().unwrap_or(db.message());
                    return DbError::Conflict(Conflict::from_constraint(name));
                }
                let code = db.code().unwrap_or_default();
                // PostgreSQL: connection exceptions (08...), shutdown or
                // start-up (57P0x), too many connections (53300); SQLite:
                // busy or locked past the busy timeout (5, 6 and extended).
                let unavailable = code.starts_with("08")
                    || code.starts_with("57P0")
                    || code == "53300"
                    || matches!(code.as_ref(), "5" | "6" | "261" | "517" | "262");
                if unavailable {
                    DbError::Unavailable(err)
                } else if code.starts_with("22") {
                    DbError::InvalidValue(err)
                } else {
                    DbError::Query(err)
                }
            }
            _ => DbError::Query(err),
        }
    }
}

#[rocket::async_trait]
impl rocket_db_pools::Pool for DbPool {
    type Connection = PooledConn;
    type Error = DbError;

    async fn init(figment: &Figment) -> Result<Self, Self::Error> {
        let config: rocket_db_pools::Config = figment
            .extract()
            .map_err(|e| DbError::Config(e.to_string()))?;
        DbPool::connect(&config).await
    }

    async fn get(&self) -> Result<Self::Connection, Self::Error> {
        self.acquire().await
    }

    /// rocket_db_pools calls this as soon as shutdown is requested, before
    /// the grace period in which in-flight requests still need the database;
    /// so it does nothing, and the binary calls [`DbPool::close_all`] once
    /// the server has stopped.
    async fn close(&self) {}
}

impl DbPool {
    /// Opens the pool the configuration names; SQLite files (and their
    /// directories) are created when missing.
    pub async fn connect(config: &rocket_db_pools::Config) -> Result<Self, DbError> {
        match Backend::of_url(&config.url)? {
            Backend::Sqlite => {
                let connect = SqliteConnectOptions::from_str(&config.url)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT)
                    .disable_statement_logging();
                create_parent_dir(&connect.clone().get_filename())?;
                // sqlx runs each SQLite connection on a thread of its own and
                // every statement hops to it and back: more connections than
                // twice the cores only add thread switching (measured in
                // bench/), and writers queue on one lock anyway. A connection
                // to a local file does not go stale, so no ping before use,
                // nor after (`SqliteConns`).
                let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
                let max = config.max_connections.min(cores * 2).max(1) as u32;
                let options = pool_options(config)
                    .max_connections(max)
                    .test_before_acquire(false);
                let pool = options.connect_with(connect.clone()).await?;
                let acquire_timeout = Duration::from_secs(config.connect_timeout);
                let conns = SqliteConns::new(connect, max, acquire_timeout);
                Ok(DbPool::Sqlite { pool, conns })
            }
            Backend::Postgres => {
                let connect = PgConnectOptions::from_str(&config.url)?
                    .application_name("roster")
                    .disable_statement_logging();
                Ok(DbPool::Postgres(
                    pool_options(config).connect_with(connect).await?,
                ))
            }
        }
    }

    /// Closes every connection, waiting for those in use to come back.
    pub async fn close_all(&self) {
        match self {
            DbPool::Sqlite { pool, conns } => {
                conns.close().await;
                pool.close().await;
            }
            DbPool::Postgres(pool) => pool.close().await,
        }
    }

    /// Applies the embedded migrations of this backend.
    pub async fn migrate(&self) -> Result<(), DbError> {
        match self {
            DbPool::Sqlite { pool, .. } => SQLITE_MIGRATIONS.run(pool).await?,
            DbPool::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }

    pub async fn acquire(&self) -> Result<PooledConn, DbError> {
        Ok(match self {
            DbPool::Sqlite { conns, .. } => PooledConn::Sqlite(conns.acquire().await?),
            DbPool::Postgres(pool) => PooledConn::Postgres(pool.acquire().await?),
        })
    }

    /// Starts a write transaction.
    ///
    /// On SQLite the transaction takes the write lock at once with a no-op
    /// write: a deferred transaction that reads first and writes later fails
    /// with `SQLITE_BUSY` instead of waiting when another writer got in
    /// between, while one that starts by writing waits its turn under the
    /// busy timeout. So concurrent writes queue instead of failing.
    pub async fn begin(&self) -> Result<Tx, DbError> {
        match self {
            DbPool::Sqlite { pool, .. } => {
                let mut tx = pool.begin().await?;
                sqlx::query("UPDATE users SET id = id WHERE 0")
                    .execute(&mut *tx)
                    .await?;
                Ok(Tx::Sqlite(tx))
            }
            DbPool::Postgres(pool) => Ok(Tx::Postgres(pool.begin().await?)),
        }
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> Result<(), DbError> {
        let mut conn = self.acquire().await?;
        on_conn!(conn.conn(), c => sqlx::query("SELECT 1").execute(c).await.map(drop))?;
        Ok(())
    }

    /// Where the data lives, for the start-up log: a path or a host, never a
    /// password.
    pub fn describe(url: &str) -> String {
        match Backend::of_url(url) {
            Ok(Backend::Sqlite) => match SqliteConnectOptions::from_str(url) {
                Ok(options) => format!("SQLite file {}", options.get_filename().display()),
                Err(_) => "SQLite (unparsable URL)".into(),
            },
            Ok(Backend::Postgres) => match PgConnectOptions::from_str(url) {
                Ok(o) => format!(
                    "PostgreSQL database {:?} on {}:{} as {}",
                    o.get_database().unwrap_or(o.get_username()),
                    o.get_host(),
                    o.get_port(),
                    o.get_username()
                ),
                Err(_) => "PostgreSQL (unparsable URL)".into(),
            },
            Err(e) => e.to_string(),
        }
    }
}

fn pool_options<DB: sqlx::Database>(config: &rocket_db_pools::Config) -> PoolOptions<DB> {
    let max = u32::try_from(config.max_connections.max(1)).unwrap_or(u32::MAX);
    PoolOptions::new()
        .max_connections(max)
        .min_connections(config.min_connections.unwrap_or(0))
        .acquire_timeout(Duration::from_secs(config.connect_timeout))
        .idle_timeout(config.idle_timeout.map(Duration::from_secs))
}

fn create_parent_dir(file: &Path) -> Result<(), DbError> {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.exists() => std::fs::create_dir_all(dir)
            .map_err(|e| {
                DbError::Config(format!("cannot create directory {}: {e}", dir.display()))
            }),
        _ => Ok(()),
    }
}

impl PooledConn {
    pub fn conn(&mut self) -> Conn<'_> {
        match self {
            PooledConn::Sqlite(c) => Conn::Sqlite(&mut *c),
            PooledConn::Postgres(c) => Conn::Postgres(c),
        }
    }
}

impl Tx {
    pub fn conn(&mut self) -> Conn<'_> {
        match self {
            Tx::Sqlite(tx) => Conn::Sqlite(tx),
            Tx::Postgres(tx) => Conn::Postgres(tx),
        }
    }

    pub async fn commit(self) -> Result<(), DbError> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await?,
            Tx::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }
}

/// The current time at the precision both backends keep alike (whole
/// seconds, UTC), so that SQLite's text timestamps also sort correctly.
pub fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
}
