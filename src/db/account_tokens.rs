//! Queries of `account_tokens`: the one-time tokens of password resets and
//! email verification, stored only as their SHA-256.

use time::OffsetDateTime;

use super::{on_conn, Conn, DbError};

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    PasswordReset,
    VerifyEmail,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::PasswordReset => "password_reset",
            TokenKind::VerifyEmail => "verify_email",
        }
    }
}

/// A token taken for use.
#[derive(Debug, sqlx::FromRow)]
pub struct AccountToken {
    pub user_id: i64,
    /// The address it was sent to.
    pub email: String,
    pub expires_at: OffsetDateTime,
}

/// Stores a token for user `user_id`, replacing the user's older one of its
/// kind (which stops working).
pub async fn replace(
    conn: Conn<'_>,
    token_hash: &str,
    user_id: i64,
    kind: TokenKind,
    email: &str,
    expires_at: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<(), DbError> {
    const SQL: &str =
        "INSERT INTO account_tokens (token_hash, user_id, kind, email, expires_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (user_id, kind) DO UPDATE SET token_hash = excluded.token_hash, \
           email = excluded.email, expires_at = excluded.expires_at, \
           created_at = excluded.created_at";
    on_conn!(conn, c => sqlx::query(SQL)
        .bind(token_hash)
        .bind(user_id)
        .bind(kind.as_str())
        .bind(email)
        .bind(expires_at)
        .bind(now)
        .execute(c)
        .await
        .map(drop))?;
    Ok(())
}

/// Deletes the token of this hash and kind and returns it: whoever takes it
/// is its one use, expired or not (the caller checks).
pub async fn take(
    conn: Conn<'_>,
    token_hash: &str,
    kind: TokenKind,
) -> Result<Option<AccountToken>, DbError> {
    const SQL: &str = "DELETE FROM account_tokens WHERE token_hash = $1 AND kind = $2 \
                       RETURNING user_id, email, expires_at";
    let row = on_conn!(conn, c => sqlx::query_as::<_, AccountToken>(SQL)
        .bind(token_hash)
        .bind(kind.as_str())
        .fetch_optional(c)
        .await)?;
    Ok(row)
}

/// The token of this hash and kind, left in place.
pub async fn peek(
    conn: Conn<'_>,
    token_hash: &str,
    kind: TokenKind,
) -> Result<Option<AccountToken>, DbError> {
    const SQL: &str = "SELECT user_id, email, expires_at FROM account_tokens \
                       WHERE token_hash = $1 AND kind = $2";
    let row = on_conn!(conn, c => sqlx::query_as::<_, AccountToken>(SQL)
        .bind(token_hash)
        .bind(kind.as_str())
        .fetch_optional(c)
        .await)?;
    Ok(row)
}

/// Deletes tokens that expired before `cutoff`; how many.
pub async fn prune(conn: Conn<'_>, cutoff: OffsetDateTime) -> Result<u64, DbError> {
    const SQL: &str = "DELETE FROM account_tokens WHERE expires_at < $1";
    let deleted = on_conn!(conn, c => sqlx::query(SQL)
        .bind(cutoff)
        .execute(c)
        .await
        .map(|done| done.rows_affected()))?;
    Ok(deleted)
}
