//! Queries of `sessions` and `refresh_tokens`.

use time::OffsetDateTime;

use super::users::UserRecord;
use super::{on_conn, Conn, DbError};

/// A refresh token looked up by its hash, with its session's state.
#[derive(sqlx::FromRow)]
pub struct RefreshRecord {
    pub session_id: String,
    pub user_id: i64,
    pub expires_at: OffsetDateTime,
    /// When it was exchanged, if it was.
    pub spent_at: Option<OffsetDateTime>,
    pub session_revoked: bool,
}

/// An open session as its user sees it.
#[derive(Debug, sqlx::FromRow)]
pub struct SessionRow {
    pub id: String,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
    pub user_agent: Option<String>,
}

/// A user loaded for an access token, with whether the token's session is
/// still open.
#[derive(sqlx::FromRow)]
pub struct AuthRecord {
    #[sqlx(flatten)]
    pub user: UserRecord,
    pub session_live: bool,
}

/// Opens session `id` for user `user_id`, only while the user is active and
/// its token version is still `token_version` (the one the password check
/// saw). False when it is not, or the user is gone: the caller's check is
/// stale. Run it in a transaction that holds the user ([`super::users::lock`]).
pub async fn create(
    conn: Conn<'_>,
    id: &str,
    user_id: i64,
    token_version: i64,
    user_agent: Option<&str>,
    now: OffsetDateTime,
) -> Result<bool, DbError> {
    const SQL: &str = "INSERT INTO sessions (id, user_id, created_at, last_used_at, user_agent) \
                       SELECT $1, id, $3, $3, $5 FROM users \
                       WHERE id = $2 AND token_version = $4 AND is_active";
    let rows = on_conn!(conn, c => sqlx::query(SQL)
        .bind(id)
        .bind(user_id)
        .bind(now)
        .bind(token_version)
        .bind(user_agent)
        .execute(c)
        .await
        .map(|done| done.rows_affected()))?;
    Ok(rows == 1)
}

pub async fn add_refresh_token(
    conn: Conn<'_>,
    session_id: &str,
    token_hash: &str,
    expires_at: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<(), DbError> {
    const SQL: &str =
        "INSERT INTO refresh_tokens (token_hash, session_id, expires_at, created_at) \
                       VALUES ($1, $2, $3, $4)";
    on_conn!(conn, c => sqlx::query(SQL)
        .bind(token_hash)
        .bind(session_id)
        .bind(expires_at)
        .bind(now)
        .execute(c)
        .await
        .map(drop))?;
    Ok(())
}

pub async fn find_refresh_token(
    conn: Conn<'_>,
    token_hash: &str,
) -> Result<Option<RefreshRecord>, DbError> {
    const SQL: &str = "SELECT r.session_id, s.user_id, r.expires_at, \
                         r.spent_at, s.revoked_at IS NOT NULL AS session_revoked \
                       FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id \
                       WHERE r.token_hash = $1";
    let row = on_conn!(conn, c => sqlx::query_as::<_, RefreshRecord>(SQL)
        .bind(token_hash)
        .fetch_optional(c)
        .await)?;
    Ok(row)
}

/// Marks a refresh token spent; false when it already was (a concurrent
/// refresh won the race).
pub async fn spend_refresh_token(
    conn: Conn<'_>,
    token_hash: &str,
    now: OffsetDateTime,
) -> Result<bool, DbError> {
    const SQL: &str =
        "UPDATE refresh_tokens SET spent_at = $2 WHERE token_hash = $1 AND spent_at IS NULL";
    let updated = on_conn!(conn, c => sqlx::query(SQL)
        .bind(token_hash)
        .bind(now)
        .execute(c)
        .await
        .map(|done| done.rows_affected()))?;
    Ok(updated == 1)
}

/// Deletes user `user_id`'s ended sessions and its open ones beyond the
/// `keep` newest, with their refresh tokens (cascade), so that however
/// often a user logs in its sessions stay bounded.
pub async fn trim(conn: Conn<'_>, user_id: i64, keep: i64) -> Result<(), DbError> {
    macro_rules! trim {
        ($order:literal) => {
            concat!(
                "DELETE FROM sessions WHERE user_id = $1 AND (revoked_at IS NOT NULL OR ",
                $order,
                " NOT IN (SELECT ",
                $order,
                " FROM sessions WHERE user_id = $1 AND revoked_at IS NULL ORDER BY ",
                $order,
                " DESC LIMIT $2))"
            )
        };
    }
    match conn {
        Conn::Sqlite(c) => {
            sqlx::query(trim!("rowid"))
                .bind(user_id)
                .bind(keep)
                .execute(c)
                .await?;
        }
        Conn::Postgres(c) => {
            sqlx::query(trim!("seq"))
                .bind(user_id)
                .bind(keep)
                .execute(c)
                .await?;
        }
    }
    Ok(())
}

/// Deletes session `session_id`'s spent refresh tokens but the `keep` most
/// recently made: presenting one of those again is still detected as reuse
/// (each token of a session is spent before the next is made, so the most
/// recently made are the most recently spent).
pub async fn trim_spent(conn: Conn<'_>, session_id: &str, keep: i64) -> Result<(), DbError> {
    macro_rules! trim_spent {
        ($order:literal) => {
            concat!(
                "DELETE FROM refresh_tokens WHERE session_id = $1 AND spent_at IS NOT NULL AND ",
                $order,
                " NOT IN (SELECT ",
                $order,
                " FROM refresh_tokens WHERE session_id = $1 AND spent_at IS NOT NULL ORDER BY ",
                $order,
                " DESC LIMIT $2)"
            )
        };
    }
    match conn {
        Conn::Sqlite(c) => {
            sqlx::query(trim_spent!("rowid"))
                .bind(session_id)
                .bind(keep)
                .execute(c)
                .await?;
        }
        Conn::Postgres(c) => {
            sqlx::query(trim_spent!("seq"))
                .bind(session_id)
                .bind(keep)
                .execute(c)
                .await?;
        }
    }
    Ok(())
}

/// Revokes one session of `user_id`; false when there is no such open one.
pub async fn revoke(
    conn: Conn<'_>,
    session_id: &str,
    user_id: i64,
    now: OffsetDateTime,
) -> Result<bool, DbError> {
    const SQL: &str = "UPDATE sessions SET revoked_at = $3 \
                       WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL";
    let updated = on_conn!(conn, c => sqlx::query(SQL)
        .bind(session_id)
        .bind(user_id)
        .bind(now)
        .execute(c)
        .await
        .map(|done| done.rows_affected()))?;
    Ok(updated > 0)
}

/// Notes that session `session_id` was used (a refresh).
pub async fn touch(conn: Conn<'_>, session_id: &str, now: OffsetDateTime) -> Result<(), DbError> {
    const SQL: &str = "UPDATE sessions SET last_used_at = $2 WHERE id = $1";
    on_conn!(conn, c => sqlx::query(SQL).bind(session_id).bind(now).execute(c).await.map(drop))?;
    Ok(())
}

/// User `user_id`'s open sessions that can still be refreshed, newest first.
pub async fn list_open(
    conn: Conn<'_>,
    user_id: i64,
    now: OffsetDateTime,
) -> Result<Vec<SessionRow>, DbError> {
    macro_rules! list_open {
        ($order:literal) => {
            concat!(
                "SELECT id, created_at, last_used_at, user_agent FROM sessions s \
                 WHERE user_id = $1 AND revoked_at IS NULL AND EXISTS \
                   (SELECT 1 FROM refresh_tokens r WHERE r.session_id = s.id \
                      AND r.spent_at IS NULL AND r.expires_at > $2) \
                 ORDER BY ",
                $order,
                " DESC"
            )
        };
    }
    let rows = match conn {
        Conn::Sqlite(c) => {
            sqlx::query_as::<_, SessionRow>(list_open!("rowid"))
                .bind(user_id)
                .bind(now)
                .fetch_all(c)
                .await?
        }
        Conn::Postgres(c) => {
            sqlx::query_as::<_, SessionRow>(list_open!("seq"))
                .bind(user_id)
                .bind(now)
                .fetch_all(c)
                .await?
        }
    };
    Ok(rows)
}

/// Revokes every open session of `user_id`.
pub async fn revoke_all(conn: Conn<'_>, user_id: i64, now: OffsetDateTime) -> Result<(), DbError> {
    const SQL: &str =
        "UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL";
    on_conn!(conn, c => sqlx::query(SQL).bind(user_id).bind(now).execute(c).await.map(drop))?;
    Ok(())
}

/// What an access token claims, for a read that checks it in its own
/// statement.
pub struct TokenClaims<'a> {
    pub user_id: i64,
    pub session_id: &'a str,
    pub version: i64,
}

/// The users and sessions rows (`a`, `s`) of a token, if it may act: its
/// user exists and is active, its session is open and its version current.
/// The token's user id, session id and version are parameters `$1`-`$3`
/// ([`TokenClaims`]), or the three expressions given (the columns of a
/// batch, `db::batch`).
macro_rules! token_rows {
    () => {
        $crate::db::sessions::token_rows!("$1", "$2", "$3")
    };
    ($user_id:literal, $session_id:literal, $version:literal) => {
        concat!(
            "FROM users a JOIN sessions s ON s.user_id = a.id WHERE a.id = ",
            $user_id,
            " AND s.id = ",
            $session_id,
            " AND a.token_version = ",
            $version,
            " AND a.is_active AND s.revoked_at IS NULL"
        )
    };
}
pub(crate) use token_rows;

/// A condition that holds exactly when the token of parameters `$1`-`$3`
/// may act. It names nothing of the outer statement, so the database
/// evaluates it once per statement, not once per row.
macro_rules! token_holds {
    () => {
        concat!(
            "EXISTS (SELECT 1 ",
            $crate::db::sessions::token_rows!(),
            ")"
        )
    };
}
pub(crate) use token_holds;

/// The token's user as a one-row table `caller (caller_id, caller_role)`,
/// empty unless the token may act: a read joined to it is checked and knows
/// who reads, in one statement. The token is `$1`-`$3`, or the three
/// expressions given, as in [`token_rows!`].
macro_rules! caller_join {
    () => {
        $crate::db::sessions::caller_join!("$1", "$2", "$3")
    };
    ($user_id:literal, $session_id:literal, $version:literal) => {
        concat!(
            " CROSS JOIN (SELECT a.id AS caller_id, a.role AS caller_role ",
            $crate::db::sessions::token_rows!($user_id, $session_id, $version),
            ") caller "
        )
    };
}
pub(crate) use caller_join;

/// Binds a [`TokenClaims`] as `$1`-`$3`, the parameters of [`token_holds!`].
macro_rules! bind_token {
    ($query:expr, $token:expr) => {
        $query
            .bind($token.user_id)
            .bind($token.session_id)
            .bind($token.version)
    };
}
pub(crate) use bind_token;

/// Whether the session `$session_id` (a parameter, or a column of a batch)
/// of the `users` row being read is open, as column `session_live`.
macro_rules! session_live {
    ($session_id:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM sessions s WHERE s.id = ",
            $session_id,
            " AND s.user_id = users.id AND s.revoked_at IS NULL) AS session_live"
        )
    };
}
pub(crate) use session_live;

/// The user an access token names, and whether its session is open: one
/// query per authenticated request.
pub async fn load_for_token(
    conn: Conn<'_>,
    user_id: i64,
    session_id: &str,
) -> Result<Option<AuthRecord>, DbError> {
    const SQL: &str = concat!(
        "SELECT ",
        user_columns!(),
        ", ",
        session_live!("$2"),
        " FROM users WHERE id = $1"
    );
    let row = on_conn!(conn, c => sqlx::query_as::<_, AuthRecord>(SQL)
        .bind(user_id)
        .bind(session_id)
        .fetch_optional(c)
        .await)?;
    Ok(row)
}

/// Deletes refresh tokens that expired before `cutoff`, then sessions left
/// without tokens that were created before `cutoff`. Returns how many
/// sessions went.
pub async fn prune(conn: Conn<'_>, cutoff: OffsetDateTime) -> Result<u64, DbError> {
    const TOKENS: &str = "DELETE FROM refresh_tokens WHERE expires_at < $1";
    const SESSIONS: &str = "DELETE FROM sessions WHERE created_at < $1 AND NOT EXISTS \
                            (SELECT 1 FROM refresh_tokens r WHERE r.session_id = sessions.id)";
    let pruned = on_conn!(conn, c => {
        sqlx::query(TOKENS).bind(cutoff).execute(&mut *c).await?;
        sqlx::query(SESSIONS).bind(cutoff).execute(c).await.map(|done| done.rows_affected())
    })?;
    Ok(pruned)
}
