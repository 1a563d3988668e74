//! Opening and renewing sessions: a refresh token stored as its hash, and
//! an access token that names the session.

use crate::auth::tokens::{hash_refresh_token, new_refresh_token, TokenKeys};
use crate::config::Settings;
use crate::db::users::{self, UserRecord};
use crate::db::{now, sessions, DbPool, Tx};
use crate::domain::auth::TokenResponse;
use crate::error::ApiError;

/// The answer to every login that fails, whatever the reason.
pub const BAD_CREDENTIALS: &str = "Incorrect username or password";

/// Starts a session for `user`, as the password check saw it: a refresh
/// token stored as a hash, and an access token naming the session; the
/// user's `last_login_at`. 401 when the user changed since (password,
/// status, sessions ended) or is gone.
pub async fn start_session(
    db: &DbPool,
    keys: &TokenKeys,
    settings: &Settings,
    user: &UserRecord,
    user_agent: Option<&str>,
) -> Result<TokenResponse, ApiError> {
    let session_id = uuid::Uuid::new_v4().to_string();
    let now = now();
    let mut tx = db.begin().await?;
    // Held until commit: a password change, deactivation, deletion or
    // logout of every session either finished before (and the check below
    // sees it) or waits, then ends this session too.
    users::lock(tx.conn(), user.id).await?;
    let opened = sessions::create(
        tx.conn(),
        &session_id,
        user.id,
        user.token_version,
        user_agent,
        now,
    )
    .await?;
    if !opened {
        return Err(ApiError::Unauthorized(BAD_CREDENTIALS.into()));
    }
    users::set_last_login(tx.conn(), user.id, now).await?;
    // The user's ended sessions, and its oldest beyond the cap, go.
    let keep = i64::from(settings.max_sessions_per_user);
    sessions::trim(tx.conn(), user.id, keep).await?;
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

/// A new token pair as the response body, never to be kept by a cache:
/// `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749, 5.1).
pub struct IssuedTokens(pub TokenResponse);

impl<'r> rocket::response::Responder<'r, 'static> for IssuedTokens {
    fn respond_to(self, request: &'r rocket::Request<'_>) -> rocket::response::Result<'static> {
        let mut response = rocket::serde::json::Json(self.0).respond_to(request)?;
        response.set_raw_header("Cache-Control", "no-store");
        response.set_raw_header("Pragma", "no-cache");
        Ok(response)
    }
}

/// Documented as the JSON body it is.
impl rocket_okapi::response::OpenApiResponderInner for IssuedTokens {
    fn responses(
        gen: &mut rocket_okapi::gen::OpenApiGenerator,
    ) -> rocket_okapi::Result<rocket_okapi::okapi::openapi3::Responses> {
        <rocket::serde::json::Json<TokenResponse>>::responses(gen)
    }
}
