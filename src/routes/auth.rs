//! `/api/v1/auth`: login, token refresh, logout.

use rocket::data::{Data, FromData, Outcome};
use rocket::form::{Form, Lenient};
use rocket::http::ContentType;
use rocket::request::Request;
use rocket::response::status::NoContent;
use rocket::serde::json::Json;
use rocket::State;
use rocket_okapi::gen::OpenApiGenerator;
use rocket_okapi::okapi::openapi3::{MediaType, RequestBody};
use rocket_okapi::openapi;
use rocket_okapi::request::OpenApiFromData;
use schemars::JsonSchema;
use validator::Validate;

use crate::auth::password::PasswordHasher;
use crate::auth::tokens::{hash_refresh_token, new_refresh_token, TokenKeys};
use crate::auth::AuthUser;
use crate::config::Settings;
use crate::db::users::{self, UserRecord};
use crate::db::{now, sessions, Db, DbPool, Tx};
use crate::domain::auth::{LoginForm, LoginRequest, LogoutRequest, RefreshRequest, TokenResponse};
use crate::error::{stash, ApiError};
use crate::extract::{
    form_errors, parse_json_body, read_limited, Flag, OptionalJson, ValidJson, ValidQuery,
};
use crate::fairings::rate_limit::RateLimits;

const BAD_CREDENTIALS: &str = "Incorrect username or password";

/// Login credentials, from a JSON body or an OAuth2 password-grant form.
pub struct Credentials {
    username: String,
    password: String,
}

#[rocket::async_trait]
impl<'r> FromData<'r> for Credentials {
    type Error = ();

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> Outcome<'r, Self> {
        match read_credentials(req, data).await {
            Ok(credentials) => Outcome::Success(credentials),
            Err(err) => Outcome::Error((stash(req, err), ())),
        }
    }
}

async fn read_credentials(req: &Request<'_>, data: Data<'_>) -> Result<Credentials, ApiError> {
    match req.content_type() {
        Some(ct) if ct.is_json() => {
            let body: LoginRequest = parse_json_body(req, data).await?;
            Ok(Credentials {
                username: body.username,
                password: body.password,
            })
        }
        Some(ct) if ct.is_form() => {
            let bytes = read_limited(req, data, "form").await?;
            let text = std::str::from_utf8(&bytes).map_err(|_| {
                ApiError::validation("body", "json_invalid", "The form is not valid UTF-8")
            })?;
            let form = Form::<Lenient<LoginForm>>::parse(text)
                .map_err(|errors| ApiError::Validation(form_errors("body", &errors)))?
                .into_inner();
            if form.grant_type.as_deref().is_some_and(|g| g != "password") {
                return Err(ApiError::BadRequest(
                    "Unsupported grant_type: only \"password\" is supported".into(),
                ));
            }
            Ok(Credentials {
                username: form.username,
                password: form.password,
            })
        }
        _ => Err(ApiError::UnsupportedMediaType(
            "Content-Type must be application/json or application/x-www-form-urlencoded".into(),
        )),
    }
}

impl<'r> OpenApiFromData<'r> for Credentials {
    fn request_body(gen: &mut OpenApiGenerator) -> rocket_okapi::Result<RequestBody> {
        let json = MediaType {
            schema: Some(gen.json_schema::<LoginRequest>()),
            ..Default::default()
        };
        let form = MediaType {
            schema: Some(gen.json_schema::<LoginForm>()),
            ..Default::default()
        };
        Ok(RequestBody {
            content: [
                (ContentType::JSON.to_string(), json),
                (ContentType::Form.to_string(), form),
            ]
            .into_iter()
            .collect(),
            required: true,
            ..Default::default()
        })
    }
}

/// Starts a session for `user`: a refresh token stored as a hash, and an
/// access token naming the session.
async fn start_session(
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

async fn add_refresh_token(
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

fn issue(
    keys: &TokenKeys,
    user: &UserRecord,
    session_id: &str,
    refresh_token: String,
) -> Result<TokenResponse, ApiError> {
    let (access_token, _) = keys
        .issue(user.id, session_id, user.token_version)
        .map_err(ApiError::internal)?;
    Ok(TokenResponse {
        access_token,
        token_type: "bearer",
        expires_in: keys.access_ttl(),
        refresh_token,
    })
}

/// Sign in with a username (any case) and password.
///
/// Accepts JSON or the OAuth2 password-grant form. A wrong username and a
/// wrong password get the same 401 in the same time; the right password for
/// an inactive account is 403.
#[openapi(tag = "Auth")]
#[post("/auth/login", data = "<credentials>")]
pub async fn login(
    db: &State<Db>,
    hasher: &State<PasswordHasher>,
    keys: &State<TokenKeys>,
    settings: &State<Settings>,
    limits: RateLimits<'_>,
    credentials: Credentials,
) -> Result<Json<TokenResponse>, ApiError> {
    limits.check_username(&credentials.username).await?;
    // The connection goes back to the pool before bcrypt runs.
    let user = {
        let mut conn = db.acquire().await?;
        users::find_by_username(conn.conn(), &credentials.username).await?
    };
    let user = match user {
        Some(user)
            if hasher
                .verify(&credentials.password, &user.password_hash)
                .await? =>
        {
            user
        }
        Some(_) => return Err(ApiError::Unauthorized(BAD_CREDENTIALS.into())),
        None => {
            hasher.verify_dummy(&credentials.password).await?;
            return Err(ApiError::Unauthorized(BAD_CREDENTIALS.into()));
        }
    };
    if !user.is_active {
        return Err(ApiError::Forbidden("Account is inactive".into()));
    }
    Ok(Json(start_session(db, keys, settings, &user).await?))
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
) -> Result<Json<TokenResponse>, ApiError> {
    let token_hash = hash_refresh_token(&body.into_inner().refresh_token);
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
    if record.spent || !sessions::spend_refresh_token(tx.conn(), &token_hash, now).await? {
        sessions::revoke(tx.conn(), &record.session_id, record.user_id, now).await?;
        tx.commit().await?;
        return Err(ApiError::Unauthorized(
            "Refresh token reuse detected: the session has been revoked".into(),
        ));
    }
    let user = users::find(tx.conn(), record.user_id)
        .await?
        .filter(|user| user.is_active)
        .ok_or_else(invalid)?;
    let refresh_token = add_refresh_token(&mut tx, &record.session_id, settings).await?;
    tx.commit().await?;
    Ok(Json(issue(keys, &user, &record.session_id, refresh_token)?))
}

/// `?all=true` ends every session of the user.
#[derive(Debug, FromForm, JsonSchema, Validate)]
pub struct LogoutQuery {
    /// End every session of the user, not just this one.
    #[serde(default)]
    pub all: Flag,
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
) -> Result<NoContent, ApiError> {
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
