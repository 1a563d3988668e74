//! `/api/v1/users/me`: the signed-in user's own account.

use rocket::response::status::NoContent;
use rocket::serde::json::Json;
use rocket::State;
use rocket_okapi::openapi;

use super::users::{apply_update, delete_account};
use crate::auth::password::PasswordHasher;
use crate::auth::AuthUser;
use crate::config::Settings;
use crate::db::Db;
use crate::domain::auth::ChangePasswordRequest;
use crate::domain::user::PatchMeRequest;
use crate::domain::user::{UserResponse, UserUpdate};
use crate::domain::Password;
use crate::error::fails::{BAD_REQUEST, CONFLICT, UNAVAILABLE};
use crate::error::ApiError;
use crate::error::Fails;
use crate::extract::ValidJson;
use crate::fairings::rate_limit::RateLimits;
use crate::mail::worker::OutboxSignal;
use crate::uploads::Storage;

/// The signed-in user.
#[openapi(tag = "Me")]
#[get("/users/me")]
pub fn get_me(auth: AuthUser) -> Result<Json<UserResponse>, ApiError> {
    Ok(Json(UserResponse::from(&auth.user)))
}

/// Change one's own username, email or age.
///
/// A new email is unverified until the link sent to it is opened.
#[openapi(tag = "Me")]
#[patch("/users/me", data = "<body>")]
pub async fn patch_me(
    db: &State<Db>,
    hasher: &State<PasswordHasher>,
    settings: &State<Settings>,
    outbox_signal: &State<OutboxSignal>,
    auth: AuthUser,
    body: ValidJson<PatchMeRequest>,
) -> Result<Json<UserResponse>, Fails<{ CONFLICT | UNAVAILABLE }>> {
    let update = UserUpdate::try_from(body.into_inner())?;
    let user = apply_update(db, hasher, settings, outbox_signal, auth.id(), update).await?;
    Ok(Json(UserResponse::from(&user)))
}

/// Delete one's own account, with its sessions and uploads.
///
/// The last active admin cannot be deleted (409).
#[openapi(tag = "Me")]
#[delete("/users/me")]
pub async fn delete_me(
    db: &State<Db>,
    storage: &State<Storage>,
    auth: AuthUser,
) -> Result<NoContent, Fails<{ CONFLICT | UNAVAILABLE }>> {
    delete_account(db, storage, auth.id()).await?;
    Ok(NoContent)
}

/// Change one's own password; every session of the user ends.
///
/// A wrong current password is 400 (the session itself is fine); after 5
/// wrong ones in 15 minutes the user gets 429 until one comes back.
#[openapi(tag = "Me")]
#[put("/users/me/password", data = "<body>")]
pub async fn change_password(
    db: &State<Db>,
    hasher: &State<PasswordHasher>,
    settings: &State<Settings>,
    outbox_signal: &State<OutboxSignal>,
    limits: RateLimits<'_>,
    auth: AuthUser,
    body: ValidJson<ChangePasswordRequest>,
) -> Result<NoContent, Fails<{ BAD_REQUEST | UNAVAILABLE }>> {
    let body = body.into_inner();
    limits.check_password_attempt(auth.id()).await?;
    if !hasher
        .verify(&body.current_password, &auth.user.password_hash)
        .await?
    {
        return Err(ApiError::BadRequest("Current password is incorrect".into()).into());
    }
    limits.password_confirmed(auth.id()).await;
    let update = UserUpdate {
        password: Some(Password::parse(body.new_password)?),
        ..UserUpdate::default()
    };
    apply_update(db, hasher, settings, outbox_signal, auth.id(), update).await?;
    Ok(NoContent)
}
