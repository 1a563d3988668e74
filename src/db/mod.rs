//! The database: one build serves SQLite or PostgreSQL, chosen by the URL at
//! start.
//!
//! The pool is an enum of the two concrete pools (`sqlx::Any` cannot read
//! every type Roster stores) and every query is written once, in SQL both
//! accept, and compiled once per backend by [`on_conn!`]. Modules below hold
//! the queries of one table each; nothing here knows HTTP.

/// `LIMIT` and `OFFSET` taken from parameters, each behind a scalar
/// subquery. SQLite's planner reads a bare bound `LIMIT`, and a statement
/// whose plan read a binding is compiled again whenever its bindings are set
/// anew, which sqlx does at every execution: pages of users ran at 8,000 per
/// second instead of 13,700 (bench/NOTES.md). PostgreSQL takes it as is.
macro_rules! limit_offset {
    ($limit:literal) => {
        concat!(" LIMIT (SELECT ", $limit, ")")
    };
    ($limit:literal, $offset:literal) => {
        concat!(" LIMIT (SELECT ", $limit, ") OFFSET (SELECT ", $offset, ")")
    };
}

#[macro_use]
pub mod users;
pub mod batch;
mod conns;
pub use conns::PoolStats;
pub mod account_tokens;
pub mod outbox;
pub mod sessions;
pub mod uploads;

pub use conns::{Conns, Limits, Pooled};

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use rocket::figment::Figment;
use rocket_db_pools::Database;
use sqlx::pool::PoolOptions;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use sqlx::ConnectOptions;
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

/// The connections of one backend (see [`Conns`] for why not sqlx's pool).
#[derive(Clone, Debug)]
pub enum DbPool {
    Sqlite(Conns<SqliteConnection>),
    Postgres(Conns<PgConnection>),
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
    Sqlite(Pooled<SqliteConnection>),
    Postgres(Pooled<PgConnection>),
}

/// A write transaction on a connection of its own; dropped without
/// [`Tx::commit`] it rolls back.
pub struct Tx(PooledConn);

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

impl DbError {
    /// A failed first connection, explained: the usual causes of TLS and
    /// access failures get a sentence that says what to change.
    fn connect(pool: &DbPool, err: sqlx::Error) -> DbError {
        let (target, host) = match pool {
            DbPool::Sqlite(conns) => {
                let file = conns.options().get_filename().display();
                (format!("SQLite file {file}"), String::new())
            }
            DbPool::Postgres(conns) => {
                let o = conns.options();
                let sslmode = format!("{:?}", o.get_ssl_mode()).to_lowercase();
                let target = format!(
                    "PostgreSQL at {}:{} (sslmode={})",
                    o.get_host(),
                    o.get_port(),
                    sslmode.replace("verify", "verify-")
                );
                (target, o.get_host().to_owned())
            }
        };
        let detail = err.to_string();
        let hint = if detail.contains("UnknownIssuer") {
            Some(
                "the server's certificate is not signed by a trusted CA: give the CA that \
                  signed it as sslrootcert=/path/to/ca.pem"
                    .to_owned(),
            )
        } else if detail.contains("NotValidForName") || detail.contains("not valid for name") {
            Some(format!(
                "the server's certificate is not valid for the host name {host:?}: connect \
                 with a name the certificate holds, or use sslmode=verify-ca to check the \
                 signature only"
            ))
        } else if detail.contains("no encryption") {
            Some(
                "the server accepts only TLS connections from here: use sslmode=require \
                 (encrypted) or sslmode=verify-full with sslrootcert (encrypted and verified)"
                    .to_owned(),
            )
        } else if detail.contains("does not support TLS") {
            Some(
                "the server does not offer TLS: enable ssl on the server, or use \
                 sslmode=prefer or sslmode=disable"
                    .to_owned(),
            )
        } else {
            None
        };
        let cause = match hint {
            Some(hint) => format!("{hint} ({detail})"),
            None => detail,
        };
        DbError::Connect { target, cause }
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
    /// A statement stopped at its time limit (PostgreSQL's
    /// `statement_timeout`, SQLite's progress handler).
    #[error("statement timed out: {0}")]
    TimedOut(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Query(#[source] sqlx::Error),
    #[error("database configuration: {0}")]
    Config(String),
    /// The first connection at start failed: where to, and why, in words an
    /// operator can act on.
    #[error("cannot connect to {target}: {cause}")]
    Connect { target: String, cause: String },
    #[error("migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for DbError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => DbError::Unavailable(err),
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => {
                conns::note_connection_failure();
                DbError::Unavailable(err)
            }
            sqlx::Error::Database(db) => {
                if db.kind() == sqlx::error::ErrorKind::UniqueViolation {
                    let name = db.constraint().unwrap_or(db.message());
                    return DbError::Conflict(Conflict::from_constraint(name));
                }
                let code = db.code().unwrap_or_default();
                // PostgreSQL: connection exceptions (08...), shutdown or
                // start-up (57P0x), insufficient resources such as too many
                // connections (53...), a read-only standby after a failover
                // (25006), a serialization failure or deadlock (40001,
                // 40P01); SQLite: busy or locked past the busy timeout (5,
                // 6 and extended). Each means "not now", not a bug.
                let unavailable = code.starts_with("08")
                    || code.starts_with("57P0")
                    || code.starts_with("53")
                    || matches!(code.as_ref(), "25006" | "40001" | "40P01")
                    || matches!(code.as_ref(), "5" | "6" | "261" | "517" | "262");
                if unavailable {
                    if code.starts_with("08") || code.starts_with("57P0") {
                        conns::note_connection_failure();
                    }
                    DbError::Unavailable(err)
                } else if code == "57014" || code == "9" {
                    // PostgreSQL's query_canceled, SQLite's SQLITE_INTERRUPT.
                    DbError::TimedOut(err)
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
    /// directories) are created when missing. Connections are opened on
    /// demand, so this touches nothing: [`DbPool::migrate`] is the first
    /// statement.
    pub async fn connect(config: &rocket_db_pools::Config) -> Result<Self, DbError> {
        let limits = Limits {
            max: u32::try_from(config.max_connections.max(1)).unwrap_or(u32::MAX),
            acquire_timeout: Duration::from_secs(config.connect_timeout),
            idle_timeout: config.idle_timeout.map(Duration::from_secs),
        };
        match Backend::of_url(&config.url)? {
            Backend::Sqlite => {
                let connect = SqliteConnectOptions::from_str(&config.url)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT)
                    .disable_statement_logging();
                create_parent_dir(connect.get_filename())?;
                // sqlx runs each SQLite connection on a thread of its own and
                // every statement hops to it and back: more connections than
                // twice the cores only add thread switching (measured in
                // bench/), and writers queue on one lock anyway.
                let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
                let max = limits.max.min(cores as u32 * 2);
                Ok(DbPool::Sqlite(Conns::new(
                    connect,
                    Limits { max, ..limits },
                )))
            }
            Backend::Postgres => {
                // Every statement is prepared once per connection; without
                // this PostgreSQL plans many of them anew on each execution
                // (a custom plan looks cheaper to it than the generic one for
                // a parameterised LIMIT): pages of users ran at 6,800 per
                // second instead of 11,000 (bench/NOTES.md).
                let connect = PgConnectOptions::from_str(&config.url)?
                    .application_name("roster")
                    .options([("plan_cache_mode", "force_generic_plan")])
                    .disable_statement_logging();
                Ok(DbPool::Postgres(Conns::new(connect, limits)))
            }
        }
    }

    /// Closes every connection, waiting for those in use to come back.
    pub async fn close_all(&self) {
        match self {
            DbPool::Sqlite(conns) => conns.close().await,
            DbPool::Postgres(conns) => conns.close().await,
        }
    }

    /// The pool of `figment`'s `databases.roster`, for a command that runs
    /// once (`migrate`, `admin create`): two connections, and the database
    /// waited for as serving does.
    pub async fn for_command(figment: &Figment) -> Result<DbPool, DbError> {
        let focused = figment.focus("databases.roster");
        let config: rocket_db_pools::Config = focused
            .clone()
            .join(("max_connections", 2))
            .extract()
            .map_err(|e| DbError::Config(e.to_string()))?;
        let startup_timeout: u64 = focused
            .extract_inner("startup_timeout")
            .map_err(|e| DbError::Config(e.to_string()))?;
        let pool = DbPool::connect(&config).await?;
        pool.wait_ready(Duration::from_secs(startup_timeout))
            .await?;
        Ok(pool)
    }

    /// Waits up to `patience` for a first connection while the database is
    /// unreachable (refused, timed out, starting up), logging each failed
    /// try with where to and why; any other failure (a certificate, a
    /// password) ends the wait at once, as retrying cannot mend it.
    pub async fn wait_ready(&self, patience: Duration) -> Result<(), DbError> {
        let started = std::time::Instant::now();
        loop {
            let err = match self.acquire().await {
                Ok(_) => return Ok(()),
                Err(err) => err,
            };
            let retry = match &err {
                DbError::Unavailable(sqlx::Error::Database(db)) => {
                    matches!(db.code().as_deref(), Some("57P03" | "53300"))
                }
                DbError::Unavailable(_) => true,
                _ => false,
            };
            let err = self.first_connection_error(err);
            let left = patience.saturating_sub(started.elapsed());
            if !retry || left.is_zero() {
                return Err(err);
            }
            tracing::warn!("{err}; retrying for {} s more", left.as_secs().max(1));
            rocket::tokio::time::sleep(Duration::from_secs(1).min(left)).await;
        }
    }

    /// A failure to reach the database, told with where to and why.
    fn first_connection_error(&self, err: DbError) -> DbError {
        match err {
            DbError::Unavailable(err) | DbError::Query(err) => DbError::connect(self, err),
            other => other,
        }
    }

    /// Applies the embedded migrations of this backend.
    pub async fn migrate(&self) -> Result<(), DbError> {
        // On a pool of one connection of its own: sqlx's `Migrator::run`
        // on a borrowed connection gives a future that rustc cannot prove
        // `Send` for the fairing that awaits it. One of our connections is
        // held open meanwhile, so that an in-memory SQLite database (one per
        // set of options, alive while a connection to it is) outlives the
        // migrations.
        let _alive = self
            .acquire()
            .await
            .map_err(|err| self.first_connection_error(err))?;
        macro_rules! run {
            ($db:ty, $conns:expr, $migrator:expr) => {{
                let pool = PoolOptions::<$db>::new()
                    .max_connections(1)
                    .connect_with($conns.options().clone())
                    .await
                    .map_err(|err| DbError::connect(self, err))?;
                let done = $migrator.run(&pool).await;
                pool.close().await;
                done?;
            }};
        }
        match self {
            DbPool::Sqlite(conns) => run!(sqlx::Sqlite, conns, SQLITE_MIGRATIONS),
            DbPool::Postgres(conns) => run!(sqlx::Postgres, conns, POSTGRES_MIGRATIONS),
        }
        Ok(())
    }

    /// The versions of the embedded migrations not yet applied to the
    /// database (all of them on a database never migrated).
    pub async fn pending_migrations(&self) -> Result<Vec<i64>, DbError> {
        let mut conn = self.acquire().await?;
        let (migrator, exists) = match self {
            DbPool::Sqlite(_) => (
                &SQLITE_MIGRATIONS,
                "SELECT count(*) FROM sqlite_master WHERE name = '_sqlx_migrations'",
            ),
            DbPool::Postgres(_) => (
                &POSTGRES_MIGRATIONS,
                "SELECT count(*) FROM pg_tables WHERE tablename = '_sqlx_migrations' \
                 AND schemaname = current_schema()",
            ),
        };
        const APPLIED: &str = "SELECT version FROM _sqlx_migrations WHERE success";
        let applied: Vec<i64> = on_conn!(conn.conn(), c => {
            let tables: i64 = sqlx::query_scalar(exists).fetch_one(&mut *c).await?;
            if tables == 0 {
                Ok(Vec::new())
            } else {
                sqlx::query_scalar(APPLIED).fetch_all(c).await
            }
        })?;
        Ok(migrator
            .iter()
            .map(|m| m.version)
            .filter(|version| !applied.contains(version))
            .collect())
    }

    /// The connections in use and idle now.
    pub fn stats(&self) -> PoolStats {
        match self {
            DbPool::Sqlite(conns) => conns.stats(),
            DbPool::Postgres(conns) => conns.stats(),
        }
    }

    pub async fn acquire(&self) -> Result<PooledConn, DbError> {
        Ok(match self {
            DbPool::Sqlite(conns) => PooledConn::Sqlite(conns.acquire().await?),
            DbPool::Postgres(conns) => PooledConn::Postgres(conns.acquire().await?),
        })
    }

    /// Starts a write transaction (on SQLite, one that holds the write lock
    /// from the start, so that concurrent writes wait for each other).
    pub async fn begin(&self) -> Result<Tx, DbError> {
        let mut conn = self.acquire().await?;
        match &mut conn {
            PooledConn::Sqlite(c) => c.begin().await?,
            PooledConn::Postgres(c) => c.begin().await?,
        }
        Ok(Tx(conn))
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
            PooledConn::Sqlite(c) => Conn::Sqlite(c),
            PooledConn::Postgres(c) => Conn::Postgres(c),
        }
    }
}

impl Tx {
    pub fn conn(&mut self) -> Conn<'_> {
        self.0.conn()
    }

    pub async fn commit(mut self) -> Result<(), DbError> {
        match &mut self.0 {
            PooledConn::Sqlite(c) => c.commit().await?,
            PooledConn::Postgres(c) => c.commit().await?,
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
