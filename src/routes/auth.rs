//! `/api/v1/auth`: login, token refresh, logout.

use rocket::response::status::NoContent;
use rocket::State;
use rocket_okapi::openapi;

use crate::auth::password::PasswordHasher;
use crate::auth::sessions::{
    add_refresh_token, issue, start_session, IssuedTokens, BAD_CREDENTIALS,
};
use crate::auth::tokens::{hash_refresh_token, TokenKeys};
use crate::auth::AuthUser;
use crate::config::Settings;
use crate::db::users::{self, UserRecord};
use crate::db::{now, sessions, Db};
use crate::domain::auth::{LoginRequest, LogoutRequest, RefreshRequest, TokenResponse};
use crate::error::fails::{BAD_REQUEST, FORBIDDEN, UNAUTHORIZED, UNAVAILABLE};
use crate::error::ApiError;
use crate::error::Fails;
use crate::extract::{LogoutQuery, OptionalJson, TokenGrant, UserAgent, ValidJson, ValidQuery};
use crate::fairings::rate_limit::RateLimits;

/// Spent refresh tokens kept per session: presenting any of them again is
/// detected as reuse and ends the session; older ones are deleted.
const KEPT_SPENT_TOKENS: i64 = 10;

/// Sign in with a username (any case) and password, as JSON.
///
/// A wrong username and a wrong password get the same 401 in the same
/// time; the right password for an inactive account is 403, and with
/// `require_verified_email` for an unverified email too. OAuth2 clients
/// (and Swagger's Authorize button) use `POST /api/v1/auth/token`.
#[openapi(tag = "Auth")]
#[post("/auth/login", data = "<credentials>")]
pub async fn login(
    db: &State<Db>,
    hasher: &State<PasswordHasher>,
    keys: &State<TokenKeys>,
    settings: &State<Settings>,
    limits: RateLimits<'_>,
    agent: UserAgent,
    credentials: ValidJson<LoginRequest>,
) -> Result<IssuedTokens, Fails<{ UNAUTHORIZED | FORBIDDEN | UNAVAILABLE }>> {
    let LoginRequest { username, password } = credentials.into_inner();
    let client = Client {
        limits: &limits,
        agent: agent.0.as_deref(),
    };
    let signed_in = sign_in(db, hasher, keys, settings, &client, &username, &password);
    Ok(IssuedTokens(signed_in.await?))
}

/// Exchange a refresh token for a new pair.
///
/// The token is spent: presenting it again revokes its whole session
/// (theft detection).
#[openapi(tag = "Auth")]
#[post("/auth/refresh", data = "<body>")]
pub async fn refresh(
    db: &State<Db>,
    keys: &State<TokenKeys>,
    settings: &State<Settings>,
    body: ValidJson<RefreshRequest>,
) -> Result<IssuedTokens, Fails<{ UNAUTHORIZED | UNAVAILABLE }>> {
    let token = body.into_inner().refresh_token;
    let pair = refresh_pair(db, keys, settings, &token).await?;
    Ok(IssuedTokens(pair))
}

/// The OAuth2 token endpoint (RFC 6749), form only.
///
/// `grant_type=password` with `username` and `password` signs in (as
/// `POST /auth/login` does); `grant_type=refresh_token` with
/// `refresh_token` exchanges it (as `POST /auth/refresh` does). A refusal is
/// 400 with `error` (`invalid_request`, `invalid_grant` for wrong
/// credentials, an inactive account or a bad refresh token,
/// `unsupported_grant_type`) and `error_description` beside `detail`.
#[openapi(tag = "Auth")]
#[post("/auth/token", data = "<grant>")]
pub async fn token(
    db: &State<Db>,
    hasher: &State<PasswordHasher>,
    keys: &State<TokenKeys>,
    settings: &State<Settings>,
    limits: RateLimits<'_>,
    agent: UserAgent,
    grant: TokenGrant,
) -> Result<IssuedTokens, Fails<{ BAD_REQUEST | UNAVAILABLE }>> {
    let client = Client {
        limits: &limits,
        agent: agent.0.as_deref(),
    };
    let issued = match grant {
        TokenGrant::Password { username, password } => {
            sign_in(db, hasher, keys, settings, &client, &username, &password).await
        }
        TokenGrant::Refresh { refresh_token } => {
            refresh_pair(db, keys, settings, &refresh_token).await
        }
    };
    Ok(issued.map(IssuedTokens).map_err(ApiError::into_oauth)?)
}

/// Who signs in: their rate limits and `User-Agent`.
struct Client<'a> {
    limits: &'a RateLimits<'a>,
    agent: Option<&'a str>,
}

/// Checks a username and password (after the per-username login limit) and
/// starts a session; re-hashes the password if `bcrypt_cost` has changed
/// since its hash was made.
async fn sign_in(
    db: &Db,
    hasher: &PasswordHasher,
    keys: &TokenKeys,
    settings: &Settings,
    client: &Client<'_>,
    username: &str,
    password: &str,
) -> Result<TokenResponse, ApiError> {
    let limits = client.limits;
    limits.check_username(username).await?;
    // Usernames are ASCII, and login folds ASCII case only: a name with any
    // other letter (`İ`, the Kelvin sign) matches no user on any backend.
    // The connection goes back to the pool before bcrypt runs.
    let user = match username.is_ascii() {
        true => {
            let mut conn = db.acquire().await?;
            users::find_by_username(conn.conn(), username).await?
        }
        false => None,
    };
    let user = match user {
        Some(user) if hasher.verify(password, &user.password_hash).await? => user,
        Some(_) => return Err(ApiError::Unauthorized(BAD_CREDENTIALS.into())),
        None => {
            hasher.verify_dummy(password).await?;
            return Err(ApiError::Unauthorized(BAD_CREDENTIALS.into()));
        }
    };
    if !user.is_active {
        return Err(ApiError::Forbidden("Account is inactive".into()));
    }
    // After the password check: a wrong password learns nothing of this.
    if settings.require_verified_email && !user.email_verified {
        return Err(ApiError::Forbidden("Email not verified".into()));
    }
    let tokens = start_session(db, keys, settings, &user, client.agent).await?;
    limits.login_succeeded(username).await;
    if hash_cost(&user.password_hash) != Some(settings.bcrypt_cost) {
        rehash(db, hasher, &user, password).await;
    }
    Ok(tokens)
}

/// The work factor of a bcrypt hash (`$2b$12$...`).
fn hash_cost(hash: &str) -> Option<u32> {
    hash.split('$').nth(2)?.parse().ok()
}

/// Stores `password` hashed at the configured cost, unless the password
/// changed meanwhile. The login has succeeded already: a failure here is
/// logged, and the next login tries again.
async fn rehash(db: &Db, hasher: &PasswordHasher, user: &UserRecord, password: &str) {
    let result = async {
        let new = hasher.rehash(password).await?;
        let mut conn = db.acquire().await?;
        users::rehash(conn.conn(), user.id, &user.password_hash, &new).await?;
        Ok::<(), ApiError>(())
    }
    .await;
    match result {
        Ok(()) => tracing::info!(
            "re-hashed user {}'s password at the configured bcrypt_cost",
            user.id
        ),
        Err(err) => tracing::warn!("re-hashing user {}'s password failed: {err}", user.id),
    }
}

/// Spends a refresh token for a new pair in its session; a spent one
/// presented again revokes the session.
async fn refresh_pair(
    db: &Db,
    keys: &TokenKeys,
    settings: &Settings,
    token: &str,
) -> Result<TokenResponse, ApiError> {
    let token_hash = hash_refresh_token(token);
    let invalid = || ApiError::Unauthorized("Invalid refresh token".into());
    let now = now();
    let mut tx = db.begin().await?;
    let record = sessions::find_refresh_token(tx.conn(), &token_hash)
        .await?
        .ok_or_else(invalid)?;
    if record.session_revoked {
        return Err(ApiError::Unauthorized("Session has been revoked".into()));
    }
    if record.expires_at <= now {
        return Err(ApiError::Unauthorized("Refresh token has expired".into()));
    }
    let fresh = record.spent_at.is_none()
        && sessions::spend_refresh_token(tx.conn(), &token_hash, now).await?;
    // Spent before, or just now by a concurrent refresh: within
    // `refresh_reuse_interval` of that (two tabs refreshing at once) it
    // gets another pair in its session; after, it is a reuse.
    let grace = time::Duration::seconds(settings.refresh_reuse_interval as i64);
    let in_grace =
        settings.refresh_reuse_interval > 0 && now - record.spent_at.unwrap_or(now) <= grace;
    if !fresh && !in_grace {
        sessions::revoke(tx.conn(), &record.session_id, record.user_id, now).await?;
        tx.commit().await?;
        // A stolen token, or a client that retried a refresh: either way
        // the operator should know.
        tracing::warn!(
            "a spent refresh token was presented again: user {}'s session revoked",
            record.user_id
        );
        return Err(ApiError::Unauthorized(
            "Refresh token reuse detected: the session has been revoked".into(),
        ));
    }
    sessions::touch(tx.conn(), &record.session_id, now).await?;
    let user = users::find(tx.conn(), record.user_id)
        .await?
        .filter(|user| user.is_active)
        .ok_or_else(invalid)?;
    let refresh_token = add_refresh_token(&mut tx, &record.session_id, settings).await?;
    sessions::trim_spent(tx.conn(), &record.session_id, KEPT_SPENT_TOKENS).await?;
    tx.commit().await?;
    issue(keys, &user, &record.session_id, refresh_token)
}

/// Sign out: end this session (or the one of `refresh_token`), or with
/// `all=true` every session of the user.
#[openapi(tag = "Auth")]
#[post("/auth/logout?<query..>", data = "<body>")]
pub async fn logout(
    db: &State<Db>,
    auth: AuthUser,
    query: ValidQuery<LogoutQuery>,
    body: OptionalJson<LogoutRequest>,
) -> Result<NoContent, Fails<{ UNAUTHORIZED | UNAVAILABLE }>> {
    let all = query.into_inner()?.all.0;
    let now = now();
    let mut tx = db.begin().await?;
    if all {
        let changes = users::Changes {
            revoke_sessions: true,
            ..users::Changes::default()
        };
        users::update(tx.conn(), auth.id(), &changes, now).await?;
        sessions::revoke_all(tx.conn(), auth.id(), now).await?;
    } else {
        let session_id = match body.0.and_then(|b| b.refresh_token) {
            Some(token) => {
                sessions::find_refresh_token(tx.conn(), &hash_refresh_token(&token))
                    .await?
                    .filter(|record| record.user_id == auth.id())
                    .ok_or_else(|| ApiError::Unauthorized("Invalid refresh token".into()))?
                    .session_id
            }
            None => auth.session_id.clone(),
        };
        sessions::revoke(tx.conn(), &session_id, auth.id(), now).await?;
    }
    tx.commit().await?;
    Ok(NoContent)
}
