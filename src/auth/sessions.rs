//! Opening and renewing sessions: a refresh token stored as its hash, and
//! an access token that names the session.

use crate::auth::tokens::{hash_refresh_token, new_refresh_token, TokenKeys};
use crate::config::Settings;
use crate::db::users::UserRecord;
use crate::db::{now, sessions, DbPool, Tx};
use crate::domain::auth::TokenResponse;
use crate::error::ApiError;

/// Starts a session for `user`: a refresh token stored as a hash, and an
/// access token naming the session.
pub async fn start_session(
    db: &DbPool,
    keys: &TokenKeys,
    settings: &Settings,
    user: &UserRecord,
) -> Result<TokenResponse, ApiError> {
    let session_id = uuid::Uuid::new_v4().to_string();
    let mut tx = db.begin().await?;
    sessions::create(tx.conn(), &session_id, user.id, now()).await?;
    let refresh_token = add_refresh_token(&mut tx, &session_id, settings).await?;
    tx.commit().await?;
    issue(keys, user, &session_id, refresh_token)
}

pub async fn add_refresh_token(
    tx: &mut Tx,
    session_id: &str,
    settings: &Settings,
) -> Result<String, ApiError> {
    let token = new_refresh_token();
    let now = now();
    let expires_at = now + time::Duration::seconds(settings.refresh_token_ttl as i64);
    sessions::add_refresh_token(
        tx.conn(),
        session_id,
        &hash_refresh_token(&token),
        expires_at,
        now,
    )
    .await?;
    Ok(token)
}

pub fn issue(
    keys: &TokenKeys,
    user: &UserRecord,
    session_id: &str,
    refresh_token: String,
) -> Result<TokenResponse, ApiError> {
    let (access_token, _) = keys
        .issue(user.id, session_id, user.token_version)
        .map_err(ApiError::internal("signing an access token"))?;
    Ok(TokenResponse {
        access_token,
        token_type: "bearer",
        expires_in: keys.access_ttl(),
        refresh_token,
    })
}
