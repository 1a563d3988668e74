//! The reads of many requests made as one statement, on PostgreSQL.
//!
//! A read by key costs PostgreSQL less than the round trip that carries it
//! (the protocol on both sides, a wake-up of the server's process): eight
//! of Roster's reads by id in one statement cost it about what 1.5 cost
//! one by one (`bench/NOTES.md`). So the token check of each authenticated
//! request, the read of a user by id and the page of users go through
//! [`Reads`]: one task takes every request that has arrived while at most
//! [`IN_FLIGHT`] batches run, sends the batch as one statement per kind of
//! read (the requests' parameters as arrays, `unnest`ed, each row joined
//! laterally to the statement a request alone would run), and answers each
//! request with its own rows. Under light load a batch holds one request;
//! under load batches grow with it.
//!
//! Nothing is cached: a batch runs after every request in it arrived, so it
//! sees every write committed before any of them (a logout, a deactivation,
//! on any instance), as the request alone would. A batch that fails (no
//! connection, a statement that fails) answers each of its requests with
//! that error. SQLite has no round trip to save (it reads in the process)
//! and reads directly.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rocket::tokio::sync::{mpsc, oneshot, Semaphore};
use rocket::tokio::time::timeout;
use sqlx::postgres::{PgConnection, PgRow};
use sqlx::{FromRow, Row};

use super::sessions::{AuthRecord, TokenClaims};
use super::users::SeenUser;
use super::{Conns, DbError};

/// How many batches run at once, each on a connection of its own: two keep
/// PostgreSQL busy while the next batch gathers (`bench/NOTES.md`).
pub const IN_FLIGHT: usize = 2;

/// The most requests in one batch.
pub const MAX_BATCH: usize = 128;

/// Pages that skip more users than this are read alone, on a connection of
/// their own: such a page costs PostgreSQL far more than its round trip,
/// and in a batch it would hold one of the [`IN_FLIGHT`] slots that long,
/// delaying every token check behind it. At `skip=9990`, batched pages ran
/// 11 % more per second but at twice the p99 (170 ms against 91 ms,
/// `bench/NOTES.md`).
pub const BATCHED_SKIP: i64 = 500;

/// A batch's failure, shared by every request in it.
pub type Shared = Arc<DbError>;

type Reply<T> = oneshot::Sender<Result<T, Shared>>;

/// An access token's claims, owned while its request waits in a batch.
struct Token {
    user_id: i64,
    session_id: String,
    version: i64,
}

impl From<&TokenClaims<'_>> for Token {
    fn from(token: &TokenClaims<'_>) -> Self {
        Token {
            user_id: token.user_id,
            session_id: token.session_id.to_owned(),
            version: token.version,
        }
    }
}

/// One request's read.
enum Ask {
    /// [`super::sessions::load_for_token`].
    Token {
        user_id: i64,
        session_id: String,
        reply: Reply<Option<AuthRecord>>,
    },
    /// [`super::users::find_if_token`].
    User {
        token: Token,
        id: i64,
        reply: Reply<Option<SeenUser>>,
    },
    /// [`super::users::list_if_token`].
    Page {
        token: Token,
        skip: i64,
        limit: i64,
        reply: Reply<Vec<SeenUser>>,
    },
}

/// How much batching there has been since start.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchStats {
    /// Reads answered (or failed) through batches.
    pub reads: u64,
    /// Statements that carried them.
    pub statements: u64,
}

#[derive(Default)]
struct Counters {
    reads: AtomicU64,
    statements: AtomicU64,
}

/// The handle of an instance's batching task; the task ends when the last
/// handle is dropped.
#[derive(Clone)]
pub struct Reads {
    asks: mpsc::UnboundedSender<Ask>,
    counters: Arc<Counters>,
}

impl Reads {
    /// Starts the task that batches reads on `conns` (in the current Tokio
    /// runtime).
    pub fn start(conns: Conns<PgConnection>) -> Reads {
        let (asks, queue) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        rocket::tokio::spawn(gather(conns, queue, Arc::clone(&counters)));
        Reads { asks, counters }
    }

    pub fn stats(&self) -> BatchStats {
        BatchStats {
            reads: self.counters.reads.load(Ordering::Relaxed),
            statements: self.counters.statements.load(Ordering::Relaxed),
        }
    }

    /// User `user_id` and whether session `session_id` is open, as
    /// [`super::sessions::load_for_token`] reads them.
    pub async fn token(
        &self,
        user_id: i64,
        session_id: &str,
    ) -> Result<Option<AuthRecord>, Shared> {
        let session_id = session_id.to_owned();
        self.ask(|reply| Ask::Token {
            user_id,
            session_id,
            reply,
        })
        .await
    }

    /// User `id` if `token` may act, with who reads it, as
    /// [`super::users::find_if_token`] reads it.
    pub async fn user(&self, token: &TokenClaims<'_>, id: i64) -> Result<Option<SeenUser>, Shared> {
        let token = Token::from(token);
        self.ask(|reply| Ask::User { token, id, reply }).await
    }

    /// A page of active users if `token` may act, as
    /// [`super::users::list_if_token`] reads it.
    pub async fn page(
        &self,
        token: &TokenClaims<'_>,
        skip: i64,
        limit: i64,
    ) -> Result<Vec<SeenUser>, Shared> {
        let token = Token::from(token);
        self.ask(|reply| Ask::Page {
            token,
            skip,
            limit,
            reply,
        })
        .await
    }

    /// Queues a read at once (before the first `.await`, so reads made
    /// together are queued together) and waits for its answer.
    async fn ask<T>(&self, ask: impl FnOnce(Reply<T>) -> Ask) -> Result<T, Shared> {
        let (reply, answer) = oneshot::channel();
        let stopped = || Arc::new(DbError::Unavailable(sqlx::Error::PoolClosed));
        self.asks.send(ask(reply)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// The batching task: waits for a read, then for a free slot, then takes
/// every read that has arrived meanwhile (up to [`MAX_BATCH`]) into a batch
/// that runs on a task of its own.
///
/// When no slot frees within the pool's acquire timeout, the batches in
/// flight have held their connections that long: the database is not
/// answering, and the reads waiting are told so (503), as requests waiting
/// for a connection of the pool would be.
async fn gather(
    conns: Conns<PgConnection>,
    mut queue: mpsc::UnboundedReceiver<Ask>,
    counters: Arc<Counters>,
) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = queue.recv().await {
        let slot = timeout(conns.acquire_timeout(), Arc::clone(&slots).acquire_owned()).await;
        let mut batch = Batch::default();
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(ask) => batch.push(ask),
                Err(_) => break,
            }
        }
        counters
            .reads
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        let Ok(Ok(slot)) = slot else {
            batch.fail(&Arc::new(DbError::Unavailable(sqlx::Error::PoolTimedOut)));
            continue;
        };
        let conns = conns.clone();
        let counters = Arc::clone(&counters);
        rocket::tokio::spawn(async move {
            batch.run(&conns, &counters).await;
            drop(slot);
        });
    }
}

#[derive(Default)]
struct Batch {
    tokens: Vec<(i64, String, Reply<Option<AuthRecord>>)>,
    users: Vec<(Token, i64, Reply<Option<SeenUser>>)>,
    pages: Vec<(Token, i64, i64, Reply<Vec<SeenUser>>)>,
}

/// A batch's statements: the requests' parameters as arrays, numbered by
/// `WITH ORDINALITY` (`r.n`, from 1), each row joined laterally to what the
/// request alone would read.
macro_rules! batched {
    ($columns:literal, $types:literal, $read:expr) => {
        concat!(
            "SELECT r.n, t.* FROM unnest(",
            $types,
            ") WITH ORDINALITY AS r(",
            $columns,
            ", n) CROSS JOIN LATERAL (",
            $read,
            ") t"
        )
    };
}

const TOKENS: &str = batched!(
    "user_id, session_id",
    "$1::int8[], $2::text[]",
    concat!(
        "SELECT ",
        user_columns!(),
        ", ",
        crate::db::sessions::session_live!("r.session_id"),
        " FROM users WHERE id = r.user_id"
    )
);

const USERS: &str = batched!(
    "user_id, session_id, version, target",
    "$1::int8[], $2::text[], $3::int8[], $4::int8[]",
    concat!(
        "SELECT ",
        user_columns!(),
        ", caller_id, caller_role FROM users",
        crate::db::sessions::caller_join!("r.user_id", "r.session_id", "r.version"),
        "WHERE id = r.target"
    )
);

const PAGES: &str = batched!(
    "user_id, session_id, version, skip, lim",
    "$1::int8[], $2::text[], $3::int8[], $4::int8[], $5::int8[]",
    concat!(
        "SELECT ",
        user_columns!(),
        ", caller_id, caller_role FROM users",
        crate::db::sessions::caller_join!("r.user_id", "r.session_id", "r.version"),
        "WHERE is_active ORDER BY id LIMIT r.lim OFFSET r.skip"
    )
);

impl Batch {
    fn len(&self) -> usize {
        self.tokens.len() + self.users.len() + self.pages.len()
    }

    fn push(&mut self, ask: Ask) {
        match ask {
            Ask::Token {
                user_id,
                session_id,
                reply,
            } => self.tokens.push((user_id, session_id, reply)),
            Ask::User { token, id, reply } => self.users.push((token, id, reply)),
            Ask::Page {
                token,
                skip,
                limit,
                reply,
            } => self.pages.push((token, skip, limit, reply)),
        }
    }

    /// Answers every request with `err`.
    fn fail(self, err: &Shared) {
        fail(self.tokens.into_iter().map(|(_, _, reply)| reply), err);
        fail(self.users.into_iter().map(|(_, _, reply)| reply), err);
        fail(self.pages.into_iter().map(|(_, _, _, reply)| reply), err);
    }

    /// Runs each kind's statement on one connection and answers every
    /// request.
    async fn run(self, conns: &Conns<PgConnection>, counters: &Counters) {
        let mut conn = match conns.acquire().await {
            Ok(conn) => conn,
            Err(err) => return self.fail(&Arc::new(DbError::from(err))),
        };
        let Batch {
            tokens,
            users,
            pages,
        } = self;
        let conn: &mut PgConnection = &mut conn;
        if !tokens.is_empty() {
            counters.statements.fetch_add(1, Ordering::Relaxed);
            let (user_ids, session_ids): (Vec<i64>, Vec<&str>) =
                tokens.iter().map(|(u, s, _)| (*u, s.as_str())).unzip();
            let rows = sqlx::query(TOKENS)
                .bind(user_ids)
                .bind(session_ids)
                .fetch_all(&mut *conn)
                .await;
            let replies = tokens.into_iter().map(|(_, _, reply)| reply);
            answer(replies, rows, |mut found| found.pop());
        }
        if !users.is_empty() {
            counters.statements.fetch_add(1, Ordering::Relaxed);
            let (tokens, ids): (Vec<&Token>, Vec<i64>) =
                users.iter().map(|(token, id, _)| (token, *id)).unzip();
            let query = bind_tokens(sqlx::query(USERS), &tokens).bind(ids);
            let rows = query.fetch_all(&mut *conn).await;
            let replies = users.into_iter().map(|(_, _, reply)| reply);
            answer(replies, rows, |mut found| found.pop());
        }
        if !pages.is_empty() {
            counters.statements.fetch_add(1, Ordering::Relaxed);
            let tokens: Vec<&Token> = pages.iter().map(|(token, ..)| token).collect();
            let query = bind_tokens(sqlx::query(PAGES), &tokens)
                .bind(pages.iter().map(|page| page.1).collect::<Vec<i64>>())
                .bind(pages.iter().map(|page| page.2).collect::<Vec<i64>>());
            let rows = query.fetch_all(&mut *conn).await;
            let replies = pages.into_iter().map(|(_, _, _, reply)| reply);
            // Ordered by id as the page alone is, whatever order the rows
            // of the batch came in.
            answer(replies, rows, |mut page: Vec<SeenUser>| {
                page.sort_by_key(|seen| seen.user.id);
                page
            });
        }
    }
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Binds the tokens' claims as `$1`-`$3` (arrays of user ids, session ids,
/// versions).
fn bind_tokens<'q>(query: PgQuery<'q>, tokens: &[&'q Token]) -> PgQuery<'q> {
    query
        .bind(tokens.iter().map(|t| t.user_id).collect::<Vec<i64>>())
        .bind(
            tokens
                .iter()
                .map(|t| t.session_id.as_str())
                .collect::<Vec<&str>>(),
        )
        .bind(tokens.iter().map(|t| t.version).collect::<Vec<i64>>())
}

/// Sends each request its rows (those whose `n` is its place in the batch,
/// shaped by `shape`), or the statement's error to all of them. A request
/// that stopped waiting (its client left) is skipped.
fn answer<T, O>(
    replies: impl ExactSizeIterator<Item = Reply<O>>,
    rows: Result<Vec<PgRow>, sqlx::Error>,
    shape: impl Fn(Vec<T>) -> O,
) where
    T: for<'r> FromRow<'r, PgRow>,
{
    match sort_rows::<T>(replies.len(), rows) {
        Ok(each) => {
            for (reply, rows) in replies.zip(each) {
                drop(reply.send(Ok(shape(rows))));
            }
        }
        Err(err) => fail(replies, &err),
    }
}

/// The rows of each request, in batch order.
fn sort_rows<T>(count: usize, rows: Result<Vec<PgRow>, sqlx::Error>) -> Result<Vec<Vec<T>>, Shared>
where
    T: for<'r> FromRow<'r, PgRow>,
{
    let shared = |err: sqlx::Error| Arc::new(DbError::from(err));
    let mut each: Vec<Vec<T>> = (0..count).map(|_| Vec::new()).collect();
    for row in rows.map_err(shared)? {
        let n: i64 = row.try_get("n").map_err(shared)?;
        let slot = usize::try_from(n - 1)
            .ok()
            .and_then(|i| each.get_mut(i))
            .ok_or_else(|| {
                shared(sqlx::Error::Decode(
                    format!("a batch row numbered {n} of {count}").into(),
                ))
            })?;
        slot.push(T::from_row(&row).map_err(shared)?);
    }
    Ok(each)
}

fn fail<O>(replies: impl Iterator<Item = Reply<O>>, err: &Shared) {
    for reply in replies {
        drop(reply.send(Err(Arc::clone(err))));
    }
}
