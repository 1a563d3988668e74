//! `/api/v1/users`: registration and profiles.

use rocket::response::status::{Created, NoContent};
use rocket::serde::json::Json;
use rocket::State;
use rocket_okapi::openapi;

use crate::auth::account;
use crate::auth::password::PasswordHasher;
use crate::auth::{AuthConn, AuthUser};
use crate::config::Settings;
use crate::db::account_tokens::TokenKind;
use crate::db::users::{self, Changes, SeenUser, UserRecord};
use crate::db::{now, outbox, sessions, uploads, Db, DbPool};
use crate::domain::user::{
    CreateUserRequest, NewUser, PatchUserRequest, ReplaceUserRequest, UserResponse, UserUpdate,
};
use crate::domain::{Age, Role};
use crate::error::fails::{CONFLICT, FORBIDDEN, NOT_FOUND, UNAUTHORIZED, UNAVAILABLE};
use crate::error::ApiError;
use crate::error::Fails;
use crate::extract::{Id, Paging, ValidJson, ValidQuery};
use crate::mail::worker::OutboxSignal;
use crate::mail::{WelcomeEmail, WELCOME_EMAIL};
use crate::uploads::Storage;

/// A user in full, for the user themself or an admin.
impl From<&UserRecord> for UserResponse {
    fn from(user: &UserRecord) -> Self {
        UserResponse {
            id: user.id,
            username: user.username.clone(),
            email: Some(user.email.clone()),
            age: user.age,
            role: user.role,
            is_active: user.is_active,
            email_verified: Some(user.email_verified),
            last_login_at: user.last_login_at,
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

/// A user as the caller who read it may see it: in full if it is the
/// caller's own or the caller is an admin, else without its personal fields.
impl From<&SeenUser> for UserResponse {
    fn from(seen: &SeenUser) -> Self {
        let mut shown = UserResponse::from(&seen.user);
        if seen.user.id != seen.caller_id && seen.caller_role != Role::Admin {
            shown.email = None;
            shown.age = None;
            shown.email_verified = None;
            shown.last_login_at = None;
        }
        shown
    }
}

/// Register a new user.
///
/// Usernames and emails are unique ignoring case (409 when taken). Answers
/// 201 with the user and its `Location`; a welcome email, which carries the
/// email verification link, is queued with the user and sent in the
/// background.
#[openapi(tag = "Users")]
#[post("/users", data = "<body>")]
pub async fn create_user(
    db: &State<Db>,
    settings: &State<Settings>,
    hasher: &State<PasswordHasher>,
    outbox_signal: &State<OutboxSignal>,
    body: ValidJson<CreateUserRequest>,
) -> Result<Created<Json<UserResponse>>, Fails<{ CONFLICT | UNAVAILABLE }>> {
    let new = NewUser::try_from(body.into_inner())?;
    // Hash before taking a connection: bcrypt is slow and the pool is small.
    let password_hash = hasher.hash(&new.password).await?;
    let now = now();
    let mut tx = db.begin().await?;
    let user = users::insert(
        tx.conn(),
        &users::NewUser {
            username: new.username.as_str(),
            email: new.email.as_str(),
            password_hash: &password_hash,
            age: new.age.map(Age::get),
            role: Role::User,
            email_verified: false,
        },
        now,
    )
    .await?;
    // The welcome email, with its verification token, commits with the
    // user, or none of them does.
    if settings.smtp.enabled {
        let token = account::issue(&mut tx, settings, &user, TokenKind::VerifyEmail, now).await?;
        let welcome = serde_json::to_string(&WelcomeEmail {
            user_id: user.id,
            username: user.username.clone(),
            email: user.email.clone(),
            verify_token: Some(token),
        })
        .map_err(ApiError::internal("queueing the welcome email"))?;
        outbox::enqueue(tx.conn(), WELCOME_EMAIL, &welcome, Some(user.id), now).await?;
    }
    tx.commit().await?;
    outbox_signal.job_queued();
    Ok(Created::new(format!("/api/v1/users/{}", user.id)).body(Json(UserResponse::from(&user))))
}

/// List active users, ordered by id.
#[openapi(tag = "Users")]
#[get("/users?<paging..>")]
pub async fn list_users(
    auth: AuthConn,
    paging: ValidQuery<Paging>,
) -> Result<Json<Vec<UserResponse>>, Fails<{ UNAUTHORIZED | UNAVAILABLE }>> {
    let (auth, paging) = auth.parsed(paging.into_inner()).await?;
    let page = auth.active_page(paging.skip, paging.limit).await?;
    Ok(Json(page.iter().map(UserResponse::from).collect()))
}

/// Get one user. Inactive users are visible to admins only.
#[openapi(tag = "Users")]
#[get("/users/<user_id>")]
pub async fn get_user(
    auth: AuthConn,
    user_id: Id,
) -> Result<Json<UserResponse>, Fails<{ UNAUTHORIZED | NOT_FOUND | UNAVAILABLE }>> {
    let (auth, id) = auth.parsed(user_id.get()).await?;
    match auth.visible_user(id).await? {
        Some(user) => Ok(Json(UserResponse::from(&user))),
        None => Err(ApiError::user_not_found().into()),
    }
}

/// Replace a user's profile (an omitted `age` becomes null): the user
/// themself or an admin.
#[openapi(tag = "Users")]
#[put("/users/<user_id>", data = "<body>")]
pub async fn replace_user(
    db: &State<Db>,
    hasher: &State<PasswordHasher>,
    settings: &State<Settings>,
    outbox_signal: &State<OutboxSignal>,
    auth: AuthUser,
    user_id: Id,
    body: ValidJson<ReplaceUserRequest>,
) -> Result<Json<UserResponse>, Fails<{ FORBIDDEN | NOT_FOUND | CONFLICT | UNAVAILABLE }>> {
    let id = user_id.get()?;
    auth.ensure_self_or_admin(id)?;
    let update = UserUpdate::try_from(body.into_inner())?;
    let user = apply_update(db, hasher, settings, outbox_signal, id, update).await?;
    Ok(Json(UserResponse::from(&user)))
}

/// Change some fields of a user (`"age": null` clears the age): the user
/// themself or an admin; `role`, `is_active` and `password` only an admin.
/// Deactivating a user or setting their password ends their sessions.
#[openapi(tag = "Users")]
#[patch("/users/<user_id>", data = "<body>")]
pub async fn patch_user(
    db: &State<Db>,
    hasher: &State<PasswordHasher>,
    settings: &State<Settings>,
    outbox_signal: &State<OutboxSignal>,
    auth: AuthUser,
    user_id: Id,
    body: ValidJson<PatchUserRequest>,
) -> Result<Json<UserResponse>, Fails<{ FORBIDDEN | NOT_FOUND | CONFLICT | UNAVAILABLE }>> {
    let id = user_id.get()?;
    auth.ensure_self_or_admin(id)?;
    let update = UserUpdate::try_from(body.into_inner())?;
    if update.needs_admin() && !auth.is_admin() {
        return Err(ApiError::Forbidden(
            "Only an admin may change role, is_active or password".into(),
        )
        .into());
    }
    let user = apply_update(db, hasher, settings, outbox_signal, id, update).await?;
    Ok(Json(UserResponse::from(&user)))
}

/// Delete a user, with their sessions and uploads: the user themself or an
/// admin.
///
/// The last active admin cannot be deleted (409).
#[openapi(tag = "Users")]
#[delete("/users/<user_id>")]
pub async fn delete_user(
    db: &State<Db>,
    storage: &State<Storage>,
    auth: AuthUser,
    user_id: Id,
) -> Result<NoContent, Fails<{ FORBIDDEN | NOT_FOUND | CONFLICT | UNAVAILABLE }>> {
    let id = user_id.get()?;
    auth.ensure_self_or_admin(id)?;
    delete_account(db, storage, id).await?;
    Ok(NoContent)
}

/// Deletes user `id` with their sessions, tokens, jobs and uploads, keeping
/// at least one active admin.
pub(crate) async fn delete_account(
    db: &DbPool,
    storage: &Storage,
    id: i64,
) -> Result<(), ApiError> {
    let mut tx = db.begin().await?;
    let user = users::find(tx.conn(), id)
        .await?
        .ok_or_else(ApiError::user_not_found)?;
    if user.role == Role::Admin && user.is_active {
        ensure_another_admin(&mut tx, id, "delete").await?;
    }
    // Rows go with the user (cascade); the files once that has committed.
    let files = uploads::ids_of_owner(tx.conn(), id).await?;
    users::delete(tx.conn(), id).await?;
    tx.commit().await?;
    for file in files {
        storage.remove(&file).await;
    }
    Ok(())
}

/// Applies a validated update in one transaction, keeping at least one
/// active admin; a new password or a deactivation ends every session, and
/// a new email is unverified and sent a verification link.
pub(crate) async fn apply_update(
    db: &DbPool,
    hasher: &PasswordHasher,
    settings: &Settings,
    outbox_signal: &OutboxSignal,
    id: i64,
    update: UserUpdate,
) -> Result<UserRecord, ApiError> {
    let password_hash = match &update.password {
        Some(password) => Some(hasher.hash(password).await?),
        None => None,
    };
    let changes = Changes {
        revoke_sessions: password_hash.is_some() || update.is_active == Some(false),
        username: update.username.map(|u| u.into_inner()),
        email: update.email.map(|e| e.into_inner()),
        age: update.age.map(|age| age.map(Age::get)),
        role: update.role,
        is_active: update.is_active,
        password_hash,
        email_verified: None,
    };
    let mut tx = db.begin().await?;
    let current = users::find(tx.conn(), id)
        .await?
        .ok_or_else(ApiError::user_not_found)?;
    if changes.is_empty() {
        return Ok(current);
    }
    let loses_admin = current.role == Role::Admin
        && current.is_active
        && (changes.role == Some(Role::User) || changes.is_active == Some(false));
    if loses_admin {
        ensure_another_admin(&mut tx, id, "demote or deactivate").await?;
    }
    let now = now();
    let user = users::update(tx.conn(), id, &changes, now)
        .await?
        .ok_or_else(ApiError::user_not_found)?;
    if changes.revoke_sessions {
        sessions::revoke_all(tx.conn(), id, now).await?;
    }
    // A new address is unverified (the update saw to it) until the link
    // sent to it is opened; the older token, sent to the old address, is
    // replaced.
    let new_address = user.email != current.email;
    if new_address {
        account::queue_email(&mut tx, settings, &user, TokenKind::VerifyEmail, now).await?;
    }
    tx.commit().await?;
    if new_address {
        outbox_signal.job_queued();
    }
    Ok(user)
}

/// 409 unless an active admin other than `id` remains.
async fn ensure_another_admin(
    tx: &mut crate::db::Tx,
    id: i64,
    action: &str,
) -> Result<(), ApiError> {
    let admins = users::lock_active_admins(tx.conn()).await?;
    if admins.iter().any(|&admin| admin != id) {
        Ok(())
    } else {
        Err(ApiError::Conflict(format!(
            "Cannot {action} the last active admin"
        )))
    }
}
