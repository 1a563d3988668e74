//! Queries of the `users` table.

use std::time::{Duration, Instant};

use sqlx::{Connection, SqliteConnection};
use time::OffsetDateTime;

use super::sessions::{bind_token, caller_join, TokenClaims};
use super::{on_conn, Conn, DbError};
use crate::domain::Role;

/// The columns of [`UserRecord`], in one place for every query.
macro_rules! user_columns {
    () => {
        "id, username, email, age, role, is_active, email_verified, last_login_at, \
         token_version, password_hash, created_at, updated_at"
    };
}

/// A row of `users`. It holds the password hash: it never leaves the server
/// (responses are built from it field by field) and has no `Debug`.
#[derive(Clone, sqlx::FromRow)]
pub struct UserRecord {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub age: Option<i32>,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub is_active: bool,
    /// Whether the user proved the address (a verification or reset link).
    pub email_verified: bool,
    pub last_login_at: Option<OffsetDateTime>,
    /// Bumped to end every session of the user at once.
    pub token_version: i64,
    pub password_hash: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// A user read for a signed-in caller, with who the caller is, read in the
/// same statement that checked the caller's token.
#[derive(sqlx::FromRow)]
pub struct SeenUser {
    #[sqlx(flatten)]
    pub user: UserRecord,
    pub caller_id: i64,
    #[sqlx(try_from = "String")]
    pub caller_role: Role,
}

pub struct NewUser<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub password_hash: &'a str,
    pub age: Option<i32>,
    pub role: Role,
    /// Admin-created accounts are verified; registrations are not.
    pub email_verified: bool,
}

/// A partial update: `None` leaves a column as it is.
#[derive(Default)]
pub struct Changes {
    pub username: Option<String>,
    pub email: Option<String>,
    /// `Some(None)` clears the age.
    pub age: Option<Option<i32>>,
    pub role: Option<Role>,
    pub is_active: Option<bool>,
    pub password_hash: Option<String>,
    /// `Some(true)` marks the email verified. A changed email is unverified
    /// whatever this says.
    pub email_verified: Option<bool>,
    /// Ends every session of the user (bumps `token_version`).
    pub revoke_sessions: bool,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.username.is_none()
            && self.email.is_none()
            && self.age.is_none()
            && self.role.is_none()
            && self.is_active.is_none()
            && self.password_hash.is_none()
            && self.email_verified.is_none()
            && !self.revoke_sessions
    }
}

/// Inserts a user; a taken username or email is [`DbError::Conflict`].
pub async fn insert(
    conn: Conn<'_>,
    user: &NewUser<'_>,
    now: OffsetDateTime,
) -> Result<UserRecord, DbError> {
    const SQL: &str = concat!(
        "INSERT INTO users (username, email, password_hash, age, role, is_active, \
         email_verified, token_version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, TRUE, $7, 0, $6, $6) RETURNING ",
        user_columns!()
    );
    let row = on_conn!(conn, c => sqlx::query_as::<_, UserRecord>(SQL)
        .bind(user.username)
        .bind(user.email)
        .bind(user.password_hash)
        .bind(user.age)
        .bind(user.role.as_str())
        .bind(now)
        .bind(user.email_verified)
        .fetch_one(c)
        .await)?;
    Ok(row)
}

pub async fn find(conn: Conn<'_>, id: i64) -> Result<Option<UserRecord>, DbError> {
    const SQL: &str = concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1");
    let row = on_conn!(conn, c => sqlx::query_as::<_, UserRecord>(SQL)
        .bind(id)
        .fetch_optional(c)
        .await)?;
    Ok(row)
}

/// Finds a user by username, ignoring case (served by the unique index on
/// `lower(username)`).
pub async fn find_by_username(
    conn: Conn<'_>,
    username: &str,
) -> Result<Option<UserRecord>, DbError> {
    // No username holds a NUL, and PostgreSQL text cannot even compare one.
    if username.contains('\0') {
        return Ok(None);
    }
    const SQL: &str = concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE lower(username) = lower($1)"
    );
    let row = on_conn!(conn, c => sqlx::query_as::<_, UserRecord>(SQL)
        .bind(username)
        .fetch_optional(c)
        .await)?;
    Ok(row)
}

/// A page of active users ordered by id, only if `token` may act
/// (`caller_join!`): an authenticated page in one statement. Empty when it
/// may not.
pub async fn list_if_token(
    conn: Conn<'_>,
    token: &TokenClaims<'_>,
    skip: i64,
    limit: i64,
) -> Result<Vec<SeenUser>, DbError> {
    const SQL: &str = concat!(
        "SELECT ",
        user_columns!(),
        ", caller_id, caller_role FROM users",
        caller_join!(),
        "WHERE is_active ORDER BY id",
        limit_offset!("$4", "$5")
    );
    let rows = on_conn!(conn, c => bind_token!(sqlx::query_as::<_, SeenUser>(SQL), token)
        .bind(limit)
        .bind(skip)
        .fetch_all(c)
        .await)?;
    Ok(rows)
}

/// User `id` (any state), only if `token` may act, with who reads it: an
/// authenticated read by id in one statement. `None` when there is no such
/// user or the token may not act.
pub async fn find_if_token(
    conn: Conn<'_>,
    token: &TokenClaims<'_>,
    id: i64,
) -> Result<Option<SeenUser>, DbError> {
    const SQL: &str = concat!(
        "SELECT ",
        user_columns!(),
        ", caller_id, caller_role FROM users",
        caller_join!(),
        "WHERE id = $4"
    );
    let found = on_conn!(conn, c => bind_token!(sqlx::query_as::<_, SeenUser>(SQL), token)
        .bind(id)
        .fetch_optional(c)
        .await)?;
    Ok(found)
}

/// Applies `changes` to user `id`; `None` when there is no such user.
pub async fn update(
    conn: Conn<'_>,
    id: i64,
    changes: &Changes,
    now: OffsetDateTime,
) -> Result<Option<UserRecord>, DbError> {
    const SQL: &str = concat!(
        "UPDATE users SET \
           username = COALESCE($2, username), \
           email = COALESCE($3, email), \
           age = CASE WHEN $4 THEN $5 ELSE age END, \
           role = COALESCE($6, role), \
           is_active = COALESCE($7, is_active), \
           password_hash = COALESCE($8, password_hash), \
           token_version = token_version + $9, \
           updated_at = $10, \
           email_verified = CASE WHEN COALESCE($3, email) <> email THEN FALSE \
                                 ELSE COALESCE($11, email_verified) END \
         WHERE id = $1 RETURNING ",
        user_columns!()
    );
    let row = on_conn!(conn, c => sqlx::query_as::<_, UserRecord>(SQL)
        .bind(id)
        .bind(changes.username.as_deref())
        .bind(changes.email.as_deref())
        .bind(changes.age.is_some())
        .bind(changes.age.flatten())
        .bind(changes.role.map(Role::as_str))
        .bind(changes.is_active)
        .bind(changes.password_hash.as_deref())
        .bind(i64::from(changes.revoke_sessions))
        .bind(now)
        .bind(changes.email_verified)
        .fetch_optional(c)
        .await)?;
    Ok(row)
}

/// Deletes user `id`; whether there was one.
pub async fn delete(conn: Conn<'_>, id: i64) -> Result<bool, DbError> {
    let deleted = on_conn!(conn, c => sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id)
        .execute(c)
        .await
        .map(|done| done.rows_affected()))?;
    Ok(deleted > 0)
}

/// The ids of the active admins, locked until the transaction ends so that
/// two concurrent demotions cannot both see the other admin and leave none.
/// (SQLite write transactions already hold the database's write lock.)
pub async fn lock_active_admins(conn: Conn<'_>) -> Result<Vec<i64>, DbError> {
    const SELECT: &str = "SELECT id FROM users WHERE role = 'admin' AND is_active ORDER BY id";
    const SELECT_FOR_UPDATE: &str =
        "SELECT id FROM users WHERE role = 'admin' AND is_active ORDER BY id FOR UPDATE";
    let ids = match conn {
        Conn::Sqlite(c) => sqlx::query_scalar(SELECT).fetch_all(c).await?,
        Conn::Postgres(c) => sqlx::query_scalar(SELECT_FOR_UPDATE).fetch_all(c).await?,
    };
    Ok(ids)
}

/// The start and the end of [`search`]'s statements.
macro_rules! search_select {
    () => {
        concat!(
            "SELECT ",
            user_columns!(),
            ", caller_id, caller_role FROM users",
            caller_join!(),
            "WHERE is_active AND "
        )
    };
}
macro_rules! search_order {
    () => {
        concat!(" ORDER BY lower(username), id", limit_offset!("$5", "$6"))
    };
}

/// Active users whose username contains `needle` (already lowercased) as
/// literal text, or whose email does for an admin caller, ordered by
/// username ignoring case, then id; only if `token` may act (one statement;
/// empty when it may not). The statement is stopped after `time_limit`
/// ([`DbError::TimedOut`]): a text that matches most of a large table
/// cannot hold a connection for long.
pub async fn search(
    conn: Conn<'_>,
    token: &TokenClaims<'_>,
    needle: &str,
    page: (i64, i64),
    time_limit: Duration,
) -> Result<Vec<SeenUser>, DbError> {
    let (skip, limit) = page;
    // No username or email holds a NUL, and PostgreSQL text cannot even
    // compare one.
    if needle.contains('\0') {
        return Ok(Vec::new());
    }
    let rows = match conn {
        Conn::Sqlite(c) => {
            // SQLite has no statement timeout: a progress handler, called
            // every thousand steps of the statement, stops it past the
            // deadline. It must not outlive this statement.
            let deadline = Instant::now() + time_limit;
            c.lock_handle()
                .await?
                .set_progress_handler(1000, move || Instant::now() < deadline);
            let rows = search_sqlite(c, token, needle, skip, limit).await;
            c.lock_handle().await?.remove_progress_handler();
            rows?
        }
        Conn::Postgres(c) => {
            const SQL: &str = concat!(
                search_select!(),
                // Both indexes find the candidates; then emails count
                // for admins only.
                "(lower(username) LIKE $4 ESCAPE '\\' OR email LIKE $4 ESCAPE '\\') \
                 AND (caller_role = 'admin' OR lower(username) LIKE $4 ESCAPE '\\')",
                search_order!()
            );
            let pattern = format!("%{}%", escape_like(needle));
            // SET LOCAL lasts until the transaction ends.
            let mut tx = c.begin().await?;
            let millis = time_limit.as_millis().max(1);
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "SET LOCAL statement_timeout = {millis}"
            )))
            .execute(&mut *tx)
            .await?;
            let rows = bind_token!(sqlx::query_as::<_, SeenUser>(SQL), token)
                .bind(pattern)
                .bind(limit)
                .bind(skip)
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            rows
        }
    };
    Ok(rows)
}

/// [`search`]'s statement on SQLite.
async fn search_sqlite(
    c: &mut SqliteConnection,
    token: &TokenClaims<'_>,
    needle: &str,
    skip: i64,
    limit: i64,
) -> Result<Vec<SeenUser>, sqlx::Error> {
    let rows = match needle {
        // The trigram index needs three characters; shorter needles scan.
        needle if needle.chars().count() >= 3 => {
            const SQL: &str = concat!(
                search_select!(),
                "id IN (SELECT rowid FROM users_search WHERE users_search MATCH $4) \
                 AND (caller_role = 'admin' OR instr(lower(username), $7) > 0)",
                search_order!()
            );
            // A quoted FTS5 string is matched literally (`"` doubled).
            let phrase = format!("\"{}\"", needle.replace('"', "\"\""));
            bind_token!(sqlx::query_as::<_, SeenUser>(SQL), token)
                .bind(phrase)
                .bind(limit)
                .bind(skip)
                .bind(needle)
                .fetch_all(c)
                .await?
        }
        needle => {
            const SQL: &str = concat!(
                search_select!(),
                "(instr(lower(username), $4) > 0 \
                  OR (caller_role = 'admin' AND instr(email, $4) > 0))",
                search_order!()
            );
            bind_token!(sqlx::query_as::<_, SeenUser>(SQL), token)
                .bind(needle)
                .bind(limit)
                .bind(skip)
                .fetch_all(c)
                .await?
        }
    };
    Ok(rows)
}

/// `text` with LIKE's wildcards and escape character made literal.
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// Up to `limit` users with ids above `after`, ordered by id: keyset
/// pagination, whose cost does not grow with depth; only if `token` may act
/// (one statement; empty when it may not).
pub async fn list_after(
    conn: Conn<'_>,
    token: &TokenClaims<'_>,
    after: i64,
    include_inactive: bool,
    limit: i64,
) -> Result<Vec<SeenUser>, DbError> {
    const SQL: &str = concat!(
        "SELECT ",
        user_columns!(),
        ", caller_id, caller_role FROM users",
        caller_join!(),
        "WHERE id > $4 AND (is_active OR $5) ORDER BY id",
        limit_offset!("$6")
    );
    let rows = on_conn!(conn, c => bind_token!(sqlx::query_as::<_, SeenUser>(SQL), token)
        .bind(after)
        .bind(include_inactive)
        .bind(limit)
        .fetch_all(c)
        .await)?;
    Ok(rows)
}

/// Locks user `id`'s row until the transaction ends, so that what depends
/// on the user (the upload quota, opening a session against its token
/// version) is decided one writer at a time. (SQLite write transactions
/// already hold the database's write lock.)
pub async fn lock(conn: Conn<'_>, id: i64) -> Result<(), DbError> {
    if let Conn::Postgres(c) = conn {
        sqlx::query("SELECT id FROM users WHERE id = $1 FOR UPDATE")
            .bind(id)
            .execute(c)
            .await?;
    }
    Ok(())
}

/// Records a login.
pub async fn set_last_login(conn: Conn<'_>, id: i64, now: OffsetDateTime) -> Result<(), DbError> {
    const SQL: &str = "UPDATE users SET last_login_at = $2 WHERE id = $1";
    on_conn!(conn, c => sqlx::query(SQL).bind(id).bind(now).execute(c).await.map(drop))?;
    Ok(())
}

/// Replaces user `id`'s password hash with the same password hashed at
/// another cost, only if the hash is still `old` (a password change in
/// between wins). Sessions and `updated_at` are untouched: nothing the user
/// sees changed.
pub async fn rehash(conn: Conn<'_>, id: i64, old: &str, new: &str) -> Result<bool, DbError> {
    const SQL: &str = "UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2";
    let updated = on_conn!(conn, c => sqlx::query(SQL)
        .bind(id)
        .bind(old)
        .bind(new)
        .execute(c)
        .await
        .map(|done| done.rows_affected()))?;
    Ok(updated == 1)
}

/// The active user with this (normalized) email.
pub async fn find_active_by_email(
    conn: Conn<'_>,
    email: &str,
) -> Result<Option<UserRecord>, DbError> {
    const SQL: &str = concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE email = $1 AND is_active"
    );
    let row = on_conn!(conn, c => sqlx::query_as::<_, UserRecord>(SQL)
        .bind(email)
        .fetch_optional(c)
        .await)?;
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::escape_like;

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(escape_like(r"a%b_c\d"), r"a\%b\_c\\d");
        assert_eq!(escape_like("plain"), "plain");
    }
}
