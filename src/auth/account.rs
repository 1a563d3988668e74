//! One-time account tokens, for email verification and password resets:
//! 256 random bits (made as refresh tokens are), stored only as their
//! SHA-256, single-use, expiring, and a newer one voids the older of its
//! kind. Each is queued with the email that carries it, in the same
//! transaction.

use time::OffsetDateTime;

use crate::auth::tokens::{hash_refresh_token, new_refresh_token};
use crate::config::Settings;
use crate::db::account_tokens::{self, AccountToken, TokenKind};
use crate::db::users::UserRecord;
use crate::db::{outbox, Tx};
use crate::error::ApiError;
use crate::mail::{TokenEmail, PASSWORD_RESET, VERIFY_EMAIL};

/// The answer to any token that cannot be used.
pub const BAD_TOKEN: &str = "Invalid or expired token";

/// A new token of `kind` for `user`, replacing the older one of its kind.
pub async fn issue(
    tx: &mut Tx,
    settings: &Settings,
    user: &UserRecord,
    kind: TokenKind,
    now: OffsetDateTime,
) -> Result<String, ApiError> {
    let token = new_refresh_token();
    let ttl = match kind {
        TokenKind::PasswordReset => settings.password_reset_ttl,
        TokenKind::VerifyEmail => settings.verify_email_ttl,
    };
    let expires_at = now + time::Duration::seconds(ttl as i64);
    account_tokens::replace(
        tx.conn(),
        &hash_refresh_token(&token),
        user.id,
        kind,
        &user.email,
        expires_at,
        now,
    )
    .await?;
    Ok(token)
}

/// Queues the email of a new token of `kind` for `user`, to `user.email`.
/// Nothing when emails are off (`smtp.enabled = false`).
pub async fn queue_email(
    tx: &mut Tx,
    settings: &Settings,
    user: &UserRecord,
    kind: TokenKind,
    now: OffsetDateTime,
) -> Result<(), ApiError> {
    if !settings.smtp.enabled {
        return Ok(());
    }
    let token = issue(tx, settings, user, kind, now).await?;
    let job = match kind {
        TokenKind::PasswordReset => PASSWORD_RESET,
        TokenKind::VerifyEmail => VERIFY_EMAIL,
    };
    let payload = serde_json::to_string(&TokenEmail {
        user_id: user.id,
        username: user.username.clone(),
        email: user.email.clone(),
        token,
    })
    .map_err(ApiError::internal("queueing an account email"))?;
    outbox::enqueue(tx.conn(), job, &payload, Some(user.id), now).await?;
    Ok(())
}

/// Spends token `token` of `kind`: the one use of it, if it is known and
/// unexpired (400 `Invalid or expired token` otherwise).
pub async fn spend(
    tx: &mut Tx,
    token: &str,
    kind: TokenKind,
    now: OffsetDateTime,
) -> Result<AccountToken, ApiError> {
    let taken = account_tokens::take(tx.conn(), &hash_refresh_token(token), kind).await?;
    taken
        .filter(|taken| taken.expires_at > now)
        .ok_or_else(|| ApiError::BadRequest(BAD_TOKEN.into()))
}

/// Token `token` of `kind`, if it is known and unexpired, left in place (a
/// check before slow work; [`spend`] is its use).
pub async fn peek(
    conn: crate::db::Conn<'_>,
    token: &str,
    kind: TokenKind,
    now: OffsetDateTime,
) -> Result<AccountToken, ApiError> {
    let found = account_tokens::peek(conn, &hash_refresh_token(token), kind).await?;
    found
        .filter(|found| found.expires_at > now)
        .ok_or_else(|| ApiError::BadRequest(BAD_TOKEN.into()))
}
