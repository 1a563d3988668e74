//! Queries of `outbox`: jobs written with the change that causes them, and
//! claimed by workers under a lease.

use time::OffsetDateTime;

use super::{on_conn, Conn, DbError};

/// A claimed job.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub payload: String,
    /// Including this one.
    pub attempts: i32,
    pub lock_token: String,
    /// When it was queued (or requeued by an operator): retries stop
    /// `smtp.give_up_after` later.
    pub created_at: OffsetDateTime,
}

/// A job as an operator sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobStatus {
    pub id: i64,
    pub kind: String,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub next_attempt_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
}

/// Queues a job; `user_id` names the user it is about, so that the job goes
/// when the user does.
pub async fn enqueue(
    conn: Conn<'_>,
    kind: &str,
    payload: &str,
    user_id: Option<i64>,
    now: OffsetDateTime,
) -> Result<i64, DbError> {
    const SQL: &str =
        "INSERT INTO outbox (kind, payload, user_id, next_attempt_at, created_at, updated_at) \
                       VALUES ($1, $2, $3, $4, $4, $4) RETURNING id";
    let id = on_conn!(conn, c => sqlx::query_scalar(SQL)
        .bind(kind)
        .bind(payload)
        .bind(user_id)
        .bind(now)
        .fetch_one(c)
        .await)?;
    Ok(id)
}

/// Deletes jobs sent at or before `cutoff`; pending and dead ones stay.
pub async fn prune_sent(conn: Conn<'_>, cutoff: OffsetDateTime) -> Result<u64, DbError> {
    const SQL: &str = "DELETE FROM outbox WHERE status = 'sent' AND updated_at <= $1";
    let deleted = on_conn!(conn, c => sqlx::query(SQL)
        .bind(cutoff)
        .execute(c)
        .await
        .map(|done| done.rows_affected()))?;
    Ok(deleted)
}

/// Claims up to `limit` due jobs until `lease_until`: on PostgreSQL rows
/// locked by another worker are skipped (`FOR UPDATE SKIP LOCKED`), on
/// SQLite the statement runs under the database's single write lock.
pub async fn claim(
    conn: Conn<'_>,
    now: OffsetDateTime,
    lease_until: OffsetDateTime,
    token: &str,
    limit: i64,
) -> Result<Vec<Job>, DbError> {
    macro_rules! claim_sql {
        ($lock:literal) => {
            concat!(
                "UPDATE outbox SET attempts = attempts + 1, locked_until = $2, lock_token = $3, \
                   updated_at = $1 \
                 WHERE id IN (SELECT id FROM outbox \
                   WHERE status = 'pending' AND next_attempt_at <= $1 \
                     AND (locked_until IS NULL OR locked_until < $1) \
                   ORDER BY next_attempt_at, id LIMIT $4",
                $lock,
                ") RETURNING id, kind, payload, attempts, lock_token, created_at"
            )
        };
    }
    let sql = match conn {
        Conn::Sqlite(_) => claim_sql!(""),
        Conn::Postgres(_) => claim_sql!(" FOR UPDATE SKIP LOCKED"),
    };
    let jobs = on_conn!(conn, c => sqlx::query_as::<_, Job>(sql)
        .bind(now)
        .bind(lease_until)
        .bind(token)
        .bind(limit)
        .fetch_all(c)
        .await)?;
    Ok(jobs)
}

/// Records the outcome of a claimed job, if its lease is still ours;
/// `payload`, if given, replaces the job's (without the token it held).
pub async fn finish(
    conn: Conn<'_>,
    job: &Job,
    outcome: Outcome<'_>,
    payload: Option<&str>,
    now: OffsetDateTime,
) -> Result<bool, DbError> {
    const SQL: &str = "UPDATE outbox SET status = $3, next_attempt_at = $4, last_error = $5, \
                         locked_until = NULL, lock_token = NULL, updated_at = $6, \
                         payload = COALESCE($7, payload) \
                       WHERE id = $1 AND lock_token = $2";
    let (status, next_attempt_at, error) = match outcome {
        Outcome::Sent => ("sent", now, None),
        Outcome::Retry { at, error } => ("pending", at, Some(error)),
        Outcome::Dead { error } => ("dead", now, Some(error)),
    };
    let updated = on_conn!(conn, c => sqlx::query(SQL)
        .bind(job.id)
        .bind(&job.lock_token)
        .bind(status)
        .bind(next_attempt_at)
        .bind(error)
        .bind(now)
        .bind(payload)
        .execute(c)
        .await
        .map(|done| done.rows_affected()))?;
    Ok(updated == 1)
}

/// How an attempt at a job ended.
pub enum Outcome<'a> {
    Sent,
    Retry { at: OffsetDateTime, error: &'a str },
    Dead { error: &'a str },
}

/// Puts job `id` (any status), or every dead job when `id` is `None`,
/// back in the queue, due now and with its give-up clock started again.
/// Returns how many were requeued.
pub async fn requeue(conn: Conn<'_>, id: Option<i64>, now: OffsetDateTime) -> Result<u64, DbError> {
    const SQL: &str = "UPDATE outbox SET status = 'pending', next_attempt_at = $1, \
                         created_at = $1, updated_at = $1, locked_until = NULL, lock_token = NULL \
                       WHERE CASE WHEN $2 IS NULL THEN status = 'dead' ELSE id = $2 END";
    let updated = on_conn!(conn, c => sqlx::query(SQL)
        .bind(now)
        .bind(id)
        .execute(c)
        .await
        .map(|done| done.rows_affected()))?;
    Ok(updated)
}

/// The jobs, oldest first, of one status or all.
pub async fn list_by_status(
    conn: Conn<'_>,
    status: Option<&str>,
) -> Result<Vec<JobStatus>, DbError> {
    const SQL: &str = "SELECT id, kind, status, attempts, last_error, next_attempt_at, created_at \
                       FROM outbox WHERE $1 IS NULL OR status = $1 ORDER BY id";
    let rows = on_conn!(conn, c => sqlx::query_as::<_, JobStatus>(SQL)
        .bind(status)
        .fetch_all(c)
        .await)?;
    Ok(rows)
}

/// How many jobs there are of each status.
pub async fn count_by_status(conn: Conn<'_>) -> Result<Vec<(String, i64)>, DbError> {
    const SQL: &str = "SELECT status, COUNT(*) FROM outbox GROUP BY status";
    let rows = on_conn!(conn, c => sqlx::query_as::<_, (String, i64)>(SQL).fetch_all(c).await)?;
    Ok(rows)
}

pub async fn list(conn: Conn<'_>) -> Result<Vec<JobStatus>, DbError> {
    const SQL: &str = "SELECT id, kind, status, attempts, last_error, next_attempt_at, created_at \
                       FROM outbox ORDER BY id";
    let rows = on_conn!(conn, c => sqlx::query_as::<_, JobStatus>(SQL).fetch_all(c).await)?;
    Ok(rows)
}
