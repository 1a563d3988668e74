//! `/api/v1/auth`: the account's lifecycle beyond signing in: password
//! resets, email verification, and the sessions a user can see and end.

use rocket::response::status::{Accepted, NoContent};
use rocket::serde::json::Json;
use rocket::State;
use rocket_okapi::gen::OpenApiGenerator;
use rocket_okapi::okapi::openapi3::Responses;
use rocket_okapi::openapi;
use rocket_okapi::response::OpenApiResponderInner;

use crate::auth::account::{self, BAD_TOKEN};
use crate::auth::password::PasswordHasher;
use crate::auth::AuthUser;
use crate::config::Settings;
use crate::db::account_tokens::TokenKind;
use crate::db::users::{self, Changes};
use crate::db::{now, sessions, Db};
use crate::domain::account::{
    Accepted as AcceptedBody, PasswordResetConfirm, PasswordResetRequest, SessionResponse,
    VerifyEmailRequest,
};
use crate::domain::{Email, Password};
use crate::error::fails::{BAD_REQUEST, NOT_FOUND, UNAVAILABLE};
use crate::error::{ApiError, Fails};
use crate::extract::{SessionId, ValidJson};
use crate::fairings::rate_limit::RateLimits;
use crate::mail::worker::OutboxSignal;

/// The answer to every reset request, whether or not it sent anything.
pub const RESET_ACCEPTED: &str = "If that address is registered, a reset email is on its way";

/// Ask for a password reset email.
///
/// Answers 202 with the same body whether or not the address belongs to an
/// active account, and whether or not an email goes out: at most
/// `rate_limit.account_email_per_hour` go to one address (silently), and a
/// client address may ask `rate_limit.password_reset_per_hour` times an
/// hour (429 past it). The email's link and token work once, for
/// `password_reset_ttl` seconds; a newer request voids them.
#[openapi(tag = "Auth")]
#[post("/auth/password-reset", data = "<body>")]
pub async fn request_password_reset(
    db: &State<Db>,
    settings: &State<Settings>,
    outbox_signal: &State<OutboxSignal>,
    limits: RateLimits<'_>,
    body: ValidJson<PasswordResetRequest>,
) -> Result<Accepted<Json<AcceptedBody>>, Fails<{ UNAVAILABLE }>> {
    let email = Email::parse(body.into_inner().email)?;
    // Spent for known and unknown addresses alike, so both take as long.
    let allowed = limits.quietly_allow_account_email(email.as_str()).await;
    let now = now();
    let mut tx = db.begin().await?;
    let user = users::find_active_by_email(tx.conn(), email.as_str()).await?;
    let queued = match user {
        Some(user) if allowed && settings.smtp.enabled => {
            account::queue_email(&mut tx, settings, &user, TokenKind::PasswordReset, now).await?;
            true
        }
        _ => false,
    };
    tx.commit().await?;
    if queued {
        outbox_signal.job_queued();
    }
    Ok(Accepted(Json(AcceptedBody {
        detail: RESET_ACCEPTED,
    })))
}

/// Set a new password with the token of a reset email.
///
/// The token is spent, every session of the user ends, and the email
/// counts as verified (the link reached its mailbox). An unknown, spent,
/// voided or expired token is 400 `Invalid or expired token`.
#[openapi(tag = "Auth")]
#[post("/auth/password-reset/confirm", data = "<body>")]
pub async fn confirm_password_reset(
    db: &State<Db>,
    hasher: &State<PasswordHasher>,
    body: ValidJson<PasswordResetConfirm>,
) -> Result<NoContent, Fails<{ BAD_REQUEST | UNAVAILABLE }>> {
    let body = body.into_inner();
    let password = Password::parse(body.new_password)?;
    // A bad token is refused before any bcrypt work, and no connection is
    // held while hashing.
    {
        let mut conn = db.acquire().await?;
        account::peek(conn.conn(), &body.token, TokenKind::PasswordReset, now()).await?;
    }
    let password_hash = hasher.hash(&password).await?;
    let now = now();
    let mut tx = db.begin().await?;
    let token = account::spend(&mut tx, &body.token, TokenKind::PasswordReset, now).await?;
    let user = users::find(tx.conn(), token.user_id)
        .await?
        .filter(|user| user.is_active)
        .ok_or_else(|| ApiError::BadRequest(BAD_TOKEN.into()))?;
    let changes = Changes {
        password_hash: Some(password_hash),
        revoke_sessions: true,
        email_verified: (user.email == token.email).then_some(true),
        ..Changes::default()
    };
    users::update(tx.conn(), user.id, &changes, now).await?;
    sessions::revoke_all(tx.conn(), user.id, now).await?;
    tx.commit().await?;
    Ok(NoContent)
}

/// Verify an email address with the token of a verification (or welcome)
/// email.
///
/// The token works once, for `verify_email_ttl` seconds, and only while
/// the account's email is still the address it was sent to.
#[openapi(tag = "Auth")]
#[post("/auth/verify-email", data = "<body>")]
pub async fn verify_email(
    db: &State<Db>,
    body: ValidJson<VerifyEmailRequest>,
) -> Result<NoContent, Fails<{ BAD_REQUEST | UNAVAILABLE }>> {
    let token = body.into_inner().token;
    let now = now();
    let mut tx = db.begin().await?;
    let spent = account::spend(&mut tx, &token, TokenKind::VerifyEmail, now).await?;
    let user = users::find(tx.conn(), spent.user_id)
        .await?
        .filter(|user| user.email == spent.email)
        .ok_or_else(|| ApiError::BadRequest(BAD_TOKEN.into()))?;
    let changes = Changes {
        email_verified: Some(true),
        ..Changes::default()
    };
    users::update(tx.conn(), user.id, &changes, now).await?;
    tx.commit().await?;
    Ok(NoContent)
}

/// What a resend did: queued an email (202), or nothing, the address being
/// verified already (204).
pub enum Resent {
    Queued(Accepted<Json<AcceptedBody>>),
    AlreadyVerified(NoContent),
}

impl<'r> rocket::response::Responder<'r, 'static> for Resent {
    fn respond_to(self, request: &'r rocket::Request<'_>) -> rocket::response::Result<'static> {
        match self {
            Resent::Queued(accepted) => accepted.respond_to(request),
            Resent::AlreadyVerified(none) => none.respond_to(request),
        }
    }
}

impl OpenApiResponderInner for Resent {
    fn responses(gen: &mut OpenApiGenerator) -> rocket_okapi::Result<Responses> {
        let mut responses = <Accepted<Json<AcceptedBody>>>::responses(gen)?;
        let none = <NoContent>::responses(gen)?;
        rocket_okapi::okapi::merge::merge_responses(&mut responses, &none)?;
        Ok(responses)
    }
}

/// Send the signed-in user a new verification email.
///
/// 202 when one is queued (the older link stops working), 204 when the
/// address is verified already; at most `rate_limit.account_email_per_hour`
/// an hour to one address (429 past it).
#[openapi(tag = "Auth")]
#[post("/auth/verify-email/resend")]
pub async fn resend_verification(
    db: &State<Db>,
    settings: &State<Settings>,
    outbox_signal: &State<OutboxSignal>,
    limits: RateLimits<'_>,
    auth: AuthUser,
) -> Result<Resent, Fails<{ UNAVAILABLE }>> {
    if auth.user.email_verified {
        return Ok(Resent::AlreadyVerified(NoContent));
    }
    limits.check_account_email(&auth.user.email).await?;
    let now = now();
    let mut tx = db.begin().await?;
    account::queue_email(&mut tx, settings, &auth.user, TokenKind::VerifyEmail, now).await?;
    tx.commit().await?;
    outbox_signal.job_queued();
    Ok(Resent::Queued(Accepted(Json(AcceptedBody {
        detail: "A verification email is on its way",
    }))))
}

/// List one's open sessions, newest first.
///
/// A session is a login and the refreshes since; `current` marks the one
/// of the token that asks.
#[openapi(tag = "Auth")]
#[get("/auth/sessions")]
pub async fn list_sessions(
    db: &State<Db>,
    auth: AuthUser,
) -> Result<Json<Vec<SessionResponse>>, Fails<{ UNAVAILABLE }>> {
    let mut conn = db.acquire().await?;
    let open = sessions::list_open(conn.conn(), auth.id(), now()).await?;
    let shown = open
        .into_iter()
        .map(|session| SessionResponse {
            current: session.id == auth.session_id,
            id: session.id,
            created_at: session.created_at,
            last_used_at: session.last_used_at,
            user_agent: session.user_agent,
        })
        .collect();
    Ok(Json(shown))
}

/// End one of one's sessions: its access and refresh tokens stop working.
///
/// Another user's session, or an unknown or ended one, is 404.
#[openapi(tag = "Auth")]
#[delete("/auth/sessions/<id>")]
pub async fn end_session(
    db: &State<Db>,
    auth: AuthUser,
    id: SessionId,
) -> Result<NoContent, Fails<{ NOT_FOUND | UNAVAILABLE }>> {
    let id = id.get()?;
    let mut conn = db.acquire().await?;
    if !sessions::revoke(conn.conn(), &id, auth.id(), now()).await? {
        return Err(ApiError::NotFound("Session not found".into()).into());
    }
    Ok(NoContent)
}
