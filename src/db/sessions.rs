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
    pub spent: bool,
    pub session_revoked: bool,
}

/// A user loaded for an access token, with whether the token's session is
/// still open.
#[derive(sqlx::FromRow)]
pub struct AuthRecord {
    #[sqlx(flatten)]
    pub user: UserRecord,
    pub session_live: bool,
}

pub async fn create(
    conn: Conn<'_>,
    id: &str,
    user_id: i64,
    now: OffsetDateTime,
) -> Result<(), DbError> {
    const SQL: &str = "INSERT INTO sessions (id, user_id, created_at) VALUES ($1, $2, $3)";
    on_conn!(conn, c => sqlx::query(SQL).bind(id).bind(user_id).bind(now).execute(c).await.map(drop))?;
    Ok(())
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
                         r.spent_at IS NOT NULL AS spent, s.revoked_at IS NOT NULL AS session_revoked \
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

/// Revokes every open session of `user_id`.
pub async fn revoke_all(conn: Conn<'_>, user_id: i64, now: OffsetDateTime) -> Result<(), DbError> {
    const SQL: &str =
        "UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL";
    on_conn!(conn, c => sqlx::query(SQL).bind(user_id).bind(now).execute(c).await.map(drop))?;
    Ok(())
}

/// The columns of [`AuthRecord`] for the user `a` that an access token
/// names (`$1`, its session `$2`), prefixed `a_` so that a read can stand
/// beside them in one row.
macro_rules! token_columns {
    () => {
        "a.id AS a_id, a.username AS a_username, a.email AS a_email, a.age AS a_age, \
         a.role AS a_role, a.is_active AS a_is_active, a.token_version AS a_token_version, \
         a.password_hash AS a_password_hash, a.created_at AS a_created_at, \
         a.updated_at AS a_updated_at, \
         EXISTS (SELECT 1 FROM sessions s \
                 WHERE s.id = $2 AND s.user_id = a.id AND s.revoked_at IS NULL) AS a_session_live"
    };
}

/// [`AuthRecord`] as [`token_columns!`] names it.
#[derive(sqlx::FromRow)]
struct PrefixedAuth {
    a_id: i64,
    a_username: String,
    a_email: String,
    a_age: Option<i32>,
    #[sqlx(try_from = "String")]
    a_role: crate::domain::Role,
    a_is_active: bool,
    a_token_version: i64,
    a_password_hash: String,
    a_created_at: OffsetDateTime,
    a_updated_at: OffsetDateTime,
    a_session_live: bool,
}

impl From<PrefixedAuth> for AuthRecord {
    fn from(a: PrefixedAuth) -> Self {
        AuthRecord {
            user: UserRecord {
                id: a.a_id,
                username: a.a_username,
                email: a.a_email,
                age: a.a_age,
                role: a.a_role,
                is_active: a.a_is_active,
                token_version: a.a_token_version,
                password_hash: a.a_password_hash,
                created_at: a.a_created_at,
                updated_at: a.a_updated_at,
            },
            session_live: a.a_session_live,
        }
    }
}

/// The token check is a materialized CTE so that its session lookup runs
/// once, not once per row read beside it.
///
/// Rows of a token check joined (`LEFT JOIN ... ON TRUE`) to a read of
/// users: the check, and the users read (none when the read found none).
/// No row at all means the token's user does not exist.
macro_rules! token_and_users {
    ($rows:expr) => {{
        use sqlx::{FromRow, Row};
        let mut users = Vec::with_capacity($rows.len());
        let mut auth = None;
        for row in &$rows {
            if auth.is_none() {
                auth = Some(AuthRecord::from(PrefixedAuth::from_row(row)?));
            }
            if row.try_get::<Option<i64>, _>("id")?.is_some() {
                users.push(UserRecord::from_row(row)?);
            }
        }
        Ok::<_, sqlx::Error>(auth.map(|auth| (auth, users)))
    }};
}

/// The token check of [`load_for_token`] and user `target` (any state), in
/// one statement: one round trip for an authenticated read by id.
pub async fn load_for_token_with_user(
    conn: Conn<'_>,
    user_id: i64,
    session_id: &str,
    target: i64,
) -> Result<Option<(AuthRecord, Option<UserRecord>)>, DbError> {
    const SQL: &str = concat!(
        "WITH a AS MATERIALIZED (SELECT ",
        token_columns!(),
        " FROM users a WHERE a.id = $1) \
         SELECT a.*, t.* FROM a LEFT JOIN (SELECT ",
        user_columns!(),
        " FROM users WHERE id = $3) t ON TRUE"
    );
    let found = on_conn!(conn, c => {
        let rows = sqlx::query(SQL).bind(user_id).bind(session_id).bind(target).fetch_all(c).await?;
        token_and_users!(rows)
    })?;
    Ok(found.map(|(auth, users)| (auth, users.into_iter().next())))
}

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
        ", EXISTS (SELECT 1 FROM sessions s \
                   WHERE s.id = $2 AND s.user_id = users.id AND s.revoked_at IS NULL) \
           AS session_live \
         FROM users WHERE id = $1"
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
